//! The JSON API under `/api`, described by the OpenAPI document at
//! `/api/openapi.json`.
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/api/jobs` | dispatch `{"type", "payload", "queue"?, "priority"?, "delay_seconds"?}`: 201, unknown type 404, payload that does not fit 422 |
//! | GET | `/api/jobs?state=&queue=&type=&before=&limit=` | a page of jobs, newest first (`limit`: 1 to 500, default 100), and `next`: the `before` of the next page, `null` on the last |
//! | GET | `/api/jobs/{id}` | one job |
//! | POST | `/api/jobs/{id}/retry` | a failed or cancelled job back to pending |
//! | POST | `/api/jobs/{id}/cancel` | cancel a pending job |
//! | POST | `/api/jobs/{id}/skip-wait` | run a pending job that waits on others (a sequence held by a failed job, a workflow step) without waiting any longer ([`hopper::Hopper::skip_wait`]) |
//! | GET | `/api/jobs/count?state=&queue=&type=&older_than=` | `{"count": n}`: how many jobs match (`older_than`: created longer ago than `10m`, `2h`, `7d`, …) |
//! | POST | `/api/jobs/bulk` | `{"action": "retry"\|"cancel"\|"delete", "state"?, "queue"?, "type"?, "older_than"?}`: the action on every matching job ([`hopper::Hopper::bulk`]), answered with `{"matched", "applied", "skipped"}`; an unknown action, state or age 400 |
//! | GET | `/api/batches/{id}` | one batch: its counts (`pending` worked out), whether it is sealed and complete, and its callbacks with the jobs they became |
//! | GET | `/api/stats` | counts per queue and state and per type and state, queue depth, throughput |
//! | GET | `/api/alerts?resolved=` | alert incidents firing now and the latest resolved ([`crate::alerts`]) |
//! | GET | `/api/flow` | every queue with flow settings: its limits and their use ([`hopper::store::FlowUsage`]) |
//! | GET | `/api/queues/{queue}/flow` | one queue's flow settings and their use (`usage` null without settings) |
//! | PUT | `/api/queues/{queue}/flow` | replace one queue's flow settings `{"concurrency"?, "key_concurrency"?, "rate"?: "100/1m", "per_key_rate"?, "fair"?}`: bad settings 400 |

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hopper::bulk::{BulkAction, BulkOutcome, UnknownAction};
use hopper::store::{BatchRecord, FlowUsage, QueueFlow, Rate};
use hopper::store::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use hopper::{DispatchError, DispatchOptions, JobFilter, JobRecord, RegistryError, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{Caller, Refused};
use crate::dashboard::Selection;
use crate::{API_PATH, Web};

/// What can go wrong answering an API call; each maps to a status and a
/// JSON body `{"error": …}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token (401) or a cookie request without its CSRF token (403).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// No such job, batch or job type (404).
    #[error("{0}")]
    NotFound(String),
    /// A payload that does not fit its job type (422).
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// The decoder's message, naming the field at fault.
        field_error: String,
    },
    /// A body that is not the JSON expected, or a bad query (400).
    #[error("{0}")]
    BadRequest(String),
    /// The job is in a state the action does not apply to (409).
    #[error("{0}")]
    Conflict(String),
    /// The request body (or the payload) is over the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The database failed (500).
    #[error("the job database failed: {0}")]
    Store(#[from] StoreError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Refused(_) => {
                return match self {
                    ApiError::Refused(Refused::Unauthorized { .. }) => {
                        Refused::Unauthorized { dashboard: false }.into_response()
                    }
                    ApiError::Refused(refused) => refused.into_response(),
                    _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                };
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Invalid { field_error, .. } => {
                let body = json!({ "error": self.to_string(), "field_error": field_error });
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Store(error) => {
                tracing::error!(%error, "API request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

impl From<DispatchError> for ApiError {
    fn from(error: DispatchError) -> Self {
        match error {
            DispatchError::Registry(RegistryError::UnknownType(job_type)) => {
                ApiError::NotFound(format!("no job registered for type {job_type}"))
            }
            DispatchError::Registry(RegistryError::InvalidPayload { job_type, reason }) => {
                ApiError::Invalid {
                    message: format!("payload does not fit job type {job_type}"),
                    field_error: reason,
                }
            }
            DispatchError::Registry(other) => ApiError::BadRequest(other.to_string()),
            DispatchError::Encode { .. } => ApiError::BadRequest(error.to_string()),
            DispatchError::TooLarge { .. } => ApiError::TooLarge(error.to_string()),
            DispatchError::NulCharacter { .. } => ApiError::BadRequest(error.to_string()),
            DispatchError::PartitionKeyTooLong { .. } => ApiError::BadRequest(error.to_string()),
            DispatchError::WrongDatabase { .. } => ApiError::BadRequest(error.to_string()),
            DispatchError::Store(store) => ApiError::Store(store),
        }
    }
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The API's routes, at [`API_PATH`].
pub(crate) fn router() -> Router<Web> {
    let p = |tail: &str| format!("{API_PATH}{tail}");
    Router::new()
        .route(&p("/jobs"), get(list).post(create))
        .route(&p("/jobs/count"), get(count))
        .route(&p("/jobs/bulk"), post(bulk))
        .route(&p("/jobs/{id}"), get(show))
        .route(&p("/jobs/{id}/retry"), post(retry))
        .route(&p("/jobs/{id}/cancel"), post(cancel))
        .route(&p("/jobs/{id}/skip-wait"), post(skip_wait))
        .route(&p("/batches/{id}"), get(batch))
        .route(&p("/stats"), get(stats))
        .route(&p("/alerts"), get(crate::alerts::api))
        .route(&p("/flow"), get(flow_all))
        .route(&p("/queues/{queue}/flow"), get(flow_show).put(flow_set))
        .route(&p("/openapi.json"), get(openapi))
}

/// A dispatch request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewJobRequest {
    #[serde(rename = "type")]
    job_type: String,
    #[serde(default)]
    payload: Value,
    queue: Option<String>,
    priority: Option<i32>,
    delay_seconds: Option<u64>,
    max_attempts: Option<u32>,
    unique_key: Option<String>,
}

/// Reads a JSON body, turning an oversize body into a clear 413.
fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!("the request body is over the {limit}-byte limit"))
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::BadRequest(format!("the body is not the JSON expected: {error}"))
    })
}

