//! The dashboard: login, sessions, CSRF, escaping and actions, against a
//! real SQLite database.

mod common;

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::json;

/// Logs in through the form and returns the session cookie.
async fn log_in(router: &Router) -> String {
    let request = Request::post("/admin/queue/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={TOKEN}")))
        .unwrap();
    let reply = send(router, request).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(router: &Router, cookie: &str, uri: &str) -> Reply {
    let request = Request::get(uri)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    send(router, request).await
}

async fn submit(router: &Router, cookie: &str, uri: &str, form: &str) -> Reply {
    let request = Request::post(uri)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap();
    send(router, request).await
}

fn csrf_of(html: &str) -> String {
    let start = html
        .find(r#"name="csrf" value=""#)
        .expect("a form with a CSRF token")
        + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn login_with_a_wrong_token_is_refused() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let request = Request::post("/admin/queue/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("token=guess"))
        .unwrap();
    let reply = send(&router, request).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.headers.get(header::SET_COOKIE).is_none());
    let link = send(
        &router,
        Request::get(format!("/admin/queue/login?token={TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(link.status, StatusCode::SEE_OTHER);
    assert!(link.headers.get(header::SET_COOKIE).is_some());
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn pages_render_with_the_session_and_escape_every_value() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    queue.hopper().pause("default").await.unwrap();
    let router = router(queue.hopper());
    let id = post_json(
        &router,
        "/api/jobs",
        &json!({"type": "flaky", "payload": {"html": "<script>alert(1)</script>"}}),
    )
    .await
    .json()["id"]
        .as_i64()
        .unwrap();
    let cookie = log_in(&router).await;

    let overview = page(&router, &cookie, "/admin/queue").await;
    assert_eq!(overview.status, StatusCode::OK);
    assert!(
        overview.body.contains(r#"id="count-pending">1<"#),
        "{}",
        overview.body
    );
    assert!(overview.body.contains("<svg id=\"throughput\""));

    let job = page(&router, &cookie, &format!("/admin/queue/jobs/{id}")).await;
    assert_eq!(job.status, StatusCode::OK);
    assert!(
        job.body
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{}",
        job.body
    );
    assert!(!job.body.contains("<script>alert(1)"));

    let list = page(
        &router,
        &cookie,
        "/admin/queue/jobs?state=pending&type=flaky&queue=",
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(&format!(r#"data-id="{id}""#)));
    let empty = page(&router, &cookie, "/admin/queue/jobs?type=mail").await;
    assert!(empty.body.contains("No jobs match."));

    let queues = page(&router, &cookie, "/admin/queue/queues").await;
    assert!(queues.body.contains("paused"));
    let schedules = page(&router, &cookie, "/admin/queue/schedules").await;
    assert_eq!(schedules.status, StatusCode::OK);
    assert_eq!(
        page(&router, &cookie, "/admin/queue/jobs/999999")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    queue.stop().await.unwrap();
}

/// The `href` of the link with `id` on `html`, unescaped, if there is one.
fn link(html: &str, id: &str) -> Option<String> {
    let anchor = format!(r#"id="{id}" href=""#);
    let start = html.find(&anchor)? + anchor.len();
    let href = html[start..].split('"').next()?;
    Some(href.replace("&#38;", "&"))
}

/// The job ids a job list page shows, in order.
fn listed_ids(html: &str) -> Vec<i64> {
    html.split(r#"<tr data-id=""#)
        .skip(1)
        .map(|row| row.split('"').next().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn the_job_list_pages_to_older_jobs_and_back_to_the_newest() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    hopper.pause("bulk").await.unwrap();
    let mails = (0..120).map(|i| Mail {
        to: format!("user{i}@example.com"),
    });
    let options = hopper::DispatchOptions::new().queue("bulk");
    let mut ids = hopper
        .dispatch_many::<MailJob>(mails, options)
        .await
        .unwrap();
    hopper
        .dispatch::<MailJob>(Mail {
            to: "elsewhere@example.com".into(),
        })
        .await
        .unwrap();
    ids.reverse();
    let router = router(hopper);
    let cookie = log_in(&router).await;

    let mut uri = "/admin/queue/jobs?queue=bulk".to_owned();
    let mut pages = Vec::new();
    loop {
        let reply = page(&router, &cookie, &uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let newest = link(&reply.body, "first-page");
        assert_eq!(newest.is_some(), !pages.is_empty(), "{uri}");
        if let Some(newest) = newest {
            assert_eq!(newest, "/admin/queue/jobs?queue=bulk");
        }
        pages.push(listed_ids(&reply.body));
        match link(&reply.body, "next-page") {
            Some(older) => {
                let last = pages.last().unwrap().last().unwrap();
                assert_eq!(older, format!("/admin/queue/jobs?before={last}&queue=bulk"));
                uri = older;
            }
            None => break,
        }
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [50, 50, 20]);
    assert_eq!(pages.concat(), ids, "each bulk job once, newest first");
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn actions_need_the_csrf_token() {
    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let reply = post_json(
            &router,
            "/api/jobs",
            &json!({"type": "flaky", "payload": {}}),
        )
        .await;
        ids.push(reply.json()["id"].as_i64().unwrap());
    }
    queue.wait_idle().await.unwrap();
    let cookie = log_in(&router).await;
    let html = page(&router, &cookie, &format!("/admin/queue/jobs/{}", ids[0]))
        .await
        .body;
    let csrf = csrf_of(&html);
    assert!(html.contains("the upstream said no"));

    let forged = submit(
        &router,
        &cookie,
        &format!("/admin/queue/jobs/{}/retry", ids[0]),
        "",
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = submit(
        &router,
        &cookie,
        &format!("/admin/queue/jobs/{}/retry", ids[0]),
        "csrf=nope",
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let api_forged = send(
        &router,
        Request::post(format!("/api/jobs/{}/retry", ids[0]))
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(api_forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        queue.hopper().job(ids[0]).await.unwrap().unwrap().state,
        hopper::JobState::Failed
    );

    flaky.failing.store(false, Ordering::SeqCst);
    let retried = submit(
        &router,
        &cookie,
        &format!("/admin/queue/jobs/{}/retry", ids[0]),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER);
    let deleted = submit(
        &router,
        &cookie,
        &format!("/admin/queue/jobs/{}/delete", ids[1]),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert!(queue.hopper().job(ids[1]).await.unwrap().is_none());
    queue.wait_idle().await.unwrap();
    assert_eq!(
        queue.hopper().job(ids[0]).await.unwrap().unwrap().state,
        hopper::JobState::Finished
    );

    let all = submit(
        &router,
        &cookie,
        "/admin/queue/jobs/retry-failed",
        &format!("csrf={csrf}&type=flaky"),
    )
    .await;
    assert_eq!(all.status, StatusCode::SEE_OTHER);
    queue.wait_idle().await.unwrap();
    assert_eq!(
        queue.hopper().job(ids[2]).await.unwrap().unwrap().state,
        hopper::JobState::Finished
    );

    let paused = submit(
        &router,
        &cookie,
        "/admin/queue/queues/pause",
        &format!("csrf={csrf}&queue=default"),
    )
    .await;
    assert_eq!(paused.status, StatusCode::SEE_OTHER);
    assert!(
        queue
            .hopper()
            .queue_stats()
            .await
            .unwrap()
            .iter()
            .any(|s| s.queue == "default" && s.paused)
    );
    submit(
        &router,
        &cookie,
        "/admin/queue/queues/resume",
        &format!("csrf={csrf}&queue=default"),
    )
    .await;
    assert!(
        !queue
            .hopper()
            .queue_stats()
            .await
            .unwrap()
            .iter()
            .any(|s| s.paused)
    );

    let out = submit(
        &router,
        &cookie,
        "/admin/queue/logout",
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    // Sessions live in the signed cookie, not on the server, so logging out
    // clears the cookie in the browser; the browser then has none to send.
    let cleared = out.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cleared.starts_with("hopper_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert_eq!(
        page(&router, "", "/admin/queue").await.status,
        StatusCode::UNAUTHORIZED
    );
    queue.stop().await.unwrap();
}

/// A second instance serving the same database: its own `Hopper` and its
/// own `Web`, sharing nothing with the first but the database, the clock
/// and the admin token.
async fn second_instance(
    queue: &hopper::testing::TestQueue,
    flaky: &FlakyJob,
    token: &str,
) -> Router {
    let hopper = builder(flaky)
        .clock(queue.clock().clone())
        .connect(queue.database_url())
        .await
        .unwrap();
    let token = hopper_web::AdminToken::new(token).unwrap();
    hopper_web::Web::new(hopper, token).router()
}

#[tokio::test]
async fn a_login_on_one_instance_works_on_another_with_the_same_token() {
    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let first = router(queue.hopper());
    let id = post_json(
        &first,
        "/api/jobs",
        &json!({"type": "flaky", "payload": {}}),
    )
    .await
    .json()["id"]
        .as_i64()
        .unwrap();
    queue.wait_idle().await.unwrap();
    let cookie = log_in(&first).await;
    let job_page = format!("/admin/queue/jobs/{id}");
    let csrf = csrf_of(&page(&first, &cookie, &job_page).await.body);

    let second = second_instance(&queue, &flaky, TOKEN).await;
    let seen = page(&second, &cookie, &job_page).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(csrf_of(&seen.body), csrf, "both derive the same CSRF token");
    let forged = submit(&second, &cookie, &format!("{job_page}/retry"), "csrf=nope").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    flaky.failing.store(false, Ordering::SeqCst);
    let retried = submit(
        &second,
        &cookie,
        &format!("{job_page}/retry"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(retried.status, StatusCode::SEE_OTHER, "{}", retried.body);
    queue.wait_idle().await.unwrap();
    assert_eq!(
        queue.hopper().job(id).await.unwrap().unwrap().state,
        hopper::JobState::Finished
    );

    let other_token = second_instance(&queue, &flaky, "another-admin-token").await;
    assert_eq!(
        page(&other_token, &cookie, &job_page).await.status,
        StatusCode::UNAUTHORIZED,
        "a new admin token ends every session"
    );
    let refused = submit(
        &other_token,
        &cookie,
        &format!("{job_page}/delete"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(queue.hopper().job(id).await.unwrap().is_some());
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_the_login_came_over_https() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let login = |proto: Option<&str>| {
        let mut request = Request::post("/admin/queue/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(proto) = proto {
            request = request.header("x-forwarded-proto", proto);
        }
        request.body(Body::from(format!("token={TOKEN}"))).unwrap()
    };
    let cookie = |reply: &Reply| {
        reply.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned()
    };
    let proxied = send(&router, login(Some("https"))).await;
    assert!(
        cookie(&proxied).contains("; Secure"),
        "{}",
        cookie(&proxied)
    );
    let plain = send(&router, login(None)).await;
    assert!(!cookie(&plain).contains("Secure"), "{}", cookie(&plain));
    let http = send(&router, login(Some("http"))).await;
    assert!(!cookie(&http).contains("Secure"), "{}", cookie(&http));
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn schedules_show_their_next_fire_times_last_outcome_and_recent_runs() {
    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let mut schedules = hopper::schedule::Schedules::new();
    let nightly = Mail {
        to: "ops@example.com".into(),
    };
    let schedule =
        hopper::schedule::Schedule::new::<MailJob>("nightly <report>", "0 0 3 * * *", nightly)
            .unwrap()
            .missed(hopper::schedule::Missed::RunLatest);
    schedules.add(schedule).unwrap();
    // Every second: each look takes a tick and runs its job, which fails.
    let every_second =
        hopper::schedule::Schedule::new::<FlakyJob>("heartbeat", "* * * * * *", json!({})).unwrap();
    schedules.add(every_second).unwrap();
    let dispatched = |fired: &[hopper::schedule::Fired], name: &str| {
        let fired = fired.iter().find(|f| f.schedule == name).unwrap();
        let hopper::store::Tick::Dispatched(id) = fired.tick else {
            panic!("the tick was not dispatched: {fired:?}")
        };
        (fired.fire_at, id)
    };
    // The first look only takes the nightly's latest tick; a day later the
    // next one runs.
    let first = schedules.run_due(queue.hopper()).await.unwrap();
    let (_, failed) = dispatched(&first, "heartbeat");
    queue.advance(std::time::Duration::from_secs(24 * 3600));
    let fired = schedules.run_due(queue.hopper()).await.unwrap();
    let (nightly_at, finished) = dispatched(&fired, "nightly <report>");
    let (_, deleted) = dispatched(&fired, "heartbeat");
    queue.wait_idle().await.unwrap();
    assert!(queue.hopper().delete(deleted).await.unwrap());
    let list = schedules.list(queue.hopper()).await.unwrap();
    let token = hopper_web::AdminToken::new(TOKEN).unwrap();
    let router = hopper_web::Web::new(queue.hopper().clone(), token)
        .schedules(schedules)
        .router();
    let reply = get(&router, "/admin/queue/schedules").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body.contains("nightly &#60;report&#62;"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("0 0 3 * * *"));
    assert!(
        reply.body.contains("<th>recent runs</th>"),
        "{}",
        reply.body
    );
    let row = |name: &str| {
        reply
            .body
            .split("<tr>")
            .find(|row| row.contains(name))
            .unwrap_or_else(|| panic!("no row for {name}: {}", reply.body))
            .to_owned()
    };
    let nightly_row = row("nightly &#60;report&#62;");
    let nightly_runs = list
        .iter()
        .find(|s| s.name == "nightly <report>")
        .unwrap()
        .recent
        .len();
    assert_eq!(
        nightly_row.matches("03:00:00 UTC").count(),
        4 + nightly_runs,
        "the next three ticks, the last one and each run's: {nightly_row}"
    );
    assert!(
        reply
            .body
            .contains(&format!("/admin/queue/jobs/{finished}")),
        "the last job is linked"
    );
    // The nightly's run: its tick, its job linked and its state badge.
    let run = format!(
        r#"<span class="run" data-job="{finished}">{} · <a href="/admin/queue/jobs/{finished}">{finished}</a> <span class="state state-finished">finished</span></span>"#,
        hopper_web::html::time(nightly_at)
    );
    assert!(nightly_row.contains(&run), "{nightly_row}");

    // The heartbeat's runs, newest first: the deleted job's run is gone
    // (unlinked), the one before failed.
    let heartbeat_row = row("heartbeat");
    let recent = heartbeat_row
        .split(r#"<td class="recent-runs">"#)
        .nth(1)
        .unwrap();
    let gone = recent
        .find(&format!(r#"data-job="{deleted}""#))
        .expect("the deleted job's run");
    let failed_at = recent
        .find(&format!(r#"data-job="{failed}""#))
        .expect("the failed job's run");
    assert!(gone < failed_at, "newest first: {recent}");
    assert!(
        recent.contains(
            r#"<span class="state state-gone" title="the job was pruned or deleted">gone</span>"#
        ),
        "{recent}"
    );
    assert!(
        !recent.contains(&format!("/admin/queue/jobs/{deleted}\"")),
        "a gone job is not linked: {recent}"
    );
    assert!(
        recent.contains(&format!(
            r#"<a href="/admin/queue/jobs/{failed}">{failed}</a> <span class="state state-failed">failed</span>"#
        )),
        "{recent}"
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn the_queues_page_shows_each_pools_concurrency() {
    let flaky = FlakyJob::default();
    let config = hopper::WorkerConfig::new(1)
        .only()
        .queue_scaled("default", 2, 6)
        .worker_id("web-7");
    let queue = hopper::testing::TestQueue::start_with(builder(&flaky), config)
        .await
        .unwrap();
    // Wait for the pool's first published row.
    let mut activity = queue.pool().activity();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let hopper = queue.hopper();
    while hopper
        .store()
        .worker_concurrency(hopper.now())
        .await
        .unwrap()
        .is_empty()
    {
        tokio::time::timeout_at(deadline, activity.changed())
            .await
            .expect("the pool publishes its concurrency")
            .unwrap();
    }
    let router = router(hopper);
    let cookie = log_in(&router).await;
    let queues = page(&router, &cookie, "/admin/queue/queues").await;
    assert!(
        queues.body.contains(
            r#"<tr data-queue="default" data-worker="web-7"><td>default</td><td>web-7</td><td>0</td><td class="concurrency">2</td><td>2–6</td></tr>"#
        ),
        "{}",
        queues.body
    );
    queue.stop().await.unwrap();
    let after = page(&router, &cookie, "/admin/queue/queues").await;
    assert!(after.body.contains("No workers running."), "{}", after.body);
}

#[tokio::test]
async fn retrying_all_failed_skips_jobs_whose_unique_key_a_live_job_holds() {
    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    let keyed = hopper::DispatchOptions::new().unique_key("sync:1");
    let held = hopper
        .dispatch_json("flaky", &json!({}), keyed.clone())
        .await
        .unwrap();
    let free = hopper
        .dispatch_json("flaky", &json!({}), Default::default())
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    hopper.pause("default").await.unwrap();
    let holder = hopper
        .dispatch_json("flaky", &json!({}), keyed)
        .await
        .unwrap();

    let cookie = log_in(&router).await;
    let html = page(
        &router,
        &cookie,
        "/admin/queue/jobs?state=failed&type=flaky",
    )
    .await;
    assert!(
        html.body.contains("Retry all failed flaky jobs"),
        "{}",
        html.body
    );
    let csrf = csrf_of(&html.body);
    let all = submit(
        &router,
        &cookie,
        "/admin/queue/jobs/retry-failed",
        &format!("csrf={csrf}&type=flaky"),
    )
    .await;
    assert_eq!(all.status, StatusCode::SEE_OTHER, "{}", all.body);
    let location = all.headers[header::LOCATION].to_str().unwrap().to_owned();
    let shown = page(&router, &cookie, &location).await;
    assert!(
        shown.body.contains(
            "1 failed flaky jobs retried. 1 skipped: another live job holds their unique key."
        ),
        "{}",
        shown.body
    );
    let state = |id| async move { hopper.job(id).await.unwrap().unwrap().state };
    assert_eq!(state(free).await, hopper::JobState::Pending);
    assert_eq!(state(held).await, hopper::JobState::Failed);
    assert_eq!(state(holder).await, hopper::JobState::Pending);
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn the_queues_page_shows_each_queues_limits_and_their_use() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    let cookie = log_in(&router).await;
    let none = page(&router, &cookie, "/admin/queue/queues").await;
    assert!(
        none.body.contains("No queue has flow settings."),
        "{}",
        none.body
    );

    let flow = hopper::store::QueueFlow::default()
        .concurrency(1)
        .per_key(1)
        .rate(hopper::store::Rate::per_key(
            100,
            std::time::Duration::from_secs(60),
        ));
    hopper.set_queue_flow("mail", flow).await.unwrap();
    for key in ["<b>acme", "<b>acme", "<b>acme"] {
        let mail = Mail {
            to: "f@example.com".into(),
        };
        let options = hopper::DispatchOptions::new().queue("mail").partition(key);
        hopper
            .dispatch_with::<MailJob>(mail, options)
            .await
            .unwrap();
    }
    let claim = hopper::store::ClaimRequest {
        queue: "mail",
        worker: "elsewhere",
        limit: 1,
        start_now: 1,
        token: hopper::store::new_claim_token(),
        due_by: hopper.now(),
        lease: std::time::Duration::from_secs(3600),
        now: Some(hopper.now()),
    };
    assert_eq!(hopper.store().claim(claim).await.unwrap().len(), 1);

    let shown = page(&router, &cookie, "/admin/queue/queues").await;
    let body = &shown.body;
    assert!(body.contains(r#"<table id="flow">"#), "{body}");
    assert!(
        body.contains("<td>1 at once, 1 per key, 100/1m per key</td>"),
        "{body}"
    );
    assert!(body.contains(r#"<td class="running">1 / 1</td>"#), "{body}");
    assert!(body.contains(r#"<td class="starts">1</td>"#), "{body}");
    assert!(
        body.contains(r#"<td class="waiting">2 (queue full)</td>"#),
        "{body}"
    );
    assert!(
        body.contains("&#60;b&#62;acme: 1 running, 1 started (full)"),
        "{body}"
    );
    assert!(!body.contains("<b>acme"), "keys are escaped");
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn the_job_page_shows_progress_and_output_escaped() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let id = queue.hopper().dispatch::<ReportJob>(7).await.unwrap();
    let waited = queue
        .hopper()
        .wait_for(id, std::time::Duration::from_secs(10));
    waited.await.unwrap();
    let cookie = log_in(&router).await;
    let job = page(&router, &cookie, &format!("/admin/queue/jobs/{id}")).await;
    assert_eq!(job.status, StatusCode::OK);
    assert!(
        job.body.contains(
            r#"<progress max="100" value="100">100%</progress> 100% &#60;counted&#62; 7 rows"#
        ),
        "{}",
        job.body
    );
    assert!(job.body.contains(r#"<h2>Output</h2><pre id="output">"#));
    assert!(job.body.contains("&#34;rows&#34;: 7") || job.body.contains("\"rows\": 7"));
    assert!(job.body.contains("&#60;b&#62;rows&#60;/b&#62;"));
    assert!(!job.body.contains("<b>rows</b>"));
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn the_batch_page_shows_its_counts_and_callbacks_escaped() {
    let flaky = FlakyJob::default();
    flaky.failing.store(true, Ordering::SeqCst);
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    let batch = hopper
        .batch("<b>import</b>")
        .on_failure::<ReportJob>(1)
        .unwrap()
        .on_success::<MailJob>(Mail {
            to: "a@x.org".into(),
        })
        .unwrap()
        .dispatch_many::<FlakyJob>([json!(1), json!(2)], hopper::DispatchOptions::new())
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    let cookie = log_in(&router).await;
    let uri = format!("/admin/queue/batches/{}", batch.id);
    // The failure callback is inserted just after the last job ends.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let body = loop {
        let reply = page(&router, &cookie, &uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        if !reply
            .body
            .contains(r#"<tr data-event="failure"><td>failure</td><td>report</td><td><span"#)
        {
            break reply.body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", reply.body);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(body.contains("<title>Batch "), "{body}");
    assert!(
        body.contains(r#"<td id="batch-name">&#60;b&#62;import&#60;/b&#62;</td>"#),
        "{body}"
    );
    assert!(!body.contains("<b>import"), "the name is escaped");
    for (count, n) in [
        ("total", 2),
        ("pending", 0),
        ("finished", 0),
        ("failed", 2),
        ("cancelled", 0),
    ] {
        let card = format!(r#"<b id="batch-{count}">{n}</b>"#);
        assert!(body.contains(&card), "{card} missing from\n{body}");
    }
    assert!(body.contains(r#"<td id="batch-sealed">yes</td>"#), "{body}");
    assert!(
        body.contains(r#"<td id="batch-complete">yes</td>"#),
        "{body}"
    );
    assert!(
        body.contains(r#"<progress max="2" value="2">100%</progress> 2 of 2 ended (100%)"#),
        "{body}"
    );
    let fired = hopper.batch_status(batch.id).await.unwrap().unwrap();
    let failure = fired
        .callbacks
        .iter()
        .find(|c| c.event == hopper::store::BatchEvent::Failure);
    let job = failure.and_then(|c| c.job_id).unwrap();
    assert!(
        body.contains(&format!(r#"<a href="/admin/queue/jobs/{job}">{job}</a>"#)),
        "{body}"
    );
    assert!(
        body.contains(r#"<tr data-event="success"><td>success</td><td>mail</td><td><span class="muted">not fired</span>"#),
        "{body}"
    );

    // A batch's job links back to its batch.
    let member = page(
        &router,
        &cookie,
        &format!("/admin/queue/jobs/{}", batch.jobs[0]),
    )
    .await;
    let link = format!(
        r#"<td id="job-batch"><a href="/admin/queue/batches/{id}">{id}</a></td>"#,
        id = batch.id
    );
    assert!(member.body.contains(&link), "{}", member.body);

    let missing = page(&router, &cookie, "/admin/queue/batches/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(
        missing.body.contains("no batch with id 999999"),
        "{}",
        missing.body
    );
    queue.wait_idle().await.unwrap();
    queue.stop().await.unwrap();
}

/// Dispatches `n` mail jobs on `queue`.
async fn dispatch_mail(hopper: &hopper::Hopper, queue: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mail = Mail {
            to: format!("{i}@example.com"),
        };
        let options = hopper::DispatchOptions::new().queue(queue);
        ids.push(
            hopper
                .dispatch_with::<MailJob>(mail, options)
                .await
                .unwrap(),
        );
    }
    ids
}

/// The count a bulk confirmation page shows.
fn bulk_count(html: &str) -> u64 {
    let start = html.find(r#"id="bulk-count">"#).expect("the count") + 16;
    html[start..].split('<').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_bulk_action_shows_the_count_to_confirm_then_applies_and_says_what_it_did() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    for name in ["bulk", "other"] {
        hopper.pause(name).await.unwrap();
    }
    let old = dispatch_mail(hopper, "bulk", 3).await;
    let other = dispatch_mail(hopper, "other", 2).await;
    queue.advance(std::time::Duration::from_secs(2 * 3600));
    let young = dispatch_mail(hopper, "bulk", 1).await;
    let cookie = log_in(&router).await;

    // The list offers the bulk form for its filter.
    let list = page(&router, &cookie, "/admin/queue/jobs?queue=bulk").await;
    assert!(
        list.body.contains(r#"<form id="bulk" method="get" action="/admin/queue/jobs/bulk"><input type="hidden" name="queue" value="bulk">"#),
        "{}",
        list.body
    );
    for label in ["Retry all", "Cancel all", "Delete all"] {
        assert!(list.body.contains(label), "{label}");
    }
    assert!(list.body.contains(r#"name="older_than""#));

    // Pressing a button shows the count, and changes nothing.
    let confirm = |query: &'static str| {
        let (router, cookie) = (router.clone(), cookie.clone());
        async move { page(&router, &cookie, &format!("/admin/queue/jobs/bulk?{query}")).await }
    };
    let all = confirm("queue=bulk&action=cancel&older_than=").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(bulk_count(&all.body), 4);
    assert!(all.body.contains("Cancel 4 jobs"), "{}", all.body);
    let aged = confirm("queue=bulk&action=cancel&older_than=1h").await;
    assert_eq!(bulk_count(&aged.body), 3);
    assert!(
        aged.body
            .contains(r#"<b id="bulk-filter">queue bulk, created more than 1h ago</b>"#),
        "{}",
        aged.body
    );
    assert!(aged.body.contains(r#"name="older_than" value="1h""#));
    let none = confirm("queue=bulk&action=retry&state=failed").await;
    assert_eq!(bulk_count(&none.body), 0);
    assert!(none.body.contains("No jobs match: nothing to do."));
    let escaped = confirm("queue=%3Cb%3Ex&action=delete").await;
    assert!(
        escaped.body.contains("queue &#60;b&#62;x"),
        "{}",
        escaped.body
    );
    assert!(!escaped.body.contains("<b>x"));
    for (query, needle) in [
        ("action=nuke", "unknown bulk action"),
        ("queue=bulk", "unknown bulk action"),
        ("action=cancel&state=lost", "unknown state"),
        ("action=cancel&older_than=soon", "invalid duration"),
    ] {
        let refused = confirm(query).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(refused.body.contains(needle), "{query}: {}", refused.body);
    }
    let state = |id| async move { hopper.job(id).await.unwrap().unwrap().state };
    assert_eq!(state(old[0]).await, hopper::JobState::Pending);

    // Confirming applies the action to what the page counted, and the
    // list says what was done.
    let csrf = csrf_of(&aged.body);
    let form = "action=cancel&queue=bulk&older_than=1h";
    let applied = submit(
        &router,
        &cookie,
        "/admin/queue/jobs/bulk",
        &format!("csrf={csrf}&{form}"),
    )
    .await;
    assert_eq!(applied.status, StatusCode::SEE_OTHER, "{}", applied.body);
    let location = applied.headers[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        location.starts_with("/admin/queue/jobs?queue=bulk&note="),
        "{location}"
    );
    let listed = page(&router, &cookie, &location).await;
    assert!(
        listed.body.contains(
            r#"<p class="note">Cancel all: 3 jobs matched (queue bulk, created more than 1h ago), 3 cancelled, 0 skipped.</p>"#
        ),
        "{}",
        listed.body
    );
    for id in &old {
        assert_eq!(state(*id).await, hopper::JobState::Cancelled);
    }
    assert_eq!(state(young[0]).await, hopper::JobState::Pending);
    for id in &other {
        assert_eq!(state(*id).await, hopper::JobState::Pending);
    }
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn a_bulk_action_needs_the_csrf_token() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    let router = router(hopper);
    hopper.pause("bulk").await.unwrap();
    let ids = dispatch_mail(hopper, "bulk", 2).await;
    let cookie = log_in(&router).await;
    let csrf = csrf_of(&page(&router, &cookie, "/admin/queue/jobs").await.body);

    for form in [
        "action=delete&queue=bulk".to_owned(),
        "csrf=nope&action=delete&queue=bulk".to_owned(),
        format!("csrf={csrf}x&action=delete&queue=bulk"),
    ] {
        let forged = submit(&router, &cookie, "/admin/queue/jobs/bulk", &form).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN, "{form}");
    }
    // The API's bulk route, on the session cookie, wants the token too.
    let api_forged = send(
        &router,
        Request::post("/api/jobs/bulk")
            .header(header::COOKIE, &cookie)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"action": "delete", "queue": "bulk"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(api_forged.status, StatusCode::FORBIDDEN);
    for id in &ids {
        assert!(hopper.job(*id).await.unwrap().is_some());
    }

    let api = send(
        &router,
        Request::post("/api/jobs/bulk")
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"action": "delete", "queue": "bulk"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    assert_eq!(api.json()["applied"], 2);
    for id in &ids {
        assert!(hopper.job(*id).await.unwrap().is_none());
    }
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn a_workflows_page_lists_its_steps_with_what_each_waits_on() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    hopper.pause("default").await.unwrap();
    let router = router(hopper);
    let mail = |to: &str| Mail { to: to.into() };
    let workflow = hopper
        .workflow("checkout")
        .add::<MailJob>("<b>charge</b>", mail("a@x.org"))
        .unwrap()
        .add_after::<MailJob>(&["<b>charge</b>"], "receipt", mail("b@x.org"))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    let cookie = log_in(&router).await;
    let reply = page(
        &router,
        &cookie,
        &format!("/admin/queue/batches/{}", workflow.id),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.body;
    let charge = workflow.jobs["<b>charge</b>"];
    let receipt = workflow.jobs["receipt"];
    // Oldest first: the first step, then the one waiting on it.
    let first = body.find(&format!(r#"<tr data-id="{charge}">"#));
    let second = body.find(&format!(r#"<tr data-id="{receipt}">"#));
    assert!(first.is_some() && first < second, "{body}");
    assert!(
        body.contains(&format!(
            r#"<a href="/admin/queue/jobs/{charge}">&#60;b&#62;charge&#60;/b&#62;</a> <span class="state state-pending">pending</span>"#
        )),
        "the step waited on, escaped, with its state: {body}"
    );
    assert!(body.contains("(waiting on 1)"), "{body}");
    assert!(!body.contains("<b>charge"), "step names are escaped");
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn a_held_jobs_page_shows_what_it_waits_on_and_skips_the_wait() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let hopper = queue.hopper();
    // Paused, so the first job of the sequence stays pending.
    hopper.pause("default").await.unwrap();
    let router = router(hopper);
    let in_line = hopper::DispatchOptions::new().sequence("<b>ledger</b>");
    let first = hopper
        .dispatch_with::<MailJob>(
            Mail {
                to: "a@x.org".into(),
            },
            in_line.clone(),
        )
        .await
        .unwrap();
    let second = hopper
        .dispatch_with::<MailJob>(
            Mail {
                to: "b@x.org".into(),
            },
            in_line,
        )
        .await
        .unwrap();
    assert_eq!(hopper.job(second).await.unwrap().unwrap().waiting_on, 1);
    let cookie = log_in(&router).await;
    let uri = format!("/admin/queue/jobs/{second}");
    let reply = page(&router, &cookie, &uri).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let body = reply.body;
    assert!(body.contains("Still waiting on 1"), "{body}");
    assert!(
        body.contains(&format!(
            r#"<tr data-id="{first}"><td><a href="/admin/queue/jobs/{first}">{first}</a></td><td><span class="state state-pending">pending</span></td><td>&#60;b&#62;ledger&#60;/b&#62;</td></tr>"#
        )),
        "the job waited on, linked, with its state and escaped sequence key: {body}"
    );
    assert!(!body.contains("<b>ledger"), "sequence keys are escaped");
    assert!(
        body.contains(&format!(r#"action="/admin/queue/jobs/{second}/skip-wait""#))
            && body.contains(">Skip wait</button>"),
        "{body}"
    );
    // The job it waits on waits on nothing: no table, no button.
    let first_page = page(&router, &cookie, &format!("/admin/queue/jobs/{first}")).await;
    assert!(
        !first_page.body.contains("Skip wait") && !first_page.body.contains("waits-on"),
        "{}",
        first_page.body
    );
    let csrf = csrf_of(&body);
    // The job list offers it too, on the held job's row only.
    let list = page(&router, &cookie, "/admin/queue/jobs").await.body;
    assert_eq!(list.matches("/skip-wait\"").count(), 1, "{list}");
    assert!(list.contains(&format!("/admin/queue/jobs/{second}/skip-wait")));

    let forged = submit(&router, &cookie, &format!("{uri}/skip-wait"), "csrf=nope").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(hopper.job(second).await.unwrap().unwrap().waiting_on, 1);

    let skipped = submit(
        &router,
        &cookie,
        &format!("{uri}/skip-wait"),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::SEE_OTHER, "{}", skipped.body);
    let location = skipped.headers[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with(&format!("{uri}?note=")), "{location}");
    let job = hopper.job(second).await.unwrap().unwrap();
    assert_eq!((job.state, job.waiting_on), (hopper::JobState::Pending, 0));
    let after = page(&router, &cookie, location).await.body;
    assert!(after.contains("Job released from its wait."), "{after}");
    assert!(
        !after.contains("Skip wait") && !after.contains("waits-on"),
        "{after}"
    );

    let again = submit(
        &router,
        &cookie,
        &format!("{uri}/skip-wait"),
        &format!("csrf={csrf}"),
    )
    .await;
    let location = again.headers[header::LOCATION].to_str().unwrap();
    let note = page(&router, &cookie, location).await.body;
    assert!(
        note.contains("The job could not be released from its wait in its current state."),
        "{note}"
    );
    queue.stop().await.unwrap();
}

#[tokio::test]
async fn pages_follow_the_live_stream_but_confirmations_and_errors_stay_still() {
    let flaky = FlakyJob::default();
    let queue = queue(&flaky).await;
    let router = router(queue.hopper());
    let cookie = log_in(&router).await;
    let live = r#"<main id="live" data-live="on" data-source="/admin/queue/live">"#;
    let still = r#"<main id="live" data-live="off" data-source="/admin/queue/live">"#;
    for uri in [
        "/admin/queue",
        "/admin/queue/jobs",
        "/admin/queue/queues",
        "/admin/queue/schedules",
    ] {
        let reply = page(&router, &cookie, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        assert!(reply.body.contains(live), "{uri}: {}", reply.body);
        assert!(reply.body.contains("new EventSource("), "{uri}");
    }
    let confirm = page(&router, &cookie, "/admin/queue/jobs/bulk?action=cancel").await;
    assert!(confirm.body.contains(still), "{}", confirm.body);
    let missing = page(&router, &cookie, "/admin/queue/jobs/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains(still), "{}", missing.body);
    queue.stop().await.unwrap();
}
