//! End to end in headless Chromium: log in on one instance, see the alert a
//! failed job raised, then on a second instance serving the same database
//! with the same admin token see the failed job, retry it and see it finish,
//! page through the job list to older jobs and back, then save a screenshot
//! of the overview; last, cancel the paused queue's jobs with the job list's
//! bulk form, through its confirmation page.
//!
//! Needs Debian's `chromium` and the `playwright-core` package installed in
//! `tests/browser` (`npm install` there; `.ci/run` does both). Without them
//! the test fails, naming what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hopper::{DispatchOptions, JobState};

fn chromium() -> PathBuf {
    PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
}

fn screenshot_path() -> PathBuf {
    match std::env::var("HOPPER_SCREENSHOT") {
        Ok(path) if !path.is_empty() => PathBuf::from(path),
        _ => Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
    }
}

#[tokio::test]
async fn log_in_on_one_instance_retry_a_failed_job_on_another_and_see_it_finish() {
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        chromium().exists(),
        "Chromium is not installed at {}: apt-get install -y chromium",
        chromium().display()
    );
    assert!(
        script_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm install` in {}",
        script_dir.display()
    );

    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    // An hour of history, so the chart has something to show.
    for round in 0..20u32 {
        for i in 0..(3 + (round * 7) % 11) {
            hopper
                .dispatch::<MailJob>(Mail {
                    to: format!("user{round}-{i}@example.com"),
                })
                .await
                .unwrap();
        }
        if round % 6 == 5 {
            hopper
                .dispatch::<FlakyJob>(serde_json::json!({"round": round}))
                .await
                .unwrap();
        }
        queue.wait_idle().await.unwrap();
        queue.advance(Duration::from_secs(150));
    }
    let failing = hopper
        .dispatch::<FlakyJob>(serde_json::json!({"report": "<script>alert('monthly')</script>"}))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(
        hopper.job(failing).await.unwrap().unwrap().state,
        JobState::Failed
    );
    hopper.pause("reports").await.unwrap();
    for month in ["2024-01", "2024-02", "2024-03"] {
        let options = DispatchOptions::new().queue("reports");
        hopper
            .dispatch_with::<MailJob>(
                Mail {
                    to: format!("{month}@example.com"),
                },
                options,
            )
            .await
            .unwrap();
    }
    queue.advance(Duration::from_secs(95));
    flaky.failing.store(false, Ordering::SeqCst);
    let alerts = hopper::alerts::Alerts::from_json(
        r#"{"flaky-failed": {"kind": "job_failed", "job_type": "flaky", "window": "10m"}}"#,
    )
    .unwrap();
    assert_eq!(
        alerts.check(hopper).await.unwrap().len(),
        1,
        "the alert fires"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(axum::serve(listener, router(hopper)).into_future());
    // A second instance, as a load balancer would put beside the first: its
    // own `Hopper` on the same database (and the test's clock) and its own
    // `Web`, sharing nothing with the first but the database and the token.
    let other_hopper = builder(&flaky)
        .clock(queue.clock().clone())
        .connect(queue.database_url())
        .await
        .unwrap();
    let other_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_address = other_listener.local_addr().unwrap();
    let other_server =
        tokio::spawn(axum::serve(other_listener, router(&other_hopper)).into_future());

    let screenshot = screenshot_path();
    let _ = std::fs::remove_file(&screenshot);
    let run = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&script_dir)
        .env("BASE_URL", format!("http://{address}"))
        .env("OTHER_URL", format!("http://{other_address}"))
        .env("ADMIN_TOKEN", TOKEN)
        .env("JOB_ID", failing.to_string())
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", chromium())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser run did not end within 120 s")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("ok"),
        "the browser run failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    assert_eq!(
        hopper.job(failing).await.unwrap().unwrap().state,
        JobState::Finished
    );
    let cancelled_reports = hopper::JobFilter {
        state: Some(JobState::Cancelled),
        queue: Some("reports".into()),
        ..Default::default()
    };
    assert_eq!(hopper.count_jobs(&cancelled_reports).await.unwrap(), 3);
    let png = std::fs::read(&screenshot).expect("a screenshot was saved");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    server.abort();
    other_server.abort();
    queue.stop().await.unwrap();
}