async fn create(
    State(web): State<Web>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response> {
    caller.check_csrf_header(&headers)?;
    let request: NewJobRequest = json_body(body, web.inner.body_limit)?;
    let mut options = DispatchOptions::new();
    if let Some(queue) = request.queue {
        options = options.queue(queue);
    }
    if let Some(priority) = request.priority {
        options = options.priority(priority);
    }
    if let Some(delay) = request.delay_seconds {
        options = options.delay(Duration::from_secs(delay));
    }
    if let Some(attempts) = request.max_attempts {
        options = options.max_attempts(attempts);
    }
    if let Some(key) = request.unique_key {
        options = options.unique_key(key);
    }
    let id = web
        .hopper()
        .dispatch_json(&request.job_type, &request.payload, options)
        .await?;
    let job = web.hopper().job(id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "job": job.map(JobView::from) })),
    )
        .into_response())
}

/// A job as the API shows it: the stored record, its payload and output as
/// JSON rather than JSON text, and its progress (`{percent, message}`, or
/// null before any is reported).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct JobView(Value);

impl From<JobRecord> for JobView {
    fn from(record: JobRecord) -> Self {
        let payload = serde_json::from_str(&record.payload)
            .unwrap_or_else(|_| Value::String(record.payload.clone()));
        let output = record.output.as_deref().map_or(Value::Null, |output| {
            serde_json::from_str(output).unwrap_or_else(|_| Value::String(output.to_owned()))
        });
        let mut view = serde_json::to_value(&record).unwrap_or(Value::Null);
        if let Some(fields) = view.as_object_mut() {
            fields.insert("payload".into(), payload);
            fields.insert("output".into(), output);
        }
        Self(view)
    }
}

/// The list's query.
#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    queue: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    /// Only the jobs of this batch (or workflow).
    batch: Option<i64>,
    before: Option<i64>,
    limit: Option<u32>,
}

