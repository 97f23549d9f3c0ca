//! The job a chaos run dispatches: it records each execution of its
//! handler in `chaos_runs`, works for a few milliseconds, then records
//! when that execution ended.

use std::time::{Duration, Instant};

use hopper::{Job, JobContext, JobError, JobResult};

use crate::db::Db;

/// What every handler in one worker process shares: where to record runs
/// and who is recording them.
#[derive(Debug)]
pub struct Recorder {
    /// The run's database.
    pub db: Db,
    /// This process's worker id (also its `locked_by`).
    pub worker: String,
    /// The most milliseconds one run works after recording itself.
    pub max_work_ms: u64,
}

/// A job numbered by its payload (its sequence number in the run).
pub struct ChaosJob;

impl Job for ChaosJob {
    const TYPE: &'static str = "chaos";
    /// High, so no job fails for good because chaos cut its attempts short:
    /// every job must end `finished`.
    const MAX_ATTEMPTS: u32 = 1_000;
    type Payload = u64;

    async fn handle(&self, _seq: u64, ctx: JobContext) -> JobResult {
        record_and_work(&ctx).await
    }

    /// Short, so retries do not hold up the drain. A worker whose clock
    /// runs ahead writes its retries' due times on its own clock: for the
    /// others they come due a skew later, but that worker (or the skewed
    /// one replacing it, since one is alive until the end) claims by its own
    /// clock and takes them 100 ms after they failed.
    fn retry_delay(&self, _attempt: u32) -> Duration {
        Duration::from_millis(100)
    }
}

/// A batch's callback in a batched run: which batch (its first and end
/// sequence numbers) and which event. It records its executions as a chaos
/// job does, so the audit finds each callback that ran more than once.
pub struct ChaosCallback;

impl Job for ChaosCallback {
    const TYPE: &'static str = "chaos_callback";
    const MAX_ATTEMPTS: u32 = 1_000;
    type Payload = (u64, u64, String);

    async fn handle(&self, _batch: (u64, u64, String), ctx: JobContext) -> JobResult {
        record_and_work(&ctx).await
    }

    fn retry_delay(&self, _attempt: u32) -> Duration {
        Duration::from_millis(100)
    }
}

/// Records this execution of the job in `chaos_runs`, works a few
/// milliseconds, then records its end.
async fn record_and_work(ctx: &JobContext) -> JobResult {
    let recorder = ctx.state::<Recorder>()?;
    let at_us = chrono::Utc::now().timestamp_micros();
    let recorded = recorder
        .db
        .record_run(
            ctx.id(),
            ctx.attempt(),
            &recorder.worker,
            std::process::id(),
            at_us,
        )
        .await;
    if let Err(error) = recorded {
        // The insert may have committed with its answer lost: this
        // execution ends here, and says so if its row is there.
        let end_us = chrono::Utc::now().timestamp_micros();
        end(recorder, ctx.id(), ctx.attempt(), at_us, end_us).await;
        return Err(JobError::retryable(format!(
            "recording the run failed: {error}"
        )));
    }
    let work = fastrand::u64(0..=recorder.max_work_ms);
    tokio::time::sleep(Duration::from_millis(work)).await;
    let end_us = chrono::Utc::now().timestamp_micros();
    end(recorder, ctx.id(), ctx.attempt(), at_us, end_us).await;
    Ok(())
}

/// How long [`end`] keeps trying to write an execution's end: past a
/// server restart and a burst of connection kills.
const END_RETRY: Duration = Duration::from_secs(60);

/// Records that the execution started at `at_us` ended at `end_us`,
/// trying again while the database is away (the time written is the one
/// the work ended at, not the one the write got through). A run whose end
/// is never written counts, in a limited run's audit, as running until
/// its process died, or fails the audit if it did not.
async fn end(recorder: &Recorder, job_id: i64, attempt: u32, at_us: i64, end_us: i64) {
    let deadline = Instant::now() + END_RETRY;
    loop {
        let written = recorder
            .db
            .record_end(job_id, attempt, &recorder.worker, at_us, end_us)
            .await;
        if written.is_ok() || Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
