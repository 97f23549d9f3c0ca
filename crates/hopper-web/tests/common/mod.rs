//! Shared test fixtures: a queue on a real SQLite file with two job types,
//! and a small HTTP client over the router.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hopper::testing::TestQueue;
use hopper::{Hopper, Job, JobContext, JobError, JobResult};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

pub const TOKEN: &str = "test-admin-token";

#[derive(Serialize, Deserialize)]
pub struct Mail {
    pub to: String,
}

/// Always succeeds.
pub struct MailJob;

impl Job for MailJob {
    const TYPE: &'static str = "mail";
    type Payload = Mail;
    async fn handle(&self, _: Mail, _: JobContext) -> JobResult {
        Ok(())
    }
}

/// Fails for good while its switch is on, succeeds once it is off.
#[derive(Clone, Default)]
pub struct FlakyJob {
    pub failing: Arc<AtomicBool>,
}

impl Job for FlakyJob {
    const TYPE: &'static str = "flaky";
    type Payload = serde_json::Value;
    async fn handle(&self, _: serde_json::Value, _: JobContext) -> JobResult {
        if self.failing.load(Ordering::SeqCst) {
            Err(JobError::permanent("the upstream said no"))
        } else {
            Ok(())
        }
    }
}

/// Reports its progress, then returns how many rows it was given.
pub struct ReportJob;

impl Job for ReportJob {
    const TYPE: &'static str = "report";
    type Payload = u32;
    async fn handle(&self, rows: u32, ctx: JobContext) -> JobResult {
        ctx.progress(100, format!("<counted> {rows} rows")).await?;
        ctx.set_output(&serde_json::json!({ "rows": rows, "title": "<b>rows</b>" }))?;
        Ok(())
    }
}

pub fn builder(flaky: &FlakyJob) -> hopper::Builder {
    Hopper::builder()
        .register(MailJob)
        .unwrap()
        .register(ReportJob)
        .unwrap()
        .register(flaky.clone())
        .unwrap()
}

pub async fn queue(flaky: &FlakyJob) -> TestQueue {
    TestQueue::start(builder(flaky)).await.unwrap()
}

pub fn router(hopper: &Hopper) -> Router {
    let token = hopper_web::AdminToken::new(TOKEN).unwrap();
    hopper_web::Web::new(hopper.clone(), token).router()
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response: Response<Body> = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn get(router: &Router, uri: &str) -> Reply {
    let request = Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    send(router, request).await
}

pub async fn post_json(router: &Router, uri: &str, body: &serde_json::Value) -> Reply {
    let request = Request::post(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(router, request).await
}
