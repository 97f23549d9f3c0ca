//! The starter's lifecycle hooks: when a job fails for good, a notice is
//! emailed (through the [`Mailer`]) to `NOTIFY_EMAIL`, so someone can look
//! at it before the user asks.

use hopper::hooks::{HookResult, Hooks, JobEvent};

use crate::mailer::Mailer;

/// Emails a notice for every job that fails for good.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::hooks::{EventKind, Hooks, JobEvent};
/// let dir = tempfile::tempdir().unwrap();
/// let log = dir.path().join("mail.log");
/// let mailer = app::mailer::Mailer::new(&log);
/// let hopper = hopper::Hopper::builder().state(mailer).connect("sqlite::memory:").await.unwrap();
/// let mut event = JobEvent::new(&hopper, EventKind::Failed, 7, "send_email", "default", 3, 3, "{}");
/// event.error = Some("mail server refused".into());
///
/// app::hooks::FailureNotice::new("ops@example.com").failed(&event).await.unwrap();
/// let sent = app::mailer::Mailer::new(&log).read_all().await.unwrap();
/// assert_eq!(sent[0].to, "ops@example.com");
/// assert_eq!(sent[0].subject, "Job 7 (send_email) failed");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct FailureNotice {
    to: String,
}

impl FailureNotice {
    /// Notices go to `to`.
    pub fn new(to: impl Into<String>) -> Self {
        Self { to: to.into() }
    }
}

#[hopper::async_trait]
impl Hooks for FailureNotice {
    async fn failed(&self, event: &JobEvent) -> HookResult {
        let mailer = event
            .state::<Mailer>()
            .ok_or("the queue has no mailer to send the notice with")?;
        let subject = format!("Job {} ({}) failed", event.id, event.job_type);
        let body = format!(
            "Job {} of type {} on queue {} failed for good after attempt {} of {}: {}",
            event.id,
            event.job_type,
            event.queue,
            event.attempt,
            event.max_attempts,
            event.error.as_deref().unwrap_or("no error recorded"),
        );
        mailer.send(&self.to, &subject, &body).await?;
        Ok(())
    }
}
