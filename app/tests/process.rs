//! The real `app` binary: start it, use it over HTTP, stop it with a signal.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use hopper::{Hopper, JobFilter, JobRecord, JobState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The longest any single wait in these tests may take.
const LIMIT: Duration = Duration::from_secs(60);
/// The pause between two looks at a condition that has no event to wait on.
const POLL: Duration = Duration::from_millis(25);

/// A running `app` process in its own temporary folder.
struct App {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl App {
    fn database_url(dir: &Path) -> String {
        format!("sqlite://{}", dir.join("jobs.db").display())
    }

    fn spawn(command: &str, dir: tempfile::TempDir, extra_env: &[(&str, &str)]) -> App {
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("app.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_app"));
        cmd.arg(command)
            // A folder with no `.env`, so only the settings below apply.
            .current_dir(dir.path())
            .env("DATABASE_URL", Self::database_url(dir.path()))
            .env("APP_HOST", "127.0.0.1")
            .env("APP_PORT", port.to_string())
            .env("HOPPER_WORKERS", "2")
            .env("HOPPER_SHUTDOWN_TIMEOUT", "10")
            .env("MAIL_LOG", dir.path().join("mail.log"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        for (name, value) in extra_env {
            cmd.env(name, value);
        }
        let child = cmd.spawn().expect("the app binary starts");
        App { child, dir, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("app.log")).unwrap_or_default()
    }

    fn mail_log(&self) -> PathBuf {
        self.dir.path().join("mail.log")
    }

    /// Fails the test with the app's output.
    fn fail(&self, why: impl std::fmt::Display) -> ! {
        panic!("{why}\n--- app output ---\n{}", self.log());
    }

    /// Waits until `/health` answers 200, failing early if the process exits.
    async fn wait_healthy(&mut self) {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(format!("the app exited before it was healthy: {status}"));
            }
            if let Ok((200, _)) = http(self.port, "GET", "/health", None).await {
                return;
            }
            if Instant::now() > deadline {
                self.fail("the app did not answer /health in time");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("the app is running");
        let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
        // SAFETY: kill(2) with a pid this test spawned and still owns; no memory is involved.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill({pid}, {signal}) failed");
    }

    async fn wait_exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(LIMIT, self.child.wait()).await {
            Ok(status) => status.unwrap(),
            Err(_) => self.fail("the app did not exit in time after the signal"),
        }
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP/1.1 request over a fresh connection; returns status and body.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let body = form.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if form.is_some() {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    let bad = || std::io::Error::other(format!("not an HTTP response: {response:?}"));
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    let (_, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

/// Waits until the only `send_email` job in the database is in a final state.
async fn wait_for_email_job(app: &App, hopper: &Hopper) -> JobRecord {
    let filter = JobFilter {
        job_type: Some("send_email".into()),
        ..Default::default()
    };
    let deadline = Instant::now() + LIMIT;
    loop {
        let jobs = hopper.jobs(&filter).await.unwrap().jobs;
        if let [job] = jobs.as_slice() {
            if job.state.is_final() {
                return job.clone();
            }
        }
        if Instant::now() > deadline {
            app.fail(format!("the email job did not end in time: {jobs:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn open(app: &App) -> Hopper {
    Hopper::builder()
        .connect(&App::database_url(app.dir.path()))
        .await
        .unwrap()
}

#[tokio::test]
async fn serve_queues_and_sends_a_welcome_email_then_stops_on_sigterm() {
    let mut app = App::spawn("serve", tempfile::tempdir().unwrap(), &[]);
    app.wait_healthy().await;

    let (status, body) = http(
        app.port,
        "POST",
        "/users/welcome-email",
        Some("email=ada%40example.com"),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        r#"{"success":true,"message":"Welcome email queued successfully"}"#
    );

    let hopper = open(&app).await;
    let job = wait_for_email_job(&app, &hopper).await;
    assert_eq!(job.state, JobState::Finished, "{job:?}");
    let mail = std::fs::read_to_string(app.mail_log()).unwrap();
    assert!(mail.contains(r#""to":"ada@example.com""#), "{mail}");

    app.signal(libc::SIGTERM);
    let status = app.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status}\n{}", app.log());
    let log = app.log();
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(log.contains("shutdown complete"), "{log}");

    // The same run, as JSON lines in the daily file under storage/logs.
    let logs = app.dir.path().join("storage").join("logs");
    let file = std::fs::read_dir(&logs)
        .unwrap()
        .next()
        .expect("a daily log file")
        .unwrap()
        .path();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let finished = lines
        .iter()
        .find(|line| line["message"] == "job finished" && line["span"]["id"] == job.id)
        .unwrap_or_else(|| panic!("no finished event for job {} in {lines:?}", job.id));
    assert_eq!(finished["span"]["type"], "send_email");
    assert_eq!(finished["span"]["queue"], "default");
    assert_eq!(finished["span"]["attempt"], 1);
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "shutdown complete")
    );
}

#[tokio::test]
async fn work_runs_jobs_dispatched_by_another_process_and_stops_on_sigint() {
    let dir = tempfile::tempdir().unwrap();
    // Dispatch before the workers start, as another service would.
    let url = App::database_url(dir.path());
    let hopper = app::hopper_builder(app::mailer::Mailer::new(dir.path().join("unused.log")))
        .unwrap()
        .connect(&url)
        .await
        .unwrap();
    hopper
        .dispatch::<app::jobs::EmailJob>(app::jobs::email_job::EmailPayload {
            to: "grace@example.com".into(),
            subject: "Hi".into(),
            body: "Queued elsewhere.".into(),
        })
        .await
        .unwrap();

    let mut app = App::spawn("work", dir, &[]);
    let job = wait_for_email_job(&app, &hopper).await;
    assert_eq!(job.state, JobState::Finished, "{job:?}");
    assert!(
        http(app.port, "GET", "/health", None).await.is_err(),
        "`work` serves no HTTP"
    );

    app.signal(libc::SIGINT);
    let status = app.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status}\n{}", app.log());
    assert!(app.log().contains("shutdown complete"), "{}", app.log());
}

#[tokio::test]
async fn a_bad_setting_stops_the_app_with_a_clear_error() {
    let mut app = App::spawn(
        "serve",
        tempfile::tempdir().unwrap(),
        &[("HOPPER_WORKERS", "lots")],
    );
    let status = app.wait_exit().await;
    assert!(!status.success(), "{status}");
    let log = app.log();
    assert!(log.contains("invalid HOPPER_WORKERS=\"lots\""), "{log}");
}

#[tokio::test]
async fn serve_without_admin_token_prints_a_login_link_and_lets_no_one_in_without_it() {
    let mut app = App::spawn("serve", tempfile::tempdir().unwrap(), &[]);
    app.wait_healthy().await;
    for path in ["/admin/queue", "/api/stats", "/api/jobs", "/metrics"] {
        let (status, body) = http(app.port, "GET", path, None).await.unwrap();
        assert_eq!(status, 401, "{path}: {body}");
    }
    let log = app.log();
    let link = log
        .split_whitespace()
        .find(|word| word.contains("/admin/queue/login?token="))
        .unwrap_or_else(|| app.fail("no dashboard link printed"));
    let path = &link[link.find("/admin").unwrap()..];
    let (status, _) = http(app.port, "GET", path, None).await.unwrap();
    assert_eq!(status, 303, "the printed link logs in");
    let (status, _) = http(
        app.port,
        "GET",
        "/admin/queue/login?token=wrong-token",
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 401);
    app.signal(libc::SIGTERM);
    assert_eq!(app.wait_exit().await.code(), Some(0));
}

#[tokio::test]
async fn serve_with_admin_token_prints_no_token() {
    let secret = "a-configured-admin-token";
    let mut app = App::spawn(
        "serve",
        tempfile::tempdir().unwrap(),
        &[("ADMIN_TOKEN", secret)],
    );
    app.wait_healthy().await;
    let (status, _) = http(
        app.port,
        "GET",
        &format!("/admin/queue/login?token={secret}"),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 303);
    let log = app.log();
    assert!(log.contains("queue dashboard at"), "{log}");
    assert!(
        !log.contains(secret),
        "the configured token is never printed"
    );
    app.signal(libc::SIGTERM);
    assert_eq!(app.wait_exit().await.code(), Some(0));
}

#[tokio::test]
async fn an_open_dashboard_does_not_hold_up_a_graceful_stop() {
    let secret = "a-configured-admin-token";
    let mut app = App::spawn(
        "serve",
        tempfile::tempdir().unwrap(),
        &[("ADMIN_TOKEN", secret)],
    );
    app.wait_healthy().await;
    // A dashboard page's live stream, open until the page closes.
    let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let request = format!(
        "GET /admin/queue/live HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 512];
    let read = stream.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..read]).into_owned();
    if !head.starts_with("HTTP/1.1 200") || !head.contains("text/event-stream") {
        app.fail(format!("the live stream did not open: {head}"));
    }

    let started = Instant::now();
    app.signal(libc::SIGTERM);
    assert_eq!(app.wait_exit().await.code(), Some(0));
    let log = app.log();
    assert!(
        !log.contains("did not finish in time"),
        "the stop waited for the stream: {log}"
    );
    // HOPPER_SHUTDOWN_TIMEOUT is 10 s: the stop did not run it out.
    assert!(started.elapsed() < Duration::from_secs(8), "{log}");
}

#[tokio::test]
async fn alert_rules_from_the_environment_fire_and_resolve_at_the_webhook() {
    // A webhook endpoint that hands every body it receives to the test.
    let (bodies_tx, mut bodies) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let hook = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |body: String| {
            let bodies_tx = bodies_tx.clone();
            async move {
                let _ = bodies_tx.send(serde_json::from_str(&body).unwrap());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.json");
    std::fs::write(
        &rules,
        r#"{"parked-waiting": {"kind": "queue_depth", "queue": "parked", "above": 0}}"#,
    )
    .unwrap();
    let webhook = format!("http://{hook_address}/alerts");
    let mut app = App::spawn(
        "serve",
        dir,
        &[
            ("HOPPER_ALERT_RULES", rules.to_str().unwrap()),
            ("HOPPER_ALERT_WEBHOOK", &webhook),
            ("HOPPER_ALERT_INTERVAL", "1"),
        ],
    );
    app.wait_healthy().await;

    // No worker runs the "parked" queue, so a job there stays due.
    let hopper = open(&app).await;
    let now = hopper.now();
    let ids = hopper
        .store()
        .insert(&[hopper::store::NewJob {
            job_type: "send_email".into(),
            queue: "parked".into(),
            payload: "{}".into(),
            priority: 0,
            max_attempts: 1,
            available_at: now,
            created_at: now,
            unique_key: None,
            partition_key: None,
            sequence: None,
            trace_context: None,
        }])
        .await
        .unwrap();
    let mut next = async || match tokio::time::timeout(LIMIT, bodies.recv()).await {
        Ok(Some(body)) => body,
        _ => app.fail("the webhook got nothing in time"),
    };
    let firing = next().await;
    assert_eq!(firing["status"], "firing", "{firing}");
    assert_eq!(firing["alert"]["rule"], "parked-waiting");
    assert_eq!(
        firing["alert"]["summary"],
        "queue parked: 1 job due (above 0)"
    );
    assert!(hopper.delete(ids[0]).await.unwrap());
    let resolved = next().await;
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(resolved["alert"]["id"], firing["alert"]["id"]);

    app.signal(libc::SIGTERM);
    let status = app.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status}\n{}", app.log());
    assert!(bodies.try_recv().is_err(), "one firing and one resolution");
}
