//! Alerts on every database: incidents open and resolve once however many
//! instances check, and a real webhook receives each change once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use hopper::alerts::{Alerts, Condition, Status, Webhook};
use hopper::store::NewAlert;
use serde_json::Value;

use crate::backends::TestDb;
use crate::common::*;

/// What a local webhook endpoint received: every request's body, and the
/// status it answered.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(StatusCode, Value)>>>);

impl Received {
    fn all(&self) -> Vec<(StatusCode, Value)> {
        self.0.lock().unwrap().clone()
    }

    /// The bodies it accepted.
    fn accepted(&self) -> Vec<Value> {
        self.all()
            .into_iter()
            .filter(|(status, _)| status.is_success())
            .map(|(_, body)| body)
            .collect()
    }
}

/// An HTTP server on 127.0.0.1 that answers 503 to its first request and
/// 200 to every later one. Returns its URL.
async fn webhook_server(received: Received) -> String {
    async fn hook(State(received): State<Received>, body: String) -> StatusCode {
        let mut all = received.0.lock().unwrap();
        let status = if all.is_empty() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        all.push((status, serde_json::from_str(&body).expect("a JSON body")));
        status
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hooks/alerts", axum::routing::post(hook))
        .with_state(received);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/hooks/alerts")
}

pub async fn an_alert_incident_opens_once_and_resolves_once(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let store = queue.hopper().store();
    let now = queue.hopper().now();
    let alert = NewAlert {
        rule: "backlog".into(),
        subject: "default".into(),
        summary: "queue default: 9 jobs due (above 5)".into(),
        fired_at: now,
    };
    let opened = store.open_alert(&alert).await.unwrap().expect("opened");
    assert_eq!(
        (opened.rule.as_str(), opened.resolved_at),
        ("backlog", None)
    );
    assert!(
        store.open_alert(&alert).await.unwrap().is_none(),
        "one open incident"
    );
    let other = NewAlert {
        subject: "mail".into(),
        ..alert.clone()
    };
    let mail = store
        .open_alert(&other)
        .await
        .unwrap()
        .expect("another subject");

    let later = now + Duration::from_secs(60);
    assert!(store.resolve_alert(opened.id, later).await.unwrap());
    assert!(
        !store.resolve_alert(opened.id, later).await.unwrap(),
        "resolves once"
    );
    let again = store
        .open_alert(&alert)
        .await
        .unwrap()
        .expect("a new incident");
    assert_ne!(again.id, opened.id);

    let listed = store.alerts(10).await.unwrap();
    let summary: Vec<_> = listed
        .iter()
        .map(|a| (a.id, a.subject.as_str(), a.resolved_at))
        .collect();
    assert_eq!(
        summary,
        [
            (mail.id, "mail", None),
            (again.id, "default", None),
            (opened.id, "default", Some(later)),
        ]
    );
    assert_eq!(store.alerts(0).await.unwrap().len(), 2, "firing ones only");
    queue.stop().await.unwrap();
}

pub async fn instances_checking_at_once_record_each_change_once(db: &TestDb) {
    // No worker takes jobs from "parked": they stay due.
    let queue = db.start(builder()).await.unwrap();
    let second = builder()
        .clock(queue.clock().clone())
        .connect(db.url())
        .await
        .unwrap();
    let rules = Alerts::new()
        .rule(
            "backlog",
            Condition::QueueDepth {
                queue: None,
                above: 2,
            },
        )
        .unwrap();
    for _ in 0..3 {
        queue
            .hopper()
            .dispatch_with::<Noop>((), hopper::DispatchOptions::new().queue("parked"))
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(rules.check(queue.hopper()), rules.check(&second));
    let mut changes = a.unwrap();
    changes.extend(b.unwrap());
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].status, Status::Firing);
    assert_eq!(changes[0].alert.subject, "parked");
    assert_eq!(
        changes[0].alert.summary,
        "queue parked: 3 jobs due (above 2)"
    );

    let parked = queue
        .hopper()
        .jobs(&hopper::JobFilter {
            queue: Some("parked".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    assert!(queue.hopper().cancel(parked[0].id).await.unwrap());
    let (a, b) = tokio::join!(rules.check(queue.hopper()), rules.check(&second));
    let mut changes = a.unwrap();
    changes.extend(b.unwrap());
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].status, Status::Resolved);
    assert_eq!(changes[0].alert.resolved_at, Some(queue.hopper().now()));
    queue.stop().await.unwrap();
}

pub async fn a_webhook_receives_one_firing_and_one_resolution_per_incident(db: &TestDb) {
    let received = Received::default();
    let url = webhook_server(received.clone()).await;
    let webhook = match Webhook::new(&url) {
        Ok(webhook) => webhook.backoff(Duration::from_millis(20)),
        #[cfg(feature = "webhook")]
        Err(error) => panic!("{error}"),
        // Without hopper's `webhook` feature, configuring one is refused.
        #[cfg(not(feature = "webhook"))]
        Err(error) => {
            assert!(
                matches!(error, hopper::alerts::AlertError::WebhookUnavailable { ref url } if url.ends_with("/hooks/alerts")),
                "{error}"
            );
            return;
        }
    };
    let queue = db.start(builder()).await.unwrap();
    let alerts = Alerts::from_json(
        r#"{
            "doomed-failing": {"kind": "job_failed", "job_type": "doomed", "window": "10m"},
            "noop-failing": {"kind": "job_failed", "job_type": "noop"}
        }"#,
    )
    .unwrap()
    .webhook(webhook)
    .interval(Duration::from_secs(3600));
    let monitor = alerts.start(queue.hopper());

    queue
        .hopper()
        .dispatch::<Doomed>("no such mailbox".into())
        .await
        .unwrap();
    queue.hopper().dispatch::<Noop>(()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let fired_at = queue.hopper().now();

    let changes = monitor.check_now().await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].status, Status::Firing);
    for _ in 0..3 {
        queue.advance(Duration::from_secs(180));
        assert!(
            monitor.check_now().await.unwrap().is_empty(),
            "still the same incident"
        );
    }
    queue.advance(Duration::from_secs(61));
    let changes = monitor.check_now().await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].status, Status::Resolved);
    let resolved_at = queue.hopper().now();
    assert!(monitor.check_now().await.unwrap().is_empty());
    monitor.stop().await;

    let all = received.all();
    assert_eq!(
        all.len(),
        3,
        "one refused attempt, retried, then the resolution: {all:?}"
    );
    assert_eq!(all[0].0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(all[0].1, all[1].1, "the retry sends the same change");
    let accepted = received.accepted();
    assert_eq!(accepted.len(), 2);
    let (firing, resolved) = (&accepted[0], &accepted[1]);
    assert_eq!(firing["status"], "firing");
    assert_eq!(resolved["status"], "resolved");
    for body in [firing, resolved] {
        assert_eq!(body["alert"]["rule"], "doomed-failing");
        assert_eq!(body["alert"]["subject"], "doomed");
        assert_eq!(body["alert"]["id"], firing["alert"]["id"]);
        assert_eq!(
            body["alert"]["fired_at"],
            serde_json::to_value(fired_at).unwrap()
        );
    }
    assert_eq!(
        firing["alert"]["summary"],
        "doomed: 1 job failed for good in the last 10m"
    );
    assert_eq!(firing["alert"]["resolved_at"], Value::Null);
    assert_eq!(
        resolved["alert"]["resolved_at"],
        serde_json::to_value(resolved_at).unwrap()
    );
    let listed = queue.hopper().store().alerts(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].resolved_at, Some(resolved_at));
    queue.stop().await.unwrap();
}