async fn list(
    State(web): State<Web>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let filter = crate::dashboard::filter(
        empty(query.state),
        empty(query.queue),
        empty(query.job_type),
        query.before,
        query.limit,
    )
    .map_err(ApiError::BadRequest)?;
    let filter = JobFilter {
        batch_id: query.batch,
        ..filter
    };
    let page = web
        .hopper()
        .jobs(&filter)
        .await
        .map_err(|error| match error {
            StoreError::PageSize { .. } => ApiError::BadRequest(error.to_string()),
            other => ApiError::Store(other),
        })?;
    let jobs: Vec<JobView> = page.jobs.into_iter().map(JobView::from).collect();
    // `next_before` is the name `next` had before; kept for older clients.
    Ok(Json(
        json!({ "jobs": jobs, "next": page.next, "next_before": page.next }),
    ))
}

async fn count(
    State(web): State<Web>,
    _caller: Caller,
    Query(selection): Query<Selection>,
) -> Result<Json<Value>> {
    let filter = selection
        .filter(web.hopper().now())
        .map_err(ApiError::BadRequest)?;
    let count = web.hopper().count_jobs(&filter).await?;
    Ok(Json(json!({ "count": count })))
}

/// A bulk action request: the action and the jobs it takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    action: String,
    state: Option<String>,
    queue: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    older_than: Option<String>,
}

