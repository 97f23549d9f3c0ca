//! The executor: one job's task, with everything inside it (decoding, the
//! handler, its timeout, the retry delay, metrics, hooks) under one panic
//! guard, so a run always ends with an outcome unless it is cut off.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Shared;
use super::completer::Report;
use crate::hooks::{EventKind, JobEvent};
use crate::job::{JobContext, JobError};
use crate::panics::panic_message;
use crate::store::{ClaimedJob, Completion, Outcome};

/// The longest error message recorded for one attempt: longer ones are cut,
/// so one handler's error cannot make its completion too large to write.
pub(super) const MAX_ERROR_BYTES: usize = 16 * 1024;

/// How long a job claimed ahead runs before its start is reported: a run
/// that ends sooner is recorded by its outcome alone, which spares a short
/// job's start mark; one that runs longer is recorded as started with the
/// completer's next write.
pub(super) const REPORT_START_AFTER: Duration = Duration::from_millis(5);

/// Runs one claimed job to its outcome under `token`, which its claim's
/// loss or the shutdown deadline cancels. The start of a job claimed ahead
/// is reported once it has run [`REPORT_START_AFTER`] (from then on a
/// rescue counts its attempt; a job claimed to start at once counts from
/// its claim), and a panic anywhere in the task still ends in an outcome: a
/// failed attempt, as a panicking handler's is.
/// `None` when the run never started or was cut off, because its claim was
/// lost or the shutdown deadline passed: no outcome is written from here.
pub(super) async fn execute(
    shared: &Shared,
    job: ClaimedJob,
    token: CancellationToken,
    reports: &mpsc::Sender<Report>,
) -> Option<Completion> {
    let claim = job.claim();
    // A claim lost while its job waited in the buffer must not start; a job
    // cancelled meanwhile ends cancelled without starting.
    if token.is_cancelled() {
        return shared.claims.cancel_requested(claim).then_some(Completion {
            claim,
            attempt: job.attempt,
            outcome: Outcome::Cancelled,
        });
    }
    let (attempt, max_attempts, counted) = (job.attempt, job.max_attempts, job.run_started);
    let run = AssertUnwindSafe(run(shared, job, token)).catch_unwind();
    tokio::pin!(run);
    let ended = if counted {
        run.await
    } else if let std::task::Poll::Ready(ended) = futures::poll!(&mut run) {
        // Done at its first poll: no start to report, no timer to set.
        ended
    } else {
        tokio::select! {
            biased;
            ended = &mut run => ended,
            () = tokio::time::sleep(REPORT_START_AFTER) => {
                // Claimed ahead: its attempt counts once this start is recorded.
                // The completer outlives every job task, so this only fails if it panicked.
                let _ = reports.send(Report::Started(claim)).await;
                run.await
            }
        }
    };
    match ended {
        Ok(completion) => completion,
        Err(panic) => {
            let error = bounded(&format!(
                "panicked outside the handler: {}",
                panic_message(panic.as_ref())
            ));
            tracing::error!(id = claim.id, attempt, %error, "a job's task panicked");
            let outcome = if attempt >= max_attempts {
                Outcome::Failed { error }
            } else {
                Outcome::Retry {
                    at: shared.hopper.now(),
                    error,
                }
            };
            Some(Completion {
                claim,
                attempt,
                outcome,
            })
        }
    }
}

/// `message`, cut to at most [`MAX_ERROR_BYTES`] on a character boundary.
pub(super) fn bounded(message: &str) -> String {
    if message.len() <= MAX_ERROR_BYTES {
        return message.to_owned();
    }
    let note = format!(" … ({} bytes cut)", message.len());
    let mut end = MAX_ERROR_BYTES - note.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{note}", &message[..end])
}

