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
