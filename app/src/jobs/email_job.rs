//! `send_email`: sends one email through the shared [`Mailer`].

use std::time::Duration;

use hopper::{Job, JobContext, JobError, JobResult};
use serde::{Deserialize, Serialize};

use crate::mailer::Mailer;

/// Sends an email. Retried up to 3 times, 30 s apart, if the mail log
/// cannot be written; an email without a recipient fails at once.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmailJob;

/// What an [`EmailJob`] sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailPayload {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The text body.
    pub body: String,
}

impl Job for EmailJob {
    const TYPE: &'static str = "send_email";
    const MAX_ATTEMPTS: u32 = 3;
    type Payload = EmailPayload;

    async fn handle(&self, payload: EmailPayload, ctx: JobContext) -> JobResult {
        if payload.to.trim().is_empty() {
            return Err(JobError::permanent("an email needs a recipient"));
        }
        let mailer = ctx.state::<Mailer>()?;
        mailer
            .send(&payload.to, &payload.subject, &payload.body)
            .await
            .map_err(|err| {
                JobError::retryable(format!(
                    "cannot write to mail log {}: {err}",
                    mailer.path().display()
                ))
            })?;
        tracing::info!(job_id = ctx.id(), to = %payload.to, subject = %payload.subject, "email sent");
        Ok(())
    }

    fn retry_delay(&self, _attempt: u32) -> Duration {
        Duration::from_secs(30)
    }
}

#[cfg(test)]
mod tests {
    use hopper::State;

    use super::*;

    fn payload() -> EmailPayload {
        EmailPayload {
            to: "test@example.com".into(),
            subject: "Test Email".into(),
            body: "Test body".into(),
        }
    }

    #[tokio::test]
    async fn handle_appends_the_email_to_the_mail_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mail.log");
        let ctx = JobContext::detached(1, 1).with_state(State::new().with(Mailer::new(&log)));

        EmailJob.handle(payload(), ctx.clone()).await.unwrap();
        EmailJob.handle(payload(), ctx).await.unwrap();

        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "one line per email: {text}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["to"], "test@example.com");
        assert_eq!(first["subject"], "Test Email");
        assert_eq!(first["body"], "Test body");
        assert!(first["sent_at"].is_string());
    }

    #[tokio::test]
    async fn handle_without_a_mailer_is_a_permanent_error() {
        let err = EmailJob
            .handle(payload(), JobContext::detached(1, 1))
            .await
            .unwrap_err();
        assert!(err.is_permanent());
        assert!(err.message().contains("Mailer"), "{err}");
    }

    #[tokio::test]
    async fn handle_without_a_recipient_is_a_permanent_error() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = JobContext::detached(1, 1)
            .with_state(State::new().with(Mailer::new(dir.path().join("mail.log"))));
        let mut payload = payload();
        payload.to = " ".into();
        assert!(
            EmailJob
                .handle(payload, ctx)
                .await
                .unwrap_err()
                .is_permanent()
        );
    }

    #[tokio::test]
    async fn an_unwritable_mail_log_is_retried() {
        let dir = tempfile::tempdir().unwrap();
        // The log path is a folder, so appending to it fails.
        let ctx = JobContext::detached(1, 1).with_state(State::new().with(Mailer::new(dir.path())));
        let err = EmailJob.handle(payload(), ctx).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }

    #[test]
    fn type_name_is_send_email() {
        assert_eq!(EmailJob::TYPE, "send_email");
        assert_eq!(EmailJob::MAX_ATTEMPTS, 3);
        assert_eq!(EmailJob.retry_delay(1), Duration::from_secs(30));
    }
}