async fn bulk(
    State(web): State<Web>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BulkOutcome>> {
    caller.check_csrf_header(&headers)?;
    let request: BulkRequest = json_body(body, web.inner.body_limit)?;
    let action: BulkAction = request
        .action
        .parse()
        .map_err(|error: UnknownAction| ApiError::BadRequest(error.to_string()))?;
    let selection = Selection {
        state: request.state,
        queue: request.queue,
        job_type: request.job_type,
        older_than: request.older_than,
    };
    let filter = selection
        .filter(web.hopper().now())
        .map_err(ApiError::BadRequest)?;
    Ok(Json(web.hopper().bulk(action, &filter).await?))
}

async fn show(
    State(web): State<Web>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<JobView>> {
    match web.hopper().job(id).await? {
        Some(job) => Ok(Json(job.into())),
        None => Err(ApiError::NotFound(format!("no job with id {id}"))),
    }
}

async fn retry(
    State(web): State<Web>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<JobView>> {
    caller.check_csrf_header(&headers)?;
    act(
        &web,
        id,
        "retried",
        "failed or cancelled",
        web.hopper().retry(id).await.map_err(|error| match error {
            StoreError::UniqueKeyHeld { .. } => ApiError::Conflict(error.to_string()),
            other => ApiError::Store(other),
        })?,
    )
    .await
}

async fn cancel(
    State(web): State<Web>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<JobView>> {
    caller.check_csrf_header(&headers)?;
    act(
        &web,
        id,
        "cancelled",
        "pending or started",
        web.hopper().cancel(id).await?,
    )
    .await
}

async fn skip_wait(
    State(web): State<Web>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<JobView>> {
    caller.check_csrf_header(&headers)?;
    act(
        &web,
        id,
        "released from their wait",
        "pending jobs that wait on other",
        web.hopper().skip_wait(id).await?,
    )
    .await
}

/// The job after an action: 200 if it applied, 404 if there is no such
/// job, 409 if its state did not allow it.
async fn act(
    web: &Web,
    id: i64,
    done: &str,
    allowed: &str,
    applied: bool,
) -> Result<Json<JobView>> {
    let Some(job) = web.hopper().job(id).await? else {
        return Err(ApiError::NotFound(format!("no job with id {id}")));
    };
    if !applied {
        return Err(ApiError::Conflict(format!(
            "job {id} is {}; only {allowed} jobs can be {done}",
            job.state.as_str()
        )));
    }
    Ok(Json(job.into()))
}

async fn batch(
    State(web): State<Web>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<BatchRecord>> {
    match web.hopper().batch_status(id).await? {
        Some(batch) => Ok(Json(batch)),
        None => Err(ApiError::NotFound(format!("no batch with id {id}"))),
    }
}

async fn stats(State(web): State<Web>, _caller: Caller) -> Result<Json<Value>> {
    let status = web.hopper().status(Duration::from_secs(3600)).await?;
    // `counts` keeps the list of queue, state and count the endpoint has
    // always had; the rest is the status as the library reads it.
    let counts: Vec<Value> = status
        .queues
        .iter()
        .flat_map(|queue| {
            hopper::JobState::ALL
                .into_iter()
                .filter(|state| queue.counts.get(*state) > 0)
                .map(|state| {
                    json!({ "queue": queue.queue, "state": state, "count": queue.counts.get(state) })
                })
        })
        .collect();
    let counts_by_type = web.hopper().counts_by_type().await?;
    Ok(Json(json!({
        "counts": counts,
        "counts_by_type": counts_by_type,
        "queues": status.queues,
        "flow": web.hopper().flow_usage().await?,
        "throughput": status.throughput,
        "now": status.now,
    })))
}

async fn flow_all(State(web): State<Web>, _caller: Caller) -> Result<Json<Vec<FlowUsage>>> {
    Ok(Json(web.hopper().flow_usage().await?))
}

/// One queue's flow settings and their use, as `GET` and `PUT` answer.
#[derive(Debug, Serialize)]
struct QueueFlowView {
    queue: String,
    /// `None` while the queue has no flow settings.
    usage: Option<FlowUsage>,
}

/// `queue`'s flow usage row, if it has settings.
async fn queue_flow_view(web: &Web, queue: String) -> Result<Json<QueueFlowView>> {
    hopper::store::check_name("queue name", &queue)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let usage = web
        .hopper()
        .flow_usage()
        .await?
        .into_iter()
        .find(|usage| usage.queue == queue);
    Ok(Json(QueueFlowView { queue, usage }))
}

async fn flow_show(
    State(web): State<Web>,
    _caller: Caller,
    Path(queue): Path<String>,
) -> Result<Json<QueueFlowView>> {
    queue_flow_view(&web, queue).await
}

/// A rate in a flow request: `"100/1m"`, or its parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RateRequest {
    Text(String),
    Parts {
        starts: u32,
        period_ms: u64,
        #[serde(default)]
        per_key: bool,
    },
}

/// New flow settings for one queue; what is left out is unset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowSettingsRequest {
    concurrency: Option<u32>,
    key_concurrency: Option<u32>,
    rate: Option<RateRequest>,
    /// With a rate given as text: count it per partition key.
    #[serde(default)]
    per_key_rate: bool,
    #[serde(default)]
    fair: bool,
}

impl FlowSettingsRequest {
    /// The settings asked for, or why they cannot be.
    fn flow(self) -> Result<QueueFlow> {
        let rate = match self.rate {
            None => None,
            Some(RateRequest::Text(text)) => {
                let rate: Rate = text.parse().map_err(|error: hopper::store::RateError| {
                    ApiError::BadRequest(error.to_string())
                })?;
                Some(Rate {
                    per_key: self.per_key_rate,
                    ..rate
                })
            }
            Some(RateRequest::Parts {
                starts,
                period_ms,
                per_key,
            }) => Some(Rate {
                starts,
                period: Duration::from_millis(period_ms),
                per_key: per_key || self.per_key_rate,
            }),
        };
        let flow = QueueFlow {
            concurrency: self.concurrency,
            key_concurrency: self.key_concurrency,
            rate,
            fair: self.fair,
        };
        flow.check()
            .map_err(|error| ApiError::BadRequest(error.to_string()))?;
        Ok(flow)
    }
}

async fn flow_set(
    State(web): State<Web>,
    caller: Caller,
    headers: HeaderMap,
    Path(queue): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<QueueFlowView>> {
    caller.check_csrf_header(&headers)?;
    let request: FlowSettingsRequest = json_body(body, web.inner.body_limit)?;
    let flow = request.flow()?;
    web.hopper()
        .set_queue_flow(&queue, flow)
        .await
        .map_err(|error| match error {
            StoreError::InvalidFlow(_) | StoreError::NulCharacter { .. } => {
                ApiError::BadRequest(error.to_string())
            }
            other => ApiError::Store(other),
        })?;
    queue_flow_view(&web, queue).await
}

async fn openapi(_caller: Caller) -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 document describing this API.
///
/// ```
/// let doc = hopper_web::api::openapi_document();
/// assert_eq!(doc["openapi"], "3.1.0");
/// assert!(doc["paths"]["/api/jobs"]["post"].is_object());
/// ```
pub fn openapi_document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let job = json!({ "$ref": "#/components/schemas/Job" });
    let resp = |description: &str, schema: &Value| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    let id_param =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } });
    let query = |name: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "schema": schema });
    let queue_param =
        json!({ "name": "queue", "in": "path", "required": true, "schema": { "type": "string" } });
    let flow_settings_schema = json!({ "type": "object", "additionalProperties": false, "properties": {
                    "concurrency": { "type": ["integer", "null"], "minimum": 1 }, "key_concurrency": { "type": ["integer", "null"], "minimum": 1 },
                    "rate": { "oneOf": [
                        { "type": "string", "description": "starts per period, like 100/1m, 10/1s or 5/500ms" },
                        { "type": "object", "required": ["starts", "period_ms"], "properties": {
                            "starts": { "type": "integer", "minimum": 1 }, "period_ms": { "type": "integer", "minimum": 1 }, "per_key": { "type": "boolean" } } },
                        { "type": "null" } ] },
                    "per_key_rate": { "type": "boolean", "description": "count the rate per partition key" },
                    "fair": { "type": "boolean" } } });
    let flow_usage_schema = json!({ "type": "object", "properties": {
                    "queue": { "type": "string" },
                    "flow": { "type": "object", "properties": {
                        "concurrency": { "type": ["integer", "null"] }, "key_concurrency": { "type": ["integer", "null"] },
                        "rate": { "type": ["object", "null"], "properties": {
                            "starts": { "type": "integer" }, "period_ms": { "type": "integer" }, "per_key": { "type": "boolean" }, "text": { "type": "string" } } },
                        "fair": { "type": "boolean" } } },
                    "running": { "type": "integer", "description": "jobs started now, in every process" },
                    "starts_in_window": { "type": ["integer", "null"], "description": "starts in the last rate period; null without a rate" },
                    "due": { "type": "integer" },
                    "waiting": { "type": "integer", "description": "due jobs a limit holds back: all due jobs while the queue's limit or rate is reached, else those of keys at their per-key limit or rate" },
                    "full": { "type": "boolean", "description": "the queue's concurrency limit or per-queue rate is reached" },
                    "busiest_keys": { "type": "array", "items": { "type": "object", "properties": {
                        "key": { "type": ["string", "null"] }, "running": { "type": "integer" },
                        "starts_in_window": { "type": ["integer", "null"] }, "full": { "type": "boolean" } } } } } });
    let flow_usage = json!({ "$ref": "#/components/schemas/FlowUsage" });
    let queue_flow = json!({ "type": "object", "properties": {
        "queue": { "type": "string" }, "usage": { "oneOf": [flow_usage, { "type": "null" }] } } });
    let flow_all_path = json!({ "get": {
                "summary": "Every queue with flow settings: its limits, jobs running, busiest keys, starts in the rate window and due jobs a limit holds back",
                "responses": { "200": resp("One entry per queue with flow settings", &json!({ "type": "array", "items": flow_usage })),
                    "401": resp("No or wrong admin token", &error) }
            } });
    let queue_flow_path = json!({
        "get": {
            "summary": "One queue's flow settings and their use",
            "parameters": [queue_param],
            "responses": { "200": resp("The queue's flow", &queue_flow), "400": resp("Bad queue name", &error), "401": resp("No or wrong admin token", &error) }
        },
        "put": {
            "summary": "Replace one queue's flow settings across every process (an empty object lifts them all)",
            "parameters": [queue_param],
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/FlowSettings" } } } },
            "responses": { "200": resp("The queue's flow", &queue_flow), "400": resp("Settings no claim could honour, or not the JSON expected", &error), "401": resp("No or wrong admin token", &error) }
        }
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": { "title": "Hopper jobs API", "version": env!("CARGO_PKG_VERSION") },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/jobs": {
                "post": {
                    "summary": "Dispatch a job by type name with a JSON payload",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewJob" } } } },
                    "responses": {
                        "201": resp("Dispatched", &json!({ "type": "object", "properties": { "id": { "type": "integer" }, "job": job } })),
                        "400": resp("Body is not the JSON expected", &error),
                        "401": resp("No or wrong admin token", &error),
                        "404": resp("Unknown job type", &error),
                        "413": resp("Body or payload over the limit", &error),
                        "422": resp("Payload does not fit the job type", &json!({ "$ref": "#/components/schemas/FieldError" })),
                    }
                },
                "get": {
                    "summary": "List jobs, newest first",
                    "parameters": [
                        query("state", json!({ "type": "string", "enum": ["pending", "started", "finished", "failed", "cancelled"] })),
                        query("queue", json!({ "type": "string" })),
                        query("type", json!({ "type": "string" })),
                        query("batch", json!({ "type": "integer", "description": "only the jobs of this batch or workflow" })),
                        query("before", json!({ "type": "integer", "description": "only ids below this: the previous page's next" })),
                        query("limit", json!({ "type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE,
                            "description": "jobs per page; outside 1 to the maximum is refused (400)" })),
                    ],
                    "responses": {
                        "200": resp("A page of jobs", &json!({ "type": "object", "required": ["jobs", "next"], "properties": {
                            "jobs": { "type": "array", "items": job },
                            "next": { "type": ["integer", "null"], "description": "the before of the next (older) page; null on the last page" },
                            "next_before": { "type": ["integer", "null"], "deprecated": true, "description": "the same as next" } } })),
                        "400": resp("Bad filter or page size", &error),
                        "401": resp("No or wrong admin token", &error),
                    }
                }
            },
            "/api/jobs/{id}": { "get": {
                "summary": "One job with its payload, attempts and errors",
                "parameters": [id_param],
                "responses": { "200": resp("The job", &job), "401": resp("No or wrong admin token", &error), "404": resp("No such job", &error) }
            } },
            "/api/jobs/{id}/retry": { "post": {
                "summary": "Put a failed or cancelled job back to pending",
                "parameters": [id_param],
                "responses": { "200": resp("The job, pending again", &job), "401": resp("No or wrong admin token", &error), "404": resp("No such job", &error), "409": resp("Not failed or cancelled", &error) }
            } },
            "/api/jobs/{id}/cancel": { "post": {
                "summary": "Cancel a pending job, or stop a running one (it ends cancelled once its pool hears of it: at once on PostgreSQL, within about 200 ms on SQLite, at its next heartbeat on MySQL)",
                "parameters": [id_param],
                "responses": { "200": resp("The job: cancelled, or still started with its run told to stop", &job), "401": resp("No or wrong admin token", &error), "404": resp("No such job", &error), "409": resp("Neither pending nor started", &error) }
            } },
            "/api/stats": { "get": {
                "summary": "Counts per queue and state and per type and state, each queue's jobs per state, due work, oldest due job, pause and worker pools, and the last hour's throughput",
                "responses": { "200": resp("Statistics", &json!({ "type": "object", "properties": {
                    "counts": { "type": "array", "description": "jobs per queue and state; zero counts left out",
                        "items": { "type": "object", "properties": {
                            "queue": { "type": "string" }, "state": { "type": "string" }, "count": { "type": "integer" } } } },
                    "counts_by_type": { "type": "array", "description": "jobs per type and state, by type then state; zero counts left out",
                        "items": { "type": "object", "properties": {
                            "type": { "type": "string" }, "state": { "type": "string" }, "count": { "type": "integer" } } } } } })),
                    "401": resp("No or wrong admin token", &error) }
            } },
            "/api/alerts": { "get": {
                "summary": "Alert incidents firing now, and the latest resolved",
                "parameters": [query("resolved", json!({ "type": "integer", "minimum": 0, "maximum": 200, "description": "how many resolved incidents (default 20)" }))],
                "responses": {
                    "200": resp("Incidents", &json!({ "type": "object", "properties": {
                        "firing": { "type": "array", "items": { "$ref": "#/components/schemas/Alert" } },
                        "resolved": { "type": "array", "items": { "$ref": "#/components/schemas/Alert" } } } })),
                    "400": resp("Bad query", &error),
                    "401": resp("No or wrong admin token", &error),
                }
            } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "the ADMIN_TOKEN" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "Alert": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "rule": { "type": "string" }, "subject": { "type": "string", "description": "the job type or queue" },
                    "summary": { "type": "string" }, "fired_at": { "type": "string", "format": "date-time" },
                    "resolved_at": { "type": ["string", "null"], "format": "date-time" } } },
                "FieldError": { "type": "object", "required": ["error", "field_error"], "properties": {
                    "error": { "type": "string" }, "field_error": { "type": "string", "description": "the decoder's message naming the field" } } },
                "NewJob": { "type": "object", "required": ["type"], "additionalProperties": false, "properties": {
                    "type": { "type": "string" }, "payload": {}, "queue": { "type": "string" },
                    "priority": { "type": "integer" }, "delay_seconds": { "type": "integer", "minimum": 0 },
                    "max_attempts": { "type": "integer", "minimum": 1 }, "unique_key": { "type": "string" } } },
                "Job": { "type": "object", "properties": {
                    "id": { "type": "integer" }, "type": { "type": "string" }, "queue": { "type": "string" }, "payload": {},
                    "state": { "type": "string", "enum": ["pending", "started", "finished", "failed", "cancelled"] },
                    "priority": { "type": "integer" }, "attempts": { "type": "integer" }, "max_attempts": { "type": "integer" },
                    "available_at": { "type": "string", "format": "date-time" }, "created_at": { "type": "string", "format": "date-time" },
                    "started_at": { "type": ["string", "null"], "format": "date-time" }, "finished_at": { "type": ["string", "null"], "format": "date-time" },
                    "locked_by": { "type": ["string", "null"] }, "locked_until": { "type": ["string", "null"], "format": "date-time" },
                    "last_error": { "type": ["string", "null"] }, "unique_key": { "type": ["string", "null"] },
                    "errors": { "type": "array", "items": { "type": "object", "properties": {
                        "attempt": { "type": "integer" }, "at": { "type": "string", "format": "date-time" }, "error": { "type": "string" } } } } } }
            }
        }
    });
    // Added apart: one more level in the macro above passes its recursion limit.
    doc["paths"]["/api/batches/{id}"] = batch_path();
    doc["components"]["schemas"]["Batch"] = batch_schema();
    doc["paths"]["/api/jobs/count"] = count_path();
    doc["paths"]["/api/jobs/bulk"] = bulk_path();
    doc["paths"]["/api/jobs/{id}/skip-wait"] = skip_wait_path();
    doc["components"]["schemas"]["BulkRequest"] = bulk_request_schema();
    doc["components"]["schemas"]["BulkOutcome"] = bulk_outcome_schema();
    doc["paths"]["/api/flow"] = flow_all_path;
    doc["paths"]["/api/queues/{queue}/flow"] = queue_flow_path;
    doc["components"]["schemas"]["FlowSettings"] = flow_settings_schema;
    doc["components"]["schemas"]["FlowUsage"] = flow_usage_schema;
    let job = &mut doc["components"]["schemas"]["Job"]["properties"];
    job["output"] = json!({ "description": "What the handler returned (JSON); null unless the job finished with one." });
    job["batch_id"] = json!({ "type": ["integer", "null"], "description": "The batch the job belongs to (GET /api/batches/{id}); null if none." });
    job["waiting_on"] = json!({ "type": "integer", "minimum": 0,
        "description": "How many jobs it still waits on (earlier jobs of its sequence, workflow steps); while above 0 a pending job is not due. POST /api/jobs/{id}/skip-wait ends the wait." });
    job["progress"] = json!({ "type": ["object", "null"], "properties": {
        "percent": { "type": "integer", "minimum": 0, "maximum": 100 }, "message": { "type": "string" } } });
    doc
}

