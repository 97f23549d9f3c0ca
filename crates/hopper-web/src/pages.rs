//! The dashboard's pages: one view model per page, each rendered from its
//! template in `templates/` with every value HTML-escaped as it is written
//! out. The handlers in [`crate::dashboard`] read the queue and fill these
//! in; the templates only lay them out.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::DASHBOARD_PATH;

/// Renders `page` as HTML.
pub(crate) fn render(page: &impl Template) -> Result<Html<String>, askama::Error> {
    page.render().map(Html)
}

/// Renders `page` with `status`; a page that fails to render answers 500.
pub(crate) fn respond(status: StatusCode, page: &impl Template) -> Response {
    match render(page) {
        Ok(html) => (status, html).into_response(),
        Err(error) => {
            tracing::error!(%error, "a dashboard page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page failed to render",
            )
                .into_response()
        }
    }
}

/// What every page's frame shows: its title, the CSRF token its forms
/// carry, a note left by the action that led there, and whether it
/// follows the live stream.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) title: String,
    pub(crate) csrf: String,
    pub(crate) note: Option<String>,
    pub(crate) live: bool,
    pub(crate) base: &'static str,
}

impl Frame {
    /// A page that updates itself.
    pub(crate) fn live(title: impl Into<String>, csrf: &str) -> Self {
        Self {
            title: title.into(),
            csrf: csrf.to_owned(),
            note: None,
            live: true,
            base: DASHBOARD_PATH,
        }
    }

    /// A page that stays as rendered: a confirmation, an error.
    pub(crate) fn still(title: impl Into<String>, csrf: &str) -> Self {
        Self {
            live: false,
            ..Self::live(title, csrf)
        }
    }

    /// The same frame showing `note` above the content.
    pub(crate) fn with_note(self, note: Option<String>) -> Self {
        Self { note, ..self }
    }
}

/// A hidden form field.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) value: String,
}

/// A one-button POST form: where it goes, its label and its fields (the
/// CSRF token is added by the template).
#[derive(Debug)]
pub(crate) struct Button {
    pub(crate) action: String,
    pub(crate) label: String,
    pub(crate) fields: Vec<Field>,
}

impl Button {
    /// A button posting only the CSRF token.
    pub(crate) fn new(action: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            label: label.into(),
            fields: Vec::new(),
        }
    }

    /// The same button posting `fields` too.
    pub(crate) fn with_fields(self, fields: Vec<Field>) -> Self {
        Self { fields, ..self }
    }
}

/// The login form.
#[derive(Debug, Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub(crate) error: Option<String>,
    pub(crate) base: &'static str,
}

impl LoginPage {
    /// The form, with `error` above it if given.
    pub(crate) fn new(error: Option<&str>) -> Self {
        Self {
            error: error.map(str::to_owned),
            base: DASHBOARD_PATH,
        }
    }
}

/// A request that failed: its message.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub(crate) frame: Frame,
    pub(crate) message: String,
}

/// The overview: counts, alerts, throughput, queues.
#[derive(Debug, Template)]
#[template(path = "overview.html")]
pub(crate) struct OverviewPage {
    pub(crate) frame: Frame,
    pub(crate) cards: Vec<StateCard>,
    pub(crate) oldest_pending: String,
    pub(crate) finished_last_hour: u64,
    pub(crate) failed_last_hour: u64,
    pub(crate) any_firing: bool,
    pub(crate) alerts: Vec<AlertRow>,
    pub(crate) chart: Chart,
    pub(crate) states: Vec<&'static str>,
    pub(crate) queues: Vec<QueueCounts>,
}

/// How many jobs are in one state.
#[derive(Debug)]
pub(crate) struct StateCard {
    pub(crate) state: &'static str,
    pub(crate) count: u64,
}

/// One alert incident, firing or resolved.
#[derive(Debug)]
pub(crate) struct AlertRow {
    pub(crate) label: &'static str,
    pub(crate) badge: &'static str,
    pub(crate) rule: String,
    pub(crate) subject: String,
    pub(crate) summary: String,
    pub(crate) fired_at: String,
    pub(crate) fired_ago: String,
    pub(crate) resolved_at: String,
}

