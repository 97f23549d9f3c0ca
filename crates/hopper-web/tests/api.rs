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
        "/api/jobs/count",
        "/api/batches/1",
        "/api/stats",
        "/api/alerts",
        "/api/openapi.json",
        "/metrics",
        "/admin/queue",
        "/admin/queue/jobs",
        "/admin/queue/jobs/1",
        "/admin/queue/jobs/bulk?action=delete",
        "/admin/queue/batches/1",
        "/admin/queue/live",
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
async fn skip_wait_releases_a_held_job_of_a_sequence() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    // Paused, so the first job of the sequence stays pending.
    hopper.pause("default").await.unwrap();
    let router = router(hopper);
    let in_line = hopper::DispatchOptions::new().sequence("k");
    let first = hopper
        .dispatch_with::<MailJob>(Mail { to: "a@b.c".into() }, in_line.clone())
        .await
        .unwrap();
    let second = hopper
        .dispatch_with::<MailJob>(Mail { to: "d@e.f".into() }, in_line)
        .await
        .unwrap();
    let held = get(&router, &format!("/api/jobs/{second}")).await.json();
    assert_eq!(
        (&held["state"], &held["waiting_on"]),
        (&json!("pending"), &json!(1))
    );

    let skipped = post_json(
        &router,
        &format!("/api/jobs/{second}/skip-wait"),
        &json!({}),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::OK, "{}", skipped.body);
    assert_eq!(
        (&skipped.json()["state"], &skipped.json()["waiting_on"]),
        (&json!("pending"), &json!(0))
    );
    assert_eq!(hopper.job(second).await.unwrap().unwrap().waiting_on, 0);

    // Nothing left to skip: the released job, the first, and no job at all.
    for id in [second, first] {
        let again = post_json(&router, &format!("/api/jobs/{id}/skip-wait"), &json!({})).await;
        assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
        assert!(
            again.json()["error"]
                .as_str()
                .unwrap()
                .contains("only pending jobs that wait on other jobs"),
            "{}",
            again.body
        );
    }
    let missing = post_json(&router, "/api/jobs/424242/skip-wait", &json!({})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unauthenticated = Request::post(format!("/api/jobs/{second}/skip-wait"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&router, unauthenticated).await.status,
        StatusCode::UNAUTHORIZED
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
        "/api/jobs/{id}/skip-wait",
        "/api/jobs/count",
        "/api/jobs/bulk",
        "/api/batches/{id}",
        "/api/stats",
        "/api/alerts",
        "/api/flow",
        "/api/queues/{queue}/flow",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    let bulk = &doc["paths"]["/api/jobs/bulk"]["post"];
    assert_eq!(
        bulk["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/BulkOutcome"
    );
    let request = &doc["components"]["schemas"]["BulkRequest"];
    assert_eq!(
        request["properties"]["action"]["enum"],
        json!(["retry", "cancel", "delete"])
    );
    assert!(doc["components"]["schemas"]["BulkOutcome"]["properties"]["skipped"].is_object());
    let skip_wait = &doc["paths"]["/api/jobs/{id}/skip-wait"]["post"]["responses"];
    for status in ["200", "404", "409"] {
        assert!(skip_wait[status].is_object(), "{status}");
    }
    assert!(doc["components"]["schemas"]["Job"]["properties"]["waiting_on"].is_object());
    let count_params = doc["paths"]["/api/jobs/count"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(count_params.iter().any(|p| p["name"] == "older_than"));
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

async fn put_json(router: &axum::Router, uri: &str, body: &serde_json::Value) -> Reply {
    let request = Request::put(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(router, request).await
}

/// Claims (and starts) up to `limit` jobs of `queue` as a worker elsewhere would.
async fn start_jobs(hopper: &hopper::Hopper, queue: &str, limit: u32) -> usize {
    let request = hopper::store::ClaimRequest {
        queue,
        worker: "elsewhere",
        limit,
        start_now: limit,
        token: hopper::store::new_claim_token(),
        due_by: hopper.now(),
        lease: std::time::Duration::from_secs(3600),
        now: Some(hopper.now()),
    };
    hopper.store().claim(request).await.unwrap().len()
}

async fn dispatch_mail(hopper: &hopper::Hopper, queue: &str, n: usize) {
    for _ in 0..n {
        let mail = Mail {
            to: "q@example.com".into(),
        };
        hopper
            .dispatch_with::<MailJob>(mail, hopper::DispatchOptions::new().queue(queue))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn flow_settings_are_set_shown_with_their_use_and_checked() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);

    let none = get(&router, "/api/queues/mail/flow").await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json(), json!({"queue": "mail", "usage": null}));

    let set = put_json(
        &router,
        "/api/queues/mail/flow",
        &json!({"concurrency": 2, "key_concurrency": 1, "rate": "100/1m", "per_key_rate": true}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let usage = &set.json()["usage"];
    assert_eq!(
        usage["flow"],
        json!({"concurrency": 2, "key_concurrency": 1, "fair": false,
               "rate": {"starts": 100, "period_ms": 60000, "per_key": true, "text": "100/1m per key"}})
    );
    assert_eq!(
        hopper
            .queue_flow("mail")
            .await
            .unwrap()
            .rate
            .map(|r| r.per_key),
        Some(true)
    );

    // One starts: jobs without a key share one partition, which holds one
    // at a time; the queue (two at once) is not full, and the other two due
    // jobs wait on that partition's limit.
    dispatch_mail(hopper, "mail", 3).await;
    assert_eq!(start_jobs(hopper, "mail", 3).await, 1);
    let shown = get(&router, "/api/queues/mail/flow").await.json();
    let usage = &shown["usage"];
    assert_eq!(
        (
            &usage["running"],
            &usage["due"],
            &usage["waiting"],
            &usage["full"],
            &usage["starts_in_window"]
        ),
        (&json!(1), &json!(2), &json!(2), &json!(false), &json!(1))
    );
    assert_eq!(
        usage["busiest_keys"],
        json!([{"key": null, "running": 1, "starts_in_window": 1, "full": true}])
    );
    let all = get(&router, "/api/flow").await.json();
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["queue"], "mail");
    let stats = get(&router, "/api/stats").await.json();
    assert_eq!(stats["flow"][0]["running"], 1);

    // The rate's parts are accepted too.
    let parts = put_json(
        &router,
        "/api/queues/mail/flow",
        &json!({"rate": {"starts": 5, "period_ms": 1500}, "fair": true}),
    )
    .await;
    assert_eq!(parts.status, StatusCode::OK, "{}", parts.body);
    assert_eq!(parts.json()["usage"]["flow"]["rate"]["text"], "5/1500ms");

    for (body, needle) in [
        (json!({"concurrency": 0}), "at least 1"),
        (json!({"key_concurrency": 0}), "at least 1"),
        (json!({"rate": "fast"}), "invalid rate"),
        (json!({"rate": "0/1s"}), "at least 1 start"),
        (
            json!({"rate": {"starts": 1, "period_ms": 0}}),
            "between 1 ms",
        ),
        (json!({"concurrency": -1}), "not the JSON expected"),
        (json!({"limit": 3}), "unknown field"),
    ] {
        let refused = put_json(&router, "/api/queues/mail/flow", &body).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        let error = refused.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(needle), "{body}: {error}");
    }
    assert!(
        hopper.queue_flow("mail").await.unwrap().fair,
        "a refused request changes nothing"
    );

    // An empty object lifts every setting.
    let lifted = put_json(&router, "/api/queues/mail/flow", &json!({})).await;
    assert_eq!(lifted.json(), json!({"queue": "mail", "usage": null}));
    let doc = get(&router, "/api/openapi.json").await.json();
    assert!(doc["paths"]["/api/queues/{queue}/flow"]["put"].is_object());
    assert!(doc["components"]["schemas"]["FlowUsage"].is_object());
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_show_each_queues_limits_and_their_use() {
    hopper_web::metrics::install().unwrap();
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    let flow = hopper::store::QueueFlow::default()
        .concurrency(1)
        .rate(hopper::store::Rate::new(
            10,
            std::time::Duration::from_secs(2),
        ));
    hopper.set_queue_flow("metered", flow).await.unwrap();
    dispatch_mail(hopper, "metered", 3).await;
    assert_eq!(start_jobs(hopper, "metered", 3).await, 1);

    let text = get(&router, "/metrics").await.body;
    for needle in [
        "hopper_queue_concurrency_limit{queue=\"metered\"} 1",
        "hopper_queue_key_concurrency_limit{queue=\"metered\"} 0",
        "hopper_queue_rate_limit{queue=\"metered\"} 10",
        "hopper_queue_rate_period_seconds{queue=\"metered\"} 2",
        "hopper_queue_running{queue=\"metered\"} 1",
        "hopper_queue_rate_starts_in_window{queue=\"metered\"} 1",
        "hopper_queue_waiting_on_limit{queue=\"metered\"} 2",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }

    // Lifted settings read zero from the next scrape on.
    hopper
        .set_queue_flow("metered", hopper::store::QueueFlow::default())
        .await
        .unwrap();
    let text = get(&router, "/metrics").await.body;
    for needle in [
        "hopper_queue_concurrency_limit{queue=\"metered\"} 0",
        "hopper_queue_running{queue=\"metered\"} 0",
        "hopper_queue_waiting_on_limit{queue=\"metered\"} 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
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

/// Waits (up to 10 s) until batch `id` completed and every callback it
/// fires has its job.
async fn wait_batch_fired(hopper: &hopper::Hopper, id: hopper::store::BatchId) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let batch = hopper.batch_status(id).await.unwrap().unwrap();
        if batch.is_complete() && batch.callbacks.iter().all(|c| c.job_id.is_some()) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{batch:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_batch_is_shown_with_its_counts_and_callbacks() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    // Paused, so the counts are read before any job runs.
    hopper.pause("default").await.unwrap();
    let mails = ["a@x.org", "b@x.org", "c@x.org"].map(|to| Mail { to: to.into() });
    let batch = hopper
        .batch("x")
        .on_success::<ReportJob>(3)
        .unwrap()
        .dispatch_many::<MailJob>(mails, hopper::DispatchOptions::new())
        .await
        .unwrap();

    let members = get(&router, &format!("/api/jobs?batch={}", batch.id)).await;
    assert_eq!(members.status, StatusCode::OK, "{}", members.body);
    let listed: Vec<i64> = members.json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_i64().unwrap())
        .collect();
    let mut members_wanted = batch.jobs.clone();
    members_wanted.reverse();
    assert_eq!(listed, members_wanted, "a batch's jobs, newest first");

    let shown = get(&router, &format!("/api/batches/{}", batch.id)).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let body = shown.json();
    assert_eq!(
        (
            &body["id"],
            &body["name"],
            &body["sealed"],
            &body["complete"]
        ),
        (&json!(batch.id), &json!("x"), &json!(true), &json!(false)),
        "{body}"
    );
    assert!(body["created_at"].is_string(), "{body}");
    assert_eq!(
        body["counts"],
        json!({"total": 3, "pending": 3, "finished": 0, "failed": 0, "cancelled": 0})
    );
    assert_eq!(
        body["callbacks"],
        json!([{"event": "success", "job_type": "report", "job_id": null}])
    );

    hopper.resume("default").await.unwrap();
    wait_batch_fired(hopper, batch.id).await;
    let body = get(&router, &format!("/api/batches/{}", batch.id))
        .await
        .json();
    assert_eq!(
        body["counts"],
        json!({"total": 3, "pending": 0, "finished": 3, "failed": 0, "cancelled": 0})
    );
    assert_eq!(body["complete"], true, "{body}");
    let callback = body["callbacks"][0]["job_id"].as_i64().unwrap();
    let job = get(&router, &format!("/api/jobs/{callback}")).await.json();
    assert_eq!(job["type"], "report", "{job}");

    let missing = get(&router, "/api/batches/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json(), json!({"error": "no batch with id 999999"}));
    let bad_id = get(&router, "/api/batches/abc").await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&router, "/api/jobs/abc").await.status,
        StatusCode::BAD_REQUEST,
        "as for a job"
    );
    let doc = get(&router, "/api/openapi.json").await.json();
    let schema = &doc["components"]["schemas"]["Batch"]["properties"];
    assert!(
        schema["counts"]["properties"]["pending"].is_object(),
        "{schema}"
    );
    queue.wait_idle().await.unwrap();
    queue.stop().await.unwrap();
}

/// The count `GET /api/jobs/count` gives for `query`.
async fn count(router: &axum::Router, query: &str) -> u64 {
    let reply = get(router, &format!("/api/jobs/count?{query}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.body);
    reply.json()["count"].as_u64().unwrap()
}

#[tokio::test]
async fn bulk_actions_count_and_apply_to_the_jobs_a_filter_matches() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    for name in ["old", "other"] {
        hopper.pause(name).await.unwrap();
    }
    dispatch_mail(hopper, "old", 3).await;
    dispatch_mail(hopper, "other", 2).await;
    queue.advance(std::time::Duration::from_secs(2 * 3600));
    dispatch_mail(hopper, "old", 1).await;

    assert_eq!(count(&router, "queue=old").await, 4);
    assert_eq!(count(&router, "state=pending&queue=old").await, 4);
    assert_eq!(count(&router, "state=failed&queue=old").await, 0);
    assert_eq!(count(&router, "queue=old&older_than=1h").await, 3);
    assert_eq!(count(&router, "queue=old&older_than=3h").await, 0);
    assert_eq!(count(&router, "type=mail&older_than=").await, 6);

    // Cancel the old pending jobs of one queue: the young one and the
    // other queue's stay pending.
    let cancelled = post_json(
        &router,
        "/api/jobs/bulk",
        &json!({"action": "cancel", "state": "pending", "queue": "old", "older_than": "1h"}),
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(
        cancelled.json(),
        json!({"matched": 3, "applied": 3, "skipped": 0})
    );
    assert_eq!(count(&router, "state=cancelled&queue=old").await, 3);
    assert_eq!(count(&router, "state=pending&queue=old").await, 1);
    assert_eq!(count(&router, "state=pending&queue=other").await, 2);

    // A retry of the whole queue skips the pending job it does not apply to.
    let retried = post_json(
        &router,
        "/api/jobs/bulk",
        &json!({"action": "retry", "queue": "old", "type": "mail", "state": null}),
    )
    .await;
    assert_eq!(
        retried.json(),
        json!({"matched": 4, "applied": 3, "skipped": 1})
    );
    let deleted = post_json(
        &router,
        "/api/jobs/bulk",
        &json!({"action": "delete", "queue": "other"}),
    )
    .await;
    assert_eq!(
        deleted.json(),
        json!({"matched": 2, "applied": 2, "skipped": 0})
    );
    assert_eq!(count(&router, "queue=other").await, 0);
    assert_eq!(count(&router, "state=pending&queue=old").await, 4);
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn bulk_actions_refuse_what_does_not_fit_and_change_nothing() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    hopper.pause("held").await.unwrap();
    dispatch_mail(hopper, "held", 2).await;

    for (body, needle) in [
        (
            json!({"action": "nuke", "queue": "held"}),
            "unknown bulk action \"nuke\": expected retry, cancel or delete",
        ),
        (json!({"queue": "held"}), "missing field `action`"),
        (
            json!({"action": "cancel", "state": "lost"}),
            "unknown state \"lost\"",
        ),
        (
            json!({"action": "cancel", "older_than": "soon"}),
            "invalid duration \"soon\"",
        ),
        (
            json!({"action": "cancel", "older-than": "1h"}),
            "unknown field `older-than`",
        ),
    ] {
        let refused = post_json(&router, "/api/jobs/bulk", &body).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        let error = refused.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(needle), "{body}: {error}");
    }
    for query in ["state=lost", "older_than=soon", "older_than=99999999999d"] {
        let refused = get(&router, &format!("/api/jobs/count?{query}")).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(refused.json()["error"].is_string(), "{}", refused.body);
    }
    assert_eq!(count(&router, "state=pending&queue=held").await, 2);

    // Both routes want the admin token.
    let anonymous = send(
        &router,
        Request::get("/api/jobs/count").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    for auth in [None, Some("Bearer wrong-token")] {
        let mut request =
            Request::post("/api/jobs/bulk").header(header::CONTENT_TYPE, "application/json");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let body = Body::from(json!({"action": "delete"}).to_string());
        let refused = send(&router, request.body(body).unwrap()).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    assert_eq!(count(&router, "queue=held").await, 2);
    queue.stop().await.unwrap();
}

/// Every operation the document describes is served: calling it with the
/// token gets an answer from its handler, not the router's 404 or 405 (a
/// handler's own 404 says what is missing in JSON). The route table the
/// router is built from is checked against the document in the crate's
/// unit tests.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let doc = get(&router, "/api/openapi.json").await.json();
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let uri = path.replace("{id}", "1").replace("{queue}", "mail");
        for method in item.as_object().unwrap().keys() {
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let reply = send(&router, request).await;
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
            if reply.status == StatusCode::NOT_FOUND {
                let error = serde_json::from_str::<serde_json::Value>(&reply.body)
                    .map(|body| body["error"].is_string())
                    .unwrap_or(false);
                assert!(error, "{method} {uri}: the router's 404, not a handler's");
            }
            operations += 1;
        }
    }
    assert!(operations > 0, "the document describes no operation");
    queue.stop().await.unwrap();
}
