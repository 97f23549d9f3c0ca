//! `GET /health`: answers while the server is up.

use axum::Json;
use serde::Serialize;

/// The body of a health answer.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Answers 200 `{"status":"ok"}`.
pub async fn show() -> Json<Health> {
    Json(Health { status: "ok" })
}
