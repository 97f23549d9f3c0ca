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
//! of itself on each.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use hopper::bulk::{BulkAction, BulkOutcome};
use hopper::store::{BatchCallback, BatchCounts, BatchRecord, Dependency, ScheduleRun};
use hopper::{JobFilter, JobId, JobState, StoreError};
use serde::Deserialize;

use crate::auth::{self, Caller, Refused};
use crate::html::{age, button, escape, hidden_fields, page, state, still_page, time};
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
            DashboardError::Store(_) | DashboardError::Schedule(_) => {
                tracing::error!(error = %self, "dashboard request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let body = format!(r#"<p class="error">{}</p>"#, escape(&self.to_string()));
        (status, still_page("Error", "", &body)).into_response()
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
    let oldest = status
        .oldest_due_at()
        .map(|at| age((now - at).num_seconds()))
        .unwrap_or_else(|| "none waiting".into());
    let finished_hour = status.finished();
    let failed_hour = status.failed();

    let mut body = String::from(r#"<div class="cards">"#);
    for s in JobState::ALL {
        body.push_str(&format!(
            r#"<a class="card" href="{DASHBOARD_PATH}/jobs?state={name}"><b id="count-{name}">{}</b>{name}</a>"#,
            totals.get(s),
            name = s.as_str()
        ));
    }
    body.push_str(&format!(
        r#"<div class="card"><b id="oldest-pending">{}</b>oldest pending</div>
<div class="card"><b>{finished_hour}</b>finished, last hour</div>
<div class="card"><b>{failed_hour}</b>failed, last hour</div></div>"#,
        escape(&oldest)
    ));

    let alerts = crate::alerts::list(hopper, crate::alerts::OVERVIEW_RESOLVED).await?;
    body.push_str(&crate::alerts::section(now, &alerts));

    body.push_str("<h2>Finished and failed per minute, last hour</h2>");
    body.push_str(&chart(now, &status.throughput));

    body.push_str("<h2>Queues</h2><table><tr><th>queue</th>");
    for s in JobState::ALL {
        body.push_str(&format!("<th>{}</th>", s.as_str()));
    }
    body.push_str("</tr>");
    // Queues with jobs; a queue known only by its pause row has none to count.
    let with_jobs: Vec<_> = status
        .queues
        .iter()
        .filter(|queue| queue.counts.total() > 0)
        .collect();
    for queue in &with_jobs {
        body.push_str(&format!(
            r#"<tr><td><a href="{DASHBOARD_PATH}/jobs?queue={q}">{q}</a></td>"#,
            q = escape(&queue.queue)
        ));
        for s in JobState::ALL {
            body.push_str(&format!("<td>{}</td>", queue.counts.get(s)));
        }
        body.push_str("</tr>");
    }
    if with_jobs.is_empty() {
        body.push_str(r#"<tr><td colspan="6" class="muted">No jobs yet.</td></tr>"#);
    }
    body.push_str("</table>");
    Ok(page("Overview", caller.csrf_token(), &body))
}

/// An SVG bar chart of the last 60 minutes: finished (green) and failed (red) stacked.
fn chart(now: chrono::DateTime<chrono::Utc>, minutes: &[hopper::store::MinuteCount]) -> String {
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
    let mut svg = format!(
        r#"<svg id="throughput" width="{width}" height="{}" viewBox="0 0 {width} {}" role="img" aria-label="finished and failed jobs per minute">"#,
        height + 16.0,
        height + 16.0
    );
    for (i, (finished, failed)) in slots.iter().enumerate() {
        let x = i as f64 * bar;
        let hf = *finished as f64 / peak as f64 * height;
        let hx = *failed as f64 / peak as f64 * height;
        let minute = this_minute - TimeDelta::minutes(59 - i as i64);
        let label = format!(
            "{}: {finished} finished, {failed} failed",
            minute.format("%H:%M")
        );
        svg.push_str(&format!(
            r##"<g><title>{}</title><rect x="{x}" y="{}" width="{}" height="{hf}" fill="#3aa55d"/><rect x="{x}" y="{}" width="{}" height="{hx}" fill="#d64545"/></g>"##,
            escape(&label),
            height - hf,
            bar - 2.0,
            height - hf - hx,
            bar - 2.0,
        ));
    }
    svg.push_str(&format!(
        r##"<text x="0" y="{}" font-size="11" fill="#6b7587">−60 min</text><text x="{}" y="{}" font-size="11" fill="#6b7587" text-anchor="end">now · peak {peak}/min</text></svg>"##,
        height + 13.0,
        width,
        height + 13.0
    ));
    svg
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
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Selection {
    pub(crate) state: Option<String>,
    pub(crate) queue: Option<String>,
    #[serde(rename = "type")]
    pub(crate) job_type: Option<String>,
    /// Only jobs created longer ago than this: `10m`, `2h`, `7d`, as
    /// `queue:bulk --older-than` reads it ([`hopper_cli::duration::parse`]).
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
    let csrf = caller.csrf_token();

    let mut body = String::new();
    if let Some(note) = non_empty(&query.note) {
        body.push_str(&format!(r#"<p class="note">{}</p>"#, escape(&note)));
    }
    body.push_str(&format!(
        r#"<form method="get" action="{DASHBOARD_PATH}/jobs"><label>state <select name="state"><option value="">any</option>"#
    ));
    for s in JobState::ALL {
        let selected = if state_q.as_deref() == Some(s.as_str()) {
            " selected"
        } else {
            ""
        };
        body.push_str(&format!(r#"<option{selected}>{}</option>"#, s.as_str()));
    }
    let types: Vec<&str> = hopper.registry().types().collect();
    body.push_str(&format!(
        r#"</select></label> <label>queue <input name="queue" value="{}" list="queues"></label>
<label>type <input name="type" value="{}" list="types"></label> <button type="submit">Filter</button>
<datalist id="queues">{}</datalist><datalist id="types">{}</datalist></form>"#,
        escape(queue_q.as_deref().unwrap_or("")),
        escape(type_q.as_deref().unwrap_or("")),
        queue_names(&rows)
            .iter()
            .map(|q| format!("<option>{}</option>", escape(q)))
            .collect::<String>(),
        types
            .iter()
            .map(|t| format!("<option>{}</option>", escape(t)))
            .collect::<String>(),
    ));
    if state_q.as_deref() == Some("failed") {
        if let Some(job_type) = &type_q {
            body.push_str(&format!(
                "<p>{}</p>",
                button(
                    &format!("{DASHBOARD_PATH}/jobs/retry-failed"),
                    csrf,
                    &format!("Retry all failed {job_type} jobs"),
                    &[("type", job_type)],
                )
            ));
        }
    }
    let filters = [("state", &state_q), ("queue", &queue_q), ("type", &type_q)];
    body.push_str(&bulk_form(&filters));
    body.push_str(
        "<table id=\"jobs\"><tr><th>id</th><th>type</th><th>queue</th><th>state</th><th>attempts</th><th>created</th><th>last error</th><th></th></tr>",
    );
    for job in &rows {
        let actions = actions(job.id, job.state, job.waiting_on, csrf);
        body.push_str(&format!(
            r#"<tr data-id="{id}"><td><a href="{DASHBOARD_PATH}/jobs/{id}">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td title="{}">{} ago</td><td>{}</td><td>{actions}</td></tr>"#,
            escape(&job.job_type),
            escape(&job.queue),
            state(job.state),
            job.attempts,
            job.max_attempts,
            time(job.created_at),
            age((now - job.created_at).num_seconds()),
            escape(&truncate(job.last_error.as_deref().unwrap_or(""), 120)),
            id = job.id,
        ));
    }
    if rows.is_empty() {
        body.push_str(r#"<tr><td colspan="8" class="muted">No jobs match.</td></tr>"#);
    }
    body.push_str("</table>");
    let mut links = Vec::new();
    if before.is_some() {
        let newest = jobs_link(None, &filters);
        links.push(format!(
            r#"<a id="first-page" href="{newest}">← Newest jobs</a>"#
        ));
    }
    if let Some(cursor) = listed.next {
        let older = jobs_link(Some(cursor), &filters);
        links.push(format!(
            r#"<a id="next-page" href="{older}">Older jobs →</a>"#
        ));
    }
    if !links.is_empty() {
        body.push_str(&format!("<p>{}</p>", links.join(" · ")));
    }
    Ok(page("Jobs", csrf, &body))
}

/// The job list's address for the page below `before` (the newest page
/// when `None`) with the filters given, HTML-escaped for an attribute.
fn jobs_link(before: Option<i64>, filters: &[(&str, &Option<String>)]) -> String {
    escape(&jobs_url(before, filters))
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

/// The bulk form under the job list's filter: the filter as hidden fields,
/// an optional age, and a button per action, each leading to the
/// confirmation page ([`bulk_confirm`]); nothing changes before that.
fn bulk_form(filters: &[(&str, &Option<String>)]) -> String {
    let given: Vec<(&str, &str)> = filters
        .iter()
        .filter_map(|(name, value)| value.as_deref().map(|value| (*name, value)))
        .collect();
    let hidden = hidden_fields(&given);
    let buttons: String = BulkAction::ALL
        .into_iter()
        .map(|action| {
            format!(
                r#" <button type="submit" name="action" value="{}">{} all</button>"#,
                action.as_str(),
                action.title()
            )
        })
        .collect();
    format!(
        r#"<form id="bulk" method="get" action="{DASHBOARD_PATH}/jobs/bulk">{hidden}Every job this filter matches: <label>older than <input name="older_than" placeholder="2h, 7d" size="8"></label>{buttons}</form>"#
    )
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
fn actions(id: i64, job_state: JobState, waiting_on: u32, csrf: &str) -> String {
    let base = format!("{DASHBOARD_PATH}/jobs/{id}");
    let mut out = String::new();
    if matches!(job_state, JobState::Failed | JobState::Cancelled) {
        out.push_str(&button(&format!("{base}/retry"), csrf, "Retry", &[]));
    }
    if matches!(job_state, JobState::Pending | JobState::Started) {
        out.push_str(&button(&format!("{base}/cancel"), csrf, "Cancel", &[]));
    }
    if job_state == JobState::Pending && waiting_on > 0 {
        out.push_str(&button(
            &format!("{base}/skip-wait"),
            csrf,
            "Skip wait",
            &[],
        ));
    }
    if job_state != JobState::Started {
        out.push_str(&button(&format!("{base}/delete"), csrf, "Delete", &[]));
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
    let csrf = caller.csrf_token();
    let payload = serde_json::from_str::<serde_json::Value>(&job.payload)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or_else(|| job.payload.clone());
    let output = job.output.as_deref().map(|output| {
        serde_json::from_str::<serde_json::Value>(output)
            .ok()
            .and_then(|value| serde_json::to_string_pretty(&value).ok())
            .unwrap_or_else(|| output.to_owned())
    });
    let progress = match &job.progress {
        Some(progress) => format!(
            r#"<progress max="100" value="{p}">{p}%</progress> {p}% {}"#,
            escape(&progress.message),
            p = progress.percent,
        ),
        None => "—".into(),
    };
    let when =
        |at: Option<chrono::DateTime<chrono::Utc>>| at.map(time).unwrap_or_else(|| "—".into());
    let waits = if job.state == JobState::Pending && job.waiting_on > 0 {
        waits_on(job.waiting_on, &hopper.store().dependencies(&[id]).await?)
    } else {
        String::new()
    };

    let mut body = String::new();
    if let Some(note) = non_empty(&query.note) {
        body.push_str(&format!(r#"<p class="note">{}</p>"#, escape(&note)));
    }
    body.push_str(&format!(
        r#"<p>{}</p><table>
<tr><th>state</th><td id="job-state" data-state="{st}">{}</td></tr>
<tr><th>type</th><td>{}</td></tr><tr><th>queue</th><td>{}</td></tr>
<tr><th>priority</th><td>{}</td></tr><tr><th>attempts</th><td>{} of {}</td></tr>
<tr><th>created</th><td>{}</td></tr><tr><th>due</th><td>{}</td></tr>
<tr><th>started</th><td>{}</td></tr><tr><th>ended</th><td>{}</td></tr>
<tr><th>lease</th><td>{} {}</td></tr><tr><th>unique key</th><td>{}</td></tr>
<tr><th>progress</th><td id="job-progress">{}</td></tr>
<tr><th>batch</th><td id="job-batch">{}</td></tr>
</table>{waits}<h2>Payload</h2><pre id="payload">{}</pre>{}<h2>Errors</h2>"#,
        actions(job.id, job.state, job.waiting_on, csrf),
        state(job.state),
        escape(&job.job_type),
        escape(&job.queue),
        job.priority,
        job.attempts,
        job.max_attempts,
        time(job.created_at),
        time(job.available_at),
        when(job.started_at),
        when(job.finished_at),
        escape(job.locked_by.as_deref().unwrap_or("—")),
        job.locked_until
            .map(|t| format!("until {}", time(t)))
            .unwrap_or_default(),
        escape(job.unique_key.as_deref().unwrap_or("—")),
        progress,
        job.batch_id
            .map(|id| format!(r#"<a href="{DASHBOARD_PATH}/batches/{id}">{id}</a>"#))
            .unwrap_or_else(|| "—".into()),
        escape(&payload),
        output
            .map(|output| format!(
                r#"<h2>Output</h2><pre id="output">{}</pre>"#,
                escape(&output)
            ))
            .unwrap_or_default(),
        st = job.state.as_str(),
    ));
    if job.errors.is_empty() {
        body.push_str(r#"<p class="muted">No errors.</p>"#);
    } else {
        body.push_str("<table id=\"errors\"><tr><th>attempt</th><th>at</th><th>error</th></tr>");
        for error in &job.errors {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
                error.attempt,
                time(error.at),
                escape(&error.error)
            ));
        }
        body.push_str("</table>");
    }
    Ok(page(&format!("Job {}", job.id), csrf, &body))
}

/// What a pending job waits on: each job it waits on, linked, with its
/// state and its step name (a workflow) or sequence key (a sequence).
fn waits_on(waiting_on: u32, dependencies: &[Dependency]) -> String {
    let mut table = format!(
        r#"<h2>Waits on</h2><p class="muted" id="waiting-on">Still waiting on {waiting_on}: not due until then, unless Skip wait runs it now. A sequence stays held behind a job that failed for good or was cancelled until that job is retried and finishes or the next job's wait is skipped.</p><table id="waits-on"><tr><th>job</th><th>state</th><th>step or sequence</th></tr>"#
    );
    for dependency in dependencies {
        table.push_str(&format!(
            r#"<tr data-id="{id}"><td><a href="{DASHBOARD_PATH}/jobs/{id}">{id}</a></td><td>{}</td><td>{}</td></tr>"#,
            state(dependency.state),
            escape(&dependency.step),
            id = dependency.job_id,
        ));
    }
    if dependencies.is_empty() {
        table.push_str(r#"<tr><td colspan="3" class="muted">No jobs left to wait on.</td></tr>"#);
    }
    table.push_str("</table>");
    table
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
    let mut body = batch_summary(&batch);
    body.push_str(&batch_counts(&batch.counts));
    body.push_str(&callback_table(&batch.callbacks));
    body.push_str(&batch_jobs(web.hopper(), &batch).await?);
    Ok(page(
        &format!("Batch {}", batch.id),
        caller.csrf_token(),
        &body,
    ))
}

/// A batch's name, creation, seal, completion and progress.
fn batch_summary(batch: &BatchRecord) -> String {
    let yes_no = |yes: bool| if yes { "yes" } else { "no" };
    let counts = &batch.counts;
    let progress = match counts.total {
        0 => "no jobs".to_owned(),
        total => format!(
            r#"<progress max="{total}" value="{ended}">{percent}%</progress> {ended} of {total} ended ({percent}%)"#,
            ended = counts.ended(),
            percent = counts.ended().min(total) * 100 / total,
        ),
    };
    format!(
        r#"<table>
<tr><th>name</th><td id="batch-name">{}</td></tr><tr><th>created</th><td>{}</td></tr>
<tr><th>sealed</th><td id="batch-sealed">{}</td></tr><tr><th>complete</th><td id="batch-complete">{}</td></tr>
<tr><th>progress</th><td id="batch-progress">{progress}</td></tr>
</table>"#,
        escape(&batch.name),
        time(batch.created_at),
        yes_no(batch.sealed),
        yes_no(batch.is_complete()),
    )
}

/// A batch's counts as cards: total, then pending and each way of ending.
fn batch_counts(counts: &BatchCounts) -> String {
    let cards: String = [
        ("total", counts.total),
        ("pending", counts.pending()),
        ("finished", counts.finished),
        ("failed", counts.failed),
        ("cancelled", counts.cancelled),
    ]
    .into_iter()
    .map(|(name, n)| format!(r#"<div class="card"><b id="batch-{name}">{n}</b>{name}</div>"#))
    .collect();
    format!(r#"<div class="cards">{cards}</div>"#)
}

/// The most jobs of a batch its page lists.
const BATCH_JOBS_SHOWN: u32 = 100;

/// A batch's jobs (its latest [`BATCH_JOBS_SHOWN`], oldest first, as a
/// workflow's steps were added), each with its state and, in a workflow,
/// the steps it waits on.
async fn batch_jobs(hopper: &hopper::Hopper, batch: &BatchRecord) -> Result<String> {
    let filter = JobFilter {
        batch_id: Some(batch.id),
        limit: Some(BATCH_JOBS_SHOWN),
        ..JobFilter::default()
    };
    let mut jobs = hopper.jobs(&filter).await?.jobs;
    jobs.reverse();
    let mut table = String::from("<h2>Jobs</h2>");
    if batch.counts.total > u64::from(BATCH_JOBS_SHOWN) {
        table.push_str(&format!(
            r#"<p class="muted">The latest {BATCH_JOBS_SHOWN} of {} jobs.</p>"#,
            batch.counts.total
        ));
    }
    table.push_str(
        "<table id=\"batch-jobs\"><tr><th>id</th><th>type</th><th>state</th><th>waits on</th></tr>",
    );
    // One read for the whole page.
    let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
    let dependencies = hopper.store().dependencies(&ids).await?;
    for job in &jobs {
        let waited: Vec<&Dependency> = dependencies
            .iter()
            .filter(|d| d.dependent == job.id)
            .collect();
        let waits_on = if waited.is_empty() {
            "—".to_owned()
        } else {
            waited
                .iter()
                .map(|d| {
                    format!(
                        r#"<a href="{DASHBOARD_PATH}/jobs/{id}">{}</a> {}"#,
                        escape(&d.step),
                        state(d.state),
                        id = d.job_id,
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let waiting = match job.waiting_on {
            0 => String::new(),
            n => format!(r#" <span class="muted">(waiting on {n})</span>"#),
        };
        table.push_str(&format!(
            r#"<tr data-id="{id}"><td><a href="{DASHBOARD_PATH}/jobs/{id}">{id}</a></td><td>{}</td><td>{}{waiting}</td><td>{waits_on}</td></tr>"#,
            escape(&job.job_type),
            state(job.state),
            id = job.id,
        ));
    }
    if jobs.is_empty() {
        table.push_str(r#"<tr><td colspan="4" class="muted">No jobs.</td></tr>"#);
    }
    table.push_str("</table>");
    Ok(table)
}

/// A batch's callbacks, each with a link to its job once fired.
fn callback_table(callbacks: &[BatchCallback]) -> String {
    let mut table = String::from(
        "<h2>Callbacks</h2><table id=\"callbacks\"><tr><th>event</th><th>job type</th><th>job</th></tr>",
    );
    for callback in callbacks {
        let job = match callback.job_id {
            Some(id) => format!(r#"<a href="{DASHBOARD_PATH}/jobs/{id}">{id}</a>"#),
            None => r#"<span class="muted">not fired</span>"#.to_owned(),
        };
        table.push_str(&format!(
            r#"<tr data-event="{event}"><td>{event}</td><td>{}</td><td>{job}</td></tr>"#,
            escape(&callback.job_type),
            event = callback.event,
        ));
    }
    if callbacks.is_empty() {
        table.push_str(r#"<tr><td colspan="3" class="muted">No callbacks.</td></tr>"#);
    }
    table.push_str("</table>");
    table
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
    let csrf = caller.csrf_token();
    let mut body = format!(
        r#"<p>{} every job matching: <b id="bulk-filter">{}</b>.</p>
<div class="cards"><div class="card"><b id="bulk-count">{count}</b>jobs match now</div></div>
<p class="muted">{}; jobs in other states are skipped.</p>"#,
        action.title(),
        escape(&form.selection.describe()),
        applies(action),
    );
    let back = list_url(&form.selection, None);
    let confirm = if count == 0 {
        "No jobs match: nothing to do.".to_owned()
    } else {
        let mut fields = form.selection.fields();
        fields.push(("action", action.as_str().to_owned()));
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
        button(
            &format!("{DASHBOARD_PATH}/jobs/bulk"),
            csrf,
            &format!("{} {count} jobs", action.title()),
            &fields,
        )
    };
    body.push_str(&format!(
        r#"<div id="bulk-confirm">{confirm} <a href="{}">Back to the jobs</a></div>"#,
        escape(&back)
    ));
    Ok(still_page(
        &format!("{} all matching jobs?", action.title()),
        csrf,
        &body,
    ))
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
    let csrf = caller.csrf_token();
    let mut body = String::new();
    if let Some(note) = non_empty(&query.note) {
        body.push_str(&format!(r#"<p class="note">{}</p>"#, escape(&note)));
    }
    body.push_str(
        "<table id=\"queues\"><tr><th>queue</th><th>due now</th><th>oldest due</th><th>status</th><th></th></tr>",
    );
    for s in &status.queues {
        let (shown, action, label) = if s.paused {
            ("paused", "resume", "Resume")
        } else {
            ("running", "pause", "Pause")
        };
        body.push_str(&format!(
            r#"<tr data-queue="{q}"><td><a href="{DASHBOARD_PATH}/jobs?queue={qu}">{q}</a></td><td>{}</td><td>{}</td><td>{shown}</td><td>{}</td></tr>"#,
            s.due,
            s.oldest_due_at
                .map(|at| format!("{} ago", age((now - at).num_seconds())))
                .unwrap_or_else(|| "—".into()),
            button(
                &format!("{DASHBOARD_PATH}/queues/{action}"),
                csrf,
                label,
                &[("queue", &s.queue)]
            ),
            q = escape(&s.queue),
            qu = escape(&url_encode(&s.queue)),
        ));
    }
    if status.queues.is_empty() {
        body.push_str(r#"<tr><td colspan="5" class="muted">No queues yet.</td></tr>"#);
    }
    body.push_str("</table>");
    body.push_str(&flow_table(&hopper.flow_usage().await?));
    body.push_str(&worker_table(&status));
    Ok(page("Queues", csrf, &body))
}

/// Each flow-controlled queue's limits and their use, as the library reads them.
fn flow_table(usage: &[hopper::store::FlowUsage]) -> String {
    let mut table = String::from(
        "<h2>Flow control</h2><table id=\"flow\"><tr><th>queue</th><th>limits</th><th>running</th><th>starts in window</th><th>due</th><th>waiting on a limit</th><th>busiest keys</th></tr>",
    );
    for u in usage {
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
        let keys: Vec<String> = u
            .busiest_keys
            .iter()
            .map(|key| {
                let name = key
                    .key
                    .as_deref()
                    .map_or_else(|| "(no key)".to_owned(), escape);
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
        table.push_str(&format!(
            r#"<tr data-queue="{q}"><td>{q}</td><td>{}</td><td class="running">{running}</td><td class="starts">{starts}</td><td>{}</td><td class="waiting">{waiting}</td><td class="keys">{}</td></tr>"#,
            escape(&flow.to_string()),
            u.due,
            if keys.is_empty() { "—".to_owned() } else { keys.join("<br>") },
            q = escape(&u.queue),
        ));
    }
    if usage.is_empty() {
        table
            .push_str(r#"<tr><td colspan="7" class="muted">No queue has flow settings.</td></tr>"#);
    }
    table.push_str("</table>");
    table
}

/// Each running worker pool's concurrency per queue, as its autoscaler chose.
fn worker_table(status: &hopper::status::Status) -> String {
    let rows: Vec<_> = status.queues.iter().flat_map(|q| &q.workers).collect();
    let mut table = String::from(
        "<h2>Workers</h2><table id=\"workers\"><tr><th>queue</th><th>worker</th><th>running</th><th>concurrency</th><th>min–max</th></tr>",
    );
    for row in &rows {
        table.push_str(&format!(
            r#"<tr data-queue="{q}" data-worker="{w}"><td>{q}</td><td>{w}</td><td>{}</td><td class="concurrency">{}</td><td>{}–{}</td></tr>"#,
            row.running,
            row.concurrency,
            row.min,
            row.max,
            q = escape(&row.queue),
            w = escape(&row.worker),
        ));
    }
    if rows.is_empty() {
        table.push_str(r#"<tr><td colspan="5" class="muted">No workers running.</td></tr>"#);
    }
    table.push_str("</table>");
    table
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

/// A schedule's latest runs, newest first, one a line: the tick, the job
/// linked to its page and its state badge; a job pruned or deleted since
/// keeps its id, unlinked, with a `gone` badge.
fn recent_runs(runs: &[ScheduleRun]) -> String {
    if runs.is_empty() {
        return "—".into();
    }
    runs.iter()
        .map(|run| {
            let id = run.job_id;
            let job = match run.state {
                Some(job_state) => format!(
                    r#"<a href="{DASHBOARD_PATH}/jobs/{id}">{id}</a> {}"#,
                    state(job_state)
                ),
                None => format!(
                    r#"<span class="muted">{id}</span> <span class="state state-gone" title="the job was pruned or deleted">gone</span>"#
                ),
            };
            format!(
                r#"<span class="run" data-job="{id}">{} · {job}</span>"#,
                time(run.fire_at)
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

async fn schedules(State(web): State<Web>, caller: Caller) -> Result<Html<String>> {
    let mut body = String::new();
    match &web.inner.schedules {
        None => body.push_str(r#"<p class="muted">No schedules are configured.</p>"#),
        Some(schedules) => {
            let list = schedules.list(web.hopper()).await?;
            body.push_str("<table id=\"schedules\"><tr><th>name</th><th>expression</th><th>zone</th><th>job type</th><th>next</th><th>last tick</th><th>last job</th><th>recent runs</th></tr>");
            for s in &list {
                let last_job = match s.last_job {
                    Some((id, job_state)) => format!(
                        r#"<a href="{DASHBOARD_PATH}/jobs/{id}">{id}</a> {}"#,
                        state(job_state)
                    ),
                    None => "—".into(),
                };
                body.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{last_job}</td><td class=\"recent-runs\">{}</td></tr>",
                    escape(&s.name),
                    escape(&s.expression),
                    escape(&s.zone),
                    escape(&s.job_type),
                    s.next.iter().map(|t| time(*t)).collect::<Vec<_>>().join("<br>"),
                    s.last_fire_at.map(time).unwrap_or_else(|| "—".into()),
                    recent_runs(&s.recent),
                ));
            }
            if list.is_empty() {
                body.push_str(r#"<tr><td colspan="8" class="muted">No schedules.</td></tr>"#);
            }
            body.push_str("</table>");
        }
    }
    Ok(page("Schedules", caller.csrf_token(), &body))
}
