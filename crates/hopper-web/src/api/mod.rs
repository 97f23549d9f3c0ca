//! The JSON API under `/api`, described by the OpenAPI document at
//! `/api/openapi.json` ([`openapi_document`]). Handlers read and answer
//! with the typed bodies of `views`, whose schemas the document is
//! generated from, and the router is built from one route table that the
//! tests hold the document to.
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
use axum::{Json, Router};
use hopper::bulk::{BulkAction, UnknownAction};
use hopper::store::{QueueFlow, Rate};
use hopper::{DispatchError, DispatchOptions, JobFilter, RegistryError, StoreError};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::Web;
use crate::auth::{Caller, Refused};
use crate::dashboard::Selection;

mod openapi;
mod routes;
pub(crate) mod views;

pub use openapi::openapi_document;
pub(crate) use views::ErrorBody;
use views::{
    BatchView, BulkOutcomeView, BulkRequest, Count, Created, FlowSettingsRequest, FlowUsageView,
    JobPage, JobView, NewJobRequest, QueueFlowView, QueueStateCount, RateRequest, Stats,
    TypeStateCount,
};

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
                let body = views::FieldErrorBody {
                    error: self.to_string(),
                    field_error: field_error.clone(),
                };
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
        let body = ErrorBody {
            error: self.to_string(),
        };
        (status, Json(body)).into_response()
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

/// The API's routes, at [`API_PATH`](crate::API_PATH): one for each entry of
/// the route table, which the OpenAPI document is checked against.
pub(crate) fn router() -> Router<Web> {
    routes::router()
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

/// `POST /api/jobs`.
#[utoipa::path(
    post,
    path = "/api/jobs",
    operation_id = "dispatch_job",
    tag = "jobs",
    summary = "Dispatch a job by type name with a JSON payload",
    request_body = NewJobRequest,
    responses(
        (status = 201, description = "Dispatched", body = inline(Created)),
        (status = 400, description = "Body is not the JSON expected", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "A cookie request without its X-CSRF-Token", body = ErrorBody),
        (status = 404, description = "Unknown job type", body = ErrorBody),
        (status = 413, description = "Body or payload over the limit", body = ErrorBody),
        (status = 422, description = "Payload does not fit the job type", body = views::FieldErrorBody),
    )
)]
async fn create(
    State(web): State<Web>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Created>)> {
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
        Json(Created {
            id,
            job: job.map(JobView::from),
        }),
    ))
}

/// The list's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs in this state.
    #[param(schema_with = views::job_state_schema)]
    state: Option<String>,
    /// Only jobs of this queue.
    queue: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    job_type: Option<String>,
    /// Only the jobs of this batch or workflow.
    batch: Option<i64>,
    /// Only ids below this: the previous page's `next`.
    before: Option<i64>,
    /// Jobs per page; outside 1 to the maximum is refused (400).
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: Option<u32>,
}

/// `GET /api/jobs`.
#[utoipa::path(
    get,
    path = "/api/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    summary = "List jobs, newest first",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of jobs", body = inline(JobPage)),
        (status = 400, description = "Bad filter or page size", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn list(
    State(web): State<Web>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobPage>> {
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
    // `next_before` is the name `next` had before; kept for older clients.
    Ok(Json(JobPage {
        jobs: page.jobs.into_iter().map(JobView::from).collect(),
        next: page.next,
        next_before: page.next,
    }))
}

/// `GET /api/jobs/count`.
#[utoipa::path(
    get,
    path = "/api/jobs/count",
    operation_id = "count_jobs",
    tag = "jobs",
    summary = "How many jobs match a filter: the count a bulk action's confirmation shows",
    params(Selection),
    responses(
        (status = 200, description = "The count", body = inline(Count)),
        (status = 400, description = "Unknown state or an age that does not parse", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn count(
    State(web): State<Web>,
    _caller: Caller,
    Query(selection): Query<Selection>,
) -> Result<Json<Count>> {
    let filter = selection
        .filter(web.hopper().now())
        .map_err(ApiError::BadRequest)?;
    let count = web.hopper().count_jobs(&filter).await?;
    Ok(Json(Count { count }))
}

/// `POST /api/jobs/bulk`.
#[utoipa::path(
    post,
    path = "/api/jobs/bulk",
    operation_id = "bulk_action",
    tag = "jobs",
    summary = "Retry, cancel or delete every job matching a filter, server-side a page at a time, each job as its one-job action would; jobs the action does not apply to are skipped",
    request_body = BulkRequest,
    responses(
        (status = 200, description = "What the action did", body = BulkOutcomeView),
        (status = 400, description = "Unknown action or state, an age that does not parse, or not the JSON expected", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "A cookie request without its X-CSRF-Token", body = ErrorBody),
        (status = 413, description = "Body over the limit", body = ErrorBody),
    )
)]
async fn bulk(
    State(web): State<Web>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<BulkOutcomeView>> {
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
    Ok(Json(web.hopper().bulk(action, &filter).await?.into()))
}

/// `GET /api/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    summary = "One job with its payload, attempts and errors",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 400, description = "The id is not a number (plain text)", body = String, content_type = "text/plain"),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    )
)]
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

/// `POST /api/jobs/{id}/retry`.
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/retry",
    operation_id = "retry_job",
    tag = "jobs",
    summary = "Put a failed or cancelled job back to pending",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job, pending again", body = JobView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "A cookie request without its X-CSRF-Token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Not failed or cancelled, or another live job holds its unique key", body = ErrorBody),
    )
)]
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