/// One queue's jobs per state, in [`hopper::JobState::ALL`]'s order.
#[derive(Debug)]
pub(crate) struct QueueCounts {
    pub(crate) name: String,
    /// The name URL-encoded, for the job list's query.
    pub(crate) query: String,
    pub(crate) counts: Vec<u64>,
}

/// The throughput chart's geometry.
#[derive(Debug)]
pub(crate) struct Chart {
    pub(crate) width: f64,
    pub(crate) height: f64,
    pub(crate) bar_width: f64,
    pub(crate) label_y: f64,
    pub(crate) peak: u64,
    pub(crate) bars: Vec<Bar>,
}

/// One minute's bar: finished (bottom) and failed (stacked on top).
#[derive(Debug)]
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) x: f64,
    pub(crate) finished_y: f64,
    pub(crate) finished_height: f64,
    pub(crate) failed_y: f64,
    pub(crate) failed_height: f64,
}

/// The job list: its filter, bulk form, a page of jobs and the links to
/// the pages around it.
#[derive(Debug, Template)]
#[template(path = "jobs.html")]
pub(crate) struct JobsPage {
    pub(crate) frame: Frame,
    pub(crate) states: Vec<StateOption>,
    pub(crate) queue: String,
    pub(crate) job_type: String,
    pub(crate) queue_names: Vec<String>,
    pub(crate) types: Vec<String>,
    pub(crate) retry_failed: Option<Button>,
    pub(crate) bulk_fields: Vec<Field>,
    pub(crate) bulk_actions: Vec<BulkChoice>,
    pub(crate) rows: Vec<JobRow>,
    pub(crate) newest_page: Option<String>,
    pub(crate) older_page: Option<String>,
}

/// A state in the filter's drop-down.
#[derive(Debug)]
pub(crate) struct StateOption {
    pub(crate) state: &'static str,
    pub(crate) selected: bool,
}

/// A bulk action's button.
#[derive(Debug)]
pub(crate) struct BulkChoice {
    pub(crate) value: &'static str,
    pub(crate) title: &'static str,
}

/// A job in the list.
#[derive(Debug)]
pub(crate) struct JobRow {
    pub(crate) id: i64,
    pub(crate) job_type: String,
    pub(crate) queue: String,
    pub(crate) state: &'static str,
    pub(crate) attempts: u32,
    pub(crate) max_attempts: u32,
    pub(crate) created_at: String,
    pub(crate) age: String,
    pub(crate) last_error: String,
    pub(crate) actions: Vec<Button>,
}

/// One job: its fields, actions, what it waits on, payload, output, errors.
#[derive(Debug, Template)]
#[template(path = "job.html")]
pub(crate) struct JobPage {
    pub(crate) frame: Frame,
    pub(crate) actions: Vec<Button>,
    pub(crate) state: &'static str,
    pub(crate) job_type: String,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) attempts: u32,
    pub(crate) max_attempts: u32,
    pub(crate) created_at: String,
    pub(crate) available_at: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
    pub(crate) locked_by: String,
    pub(crate) locked_until: String,
    pub(crate) unique_key: String,
    pub(crate) progress: Option<hopper::store::Progress>,
    pub(crate) batch_id: Option<i64>,
    pub(crate) waits_on: Option<WaitsOn>,
    pub(crate) payload: String,
    pub(crate) output: Option<String>,
    pub(crate) errors: Vec<ErrorRow>,
}

/// What a pending job still waits on.
#[derive(Debug)]
pub(crate) struct WaitsOn {
    pub(crate) count: u32,
    pub(crate) jobs: Vec<WaitedJob>,
}

/// A job waited on: its id, state, and step name or sequence key.
#[derive(Debug)]
pub(crate) struct WaitedJob {
    pub(crate) id: i64,
    pub(crate) state: &'static str,
    pub(crate) step: String,
}

/// One failed attempt.
#[derive(Debug)]
pub(crate) struct ErrorRow {
    pub(crate) attempt: u32,
    pub(crate) at: String,
    pub(crate) error: String,
}

/// A bulk action's confirmation: what it would do, to how many jobs.
#[derive(Debug, Template)]
#[template(path = "bulk_confirm.html")]
pub(crate) struct BulkConfirmPage {
    pub(crate) frame: Frame,
    pub(crate) action_title: &'static str,
    pub(crate) selection: String,
    pub(crate) count: u64,
    pub(crate) applies: &'static str,
    /// `None` when no job matches.
    pub(crate) confirm: Option<Button>,
    pub(crate) back: String,
}

