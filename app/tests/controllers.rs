//! The HTTP routes, called through the axum router without a network.

use std::sync::Arc;

use app::AppState;
use app::mailer::Mailer;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use hopper::store::Store;
use hopper::testing::TestQueue;
use hopper::{Hopper, JobFilter, JobState};
use http_body_util::BodyExt;
use tower::ServiceExt;

const QUEUED: &str = r#"{"success":true,"message":"Welcome email queued successfully"}"#;

/// A handle on a fresh SQLite file, with no workers (jobs stay pending).
async fn hopper(dir: &tempfile::TempDir) -> Hopper {
    let url = format!("sqlite://{}", dir.path().join("hopper.db").display());
    app::hopper_builder(Mailer::new(dir.path().join("mail.log")))
        .unwrap()
        .connect(&url)
        .await
        .unwrap()
}

fn router(hopper: &Hopper) -> Router {
    app::routes::router(AppState {
        hopper: hopper.clone(),
    })
}

fn welcome_request(form: &str) -> Request<Body> {
    Request::post("/users/welcome-email")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

async fn call(router: Router, request: Request<Body>) -> (StatusCode, String, String) {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn error_of(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    value["error"].as_str().unwrap_or_default().to_owned()
}

async fn all_jobs(hopper: &Hopper) -> Vec<hopper::JobRecord> {
    hopper::testing::all_jobs(hopper, &JobFilter::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn welcome_email_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let hopper = hopper(&dir).await;

    let (status, content_type, body) =
        call(router(&hopper), welcome_request("email=ada%40example.com")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, QUEUED);
    let jobs = all_jobs(&hopper).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].job_type, "send_email");
    assert_eq!(jobs[0].state, JobState::Pending);
    let payload: serde_json::Value = serde_json::from_str(&jobs[0].payload).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({
            "to": "ada@example.com",
            "subject": "Welcome to Hopper!",
            "body": "Thank you for joining us.",
        })
    );
}

#[tokio::test]
async fn a_malformed_email_is_refused_with_422() {
    let dir = tempfile::tempdir().unwrap();
    let hopper = hopper(&dir).await;

    for form in [
        "email=not-an-email",
        "email=ada%40",
        "email=a+b%40example.com",
    ] {
        let (status, content_type, body) = call(router(&hopper), welcome_request(form)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {body}");
        assert_eq!(content_type, "application/json");
        assert!(
            error_of(&body).contains("is not a valid email address"),
            "{form}: {body}"
        );
    }
    assert!(all_jobs(&hopper).await.is_empty(), "nothing is queued");
}

#[tokio::test]
async fn a_missing_email_is_refused_with_422() {
    let dir = tempfile::tempdir().unwrap();
    let hopper = hopper(&dir).await;

    for form in ["", "name=ada", "email=", "email=%20%20"] {
        let (status, _, body) = call(router(&hopper), welcome_request(form)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}: {body}");
        assert_eq!(error_of(&body), "the `email` field is required");
    }
    assert!(all_jobs(&hopper).await.is_empty());
}

#[tokio::test]
async fn a_body_that_is_not_a_form_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hopper = hopper(&dir).await;

    let request = Request::post("/users/welcome-email")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"email":"ada@example.com"}"#))
        .unwrap();
    let (status, _, body) = call(router(&hopper), request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(error_of(&body).contains("x-www-form-urlencoded"), "{body}");
    assert!(all_jobs(&hopper).await.is_empty());
}

#[tokio::test]
async fn a_dispatch_failure_answers_500() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hopper.db").display());
    let store = hopper::store::sqlite::SqliteStore::open(&url)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let hopper = app::hopper_builder(Mailer::new(dir.path().join("mail.log")))
        .unwrap()
        .build(Arc::new(store.clone()));
    // The store the queue writes through is closed: every insert now fails,
    // as it would when the database goes away.
    store.close().await;

    let (status, content_type, body) =
        call(router(&hopper), welcome_request("email=ada%40example.com")).await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, r#"{"error":"Failed to queue welcome email"}"#);
    let reopened = hopper::store::sqlite::SqliteStore::open(&url)
        .await
        .unwrap();
    assert!(
        reopened
            .list(&JobFilter::default())
            .await
            .unwrap()
            .jobs
            .is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn health_answers_ok() {
    let dir = tempfile::tempdir().unwrap();
    let hopper = hopper(&dir).await;
    let request = Request::get("/health").body(Body::empty()).unwrap();

    let (status, _, body) = call(router(&hopper), request).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"status":"ok"}"#);
}

#[tokio::test]
async fn a_queued_welcome_email_is_sent_by_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let mail_log = dir.path().join("mail.log");
    let queue = TestQueue::start(app::hopper_builder(Mailer::new(&mail_log)).unwrap())
        .await
        .unwrap();

    let (status, _, body) = call(
        router(queue.hopper()),
        welcome_request("email=grace%40example.com"),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, QUEUED));
    queue.wait_idle().await.unwrap();

    let jobs = all_jobs(queue.hopper()).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Finished);
    let sent = Mailer::new(&mail_log).read_all().await.unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].to.as_str(),
            sent[0].subject.as_str(),
            sent[0].body.as_str()
        ),
        (
            "grace@example.com",
            "Welcome to Hopper!",
            "Thank you for joining us."
        )
    );
    queue.stop().await.unwrap();
}
