//! Jobs run by a real worker pool on a real SQLite file.

use std::time::Duration;

use app::jobs::email_job::EmailPayload;
use app::jobs::image_processor_job::ImagePayload;
use app::jobs::{EmailJob, ImageProcessorJob};
use app::mailer::Mailer;
use hopper::testing::TestQueue;
use hopper::{JobFilter, JobState};

async fn queue(mail_log: &std::path::Path) -> TestQueue {
    let builder = app::hopper_builder(Mailer::new(mail_log)).expect("jobs register");
    TestQueue::start(builder).await.expect("test queue starts")
}

fn welcome(to: &str) -> EmailPayload {
    EmailPayload {
        to: to.into(),
        subject: "Welcome".into(),
        body: "Hello".into(),
    }
}

fn image(process_type: &str) -> ImagePayload {
    ImagePayload {
        image_url: "https://example.com/cat.png".into(),
        user_id: 7,
        process_type: process_type.into(),
    }
}

#[tokio::test]
async fn a_dispatched_email_is_processed_and_finished() {
    let dir = tempfile::tempdir().unwrap();
    let mail_log = dir.path().join("mail.log");
    let queue = queue(&mail_log).await;

    let id = queue
        .hopper()
        .dispatch::<EmailJob>(welcome("ada@example.com"))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();

    let jobs = queue
        .hopper()
        .jobs(&JobFilter {
            job_type: Some("send_email".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].id, id);
    assert_eq!(jobs[0].state, JobState::Finished);
    assert_eq!(jobs[0].attempts, 1);
    assert!(jobs[0].finished_at.is_some());

    let sent = Mailer::new(&mail_log).read_all().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "ada@example.com");
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn an_email_that_cannot_be_written_is_retried_30s_apart_then_failed() {
    let dir = tempfile::tempdir().unwrap();
    // The mail log path is a folder: every send fails, a retryable error.
    let queue = queue(dir.path()).await;
    let hopper = queue.hopper();
    let id = hopper
        .dispatch::<EmailJob>(welcome("ada@example.com"))
        .await
        .unwrap();

    for attempt in 1..=2 {
        queue.wait_idle().await.unwrap();
        let job = hopper.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Pending, "after attempt {attempt}");
        assert_eq!(job.attempts, attempt);
        assert_eq!(
            job.available_at - hopper.now(),
            chrono::Duration::seconds(30)
        );
        assert!(job.last_error.as_deref().unwrap_or("").contains("mail log"));
        queue.advance(Duration::from_secs(30));
    }
    queue.wait_idle().await.unwrap();
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.errors.len(), 3);
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn images_are_processed_and_an_unknown_process_type_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir.path().join("mail.log")).await;
    let hopper = queue.hopper();

    let resize = hopper
        .dispatch::<ImageProcessorJob>(image("resize"))
        .await
        .unwrap();
    let compress = hopper
        .dispatch::<ImageProcessorJob>(image("compress"))
        .await
        .unwrap();
    let rotate = hopper
        .dispatch::<ImageProcessorJob>(image("rotate"))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();

    for id in [resize, compress] {
        let job = hopper.job(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Finished);
        assert_eq!(job.max_attempts, 5);
    }
    let failed = hopper.job(rotate).await.unwrap().unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempts, 1, "a permanent error is not retried");
    assert!(
        failed
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("unknown process type: rotate")
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn dispatch_by_name_checks_the_payload_against_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let queue = queue(&dir.path().join("mail.log")).await;
    let hopper = queue.hopper();

    let bad = serde_json::json!({ "image_url": "https://x.test/a.png", "user_id": "seven", "process_type": "resize" });
    let err = hopper
        .dispatch_json("process_image", &bad, Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("process_image"), "{err}");
    assert!(
        hopper
            .jobs(&JobFilter::default())
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    queue.stop().await.unwrap();
}