pub async fn failure_rate_and_oldest_pending_rules_read_the_database(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let alerts = Alerts::from_json(
        r#"{
            "doomed-rate": {"kind": "failure_rate", "job_type": "doomed", "above": 0.5, "window": "5m", "min_jobs": 3},
            "stuck": {"kind": "oldest_pending", "queue": "parked", "above": "2m"}
        }"#,
    )
    .unwrap();
    let hopper = queue.hopper();
    hopper.dispatch::<Doomed>("a".into()).await.unwrap();
    hopper.dispatch::<Doomed>("b".into()).await.unwrap();
    hopper.dispatch::<Noop>(()).await.unwrap();
    hopper
        .dispatch_with::<Noop>((), hopper::DispatchOptions::new().queue("parked"))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    assert!(
        alerts.check(hopper).await.unwrap().is_empty(),
        "2 doomed jobs ended: under min_jobs"
    );
    hopper.dispatch::<Doomed>("c".into()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let changes = alerts.check(hopper).await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        changes[0].alert.summary,
        "doomed: 3 of 3 jobs failed in the last 5m (100%, above 50%)"
    );

    queue.advance(Duration::from_secs(150));
    let changes = alerts.check(hopper).await.unwrap();
    let seen: Vec<_> = changes
        .iter()
        .map(|c| (c.status, c.alert.rule.as_str()))
        .collect();
    assert_eq!(seen, [(Status::Firing, "stuck")]);

    queue.advance(Duration::from_secs(200));
    let changes = alerts.check(hopper).await.unwrap();
    let seen: Vec<_> = changes
        .iter()
        .map(|c| (c.status, c.alert.rule.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(Status::Resolved, "doomed-rate")],
        "the failures left the window"
    );
    queue.stop().await.unwrap();
}