/// The query parameters of `GET /api/jobs/count`, as the bulk body names them.
fn selection_params() -> Vec<Value> {
    let query = |name: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "schema": schema });
    vec![
        query(
            "state",
            json!({ "type": "string", "enum": ["pending", "started", "finished", "failed", "cancelled"] }),
        ),
        query("queue", json!({ "type": "string" })),
        query("type", json!({ "type": "string" })),
        query("older_than", older_than_schema()),
    ]
}

/// The schema of `older_than`, in the query and in the bulk body.
fn older_than_schema() -> Value {
    json!({ "type": "string", "examples": ["10m", "2h", "7d"],
        "description": "only jobs created longer ago than this: a number and a unit (ms, s, m, h, d, w; a bare number is seconds), as the console's --older-than reads it" })
}

/// The OpenAPI path item of `GET /api/jobs/count`.
fn count_path() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let resp = |description: &str, schema: &Value| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    json!({ "get": {
        "summary": "How many jobs match a filter: the count a bulk action's confirmation shows",
        "parameters": selection_params(),
        "responses": {
            "200": resp("The count", &json!({ "type": "object", "required": ["count"], "properties": { "count": { "type": "integer", "minimum": 0 } } })),
            "400": resp("Unknown state or an age that does not parse", &error),
            "401": resp("No or wrong admin token", &error)
        }
    } })
}

