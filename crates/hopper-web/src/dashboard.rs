//! The admin dashboard under `/admin/queue`: an overview (counts per state
//! and queue, alerts firing and lately resolved, finished and failed per
//! minute over the last hour, oldest pending age), the job list (filtered,
//! paged by id so it stays fast on millions of rows), a page per job with
//! its actions, progress and output (and, while it waits on other jobs,
//! what it waits on and a button to skip the wait), bulk actions on every
//! job the list's filter matches (confirmed on a page showing the count
//! first), a page per batch with its counts and callbacks, queues with
//! pause/resume, and schedules (with each one's latest runs and their
//! outcomes). Every page but the confirmations updates its
//! content as jobs change, without a reload: it follows the server-sent
//! events of `/admin/queue/live` ([`crate::live`]) and fetches a fresh copy
//! of itself on each. Each page is a template in the crate's `templates/`
//! folder, filled in from one view model per page, and every value it
//! shows is HTML-escaped as the template writes it out.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use hopper::bulk::{BulkAction, BulkOutcome};
use hopper::store::{BatchRecord, Dependency, ScheduleRun};
use hopper::{JobFilter, JobId, JobState, StoreError};
use serde::Deserialize;

use crate::auth::{self, Caller, Refused};
use crate::html::{age, time};
use crate::pages::{self, Button, Field, Frame};
use crate::{DASHBOARD_PATH, Web};

/// Jobs per page of the job list.
const PAGE_SIZE: u32 = 50;

