//! `heartbeat_task`: logs a line every hour, so the logs show the
//! scheduled tasks run (made with `app console make:cron HeartbeatTask`).
//!
//! It is a job like any other (its type is `heartbeat_task`, its payload is `()`),
//! so it can also be dispatched by hand.

use hopper::schedule::{Schedule, ScheduleError};
use hopper::{Job, JobContext, JobResult};

/// When [`HeartbeatTask`] runs: a cron expression (seconds optional) or one of
/// `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`, `@every 30s`.
pub const SCHEDULE: &str = "0 * * * *";

/// [`HeartbeatTask`] on [`SCHEDULE`] (in UTC), named by its job type; the
/// scheduler runs it once listed in `cron::schedules`.
pub fn schedule() -> Result<Schedule, ScheduleError> {
    Schedule::new::<HeartbeatTask>(HeartbeatTask::TYPE, SCHEDULE, ())
}

/// Logs a heartbeat.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeartbeatTask;

impl Job for HeartbeatTask {
    const TYPE: &'static str = "heartbeat_task";
    const MAX_ATTEMPTS: u32 = 1;
    type Payload = ();

    async fn handle(&self, (): (), ctx: JobContext) -> JobResult {
        tracing::info!(job_id = ctx.id(), "heartbeat");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handle_succeeds() {
        hopper::testing::perform(&HeartbeatTask, ()).await.unwrap();
    }

    #[test]
    fn settings() {
        assert_eq!(HeartbeatTask::TYPE, "heartbeat_task");
        assert_eq!(SCHEDULE, "0 * * * *");
        assert_eq!(schedule().unwrap().name(), "heartbeat_task");
    }
}