pub async fn only_the_monitor_holding_the_alerts_lease_checks(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let second = builder()
        .clock(queue.clock().clone())
        .connect(db.url())
        .await
        .unwrap();
    let rules = Alerts::from_json(r#"{"waiting": {"kind": "queue_depth", "above": 0}}"#)
        .unwrap()
        .interval(Duration::from_secs(60));
    let first_monitor = rules.clone().start(queue.hopper());
    let second_monitor = rules.start(&second);
    assert!(first_monitor.check_now().await.unwrap().is_empty());

    queue
        .hopper()
        .dispatch_with::<Noop>((), hopper::DispatchOptions::new().queue("parked"))
        .await
        .unwrap();
    assert!(
        second_monitor.check_now().await.unwrap().is_empty(),
        "the first monitor holds the lease"
    );
    let changes = first_monitor.check_now().await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");

    // The holder stops and gives the lease up: the other takes over and
    // sees the incident already open.
    first_monitor.stop().await;
    assert!(second_monitor.check_now().await.unwrap().is_empty());
    let parked = queue
        .hopper()
        .jobs(&hopper::JobFilter {
            queue: Some("parked".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    assert!(queue.hopper().delete(parked[0].id).await.unwrap());
    let changes = second_monitor.check_now().await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].status, Status::Resolved);
    second_monitor.stop().await;
    queue.stop().await.unwrap();
}

pub async fn a_schedule_tick_left_untaken_fires_until_a_later_tick_is_taken(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    let mut schedules = hopper::schedule::Schedules::new();
    schedules
        .add(hopper::schedule::Schedule::new::<Noop>("every five", "*/5 * * * *", ()).unwrap())
        .unwrap();
    let alerts = Alerts::from_json(r#"{"cron": {"kind": "schedule_missed", "after": "1m"}}"#)
        .unwrap()
        .schedules(schedules.clone());
    assert!(
        alerts.check(hopper).await.unwrap().is_empty(),
        "a schedule that never ticked is not watched yet"
    );
    schedules.run_due(hopper).await.unwrap();
    assert!(alerts.check(hopper).await.unwrap().is_empty());

    // No scheduler runs for seven minutes: the next tick is over a minute late.
    queue.advance(Duration::from_secs(7 * 60));
    let changes = alerts.check(hopper).await.unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].status, Status::Firing);
    assert_eq!(changes[0].alert.subject, "every five");
    assert!(
        changes[0].alert.summary.contains("was not taken"),
        "{}",
        changes[0].alert.summary
    );
    assert!(alerts.check(hopper).await.unwrap().is_empty(), "fires once");

    // A scheduler pass takes the latest tick: the alert resolves.
    schedules.run_due(hopper).await.unwrap();
    let changes = alerts.check(hopper).await.unwrap();
    let seen: Vec<_> = changes
        .iter()
        .map(|c| (c.status, c.alert.rule.as_str()))
        .collect();
    assert_eq!(seen, [(Status::Resolved, "cron")]);
    queue.stop().await.unwrap();
}