/// A batch: its summary, counts, callbacks and latest jobs.
#[derive(Debug, Template)]
#[template(path = "batch.html")]
pub(crate) struct BatchPage {
    pub(crate) frame: Frame,
    pub(crate) name: String,
    pub(crate) created_at: String,
    pub(crate) sealed: bool,
    pub(crate) complete: bool,
    pub(crate) total: u64,
    pub(crate) ended: u64,
    pub(crate) percent: u64,
    pub(crate) cards: Vec<CountCard>,
    pub(crate) callbacks: Vec<CallbackRow>,
    pub(crate) jobs_shown_max: u64,
    pub(crate) jobs: Vec<BatchJobRow>,
}

/// A named count.
#[derive(Debug)]
pub(crate) struct CountCard {
    pub(crate) name: &'static str,
    pub(crate) count: u64,
}

/// A batch callback and the job it became, once fired.
#[derive(Debug)]
pub(crate) struct CallbackRow {
    pub(crate) event: String,
    pub(crate) job_type: String,
    pub(crate) job_id: Option<i64>,
}

/// A job of a batch and the steps it waits on.
#[derive(Debug)]
pub(crate) struct BatchJobRow {
    pub(crate) id: i64,
    pub(crate) job_type: String,
    pub(crate) state: &'static str,
    pub(crate) waiting_on: u32,
    pub(crate) waits_on: Vec<WaitedJob>,
}

/// The queues: due work and pause, flow control, worker pools.
#[derive(Debug, Template)]
#[template(path = "queues.html")]
pub(crate) struct QueuesPage {
    pub(crate) frame: Frame,
    pub(crate) queues: Vec<QueueRow>,
    pub(crate) flows: Vec<FlowRow>,
    pub(crate) workers: Vec<WorkerRow>,
}

/// A queue's due work, whether it is paused, and its pause/resume button.
#[derive(Debug)]
pub(crate) struct QueueRow {
    pub(crate) name: String,
    pub(crate) query: String,
    pub(crate) due: u64,
    pub(crate) oldest_due_age: Option<String>,
    pub(crate) paused: bool,
    pub(crate) toggle: Button,
}

/// A flow-controlled queue's limits and their use, in words.
#[derive(Debug)]
pub(crate) struct FlowRow {
    pub(crate) queue: String,
    pub(crate) limits: String,
    pub(crate) running: String,
    pub(crate) starts: String,
    pub(crate) due: u64,
    pub(crate) waiting: String,
    pub(crate) keys: Vec<String>,
}

/// A worker pool's concurrency on one queue.
#[derive(Debug)]
pub(crate) struct WorkerRow {
    pub(crate) queue: String,
    pub(crate) worker: String,
    pub(crate) running: u32,
    pub(crate) concurrency: u32,
    pub(crate) min: u32,
    pub(crate) max: u32,
}

/// The schedules, or `None` when none are configured.
#[derive(Debug, Template)]
#[template(path = "schedules.html")]
pub(crate) struct SchedulesPage {
    pub(crate) frame: Frame,
    pub(crate) schedules: Option<Vec<ScheduleRow>>,
}

/// A schedule: its expression, next ticks, latest job and recent runs.
#[derive(Debug)]
pub(crate) struct ScheduleRow {
    pub(crate) name: String,
    pub(crate) expression: String,
    pub(crate) zone: String,
    pub(crate) job_type: String,
    pub(crate) next: Vec<String>,
    pub(crate) last_tick: String,
    pub(crate) last_job: Option<JobBadge>,
    pub(crate) recent: Vec<RunRow>,
}

/// A job's id and state.
#[derive(Debug)]
pub(crate) struct JobBadge {
    pub(crate) id: i64,
    pub(crate) state: &'static str,
}

/// A schedule run: its tick and its job (`state` `None` once the job is gone).
#[derive(Debug)]
pub(crate) struct RunRow {
    pub(crate) fire_at: String,
    pub(crate) job_id: i64,
    pub(crate) state: Option<&'static str>,
}