/// The OpenAPI path item of `POST /api/jobs/{id}/skip-wait`.
fn skip_wait_path() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let job = json!({ "$ref": "#/components/schemas/Job" });
    let resp = |description: &str, schema: &Value| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    let id_param =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } });
    json!({ "post": {
        "summary": "Run a pending job that waits on other jobs now, without waiting any longer: the way past a sequence held by a job that failed for good, or a workflow step released by hand",
        "parameters": [id_param],
        "responses": {
            "200": resp("The job, pending and due with waiting_on 0", &job),
            "401": resp("No or wrong admin token", &error),
            "403": resp("A cookie request without its X-CSRF-Token", &error),
            "404": resp("No such job", &error),
            "409": resp("Not a pending job waiting on others", &error)
        }
    } })
}

/// The OpenAPI path item of `POST /api/jobs/bulk`.
fn bulk_path() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let resp = |description: &str, schema: &Value| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    json!({ "post": {
        "summary": "Retry, cancel or delete every job matching a filter, server-side a page at a time, each job as its one-job action would; jobs the action does not apply to are skipped",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/BulkRequest" } } } },
        "responses": {
            "200": resp("What the action did", &json!({ "$ref": "#/components/schemas/BulkOutcome" })),
            "400": resp("Unknown action or state, an age that does not parse, or not the JSON expected", &error),
            "401": resp("No or wrong admin token", &error),
            "403": resp("A cookie request without its X-CSRF-Token", &error),
            "413": resp("Body over the limit", &error)
        }
    } })
}

