//! Span export over OTLP: with an endpoint, the spans the app records reach
//! the collector there (a stand-in on 127.0.0.1 that keeps what it is sent).
#![cfg(feature = "otel")]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use tracing_subscriber::layer::SubscriberExt;

/// What the collector was sent: each request's content type and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn collect(State(received): State<Received>, headers: HeaderMap, body: Bytes) {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    received.lock().unwrap().push((content_type, body.to_vec()));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_the_endpoint_names() {
    let received = Received::default();
    let collector = Router::new()
        .route("/v1/traces", post(collect))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    let (layer, guard) = app::otel::layer(Some(&endpoint)).unwrap().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info_span!("checkout", order = 7).in_scope(|| tracing::info!("inside"));
    });
    // Dropping the guard sends what is buffered, waiting for it: off the
    // runtime's threads, which serve the collector.
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let received = received.lock().unwrap();
    assert_eq!(received.len(), 1, "one export");
    let (content_type, body) = &received[0];
    assert_eq!(content_type, "application/x-protobuf");
    assert!(
        contains(body, b"checkout"),
        "the span's name is in the export"
    );
    assert!(contains(body, app::otel::SERVICE_NAME.as_bytes()));
}

#[test]
fn no_endpoint_builds_no_exporter() {
    assert!(
        app::otel::layer::<tracing_subscriber::Registry>(None)
            .unwrap()
            .is_none()
    );
    assert!(
        app::otel::layer::<tracing_subscriber::Registry>(Some("  "))
            .unwrap()
            .is_none()
    );
}
