//! The job a chaos run dispatches: it records each execution of its
//! handler in `chaos_runs`, then works for a few milliseconds.

use std::time::Duration;

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
        let recorder = ctx.state::<Recorder>()?;
        let at_us = chrono::Utc::now().timestamp_micros();
        recorder
            .db
            .record_run(
                ctx.id(),
                ctx.attempt(),
                &recorder.worker,
                std::process::id(),
                at_us,
            )
            .await
            .map_err(|e| JobError::retryable(format!("recording the run failed: {e}")))?;
        let work = fastrand::u64(0..=recorder.max_work_ms);
        tokio::time::sleep(Duration::from_millis(work)).await;
        Ok(())
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
