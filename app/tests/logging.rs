//! The application's log file: JSON lines, where every job event and every
//! event a job's handler logs carries the job's id, type, queue and attempt.

use app::jobs::EmailJob;
use app::jobs::email_job::EmailPayload;
use app::logging::{LogConfig, subscriber};
use serde_json::Value;

#[tokio::test]
async fn the_daily_file_holds_json_lines_that_carry_the_job_fields() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("storage").join("logs");
    let config = LogConfig {
        terminal: false,
        dir: logs.clone(),
        ..LogConfig::default()
    };
    let (subscriber, guard) = subscriber(&config, true).unwrap();
    let scope = tracing::subscriber::set_default(subscriber);

    let mailer = app::mailer::Mailer::new(dir.path().join("mail.log"));
    let queue = hopper::testing::TestQueue::start(app::hopper_builder(mailer).unwrap())
        .await
        .unwrap();
    let id = queue
        .hopper()
        .dispatch::<EmailJob>(EmailPayload {
            to: "ada@example.com".into(),
            subject: "Hi".into(),
            body: "Hello".into(),
        })
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    queue.stop().await.unwrap();
    drop(scope);
    drop(guard);

    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let today = chrono::Utc::now().format("%Y-%m-%d");
    assert_eq!(files[0], format!("app.{today}.log"));
    let text = std::fs::read_to_string(logs.join(&files[0])).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let of_job: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["id"] == id)
        .collect();
    let messages: Vec<&str> = of_job
        .iter()
        .map(|line| line["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "job dispatched",
            "job started",
            "email sent",
            "job finished"
        ],
        "{text}"
    );
    for line in &of_job {
        assert_eq!(line["span"]["type"], "send_email", "{line}");
        assert_eq!(line["span"]["queue"], "default", "{line}");
        assert!(
            line["timestamp"].is_string() && line["level"] == "INFO",
            "{line}"
        );
    }
    let attempts: Vec<Option<u64>> = of_job
        .iter()
        .map(|line| line["span"]["attempt"].as_u64())
        .collect();
    assert_eq!(attempts, [Some(0), Some(1), Some(1), Some(1)]);
    assert!(of_job[3]["duration_ms"].as_f64().is_some(), "{}", of_job[3]);
    // The handler's own event has its own fields next to the job's.
    assert_eq!(of_job[2]["to"], "ada@example.com");
}
