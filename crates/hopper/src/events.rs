//! The `tracing` events of a job's life, in one place: what each is called,
//! its level and its fields.
//!
//! Every event is emitted inside a span named `job` that carries the job's
//! `id`, `type`, `queue` and `attempt`, so a subscriber that prints spans
//! (the default text format, or JSON with the current span) shows them on
//! every line. The span around a run is entered while the handler runs too:
//! events a handler logs carry the same fields without repeating them.
//!
//! | message | level | extra fields |
//! |---|---|---|
//! | `job dispatched` | info | `available_at`, `priority` |
//! | `job started` | info | |
//! | `job finished` | info | `duration_ms` |
//! | `job failed; will retry` | warn | `duration_ms`, `error`, `delay_ms`, `retry_at` |
//! | `job failed for good` | error | `duration_ms`, `error` |
//! | `job rescued from a worker that stopped heartbeating` | warn | `state` (`pending` or `failed`) |
//! | `job cancelled` | info | |
//! | `job hook failed` | warn | `hook`, `error` |
//!
//! Their target is `hopper::events`: `RUST_LOG=info,hopper::events=warn`
//! keeps only retries, failures and rescues.
//!
//! With the `otel` feature, the span of a run is a child of the span its job
//! was dispatched in (an OpenTelemetry trace stored with the job), so a
//! `tracing-opentelemetry` layer shows the run inside the trace of whatever
//! dispatched it, even from another process.
//!
//! ```
//! assert_eq!(hopper::events::SPAN, "job");
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::Span;

use crate::job::JobId;
use crate::store::{JobRecord, NewJob};

/// The name of the span every job event (and every run of a handler) is in.
///
/// ```
/// assert_eq!(hopper::events::SPAN, "job");
/// ```
pub const SPAN: &str = "job";

/// The span of one job at one attempt (0 before its first run).
///
/// It is an error-level span so that filtering events by level never drops
/// the job's fields from the events that are kept.
pub(crate) fn span(id: JobId, job_type: &str, queue: &str, attempt: u32) -> Span {
    tracing::error_span!(SPAN, id, r#type = job_type, queue, attempt,)
}

/// Jobs a dispatch stored, with the ids the store gave them.
pub(crate) fn dispatched(ids: &[JobId], jobs: &[NewJob]) {
    if !tracing::enabled!(target: "hopper::events", tracing::Level::INFO) {
        return;
    }
    for (id, job) in ids.iter().zip(jobs) {
        span(*id, &job.job_type, &job.queue, 0).in_scope(|| {
            tracing::info!(
                target: "hopper::events",
                available_at = %job.available_at,
                priority = job.priority,
                "job dispatched"
            );
        });
    }
}

/// A run asked to run later, at `at`, using no attempt.
pub(crate) fn snoozed(duration: Duration, at: DateTime<Utc>) {
    tracing::info!(
        target: "hopper::events",
        duration_ms = millis(duration),
        %at,
        "job snoozed"
    );
}

/// A run was stopped because its job was cancelled.
pub(crate) fn run_cancelled(duration: Duration) {
    tracing::info!(
        target: "hopper::events",
        duration_ms = millis(duration),
        "running job cancelled"
    );
}

/// A run began (called inside the run's span).
pub(crate) fn started() {
    tracing::info!(target: "hopper::events", "job started");
}

/// A run was cut off because its claim was lost: the database handed its
/// job to someone else (inside the run's span).
pub(crate) fn claim_lost() {
    tracing::warn!(
        target: "hopper::events",
        "claim lost (its lease ran out and the job was rescued): run cancelled, its outcome dropped"
    );
}

/// A run finished its job (inside the run's span).
pub(crate) fn finished(duration: Duration) {
    tracing::info!(target: "hopper::events", duration_ms = millis(duration), "job finished");
}

/// A run failed and its job will be tried again (inside the run's span).
pub(crate) fn retrying(duration: Duration, error: &str, delay: Duration, at: DateTime<Utc>) {
    tracing::warn!(
        target: "hopper::events",
        duration_ms = millis(duration),
        error,
        delay_ms = millis(delay),
        retry_at = %at,
        "job failed; will retry"
    );
}

/// A run failed its job for good (inside the run's span).
pub(crate) fn failed(duration: Duration, error: &str) {
    tracing::error!(
        target: "hopper::events",
        duration_ms = millis(duration),
        error,
        "job failed for good"
    );
}

/// A job whose worker's lease ran out was put back (or failed, on its last
/// attempt). `job` is the job as it is after the rescue; `worker` held it.
pub(crate) fn rescued(job: &JobRecord) {
    span(job.id, &job.job_type, &job.queue, job.attempts).in_scope(|| {
        tracing::warn!(
            target: "hopper::events",
            state = %job.state,
            "job rescued from a worker that stopped heartbeating"
        );
    });
}

/// A pending job was cancelled.
pub(crate) fn cancelled(job: &JobRecord) {
    span(job.id, &job.job_type, &job.queue, job.attempts).in_scope(|| {
        tracing::info!(target: "hopper::events", "job cancelled");
    });
}

/// An application hook returned an error or panicked (inside the run's span);
/// the job's outcome stands.
pub(crate) fn hook_failed(hook: &str, error: &str) {
    tracing::warn!(target: "hopper::events", hook, error, "job hook failed");
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