/// Runs one claimed job under `token`, which the shutdown deadline and the
/// loss of its claim cancel; `None` if either cut it off.
async fn run(shared: &Shared, job: ClaimedJob, token: CancellationToken) -> Option<Completion> {
    let span = crate::events::span(job.id, &job.job_type, &job.queue, job.attempt);
    crate::trace::follow(&span, job.trace_context.as_deref());
    span.in_scope(crate::events::started);
    let started = Instant::now();
    let _busy = crate::metrics::busy();
    let registered = shared.hopper.registry().get(&job.job_type).cloned();
    // The run's own handle on its context: its output and latest progress.
    let ctx = JobContext::new(
        (job.id, job.attempt, job.max_attempts),
        &job.job_type,
        &job.queue,
        token.clone(),
        shared.hopper.shared_state().clone(),
    )
    .in_batch(job.batch)
    .linked(&shared.hopper, job.claim());
    let ended = match &registered {
        Err(unknown) => Ended::Ran(Err(JobError::permanent(unknown))),
        Ok(registered) => {
            let timeout = registered.timeout();
            let handler =
                AssertUnwindSafe(registered.clone().run(&job.payload, ctx.clone())).catch_unwind();
            let result = tokio::select! {
                biased;
                _ = token.cancelled() => None,
                result = tokio::time::timeout(timeout, handler).instrument(span.clone()) => Some(result),
            };
            match result {
                None if shared.claims.cancel_requested(job.claim()) => Ended::Cancelled,
                None => {
                    if !shared.stops.hard.is_cancelled() {
                        span.in_scope(crate::events::claim_lost);
                    }
                    return None;
                }
                Some(Err(_elapsed)) => {
                    token.cancel();
                    Ended::Ran(Err(JobError::retryable(format!(
                        "timed out after {timeout:?}"
                    ))))
                }
                Some(Ok(Err(panic))) => Ended::Ran(Err(JobError::retryable(format!(
                    "panicked: {}",
                    panic_message(panic.as_ref())
                )))),
                Some(Ok(Ok(result))) => Ended::Ran(result),
            }
        }
    };
    // The latest progress still waiting is written before the outcome, so
    // it is the one the job keeps (across a retry, too).
    if let Err(error) = ctx.flush_progress().await {
        span.in_scope(|| tracing::warn!(%error, "the run's last progress was not recorded"));
    }
    let elapsed = started.elapsed();
    let now = shared.hopper.now();
    let outcome = match ended {
        Ended::Cancelled => Outcome::Cancelled,
        Ended::Ran(Ok(())) => match ctx.take_output() {
            Some(output) => Outcome::FinishedWith { output },
            None => Outcome::Finished,
        },
        Ended::Ran(Err(error)) => match error.snoozed_for() {
            Some(delay) => Outcome::Snoozed {
                at: crate::clock::add(now, delay),
            },
            None if error.is_permanent() || job.attempt >= job.max_attempts => Outcome::Failed {
                error: bounded(error.message()),
            },
            None => {
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
                    error: bounded(error.message()),
                }
            }
        },
    };
    crate::metrics::ran(&job, &outcome, elapsed);
    match &outcome {
        Outcome::Finished | Outcome::FinishedWith { .. } => {
            span.in_scope(|| crate::events::finished(elapsed))
        }
        Outcome::Retry { .. } => {}
        Outcome::Failed { error } => span.in_scope(|| crate::events::failed(elapsed, error)),
        Outcome::Snoozed { at } => span.in_scope(|| crate::events::snoozed(elapsed, *at)),
        Outcome::Cancelled => span.in_scope(|| crate::events::run_cancelled(elapsed)),
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
        claim: job.claim(),
        attempt: job.attempt,
        outcome,
    })
}

/// How a run's handler ended, short of its outcome.
enum Ended {
    /// It returned (or panicked, or ran out of time: an error).
    Ran(crate::job::JobResult),
    /// It was stopped because someone cancelled the job.
    Cancelled,
}

/// What the hooks are told about a run that ended with `outcome`.
fn hook_event(shared: &Shared, job: &ClaimedJob, outcome: &Outcome, elapsed: Duration) -> JobEvent {
    let kind = match outcome {
        Outcome::Finished | Outcome::FinishedWith { .. } => EventKind::Finished,
        Outcome::Retry { .. } => EventKind::Retrying,
        Outcome::Failed { .. } => EventKind::Failed,
        Outcome::Snoozed { .. } => EventKind::Snoozed,
        Outcome::Cancelled => EventKind::Cancelled,
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
        Outcome::Finished | Outcome::FinishedWith { .. } => {}
        Outcome::Retry { at, error } => {
            event.error = Some(error.clone());
            event.retry_at = Some(*at);
        }
        Outcome::Failed { error } => event.error = Some(error.clone()),
        Outcome::Snoozed { at } => event.retry_at = Some(*at),
        Outcome::Cancelled => {}
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_are_cut_on_a_character_boundary_and_say_so() {
        assert_eq!(bounded("short"), "short");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_ERROR_BYTES, "{}", cut.len());
        assert!(cut.ends_with(&format!("({} bytes cut)", long.len())));
    }
}
