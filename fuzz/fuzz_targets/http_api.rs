//! The HTTP API and dashboard: any method, path, query, headers and body
//! sent to the router over a real SQLite file is answered, never with a
//! server error, and nothing panics.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt;
use hopper::{Hopper, Job, JobContext, JobResult};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

const TOKEN: &str = "fuzz-admin-token";

#[derive(Serialize, Deserialize)]
struct Mail {
    to: String,
}

struct MailJob;
impl Job for MailJob {
    const TYPE: &'static str = "mail";
    type Payload = Mail;
    async fn handle(&self, _: Mail, _: JobContext) -> JobResult {
        Ok(())
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temporary folder");
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let router = runtime.block_on(async {
            let hopper = Hopper::builder()
                .register(MailJob)
                .expect("one job type")
                .max_payload_bytes(2048)
                .connect(&url)
                .await
                .expect("a SQLite store");
            // Something to list, show, retry and cancel.
            for n in 0..3 {
                let id = hopper
                    .dispatch::<MailJob>(Mail {
                        to: format!("{n}@example.com"),
                    })
                    .await
                    .expect("a dispatch");
                if n == 1 {
                    hopper.cancel(id).await.expect("a cancel");
                }
            }
            let token = hopper_web::AdminToken::new(TOKEN).expect("a long enough token");
            hopper_web::Web::new(hopper, token).body_limit(16 * 1024).router()
        });
        Fixture {
            runtime,
            router,
            _dir: dir,
        }
    })
}

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

const PREFIXES: [&str; 11] = [
    "/api/jobs",
    "/api/jobs/",
    "/api/jobs/1/retry",
    "/api/jobs/2/cancel",
    "/api/stats",
    "/api/openapi.json",
    "/admin/queue",
    "/admin/queue/",
    "/admin/queue/jobs/",
    "/metrics",
    "/",
];

const CONTENT_TYPES: [&str; 4] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/json; charset=latin1",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: u8,
    prefix: u8,
    tail: &'a str,
    query: &'a str,
    auth: u8,
    content_type: u8,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let fixture = fixture();
    let mut uri = format!(
        "{}{}",
        PREFIXES[usize::from(input.prefix) % PREFIXES.len()],
        input.tail
    );
    if !input.query.is_empty() {
        uri = format!("{uri}?{}", input.query);
    }
    let mut request = Request::builder()
        .method(METHODS[usize::from(input.method) % METHODS.len()].clone())
        .uri(uri.as_str())
        .header(
            header::CONTENT_TYPE,
            CONTENT_TYPES[usize::from(input.content_type) % CONTENT_TYPES.len()],
        );
    match input.auth % 3 {
        0 => request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}")),
        1 => request = request.header(header::AUTHORIZATION, "Bearer wrong-token-0000"),
        _ => {}
    }
    // A path or query that is no valid URI never reaches the router.
    let Ok(request) = request.body(Body::from(input.body.to_vec())) else {
        return;
    };
    fixture.runtime.block_on(async {
        let response = fixture
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        assert!(
            !status.is_server_error(),
            "{uri}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    });
});