/// The OpenAPI schema of a bulk request.
fn bulk_request_schema() -> Value {
    json!({ "type": "object", "required": ["action"], "additionalProperties": false, "properties": {
        "action": { "type": "string", "enum": BulkAction::ALL.map(BulkAction::as_str) },
        "state": { "type": ["string", "null"], "enum": ["pending", "started", "finished", "failed", "cancelled", null] },
        "queue": { "type": ["string", "null"] },
        "type": { "type": ["string", "null"] },
        "older_than": older_than_schema() } })
}

/// The OpenAPI schema of [`BulkOutcome`].
fn bulk_outcome_schema() -> Value {
    let count =
        |description: &str| json!({ "type": "integer", "minimum": 0, "description": description });
    json!({ "type": "object", "required": ["matched", "applied", "skipped"], "properties": {
        "matched": count("jobs the filter matched"),
        "applied": count("jobs the action changed"),
        "skipped": count("jobs left as they were: in a state the action does not apply to, or changed meanwhile") } })
}

/// The OpenAPI path item of `GET /api/batches/{id}`.
fn batch_path() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let resp = |description: &str, schema: &Value| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    let id_param =
        json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } });
    json!({ "get": {
        "summary": "One batch: its counts, whether it is sealed and complete, and its callbacks with the jobs they became",
        "parameters": [id_param],
        "responses": {
            "200": resp("The batch", &json!({ "$ref": "#/components/schemas/Batch" })),
            // Answered by axum's path extractor, as for `/api/jobs/{id}`.
            "400": { "description": "The id is not a number (plain text)", "content": { "text/plain": { "schema": { "type": "string" } } } },
            "401": resp("No or wrong admin token", &error),
            "404": resp("No such batch", &error)
        }
    } })
}

/// The OpenAPI schema of a batch ([`BatchRecord`] as it serializes).
fn batch_schema() -> Value {
    let count =
        |description: &str| json!({ "type": "integer", "minimum": 0, "description": description });
    json!({ "type": "object", "required": ["id", "name", "created_at", "sealed", "complete", "counts", "callbacks"], "properties": {
        "id": { "type": "integer" }, "name": { "type": "string" },
        "created_at": { "type": "string", "format": "date-time" },
        "sealed": { "type": "boolean", "description": "no more jobs are expected but those its running jobs add" },
        "complete": { "type": "boolean", "description": "sealed, and every job ended" },
        "counts": { "type": "object", "properties": {
            "total": count("jobs in the batch"), "pending": count("jobs not ended yet: pending or running"),
            "finished": count("jobs finished"), "failed": count("jobs failed for good"), "cancelled": count("jobs cancelled") } },
        "callbacks": { "type": "array", "items": { "type": "object", "properties": {
            "event": { "type": "string", "enum": ["success", "complete", "failure"] },
            "job_type": { "type": "string" },
            "job_id": { "type": ["integer", "null"], "description": "the job the callback became, once fired" } } } } } })
}
