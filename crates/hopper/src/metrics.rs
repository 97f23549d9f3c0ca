//! Metrics: what the library counts, through the [`metrics`]
//! facade. Nothing is kept unless the application installs a recorder (an
//! exporter such as Prometheus); without one every call is a no-op.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `hopper_jobs_dispatched_total` | counter | `type`, `queue` |
//! | `hopper_jobs_finished_total` | counter | `type`, `queue` |
//! | `hopper_jobs_failed_total` | counter | `type`, `queue` |
//! | `hopper_jobs_retried_total` | counter | `type`, `queue` |
//! | `hopper_job_duration_seconds` | histogram | `type`, `queue` |
//! | `hopper_workers_busy` | gauge | |
//! | `hopper_worker_concurrency` | gauge | `queue` |

use std::time::Duration;

use crate::store::{ClaimedJob, NewJob, Outcome};

/// Jobs stored by a dispatch.
///
/// ```
/// assert_eq!(hopper::metrics::DISPATCHED, "hopper_jobs_dispatched_total");
/// ```
pub const DISPATCHED: &str = "hopper_jobs_dispatched_total";
/// Runs that finished their job.
///
/// ```
/// assert!(hopper::metrics::FINISHED.starts_with("hopper_"));
/// ```
pub const FINISHED: &str = "hopper_jobs_finished_total";
/// Runs that failed their job for good.
///
/// ```
/// assert!(hopper::metrics::FAILED.starts_with("hopper_"));
/// ```
pub const FAILED: &str = "hopper_jobs_failed_total";
/// Runs that failed and put their job back for another attempt.
///
/// ```
/// assert!(hopper::metrics::RETRIED.starts_with("hopper_"));
/// ```
pub const RETRIED: &str = "hopper_jobs_retried_total";
/// Runs whose handler asked to run later, using no attempt.
///
/// ```
/// assert_eq!(hopper::metrics::SNOOZED, "hopper_jobs_snoozed_total");
/// ```
pub const SNOOZED: &str = "hopper_jobs_snoozed_total";
/// Runs stopped because their job was cancelled while it ran.
///
/// ```
/// assert_eq!(hopper::metrics::CANCELLED, "hopper_jobs_cancelled_total");
/// ```
pub const CANCELLED: &str = "hopper_jobs_cancelled_total";
/// How long each run took, in seconds.
///
/// ```
/// assert!(hopper::metrics::DURATION.ends_with("_seconds"));
/// ```
pub const DURATION: &str = "hopper_job_duration_seconds";
/// Jobs running right now in this process.
///
/// ```
/// assert!(hopper::metrics::BUSY.starts_with("hopper_"));
/// ```
pub const BUSY: &str = "hopper_workers_busy";

/// How many jobs of each queue the worker pools in this process run at once,
/// as their autoscalers chose.
///
/// ```
/// assert_eq!(hopper::metrics::CONCURRENCY, "hopper_worker_concurrency");
/// ```
pub const CONCURRENCY: &str = "hopper_worker_concurrency";

/// Counts the jobs a dispatch stored.
pub(crate) fn dispatched(jobs: &[NewJob]) {
    // One increment per (type, queue): a bulk dispatch is mostly one pair.
    let mut pairs: Vec<(&str, &str, u64)> = Vec::new();
    for job in jobs {
        match pairs
            .iter_mut()
            .find(|(job_type, queue, _)| *job_type == job.job_type && *queue == job.queue)
        {
            Some((_, _, n)) => *n += 1,
            None => pairs.push((&job.job_type, &job.queue, 1)),
        }
    }
    for (job_type, queue, n) in pairs {
        ::metrics::counter!(DISPATCHED, "type" => job_type.to_owned(), "queue" => queue.to_owned())
            .increment(n);
    }
}

/// Marks one worker busy until the returned guard is dropped.
pub(crate) fn busy() -> Busy {
    ::metrics::gauge!(BUSY).increment(1.0);
    Busy
}

/// A worker counted busy; dropping it counts the worker free again.
pub(crate) struct Busy;

impl Drop for Busy {
    fn drop(&mut self) {
        ::metrics::gauge!(BUSY).decrement(1.0);
    }
}

/// Records how one run ended and how long it took.
pub(crate) fn ran(job: &ClaimedJob, outcome: &Outcome, elapsed: Duration) {
    let labels = [("type", job.job_type.clone()), ("queue", job.queue.clone())];
    let name = match outcome {
        Outcome::Finished | Outcome::FinishedWith { .. } => FINISHED,
        Outcome::Retry { .. } => RETRIED,
        Outcome::Failed { .. } => FAILED,
        Outcome::Snoozed { .. } => SNOOZED,
        Outcome::Cancelled => CANCELLED,
    };
    ::metrics::counter!(name, &labels).increment(1);
    ::metrics::histogram!(DURATION, &labels).record(elapsed.as_secs_f64());
}

/// Moves a queue's concurrency in this process from `old` to `new`.
pub(crate) fn concurrency_changed(queue: &str, old: usize, new: usize) {
    let gauge = ::metrics::gauge!(CONCURRENCY, "queue" => queue.to_owned());
    if new >= old {
        gauge.increment((new - old) as f64);
    } else {
        gauge.decrement((old - new) as f64);
    }
}
