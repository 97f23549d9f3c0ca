//! What a job's timeout can and cannot stop: it cancels a handler where it
//! awaits, including an await on blocking work moved off the runtime, but
//! not a handler that blocks its own thread.

use std::time::Duration;

use hopper::testing::TestQueue;
use hopper::{Hopper, Job, JobContext, JobResult, JobState, WorkerConfig};

const TIMEOUT: Duration = Duration::from_millis(200);
const WORK: Duration = Duration::from_millis(800);

/// Sleeps on its own thread, past its timeout.
struct BlocksItsThread;

impl Job for BlocksItsThread {
    const TYPE: &'static str = "blocks_its_thread";
    const MAX_ATTEMPTS: u32 = 1;
    type Payload = ();
    async fn handle(&self, _: (), _: JobContext) -> JobResult {
        std::thread::sleep(WORK);
        Ok(())
    }
    fn timeout(&self) -> Duration {
        TIMEOUT
    }
}

/// Sleeps past its timeout on a blocking-pool thread, awaiting it.
struct AwaitsBlockingWork;

impl Job for AwaitsBlockingWork {
    const TYPE: &'static str = "awaits_blocking_work";
    const MAX_ATTEMPTS: u32 = 1;
    type Payload = ();
    async fn handle(&self, _: (), _: JobContext) -> JobResult {
        tokio::task::spawn_blocking(|| std::thread::sleep(WORK))
            .await
            .map_err(|error| hopper::JobError::retryable(error.to_string()))?;
        Ok(())
    }
    fn timeout(&self) -> Duration {
        TIMEOUT
    }
}

async fn run_one<J: Job<Payload = ()>>(job: J) -> hopper::JobRecord {
    let builder = Hopper::builder().register(job).unwrap();
    let queue = TestQueue::start_with(builder, WorkerConfig::new(1))
        .await
        .unwrap();
    let id = queue.hopper().dispatch::<J>(()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let job = queue.hopper().job(id).await.unwrap().unwrap();
    queue.stop().await.unwrap();
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_blocks_its_thread_escapes_its_timeout() {
    let job = run_one(BlocksItsThread).await;
    assert_eq!(job.state, JobState::Finished, "{:?}", job.last_error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_work_awaited_through_spawn_blocking_is_stopped_by_the_timeout() {
    let job = run_one(AwaitsBlockingWork).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.last_error.unwrap_or_default();
    assert!(error.contains("timed out after"), "{error}");
}