/// What can go wrong rendering a page or running an action.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The database failed.
    #[error("the job database failed: {0}")]
    Store(#[from] StoreError),
    /// Listing schedules failed.
    #[error("cannot list schedules: {0}")]
    Schedule(#[from] hopper::schedule::ScheduleError),
    /// Not logged in, or a form without its CSRF token.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// No such job.
    #[error("no job with id {0}")]
    NotFound(i64),
    /// No such batch.
    #[error("no batch with id {0}")]
    BatchNotFound(i64),
    /// A value in the request that makes no sense.
    #[error("{0}")]
    BadRequest(String),
    /// A page's template failed to render.
    #[error("the page failed to render: {0}")]
    Render(#[from] askama::Error),
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        let status = match &self {
            DashboardError::Refused(refused) => {
                return match refused {
                    Refused::Unauthorized { .. } => Refused::Unauthorized { dashboard: true },
                    Refused::Csrf => Refused::Csrf,
                }
                .into_response();
            }
            DashboardError::NotFound(_) | DashboardError::BatchNotFound(_) => StatusCode::NOT_FOUND,
            DashboardError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DashboardError::Store(_) | DashboardError::Schedule(_) | DashboardError::Render(_) => {
                tracing::error!(error = %self, "dashboard request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let page = pages::ErrorPage {
            frame: Frame::still("Error", ""),
            message: self.to_string(),
        };
        pages::respond(status, &page)
    }
}

type Result<T, E = DashboardError> = std::result::Result<T, E>;

/// The dashboard's routes, at [`DASHBOARD_PATH`].
pub(crate) fn router() -> Router<Web> {
    let p = |tail: &str| format!("{DASHBOARD_PATH}{tail}");
    Router::new()
        .route(DASHBOARD_PATH, get(overview))
        .route(&p("/login"), get(auth::login_page).post(auth::login))
        .route(&p("/logout"), post(auth::logout))
        .route(&p("/jobs"), get(jobs))
        .route(&p("/jobs/retry-failed"), post(retry_failed))
        .route(&p("/jobs/bulk"), get(bulk_confirm).post(bulk_apply))
        .route(&p("/jobs/{id}"), get(job))
        .route(&p("/jobs/{id}/{action}"), post(job_action))
        .route(&p("/batches/{id}"), get(batch))
        .route(&p("/queues"), get(queues))
        .route(&p("/queues/{action}"), post(queue_action))
        .route(&p("/schedules"), get(schedules))
        .route(&p("/live"), get(crate::live::stream))
}

async fn overview(State(web): State<Web>, caller: Caller) -> Result<Html<String>> {
    let hopper = web.hopper();
    let status = hopper.status(Duration::from_secs(3600)).await?;
    let now = status.now;
    let totals = status.totals();
    let alerts = crate::alerts::list(hopper, crate::alerts::OVERVIEW_RESOLVED).await?;
    let page = pages::OverviewPage {
        frame: Frame::live("Overview", caller.csrf_token()),
        cards: JobState::ALL
            .into_iter()
            .map(|s| pages::StateCard {
                state: s.as_str(),
                count: totals.get(s),
            })
            .collect(),
        oldest_pending: status
            .oldest_due_at()
            .map(|at| age((now - at).num_seconds()))
            .unwrap_or_else(|| "none waiting".into()),
        finished_last_hour: status.finished(),
        failed_last_hour: status.failed(),
        any_firing: !alerts.firing.is_empty(),
        alerts: alert_rows(now, &alerts),
        chart: chart(now, &status.throughput),
        states: JobState::ALL.into_iter().map(JobState::as_str).collect(),
        // Queues with jobs; a queue known only by its pause row has none to count.
        queues: status
            .queues
            .iter()
            .filter(|queue| queue.counts.total() > 0)
            .map(|queue| pages::QueueCounts {
                name: queue.queue.clone(),
                query: url_encode(&queue.queue),
                counts: JobState::ALL
                    .into_iter()
                    .map(|s| queue.counts.get(s))
                    .collect(),
            })
            .collect(),
    };
    Ok(pages::render(&page)?)
}

/// The overview's alert rows: firing incidents, then the latest resolved.
fn alert_rows(now: DateTime<Utc>, list: &crate::alerts::AlertList) -> Vec<pages::AlertRow> {
    list.firing
        .iter()
        .chain(&list.resolved)
        .map(|alert| {
            let (badge, label, resolved_at) = match alert.resolved_at {
                None => ("state-failed", "firing", String::new()),
                Some(at) => ("state-finished", "resolved", time(at)),
            };
            pages::AlertRow {
                label,
                badge,
                rule: alert.rule.clone(),
                subject: alert.subject.clone(),
                summary: alert.summary.clone(),
                fired_at: time(alert.fired_at),
                fired_ago: age((now - alert.fired_at).num_seconds()),
                resolved_at,
            }
        })
        .collect()
}

/// A bar chart of the last 60 minutes: finished (green) and failed (red) stacked.
fn chart(now: DateTime<Utc>, minutes: &[hopper::store::MinuteCount]) -> pages::Chart {
    let this_minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
    let mut slots = [(0u64, 0u64); 60];
    for m in minutes {
        let back = (this_minute - m.minute).num_minutes();
        if (0..60).contains(&back) {
            let slot = &mut slots[59 - back as usize];
            slot.0 += m.finished;
            slot.1 += m.failed;
        }
    }
    let peak = slots.iter().map(|(f, x)| f + x).max().unwrap_or(0).max(1);
    let (width, height, bar) = (720.0, 120.0, 12.0);
    let bars = slots
        .iter()
        .enumerate()
        .map(|(i, (finished, failed))| {
            let x = i as f64 * bar;
            let hf = *finished as f64 / peak as f64 * height;
            let hx = *failed as f64 / peak as f64 * height;
            let minute = this_minute - TimeDelta::minutes(59 - i as i64);
            pages::Bar {
                label: format!(
                    "{}: {finished} finished, {failed} failed",
                    minute.format("%H:%M")
                ),
                x,
                finished_y: height - hf,
                finished_height: hf,
                failed_y: height - hf - hx,
                failed_height: hx,
            }
        })
        .collect();
    pages::Chart {
        width,
        height: height + 16.0,
        bar_width: bar - 2.0,
        label_y: height + 13.0,
        peak,
        bars,
    }
}

/// The job list's query: filters and the page boundary.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    state: Option<String>,
    queue: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    before: Option<String>,
    note: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Builds a [`JobFilter`] from query values, refusing unknown states.
pub(crate) fn filter(
    state: Option<String>,
    queue: Option<String>,
    job_type: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
) -> std::result::Result<JobFilter, String> {
    let state = match state {
        Some(name) => Some(
            name.parse::<JobState>()
                .map_err(|_| format!("unknown state {name:?}"))?,
        ),
        None => None,
    };
    Ok(JobFilter {
        state,
        queue,
        job_type,
        before,
        limit,
        ..JobFilter::default()
    })
}

/// The jobs a bulk action or its count takes: the job list's filter (state,
/// queue, type) and an age, as the dashboard's bulk form and the API send
/// them. Empty values count as left out.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Selection {
    /// Only jobs in this state.
    #[param(schema_with = crate::api::views::job_state_schema)]
    pub(crate) state: Option<String>,
    /// Only jobs of this queue.
    pub(crate) queue: Option<String>,
    /// Only jobs of this type.
    #[serde(rename = "type")]
    pub(crate) job_type: Option<String>,
    /// Only jobs created longer ago than this: `10m`, `2h`, `7d`, as
    /// `queue:bulk --older-than` reads it ([`hopper_cli::duration::parse`]).
    #[param(schema_with = crate::api::views::older_than_schema)]
    pub(crate) older_than: Option<String>,
}

impl Selection {
    /// The [`JobFilter`] selected, its age reckoned back from `now`;
    /// refuses unknown states and durations that do not parse.
    pub(crate) fn filter(&self, now: DateTime<Utc>) -> std::result::Result<JobFilter, String> {
        let mut filter = filter(
            non_empty(&self.state),
            non_empty(&self.queue),
            non_empty(&self.job_type),
            None,
            None,
        )?;
        filter.created_before = match non_empty(&self.older_than) {
            Some(age) => Some(created_before(now, &age)?),
            None => None,
        };
        Ok(filter)
    }

    /// The values given, by their field names, for links and hidden fields.
    fn fields(&self) -> Vec<(&'static str, String)> {
        [
            ("state", &self.state),
            ("queue", &self.queue),
            ("type", &self.job_type),
            ("older_than", &self.older_than),
        ]
        .into_iter()
        .filter_map(|(name, value)| non_empty(value).map(|value| (name, value)))
        .collect()
    }

    /// The selection in words: `state failed, queue mail, created more than 2h ago`.
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .fields()
            .into_iter()
            .map(|(name, value)| match name {
                "older_than" => format!("created more than {value} ago"),
                name => format!("{name} {value}"),
            })
            .collect();
        if parts.is_empty() {
            "every job".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// The creation time jobs older than `age` (`10m`, `2h`, `7d`) were
/// created before, counting back from `now`.
fn created_before(now: DateTime<Utc>, age: &str) -> std::result::Result<DateTime<Utc>, String> {
    let span = hopper_cli::duration::parse(age).map_err(|error| format!("older than: {error}"))?;
    hopper_cli::duration::ago(now, span)
        .ok_or_else(|| format!("older than {age:?} reaches back before the earliest date"))
}

async fn jobs(
    State(web): State<Web>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Html<String>> {
    let hopper = web.hopper();
    let before = match non_empty(&query.before) {
        Some(b) => Some(
            b.parse::<i64>()
                .map_err(|_| DashboardError::BadRequest(format!("bad page boundary {b:?}")))?,
        ),
        None => None,
    };
    let (state_q, queue_q, type_q) = (
        non_empty(&query.state),
        non_empty(&query.queue),
        non_empty(&query.job_type),
    );
    let filter = filter(
        state_q.clone(),
        queue_q.clone(),
        type_q.clone(),
        before,
        Some(PAGE_SIZE),
    )
    .map_err(DashboardError::BadRequest)?;
    let listed = hopper.jobs(&filter).await?;
    let rows = listed.jobs;
    let now = hopper.now();
    let retry_failed = match (state_q.as_deref(), &type_q) {
        (Some("failed"), Some(job_type)) => Some(
            Button::new(
                format!("{DASHBOARD_PATH}/jobs/retry-failed"),
                format!("Retry all failed {job_type} jobs"),
            )
            .with_fields(vec![Field {
                name: "type",
                value: job_type.clone(),
            }]),
        ),
        _ => None,
    };
    let filters = [("state", &state_q), ("queue", &queue_q), ("type", &type_q)];
    let page = pages::JobsPage {
        frame: Frame::live("Jobs", caller.csrf_token()).with_note(non_empty(&query.note)),
        states: JobState::ALL
            .into_iter()
            .map(|s| pages::StateOption {
                state: s.as_str(),
                selected: state_q.as_deref() == Some(s.as_str()),
            })
            .collect(),
        queue: queue_q.clone().unwrap_or_default(),
        job_type: type_q.clone().unwrap_or_default(),
        queue_names: queue_names(&rows),
        types: hopper.registry().types().map(str::to_owned).collect(),
        retry_failed,
        bulk_fields: filters
            .iter()
            .filter_map(|(name, value)| {
                value.as_ref().map(|value| Field {
                    name,
                    value: value.clone(),
                })
            })
            .collect(),
        bulk_actions: BulkAction::ALL
            .into_iter()
            .map(|action| pages::BulkChoice {
                value: action.as_str(),
                title: action.title(),
            })
            .collect(),
        rows: rows
            .iter()
            .map(|job| pages::JobRow {
                id: job.id,
                job_type: job.job_type.clone(),
                queue: job.queue.clone(),
                state: job.state.as_str(),
                attempts: job.attempts,
                max_attempts: job.max_attempts,
                created_at: time(job.created_at),
                age: age((now - job.created_at).num_seconds()),
                last_error: truncate(job.last_error.as_deref().unwrap_or(""), 120),
                actions: actions(job.id, job.state, job.waiting_on),
            })
            .collect(),
        newest_page: before.map(|_| jobs_url(None, &filters)),
        older_page: listed.next.map(|cursor| jobs_url(Some(cursor), &filters)),
    };
    Ok(pages::render(&page)?)
}

/// The job list's address for the page below `before` (the newest page
/// when `None`) with the query values given, URL-encoded.
fn jobs_url(before: Option<i64>, filters: &[(&str, &Option<String>)]) -> String {
    let mut query: Vec<String> = before
        .map(|id| format!("before={id}"))
        .into_iter()
        .collect();
    for (name, value) in filters {
        if let Some(value) = value {
            query.push(format!("{name}={}", url_encode(value)));
        }
    }
    format!("{DASHBOARD_PATH}/jobs?{}", query.join("&"))
}

/// The default queue and the queues of the jobs shown, for the filter's
/// suggestions (cheap: no extra query on a large table).
fn queue_names(rows: &[hopper::JobRecord]) -> Vec<String> {
    let mut names = vec![hopper::DEFAULT_QUEUE.to_owned()];
    for job in rows {
        if !names.contains(&job.queue) {
            names.push(job.queue.clone());
        }
    }
    names
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The buttons a job in `state`, waiting on `waiting_on` others, offers.
fn actions(id: i64, job_state: JobState, waiting_on: u32) -> Vec<Button> {
    let base = format!("{DASHBOARD_PATH}/jobs/{id}");
    let mut out = Vec::new();
    if matches!(job_state, JobState::Failed | JobState::Cancelled) {
        out.push(Button::new(format!("{base}/retry"), "Retry"));
    }
    if matches!(job_state, JobState::Pending | JobState::Started) {
        out.push(Button::new(format!("{base}/cancel"), "Cancel"));
    }
    if job_state == JobState::Pending && waiting_on > 0 {
        out.push(Button::new(format!("{base}/skip-wait"), "Skip wait"));
    }
    if job_state != JobState::Started {
        out.push(Button::new(format!("{base}/delete"), "Delete"));
    }
    out
}

/// The job page's query: a note left by the action that led here.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NoteQuery {
    note: Option<String>,
}

async fn job(
    State(web): State<Web>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(query): Query<NoteQuery>,
) -> Result<Html<String>> {
    let hopper = web.hopper();
    let job = hopper.job(id).await?.ok_or(DashboardError::NotFound(id))?;
    let pretty = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|value| serde_json::to_string_pretty(&value).ok())
            .unwrap_or_else(|| text.to_owned())
    };
    let when = |at: Option<DateTime<Utc>>| at.map(time).unwrap_or_else(|| "—".into());
    let waits_on = if job.state == JobState::Pending && job.waiting_on > 0 {
        let dependencies = hopper.store().dependencies(&[id]).await?;
        Some(pages::WaitsOn {
            count: job.waiting_on,
            jobs: dependencies.iter().map(waited).collect(),
        })
    } else {
        None
    };
    let frame = Frame::live(format!("Job {}", job.id), caller.csrf_token())
        .with_note(non_empty(&query.note));
    let page = pages::JobPage {
        frame,
        actions: actions(job.id, job.state, job.waiting_on),
        state: job.state.as_str(),
        job_type: job.job_type.clone(),
        queue: job.queue.clone(),
        priority: job.priority,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        created_at: time(job.created_at),
        available_at: time(job.available_at),
        started_at: when(job.started_at),
        finished_at: when(job.finished_at),
        locked_by: job.locked_by.clone().unwrap_or_else(|| "—".into()),
        locked_until: job
            .locked_until
            .map(|t| format!("until {}", time(t)))
            .unwrap_or_default(),
        unique_key: job.unique_key.clone().unwrap_or_else(|| "—".into()),
        progress: job.progress.clone(),
        batch_id: job.batch_id,
        waits_on,
        payload: pretty(&job.payload),
        output: job.output.as_deref().map(pretty),
        errors: job
            .errors
            .iter()
            .map(|error| pages::ErrorRow {
                attempt: error.attempt,
                at: time(error.at),
                error: error.error.clone(),
            })
            .collect(),
    };
    Ok(pages::render(&page)?)
}

/// A job waited on: linked, with its state and its step name (a workflow)
/// or sequence key (a sequence).
fn waited(dependency: &Dependency) -> pages::WaitedJob {
    pages::WaitedJob {
        id: dependency.job_id,
        state: dependency.state.as_str(),
        step: dependency.step.clone(),
    }
}

async fn batch(
    State(web): State<Web>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Html<String>> {
    let batch = web
        .hopper()
        .batch_status(id)
        .await?
        .ok_or(DashboardError::BatchNotFound(id))?;
    let counts = &batch.counts;
    let total = counts.total;
    let ended = counts.ended();
    let page = pages::BatchPage {
        frame: Frame::live(format!("Batch {}", batch.id), caller.csrf_token()),
        name: batch.name.clone(),
        created_at: time(batch.created_at),
        sealed: batch.sealed,
        complete: batch.is_complete(),
        total,
        ended,
        percent: (ended.min(total) * 100).checked_div(total).unwrap_or(0),
        cards: [
            ("total", counts.total),
            ("pending", counts.pending()),
            ("finished", counts.finished),
            ("failed", counts.failed),
            ("cancelled", counts.cancelled),
        ]
        .into_iter()
        .map(|(name, count)| pages::CountCard { name, count })
        .collect(),
        callbacks: batch
            .callbacks
            .iter()
            .map(|callback| pages::CallbackRow {
                event: callback.event.to_string(),
                job_type: callback.job_type.clone(),
                job_id: callback.job_id,
            })
            .collect(),
        jobs_shown_max: u64::from(BATCH_JOBS_SHOWN),
        jobs: batch_jobs(web.hopper(), &batch).await?,
    };
    Ok(pages::render(&page)?)
}

/// The most jobs of a batch its page lists.
const BATCH_JOBS_SHOWN: u32 = 100;

/// A batch's jobs (its latest [`BATCH_JOBS_SHOWN`], oldest first, as a
/// workflow's steps were added), each with its state and, in a workflow,
/// the steps it waits on.
async fn batch_jobs(
    hopper: &hopper::Hopper,
    batch: &BatchRecord,
) -> Result<Vec<pages::BatchJobRow>> {
    let filter = JobFilter {
        batch_id: Some(batch.id),
        limit: Some(BATCH_JOBS_SHOWN),
        ..JobFilter::default()
    };
    let mut jobs = hopper.jobs(&filter).await?.jobs;
    jobs.reverse();
    // One read for the whole page.
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    let dependencies = hopper.store().dependencies(&ids).await?;
    Ok(jobs
        .iter()
        .map(|job| pages::BatchJobRow {
            id: job.id,
            job_type: job.job_type.clone(),
            state: job.state.as_str(),
            waiting_on: job.waiting_on,
            waits_on: dependencies
                .iter()
                .filter(|d| d.dependent == job.id)
                .map(waited)
                .collect(),
        })
        .collect())
}

/// A form that carries only its CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    csrf: Option<String>,
}

async fn job_action(
    State(web): State<Web>,
    caller: Caller,
    Path((id, action)): Path<(i64, String)>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect> {
    caller.check_csrf(form.csrf.as_deref())?;
    let hopper = web.hopper();
    let back = format!("{DASHBOARD_PATH}/jobs/{id}");
    let (done, note) = match action.as_str() {
        "retry" => (hopper.retry(id).await?, "retried"),
        "cancel" => (
            hopper.cancel(id).await?,
            "cancelled (a running job stops within a heartbeat)",
        ),
        "skip-wait" => (hopper.skip_wait(id).await?, "released from its wait"),
        "delete" => {
            if hopper.delete(id).await? {
                let note = url_encode(&format!("job {id} deleted"));
                return Ok(Redirect::to(&format!("{DASHBOARD_PATH}/jobs?note={note}")));
            }
            (false, "deleted")
        }
        other => {
            return Err(DashboardError::BadRequest(format!(
                "unknown action {other:?}"
            )));
        }
    };
    let note = if done {
        format!("Job {note}.")
    } else {
        format!("The job could not be {note} in its current state.")
    };
    Ok(Redirect::to(&format!("{back}?note={}", url_encode(&note))))
}

/// The "retry all failed of a type" form.
#[derive(Debug, Deserialize)]
pub(crate) struct RetryFailedForm {
    csrf: Option<String>,
    #[serde(rename = "type")]
    job_type: String,
}

async fn retry_failed(
    State(web): State<Web>,
    caller: Caller,
    Form(form): Form<RetryFailedForm>,
) -> Result<Redirect> {
    caller.check_csrf(form.csrf.as_deref())?;
    let done = web
        .hopper()
        .retry_all_failed(Some(&form.job_type), None)
        .await?;
    let mut note = format!("{} failed {} jobs retried.", done.retried, form.job_type);
    if done.skipped > 0 {
        note.push_str(&format!(
            " {} skipped: another live job holds their unique key.",
            done.skipped
        ));
    }
    let note = url_encode(&note);
    let job_type = url_encode(&form.job_type);
    Ok(Redirect::to(&format!(
        "{DASHBOARD_PATH}/jobs?type={job_type}&note={note}"
    )))
}

/// The bulk form and its confirmation: the action, the selection and
/// (on confirming) the CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct BulkForm {
    csrf: Option<String>,
    action: Option<String>,
    #[serde(flatten)]
    selection: Selection,
}

impl BulkForm {
    /// The action asked for, or why there is none.
    fn action(&self) -> Result<BulkAction> {
        self.action.as_deref().unwrap_or_default().parse().map_err(
            |error: hopper::bulk::UnknownAction| DashboardError::BadRequest(error.to_string()),
        )
    }
}

/// `GET /admin/queue/jobs/bulk`: what the action would do, to how many
/// jobs, with the button that does it. Changes nothing.
async fn bulk_confirm(
    State(web): State<Web>,
    caller: Caller,
    Query(form): Query<BulkForm>,
) -> Result<Html<String>> {
    let action = form.action()?;
    let hopper = web.hopper();
    let filter = form
        .selection
        .filter(hopper.now())
        .map_err(DashboardError::BadRequest)?;
    let count = hopper.count_jobs(&filter).await?;
    let confirm = (count > 0).then(|| {
        let mut fields: Vec<Field> = form
            .selection
            .fields()
            .into_iter()
            .map(|(name, value)| Field { name, value })
            .collect();
        fields.push(Field {
            name: "action",
            value: action.as_str().to_owned(),
        });
        Button::new(
            format!("{DASHBOARD_PATH}/jobs/bulk"),
            format!("{} {count} jobs", action.title()),
        )
        .with_fields(fields)
    });
    let title = format!("{} all matching jobs?", action.title());
    let page = pages::BulkConfirmPage {
        frame: Frame::still(title, caller.csrf_token()),
        action_title: action.title(),
        selection: form.selection.describe(),
        count,
        applies: applies(action),
        confirm,
        back: list_url(&form.selection, None),
    };
    Ok(pages::render(&page)?)
}

/// `POST /admin/queue/jobs/bulk`: applies the action to every matching
/// job ([`hopper::Hopper::bulk`]) and goes back to the list with a note.
async fn bulk_apply(
    State(web): State<Web>,
    caller: Caller,
    Form(form): Form<BulkForm>,
) -> Result<Redirect> {
    caller.check_csrf(form.csrf.as_deref())?;
    let action = form.action()?;
    let hopper = web.hopper();
    let filter = form
        .selection
        .filter(hopper.now())
        .map_err(DashboardError::BadRequest)?;
    let done = hopper.bulk(action, &filter).await?;
    let note = bulk_note(action, &form.selection, &done);
    Ok(Redirect::to(&list_url(&form.selection, Some(note))))
}

/// The job list filtered as `selection` is (its age aside: the list has no
/// age filter), with `note` shown above it; URL-encoded, not HTML-escaped.
fn list_url(selection: &Selection, note: Option<String>) -> String {
    let values = [
        ("state", non_empty(&selection.state)),
        ("queue", non_empty(&selection.queue)),
        ("type", non_empty(&selection.job_type)),
        ("note", note),
    ];
    let values: Vec<(&str, &Option<String>)> =
        values.iter().map(|(name, value)| (*name, value)).collect();
    jobs_url(None, &values)
}

/// What a bulk action did, in words.
fn bulk_note(action: BulkAction, selection: &Selection, done: &BulkOutcome) -> String {
    format!(
        "{} all: {} jobs matched ({}), {} {}, {} skipped.",
        action.title(),
        done.matched,
        selection.describe(),
        done.applied,
        action.done(),
        done.skipped,
    )
}

/// Which jobs `action` changes, and how.
fn applies(action: BulkAction) -> &'static str {
    match action {
        BulkAction::Retry => {
            "Retry puts failed and cancelled jobs back to pending (not those whose unique key another live job holds)"
        }
        BulkAction::Cancel => "Cancel cancels pending jobs and asks running ones to stop",
        BulkAction::Delete => "Delete removes every job that is not running",
    }
}

async fn queues(
    State(web): State<Web>,
    caller: Caller,
    Query(query): Query<NoteQuery>,
) -> Result<Html<String>> {
    let hopper = web.hopper();
    let status = hopper.status(Duration::ZERO).await?;
    let now = status.now;
    let page = pages::QueuesPage {
        frame: Frame::live("Queues", caller.csrf_token()).with_note(non_empty(&query.note)),
        queues: status
            .queues
            .iter()
            .map(|s| {
                let (action, label) = if s.paused {
                    ("resume", "Resume")
                } else {
                    ("pause", "Pause")
                };
                pages::QueueRow {
                    name: s.queue.clone(),
                    query: url_encode(&s.queue),
                    due: s.due,
                    oldest_due_age: s.oldest_due_at.map(|at| age((now - at).num_seconds())),
                    paused: s.paused,
                    toggle: Button::new(format!("{DASHBOARD_PATH}/queues/{action}"), label)
                        .with_fields(vec![Field {
                            name: "queue",
                            value: s.queue.clone(),
                        }]),
                }
            })
            .collect(),
        flows: hopper.flow_usage().await?.iter().map(flow_row).collect(),
        workers: status
            .queues
            .iter()
            .flat_map(|q| &q.workers)
            .map(|row| pages::WorkerRow {
                queue: row.queue.clone(),
                worker: row.worker.clone(),
                running: row.running,
                concurrency: row.concurrency,
                min: row.min,
                max: row.max,
            })
            .collect(),
    };
    Ok(pages::render(&page)?)
}

/// A flow-controlled queue's limits and their use, as the library reads them.
fn flow_row(u: &hopper::store::FlowUsage) -> pages::FlowRow {
    let flow = &u.flow;
    let running = match flow.concurrency {
        Some(limit) => format!("{} / {limit}", u.running),
        None => u.running.to_string(),
    };
    let starts = match (u.starts_in_window, flow.rate) {
        (Some(n), Some(rate)) if !rate.per_key => format!("{n} / {}", rate.starts),
        (Some(n), _) => n.to_string(),
        (None, _) => "—".to_owned(),
    };
    let keys = u
        .busiest_keys
        .iter()
        .map(|key| {
            let name = key.key.as_deref().unwrap_or("(no key)");
            let starts = key
                .starts_in_window
                .map(|n| format!(", {n} started"))
                .unwrap_or_default();
            let full = if key.full { " (full)" } else { "" };
            format!("{name}: {} running{starts}{full}", key.running)
        })
        .collect();
    let waiting = if u.full {
        format!("{} (queue full)", u.waiting)
    } else {
        u.waiting.to_string()
    };
    pages::FlowRow {
        queue: u.queue.clone(),
        limits: flow.to_string(),
        running,
        starts,
        due: u.due,
        waiting,
        keys,
    }
}

/// The pause/resume form.
#[derive(Debug, Deserialize)]
pub(crate) struct QueueForm {
    csrf: Option<String>,
    queue: String,
}

async fn queue_action(
    State(web): State<Web>,
    caller: Caller,
    Path(action): Path<String>,
    Form(form): Form<QueueForm>,
) -> Result<Redirect> {
    caller.check_csrf(form.csrf.as_deref())?;
    let hopper = web.hopper();
    let note = match action.as_str() {
        "pause" => {
            hopper.pause(&form.queue).await?;
            format!("Queue {} paused.", form.queue)
        }
        "resume" => {
            hopper.resume(&form.queue).await?;
            format!("Queue {} resumed.", form.queue)
        }
        other => {
            return Err(DashboardError::BadRequest(format!(
                "unknown action {other:?}"
            )));
        }
    };
    Ok(Redirect::to(&format!(
        "{DASHBOARD_PATH}/queues?note={}",
        url_encode(&note)
    )))
}

/// A schedule's latest runs, newest first: the tick, the job and its
/// state; a job pruned or deleted since has no state.
fn recent_runs(runs: &[ScheduleRun]) -> Vec<pages::RunRow> {
    runs.iter()
        .map(|run| pages::RunRow {
            fire_at: time(run.fire_at),
            job_id: run.job_id,
            state: run.state.map(JobState::as_str),
        })
        .collect()
}

async fn schedules(State(web): State<Web>, caller: Caller) -> Result<Html<String>> {
    let schedules = match &web.inner.schedules {
        None => None,
        Some(schedules) => Some(
            schedules
                .list(web.hopper())
                .await?
                .iter()
                .map(|s| pages::ScheduleRow {
                    name: s.name.clone(),
                    expression: s.expression.clone(),
                    zone: s.zone.clone(),
                    job_type: s.job_type.clone(),
                    next: s.next.iter().map(|t| time(*t)).collect(),
                    last_tick: s.last_fire_at.map(time).unwrap_or_else(|| "—".into()),
                    last_job: s.last_job.map(|(id, state)| pages::JobBadge {
                        id,
                        state: state.as_str(),
                    }),
                    recent: recent_runs(&s.recent),
                })
                .collect(),
        ),
    };
    let page = pages::SchedulesPage {
        frame: Frame::live("Schedules", caller.csrf_token()),
        schedules,
    };
    Ok(pages::render(&page)?)
}