/// `POST /api/jobs/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    summary = "Cancel a pending job, or stop a running one (it ends cancelled once its pool hears of it: at once on PostgreSQL, within about 200 ms on SQLite, at its next heartbeat on MySQL)",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job: cancelled, or still started with its run told to stop", body = JobView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "A cookie request without its X-CSRF-Token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Neither pending nor started", body = ErrorBody),
    )
)]
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

/// `POST /api/jobs/{id}/skip-wait`.
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/skip-wait",
    operation_id = "skip_wait",
    tag = "jobs",
    summary = "Run a pending job that waits on other jobs now, without waiting any longer: the way past a sequence held by a job that failed for good, or a workflow step released by hand",
    params(("id" = i64, Path, description = "The job's id")),
    responses(
        (status = 200, description = "The job, pending and due with waiting_on 0", body = JobView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "A cookie request without its X-CSRF-Token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Not a pending job waiting on others", body = ErrorBody),
    )
)]
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

/// `GET /api/batches/{id}`.
#[utoipa::path(
    get,
    path = "/api/batches/{id}",
    operation_id = "get_batch",
    tag = "batches",
    summary = "One batch: its counts, whether it is sealed and complete, and its callbacks with the jobs they became",
    params(("id" = i64, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch", body = BatchView),
        (status = 400, description = "The id is not a number (plain text)", body = String, content_type = "text/plain"),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody),
    )
)]
async fn batch(
    State(web): State<Web>,
    _caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<BatchView>> {
    match web.hopper().batch_status(id).await? {
        Some(batch) => Ok(Json(batch.into())),
        None => Err(ApiError::NotFound(format!("no batch with id {id}"))),
    }
}

/// `GET /api/stats`.
#[utoipa::path(
    get,
    path = "/api/stats",
    operation_id = "get_stats",
    tag = "stats",
    summary = "Counts per queue and state and per type and state, each queue's jobs per state, due work, oldest due job, pause and worker pools, flow use, and the last hour's throughput",
    responses(
        (status = 200, description = "Statistics", body = inline(Stats)),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn stats(State(web): State<Web>, _caller: Caller) -> Result<Json<Stats>> {
    let status = web.hopper().status(Duration::from_secs(3600)).await?;
    // `counts` keeps the list of queue, state and count the endpoint has
    // always had; the rest is the status as the library reads it.
    let counts = status
        .queues
        .iter()
        .flat_map(|queue| {
            hopper::JobState::ALL
                .into_iter()
                .filter(|state| queue.counts.get(*state) > 0)
                .map(|state| QueueStateCount {
                    queue: queue.queue.clone(),
                    state,
                    count: queue.counts.get(state),
                })
        })
        .collect();
    let counts_by_type = web.hopper().counts_by_type().await?;
    let flow = web.hopper().flow_usage().await?;
    Ok(Json(Stats {
        counts,
        counts_by_type: counts_by_type
            .into_iter()
            .map(TypeStateCount::from)
            .collect(),
        queues: status.queues.iter().map(Into::into).collect(),
        flow: flow.iter().map(FlowUsageView::from).collect(),
        throughput: status.throughput.iter().map(Into::into).collect(),
        now: status.now,
    }))
}

/// `GET /api/flow`.
#[utoipa::path(
    get,
    path = "/api/flow",
    operation_id = "list_flow",
    tag = "flow",
    summary = "Every queue with flow settings: its limits, jobs running, busiest keys, starts in the rate window and due jobs a limit holds back",
    responses(
        (status = 200, description = "One entry per queue with flow settings", body = Vec<FlowUsageView>),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn flow_all(State(web): State<Web>, _caller: Caller) -> Result<Json<Vec<FlowUsageView>>> {
    let usage = web.hopper().flow_usage().await?;
    Ok(Json(usage.iter().map(FlowUsageView::from).collect()))
}

/// `queue`'s flow usage row, if it has settings.
async fn queue_flow_view(web: &Web, queue: String) -> Result<Json<QueueFlowView>> {
    hopper::store::check_name("queue name", &queue)
        .map_err(|error| ApiError::BadRequest(error.to_string()))?;
    let usage = web
        .hopper()
        .flow_usage()
        .await?
        .iter()
        .find(|usage| usage.queue == queue)
        .map(FlowUsageView::from);
    Ok(Json(QueueFlowView { queue, usage }))
}

/// `GET /api/queues/{queue}/flow`.
#[utoipa::path(
    get,
    path = "/api/queues/{queue}/flow",
    operation_id = "get_queue_flow",
    tag = "flow",
    summary = "One queue's flow settings and their use",
    params(("queue" = String, Path, description = "The queue's name")),
    responses(
        (status = 200, description = "The queue's flow", body = QueueFlowView),
        (status = 400, description = "Bad queue name", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn flow_show(
    State(web): State<Web>,
    _caller: Caller,
    Path(queue): Path<String>,
) -> Result<Json<QueueFlowView>> {
    queue_flow_view(&web, queue).await
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

/// `PUT /api/queues/{queue}/flow`.
#[utoipa::path(
    put,
    path = "/api/queues/{queue}/flow",
    operation_id = "set_queue_flow",
    tag = "flow",
    summary = "Replace one queue's flow settings across every process (an empty object lifts them all)",
    params(("queue" = String, Path, description = "The queue's name")),
    request_body = FlowSettingsRequest,
    responses(
        (status = 200, description = "The queue's flow", body = QueueFlowView),
        (status = 400, description = "Settings no claim could honour, or not the JSON expected", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "A cookie request without its X-CSRF-Token", body = ErrorBody),
    )
)]
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

/// `GET /api/openapi.json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "get_openapi",
    tag = "openapi",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI document", body = Object),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    )
)]
async fn openapi(_caller: Caller) -> Json<Value> {
    Json(openapi_document())
}
