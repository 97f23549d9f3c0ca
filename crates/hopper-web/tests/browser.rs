//! End to end in headless Chromium: log in on one instance, see the alert a
//! failed job raised, then on a second instance serving the same database
//! with the same admin token see the failed job, retry it and see it finish,
//! page through the job list to older jobs and back, then save a screenshot
//! of the overview; with the job list open, see a job this test dispatches
//! come up and then its cancel, pushed over the live stream with no reload,
//! and, when the first instance restarts, the page reconnect and show a job
//! dispatched while it was down;
//! last, cancel the paused queue's jobs with the job list's bulk form,
//! through its confirmation page.
//!
//! Needs Debian's `chromium` and the `playwright-core` package installed in
//! `tests/browser` (`npm install` there; `.ci/run` does both). Without them
//! the test fails, naming what is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use hopper::{DispatchOptions, Hopper, JobState};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

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
    let mut first = Instance::start(hopper.clone(), listener);
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
    hopper.pause("live").await.unwrap();
    let mut child = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&script_dir)
        .env("BASE_URL", format!("http://{address}"))
        .env("OTHER_URL", format!("http://{other_address}"))
        .env("ADMIN_TOKEN", TOKEN)
        .env("JOB_ID", failing.to_string())
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node could not be started");
    let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let mut stderr_pipe = child.stderr.take().unwrap();
    let answering = tokio::spawn(async move {
        let printed = answer(&mut first, stdin, stdout).await;
        (printed, first)
    });
    let status = tokio::time::timeout(Duration::from_secs(150), child.wait())
        .await
        .expect("the browser run did not end within 150 s")
        .unwrap();
    let (stdout, first) = answering.await.unwrap();
    let mut stderr = String::new();
    let _ = stderr_pipe.read_to_string(&mut stderr).await;
    assert!(
        status.success() && stdout.lines().any(|line| line == "ok"),
        "the browser run failed ({status}):\n{stdout}\n{stderr}"
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
    first.server.abort();
    other_server.abort();
    queue.stop().await.unwrap();
}

/// The first instance: its own `Web` on the test's queue, served until it
/// is restarted.
struct Instance {
    hopper: Hopper,
    address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Instance {
    /// Serves a fresh `Web` over `hopper` on `listener`, shutting down
    /// gracefully (its live streams closed) when told to.
    fn start(hopper: Hopper, listener: tokio::net::TcpListener) -> Self {
        let address = listener.local_addr().unwrap();
        let token = hopper_web::AdminToken::new(TOKEN).unwrap();
        let web = hopper_web::Web::new(hopper.clone(), token);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let closer = web.clone();
        let server = tokio::spawn(
            axum::serve(listener, web.router())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    closer.close_live_streams();
                })
                .into_future(),
        );
        Self {
            hopper,
            address,
            stop: Some(stop),
            server,
        }
    }

    /// Shuts the instance down, dispatches a job while it is down, and
    /// starts a new one on the same address; answers the job's id.
    async fn restart(&mut self) -> String {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let ended = tokio::time::timeout(Duration::from_secs(10), &mut self.server).await;
        assert!(ended.is_ok(), "the first instance did not shut down");
        let id = dispatch_live(&self.hopper).await;
        let listener = tokio::net::TcpListener::bind(self.address).await.unwrap();
        *self = Self::start(self.hopper.clone(), listener);
        id
    }
}

/// Dispatches a mail job to the paused queue `live`; its id, or the error.
async fn dispatch_live(hopper: &Hopper) -> String {
    let options = DispatchOptions::new().queue("live");
    let mail = Mail {
        to: "live@example.com".into(),
    };
    let id = hopper.dispatch_with::<MailJob>(mail, options).await;
    id.map(|id| id.to_string())
        .unwrap_or_else(|e| e.to_string())
}

/// Answers the script's requests (`ask: dispatch`, `ask: cancel ID`,
/// `ask: restart`) as another process beside the dashboard would act, and
/// returns everything the script printed.
async fn answer(
    first: &mut Instance,
    mut stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
) -> String {
    let mut printed = String::new();
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        printed.push_str(&line);
        printed.push('\n');
        let reply = match line.strip_prefix("ask: ") {
            Some("dispatch") => dispatch_live(&first.hopper).await,
            Some("restart") => first.restart().await,
            Some(request) => match request.strip_prefix("cancel ").map(str::parse) {
                Some(Ok(id)) => format!("{:?}", first.hopper.cancel(id).await),
                _ => format!("unknown request {request:?}"),
            },
            None => continue,
        };
        if stdin
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
    printed
}
