//! The executor: one job's task, with everything inside it (decoding, the
//! handler, its timeout, the retry delay, hooks) under one panic guard, so a
//! run always ends with an outcome.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::Instrument;

use super::Shared;
use crate::hooks::{EventKind, JobEvent};
use crate::job::{JobContext, JobError};
use crate::store::{ClaimedJob, Completion, Outcome};

/// Runs one claimed job; `None` if it was cut off by a hard stop (it is handed back).
pub(super) async fn run(shared: &Shared, job: ClaimedJob) -> Option<Completion> {
    let span = crate::events::span(job.id, &job.job_type, &job.queue, job.attempt);
    span.in_scope(crate::events::started);
    let started = Instant::now();
    let _busy = crate::metrics::busy();
    let registered = shared.hopper.registry().get(&job.job_type).cloned();
    let result = match &registered {
        Err(unknown) => Err(JobError::permanent(unknown)),
        Ok(registered) => {
            let token = shared.stops.hard.child_token();
            let ctx = JobContext::new(&job, token.clone(), shared.hopper.shared_state().clone());
            let timeout = registered.timeout();
            let handler =
                AssertUnwindSafe(registered.clone().run(&job.payload, ctx)).catch_unwind();
            let result = tokio::select! {
                biased;
                _ = shared.stops.hard.cancelled() => None,
                result = tokio::time::timeout(timeout, handler).instrument(span.clone()) => Some(result),
            };
            match result? {
                Err(_elapsed) => {
                    token.cancel();
                    Err(JobError::retryable(format!("timed out after {timeout:?}")))
                }
                Ok(Err(panic)) => Err(JobError::retryable(format!(
                    "panicked: {}",
                    panic_message(panic.as_ref())
                ))),
                Ok(Ok(result)) => result,
            }
        }
    };
    let elapsed = started.elapsed();
    let now = shared.hopper.now();
    let outcome = match result {
        Ok(()) => Outcome::Finished,
        Err(error) if error.is_permanent() || job.attempt >= job.max_attempts => Outcome::Failed {
            error: error.message().to_owned(),
        },
        Err(error) => {
            let delay = error.delay().unwrap_or_else(|| match &registered {
                Ok(registered) => registered.retry_delay(job.attempt),
                Err(_) => Duration::ZERO,
            });
            span.in_scope(|| {
                crate::events::retrying(
                    elapsed,
                    error.message(),
                    delay,
                    crate::clock::add(now, delay),
                )
            });
            Outcome::Retry {
                at: crate::clock::add(now, delay),
                error: error.message().to_owned(),
            }
        }
    };
    crate::metrics::ran(&job, &outcome, elapsed);
    match &outcome {
        Outcome::Finished => span.in_scope(|| crate::events::finished(elapsed)),
        Outcome::Retry { .. } => {}
        Outcome::Failed { error } => span.in_scope(|| crate::events::failed(elapsed, error)),
    }
    if !shared.config.hooks.0.is_empty() {
        let event = hook_event(shared, &job, &outcome, elapsed);
        let hooks = crate::hooks::call(&shared.config.hooks.0, &event).instrument(span.clone());
        // The outcome is decided: a hard stop abandons the hooks, not the job.
        tokio::select! {
            biased;
            () = hooks => {}
            _ = shared.stops.hard.cancelled() => {
                span.in_scope(|| crate::events::hook_failed("all", "abandoned at the shutdown deadline"));
            }
        }
    }
    Some(Completion {
        id: job.id,
        attempt: job.attempt,
        outcome,
    })
}

/// What the hooks are told about a run that ended with `outcome`.
fn hook_event(shared: &Shared, job: &ClaimedJob, outcome: &Outcome, elapsed: Duration) -> JobEvent {
    let kind = match outcome {
        Outcome::Finished => EventKind::Finished,
        Outcome::Retry { .. } => EventKind::Retrying,
        Outcome::Failed { .. } => EventKind::Failed,
    };
    let mut event = JobEvent::new(
        &shared.hopper,
        kind,
        job.id,
        &job.job_type,
        &job.queue,
        job.attempt,
        job.max_attempts,
        &job.payload,
    );
    event.duration = elapsed;
    match outcome {
        Outcome::Finished => {}
        Outcome::Retry { at, error } => {
            event.error = Some(error.clone());
            event.retry_at = Some(*at);
        }
        Outcome::Failed { error } => event.error = Some(error.clone()),
    }
    event
}

/// The text a panic was raised with.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}
