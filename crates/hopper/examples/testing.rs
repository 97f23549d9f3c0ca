//! Testing jobs with `hopper::testing`: a handler called directly, as a unit
//! test would, and a real queue (a temporary SQLite file and a clock moved
//! by hand) for what happens around it, here a delay. The tests are the
//! example:
//!
//! ```text
//! cargo test -p hopper --example testing
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hopper::{Hopper, Job, JobContext, JobError, JobResult, WorkerConfig};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Reminder {
    email: String,
}

/// Where reminders go: the application's mailer, a list in tests. Jobs
/// reach it through the builder's shared state.
#[derive(Clone, Default)]
struct Outbox(Arc<Mutex<Vec<String>>>);

impl Outbox {
    fn send(&self, to: &str) {
        self.0.lock().unwrap().push(to.to_owned());
    }

    fn sent(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct ReminderJob;

impl Job for ReminderJob {
    const TYPE: &'static str = "reminder";
    type Payload = Reminder;

    async fn handle(&self, reminder: Reminder, ctx: JobContext) -> JobResult {
        if !reminder.email.contains('@') {
            return Err(JobError::permanent(format!(
                "not an address: {}",
                reminder.email
            )));
        }
        ctx.state::<Outbox>()?.send(&reminder.email);
        Ok(())
    }
}

/// The application's side: the job on a real queue (in memory here).
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let outbox = Outbox::default();
    let hopper = Hopper::builder()
        .register(ReminderJob)?
        .state(outbox.clone())
        .connect("sqlite::memory:")
        .await?;
    let workers = hopper.start(WorkerConfig::new(1))?;
    let reminder = Reminder {
        email: "ada@example.com".into(),
    };
    let id = hopper.dispatch::<ReminderJob>(reminder).await?;
    hopper.wait_for(id, Duration::from_secs(10)).await?;
    workers.stop().await?;
    println!(
        "sent to {:?}; now the tests: cargo test -p hopper --example testing",
        outbox.sent()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use hopper::testing::{TestQueue, perform};
    use hopper::{DispatchOptions, JobState};

    use super::*;

    #[tokio::test]
    async fn a_bad_address_fails_for_good() {
        // The handler alone: no database, no workers.
        let reminder = Reminder {
            email: "nobody".into(),
        };
        let err = perform(&ReminderJob, reminder).await.unwrap_err();
        assert!(err.is_permanent());
    }

    #[tokio::test]
    async fn a_reminder_is_sent_once_its_delay_has_passed() -> anyhow::Result<()> {
        let outbox = Outbox::default();
        let builder = Hopper::builder()
            .register(ReminderJob)?
            .state(outbox.clone());
        let queue = TestQueue::start(builder).await?;

        let reminder = Reminder {
            email: "ada@example.com".into(),
        };
        let in_an_hour = DispatchOptions::new().delay(Duration::from_secs(3600));
        let id = queue
            .hopper()
            .dispatch_with::<ReminderJob>(reminder, in_an_hour)
            .await?;

        // Nothing is due yet: the workers go idle without running it.
        queue.wait_idle().await?;
        assert_eq!(
            queue.hopper().job(id).await?.unwrap().state,
            JobState::Pending
        );
        assert!(outbox.sent().is_empty());

        // An hour later, at once: the clock is the queue's own.
        queue.advance(Duration::from_secs(3600));
        queue.wait_idle().await?;
        assert_eq!(
            queue.hopper().job(id).await?.unwrap().state,
            JobState::Finished
        );
        assert_eq!(outbox.sent(), ["ada@example.com"]);

        queue.stop().await?;
        Ok(())
    }
}
