//! Alert incidents in the JSON API and on the overview, and the shipped
//! Prometheus rules against the metrics `/metrics` really serves.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use common::*;
use hopper::alerts::{Alerts, Status};
use serde_json::json;

#[tokio::test]
async fn the_api_and_the_overview_show_firing_then_resolved_alerts() {
    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let alerts = Alerts::from_json(
        r#"{"flaky-failed": {"kind": "job_failed", "job_type": "flaky", "window": "10m"}}"#,
    )
    .unwrap();

    let overview = get(&router, "/admin/queue").await;
    assert!(overview.body.contains("No alert is firing."));

    queue
        .hopper()
        .dispatch::<FlakyJob>(json!({"n": 1}))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    let changes = alerts.check(queue.hopper()).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].status, Status::Firing);

    let listed = get(&router, "/api/alerts").await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    assert_eq!(listed["firing"].as_array().unwrap().len(), 1);
    assert_eq!(listed["firing"][0]["rule"], "flaky-failed");
    assert_eq!(listed["firing"][0]["subject"], "flaky");
    assert_eq!(listed["resolved"], json!([]));
    let overview = get(&router, "/admin/queue").await.body;
    assert!(
        overview.contains(r#"<tr class="alert-firing">"#),
        "{overview}"
    );
    assert!(overview.contains("flaky: 1 job failed for good in the last 10m"));
    assert!(!overview.contains("No alert is firing."));

    queue.advance(Duration::from_secs(601));
    let changes = alerts.check(queue.hopper()).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].status, Status::Resolved);
    let listed = get(&router, "/api/alerts").await.json();
    assert_eq!(listed["firing"], json!([]));
    assert_eq!(listed["resolved"][0]["rule"], "flaky-failed");
    assert!(listed["resolved"][0]["resolved_at"].is_string());
    let overview = get(&router, "/admin/queue").await.body;
    assert!(overview.contains(r#"<tr class="alert-resolved">"#));
    assert!(overview.contains("No alert is firing."));

    assert_eq!(
        get(&router, "/api/alerts?resolved=0").await.json()["resolved"],
        json!([])
    );
    assert_eq!(
        get(&router, "/api/alerts?resolved=201").await.status,
        StatusCode::BAD_REQUEST
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn the_shipped_prometheus_rules_use_only_served_metrics() {
    hopper_web::metrics::install().unwrap();
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/prometheus-alerts.yml"
    ))
    .unwrap();
    let names: BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("hopper_"))
        .collect();
    assert!(names.len() >= 4, "{names:?}");

    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    queue
        .hopper()
        .dispatch::<MailJob>(Mail {
            to: "m@example.com".into(),
        })
        .await
        .unwrap();
    queue.hopper().dispatch::<FlakyJob>(json!(1)).await.unwrap();
    queue.wait_idle().await.unwrap();
    let metrics = get(&router, "/metrics").await.body;
    let served: BTreeSet<&str> = metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .collect();
    for name in names {
        assert!(served.contains(name), "{name} is not served: {served:?}");
    }
    queue.stop().await.unwrap();
}
