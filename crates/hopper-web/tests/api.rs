//! The JSON API, the metrics and the login against a real SQLite database.

mod common;

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use hopper::testing::TestQueue;
use serde_json::json;

#[tokio::test]
async fn without_the_token_every_route_is_401_and_shows_nothing() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    queue
        .hopper()
        .dispatch::<MailJob>(Mail {
            to: "secret@example.com".into(),
        })
        .await
        .unwrap();
    let router = router(queue.hopper());
    for uri in [
        "/api/jobs",
        "/api/jobs/1",
        "/api/stats",
        "/api/alerts",
        "/api/openapi.json",
        "/metrics",
        "/admin/queue",
        "/admin/queue/jobs",
        "/admin/queue/jobs/1",
    ] {
        for auth in [None, Some("Bearer wrong-token"), Some("Basic dGVzdA==")] {
            let mut request = Request::get(uri);
            if let Some(auth) = auth {
                request = request.header(header::AUTHORIZATION, auth);
            }
            let reply = send(&router, request.body(Body::empty()).unwrap()).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{uri} {auth:?}");
            assert!(
                !reply.body.contains("secret@example.com"),
                "{uri} leaked data"
            );
        }
    }
    let stranger = Request::get("/admin/queue/jobs/1")
        .header(header::COOKIE, "hopper_session=forged")
        .body(Body::empty())
        .unwrap();
    let reply = send(&router, stranger).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.body.contains("name=\"token\""),
        "the dashboard offers the login form"
    );
    let post = Request::post("/api/jobs/1/cancel")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, post).await.status, StatusCode::UNAUTHORIZED);
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn dispatch_show_and_refuse_what_does_not_fit() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());

    let created = post_json(
        &router,
        "/api/jobs",
        &json!({"type": "mail", "payload": {"to": "ada@example.com"}, "queue": "default", "priority": 3}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.json()["id"].as_i64().unwrap();
    let shown = get(&router, &format!("/api/jobs/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    let job = shown.json();
    assert_eq!(job["type"], "mail");
    assert_eq!(job["payload"]["to"], "ada@example.com");
    assert_eq!(job["priority"], 3);

    let unknown = post_json(
        &router,
        "/api/jobs",
        &json!({"type": "ghost", "payload": {}}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json()["error"].as_str().unwrap().contains("ghost"));

    let invalid = post_json(
        &router,
        "/api/jobs",
        &json!({"type": "mail", "payload": {"to": 5}}),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let field_error = invalid.json()["field_error"].as_str().unwrap().to_owned();
    assert!(field_error.contains("invalid type"), "{field_error}");
    let missing = post_json(
        &router,
        "/api/jobs",
        &json!({"type": "mail", "payload": {}}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        missing.json()["field_error"]
            .as_str()
            .unwrap()
            .contains("`to`")
    );

    let not_json = send(
        &router,
        Request::post("/api/jobs")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from("{nope"))
            .unwrap(),
    )
    .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);

    let huge = json!({"type": "mail", "payload": {"to": "x".repeat(300 * 1024)}});
    let too_large = post_json(&router, "/api/jobs", &huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        too_large.json()["error"]
            .as_str()
            .unwrap()
            .contains("limit")
    );

    assert_eq!(
        get(&router, "/api/jobs/999999").await.status,
        StatusCode::NOT_FOUND
    );
    queue.wait_idle().await.unwrap();
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn list_filters_and_pages() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    queue.hopper().pause("default").await.unwrap();
    queue.hopper().pause("bulk").await.unwrap();
    let router = router(queue.hopper());
    for i in 0..5 {
        let body =
            json!({"type": "mail", "payload": {"to": format!("{i}@example.com")}, "queue": "bulk"});
        assert_eq!(
            post_json(&router, "/api/jobs", &body).await.status,
            StatusCode::CREATED
        );
    }
    let flaky_id = post_json(
        &router,
        "/api/jobs",
        &json!({"type": "flaky", "payload": null}),
    )
    .await
    .json()["id"]
        .as_i64()
        .unwrap();

    let all = get(&router, "/api/jobs").await.json();
    assert_eq!(all["jobs"].as_array().unwrap().len(), 6);
    let bulk = get(&router, "/api/jobs?queue=bulk&type=mail&state=pending")
        .await
        .json();
    assert_eq!(bulk["jobs"].as_array().unwrap().len(), 5);
    let no_flaky_in_bulk = get(&router, "/api/jobs?queue=bulk&type=flaky").await.json();
    assert_eq!(no_flaky_in_bulk["jobs"].as_array().unwrap().len(), 0);
    let flaky_only = get(&router, "/api/jobs?type=flaky").await.json();
    assert_eq!(flaky_only["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(flaky_only["jobs"][0]["id"], flaky_id);
    assert_eq!(
        get(&router, "/api/jobs?state=lost").await.status,
        StatusCode::BAD_REQUEST
    );

    // Pages of 2 of the 5 bulk jobs: 2, 2, 1, the last with no cursor.
    let ids = |page: &serde_json::Value| -> Vec<i64> {
        page["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect()
    };
    let mut uri = "/api/jobs?queue=bulk&limit=2".to_owned();
    let mut pages = Vec::new();
    loop {
        let page = get(&router, &uri).await.json();
        assert_eq!(page["next_before"], page["next"], "the older name of next");
        pages.push(ids(&page));
        let Some(before) = page["next"].as_i64() else {
            assert!(page["next"].is_null(), "{page}");
            break;
        };
        assert_eq!(Some(&before), pages.last().unwrap().last());
        uri = format!("/api/jobs?queue=bulk&limit=2&before={before}");
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    let seen = pages.concat();
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    // A page that holds the last jobs exactly has no cursor either.
    let whole = get(&router, "/api/jobs?queue=bulk&limit=5").await.json();
    assert_eq!((ids(&whole), &whole["next"]), (seen.clone(), &json!(null)));
    let first_four = get(&router, "/api/jobs?queue=bulk&limit=4").await.json();
    assert_eq!(first_four["next"], seen[3]);

    // A page size out of range is refused, not cut down.
    for limit in ["0", "501", "4294967295"] {
        let reply = get(&router, &format!("/api/jobs?limit={limit}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{limit}");
        assert_eq!(
            reply.json()["error"],
            format!("a page of jobs holds 1 to 500 jobs, not {limit}")
        );
    }
    assert_eq!(
        get(&router, "/api/jobs?limit=500").await.status,
        StatusCode::OK
    );

    let stats = get(&router, "/api/stats").await.json();
    let bulk_stats = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "bulk")
        .unwrap();
    assert_eq!(bulk_stats["due"], 5);
    assert_eq!(bulk_stats["paused"], true);
    assert_eq!(
        bulk_stats["pending"], 5,
        "the queue's jobs per state: {stats}"
    );
    assert!(bulk_stats["workers"].is_array(), "{stats}");
    assert!(
        stats["counts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["queue"] == "bulk" && c["state"] == "pending" && c["count"] == 5),
        "{stats}"
    );
    assert_eq!(
        stats["counts_by_type"],
        json!([
            {"type": "flaky", "state": "pending", "count": 1},
            {"type": "mail", "state": "pending", "count": 5},
        ]),
        "{stats}"
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn cancel_and_retry() {
    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());

    let failing = post_json(
        &router,
        "/api/jobs",
        &json!({"type": "flaky", "payload": {}}),
    )
    .await
    .json()["id"]
        .as_i64()
        .unwrap();
    queue.wait_idle().await.unwrap();
    let failed = get(&router, &format!("/api/jobs/{failing}")).await.json();
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["errors"][0]["error"], "the upstream said no");

    let not_pending = post_json(&router, &format!("/api/jobs/{failing}/cancel"), &json!({})).await;
    assert_eq!(not_pending.status, StatusCode::CONFLICT);
    flaky.failing.store(false, Ordering::SeqCst);
    let retried = post_json(&router, &format!("/api/jobs/{failing}/retry"), &json!({})).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    queue.wait_idle().await.unwrap();
    assert_eq!(
        get(&router, &format!("/api/jobs/{failing}")).await.json()["state"],
        "finished"
    );

    // Paused, so the retried job is still pending when it is read back.
    queue.hopper().pause("default").await.unwrap();
    let later = post_json(
        &router,
        "/api/jobs",
        &json!({"type": "mail", "payload": {"to": "a@b.c"}, "delay_seconds": 3600}),
    )
    .await
    .json()["id"]
        .as_i64()
        .unwrap();
    let cancelled = post_json(&router, &format!("/api/jobs/{later}/cancel"), &json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json()["state"], "cancelled");
    let again = post_json(&router, &format!("/api/jobs/{later}/retry"), &json!({})).await;
    assert_eq!(again.json()["state"], "pending");
    assert_eq!(
        post_json(&router, "/api/jobs/424242/retry", &json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let doc = get(&router, "/api/openapi.json").await.json();
    for path in [
        "/api/jobs",
        "/api/jobs/{id}",
        "/api/jobs/{id}/retry",
        "/api/jobs/{id}/cancel",
        "/api/stats",
        "/api/alerts",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    let list = &doc["paths"]["/api/jobs"]["get"];
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (&limit["schema"]["default"], &limit["schema"]["maximum"]),
        (&json!(100), &json!(500))
    );
    let page = &list["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(
        page["properties"]["next"]["type"],
        json!(["integer", "null"])
    );
    let stats = &doc["paths"]["/api/stats"]["get"]["responses"]["200"];
    let schema = &stats["content"]["application/json"]["schema"];
    assert!(
        schema["properties"]["counts_by_type"].is_object(),
        "{stats}"
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_count_jobs_by_type_and_queue() {
    hopper_web::metrics::install().unwrap();
    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    post_json(
        &router,
        "/api/jobs",
        &json!({"type": "mail", "payload": {"to": "m@example.com"}}),
    )
    .await;
    post_json(
        &router,
        "/api/jobs",
        &json!({"type": "flaky", "payload": 1}),
    )
    .await;
    queue.wait_idle().await.unwrap();
    queue.hopper().pause("metrics_paused").await.unwrap();
    let paused_job =
        json!({"type": "mail", "payload": {"to": "p@example.com"}, "queue": "metrics_paused"});
    post_json(&router, "/api/jobs", &paused_job).await;
    assert!(
        get(&router, "/metrics")
            .await
            .body
            .contains("hopper_queue_depth{queue=\"metrics_paused\"} 1")
    );
    let waiting = queue
        .hopper()
        .jobs(&hopper::JobFilter {
            queue: Some("metrics_paused".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs;
    queue.hopper().cancel(waiting[0].id).await.unwrap();

    let reply = get(&router, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = reply.body;
    for needle in [
        "hopper_jobs_dispatched_total{",
        "hopper_jobs_finished_total{",
        "hopper_jobs_failed_total{",
        "hopper_job_duration_seconds_bucket{",
        "hopper_workers_busy",
        "hopper_queue_depth{queue=\"default\"}",
        "hopper_queue_oldest_pending_seconds{queue=\"default\"}",
        "hopper_queue_depth{queue=\"metrics_paused\"} 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("hopper_jobs_failed_total{")
                && l.contains("type=\"flaky\"")
                && l.contains("queue=\"default\"")),
        "{text}"
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn bad_input_to_the_dispatch_endpoint_gets_a_clear_error_and_stores_nothing() {
    let flaky = FlakyJob::default();
    let queue = TestQueue::start(builder(&flaky).max_payload_bytes(64))
        .await
        .unwrap();
    let router = router(queue.hopper());

    // Under the body limit, over the queue's payload limit.
    let big = json!({"type": "mail", "payload": {"to": "x".repeat(100)}});
    let reply = post_json(&router, "/api/jobs", &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.json()["error"],
        "payload of job type mail is 109 bytes, over the 64-byte limit"
    );

    let nul_queue = json!({"type": "mail", "payload": {"to": "a@b.c"}, "queue": "ma\u{0}il"});
    let reply = post_json(&router, "/api/jobs", &nul_queue).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["error"].as_str().unwrap().contains("NUL"));

    let not_utf8 = Request::post("/api/jobs")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(
            b"{\"type\": \"mail\", \"payload\": {\"to\": \"\xff\xfe\"}}".to_vec(),
        ))
        .unwrap();
    let reply = send(&router, not_utf8).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json()["error"]
            .as_str()
            .unwrap()
            .contains("not the JSON expected"),
        "{}",
        reply.body
    );

    let reply = get(&router, "/api/jobs?queue=a%00b").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["jobs"], json!([]));
    // Invalid UTF-8 in the query is read with U+FFFD in its place.
    let reply = get(&router, "/api/jobs?queue=%FF").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["jobs"], json!([]));

    assert!(queue.hopper().counts().await.unwrap().is_empty());
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn a_job_shows_its_output_and_progress() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let pending = queue
        .hopper()
        .dispatch::<MailJob>(Mail { to: "a@b.c".into() });
    let id = pending.await.unwrap();
    let before = get(&router, &format!("/api/jobs/{id}")).await.json();
    assert_eq!(
        (&before["output"], &before["progress"]),
        (&json!(null), &json!(null))
    );

    let id = queue.hopper().dispatch::<ReportJob>(12).await.unwrap();
    let waited = queue
        .hopper()
        .wait_for(id, std::time::Duration::from_secs(10));
    waited.await.unwrap();
    let job = get(&router, &format!("/api/jobs/{id}")).await.json();
    assert_eq!(job["output"], json!({"rows": 12, "title": "<b>rows</b>"}));
    assert_eq!(
        job["progress"],
        json!({"percent": 100, "message": "<counted> 12 rows"})
    );
    let listed = get(&router, "/api/jobs?type=report").await.json();
    assert_eq!(listed["jobs"][0]["output"]["rows"], 12);
    let schema = get(&router, "/api/openapi.json").await.json();
    let job_schema = &schema["components"]["schemas"]["Job"]["properties"];
    assert!(job_schema["output"].is_object() && job_schema["progress"].is_object());
    queue.stop().await.unwrap();
}
