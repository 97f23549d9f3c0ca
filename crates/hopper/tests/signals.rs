//! A pool run until a stop signal: SIGTERM to a real process stops it
//! gracefully, letting the job it runs finish.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hopper::{Hopper, Job, JobContext, JobResult, JobState, WorkerConfig};

const CHILD_DB: &str = "HOPPER_SIGNAL_TEST_CHILD_DB";
const CHILD: &str = "signalled-worker";

/// Runs for a while; long enough to be running when the signal comes.
struct Slow;

impl Job for Slow {
    const TYPE: &'static str = "slow";
    type Payload = ();
    async fn handle(&self, _: (), _: JobContext) -> JobResult {
        tokio::time::sleep(Duration::from_millis(800)).await;
        Ok(())
    }
}

/// The worker process of the test below; run only by it.
#[tokio::test]
#[ignore = "started as a child process by a_pool_run_until_a_signal_stops_gracefully_at_sigterm"]
async fn signal_child_worker() {
    let url = std::env::var(CHILD_DB).expect("run by the signal test");
    let hopper = Hopper::builder()
        .register(Slow)
        .unwrap()
        .connect(&url)
        .await
        .unwrap();
    let pool = hopper.start(WorkerConfig::new(1).worker_id(CHILD)).unwrap();
    let handed_back = pool.run_until_signal().await.unwrap();
    assert_eq!(
        handed_back, 0,
        "the running job finished within the shutdown timeout"
    );
}

/// A child process that is killed, if still running, when the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_pool_run_until_a_signal_stops_gracefully_at_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("signal.db").display());
    let hopper = Hopper::builder()
        .register(Slow)
        .unwrap()
        .connect(&url)
        .await
        .unwrap();
    let id = hopper.dispatch::<Slow>(()).await.unwrap();

    let mut child = Reaped(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "signal_child_worker", "--ignored", "--nocapture"])
            .env(CHILD_DB, &url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = hopper.job(id).await.unwrap().unwrap();
        if job.state == JobState::Started && job.locked_by.as_deref() == Some(CHILD) {
            break;
        }
        assert!(Instant::now() < deadline, "the child never started the job");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let sent = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "the child stopped gracefully: {status:?}");
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Finished, "the running job finished");
}
