//! The dashboard's live stream: server-sent events telling open pages that
//! what they show may have changed.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The text of the stream's frames until one holds a `change` event, or
/// `None` if none comes within `within`.
async fn next_change(body: &mut Body, within: Duration) -> Option<String> {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .ok()??
            .ok()?;
        if let Ok(data) = frame.into_data() {
            seen.push_str(&String::from_utf8_lossy(&data));
            if seen.contains("event: change") {
                return Some(seen);
            }
        }
    }
}

#[tokio::test]
async fn the_stream_needs_the_token_and_tells_of_a_new_job_and_its_end() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    hopper.pause("held").await.unwrap();
    let router = router(hopper);

    let refused = get_without_token(&router, "/admin/queue/live").await;
    assert_eq!(refused, StatusCode::UNAUTHORIZED);

    let request = Request::get("/admin/queue/live")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    // The watcher reads its first marker; nothing has changed yet.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let options = hopper::DispatchOptions::new().queue("held");
    let id = hopper
        .dispatch_with::<MailJob>(Mail { to: "a@b.c".into() }, options)
        .await
        .unwrap();
    let event = next_change(&mut body, Duration::from_secs(5)).await;
    assert!(event.is_some(), "no change event after a dispatch");

    assert!(hopper.cancel(id).await.unwrap());
    let event = next_change(&mut body, Duration::from_secs(5)).await;
    assert!(event.is_some(), "no change event after a cancel");
    drop(body);
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn streams_share_one_watcher_and_it_stops_with_the_last() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    hopper.pause("held").await.unwrap();
    let router = router(hopper);
    let open = || async {
        let request = Request::get("/admin/queue/live")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        router.clone().oneshot(request).await.unwrap().into_body()
    };
    let (mut first, mut second) = (open().await, open().await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let options = hopper::DispatchOptions::new().queue("held");
    hopper
        .dispatch_with::<MailJob>(Mail { to: "a@b.c".into() }, options.clone())
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        next_change(&mut first, Duration::from_secs(5)),
        next_change(&mut second, Duration::from_secs(5))
    );
    let (a, b) = (a.expect("first stream"), b.expect("second stream"));
    let data = |text: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix("data: ").map(str::to_owned))
    };
    assert_eq!(data(&a), data(&b), "both streams follow the same count");

    // Every stream closed: the watcher stops; a new stream starts it again.
    drop((first, second));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut third = open().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hopper
        .dispatch_with::<MailJob>(Mail { to: "d@e.f".into() }, options)
        .await
        .unwrap();
    assert!(
        next_change(&mut third, Duration::from_secs(5))
            .await
            .is_some(),
        "a stream opened after the others closed hears of changes"
    );
    queue.stop().await.unwrap();
}

async fn get_without_token(router: &axum::Router, uri: &str) -> StatusCode {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    send(router, request).await.status
}

#[tokio::test]
async fn closing_the_streams_lets_a_graceful_shutdown_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let token = hopper_web::AdminToken::new(TOKEN).unwrap();
    let web = hopper_web::Web::new(queue.hopper().clone(), token);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
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

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /admin/queue/live HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 256];
    let read = stream.read(&mut head).await.unwrap();
    let head = String::from_utf8_lossy(&head[..read]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");

    stop.send(()).unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(
        matches!(finished, Ok(Ok(Ok(())))),
        "the server did not finish: {finished:?}"
    );
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the stream was not closed");
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn an_alert_firing_and_resolving_is_a_change() {
    let flaky = FlakyJob::default();
    flaky
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let alerts = hopper::alerts::Alerts::from_json(
        r#"{"flaky-failed": {"kind": "job_failed", "job_type": "flaky", "window": "10m"}}"#,
    )
    .unwrap();
    hopper
        .dispatch::<FlakyJob>(serde_json::json!({"n": 1}))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    let router = router(hopper);
    let request = Request::get("/admin/queue/live")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let mut body = router.clone().oneshot(request).await.unwrap().into_body();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    assert_eq!(alerts.check(hopper).await.unwrap().len(), 1, "it fires");
    let event = next_change(&mut body, Duration::from_secs(5)).await;
    assert!(event.is_some(), "no change event when the alert fired");

    queue.advance(Duration::from_secs(601));
    assert_eq!(alerts.check(hopper).await.unwrap().len(), 1, "it resolves");
    let event = next_change(&mut body, Duration::from_secs(5)).await;
    assert!(event.is_some(), "no change event when the alert resolved");
    drop(body);
    queue.stop().await.unwrap();
}
