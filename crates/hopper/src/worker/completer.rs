//! The completer: records, in batches, that runs started and how they
//! ended. Failed writes are retried; a completion the database refuses on
//! its own (while others beside it go through) is shortened, then set aside
//! for the rescuer, so it never holds up the rest.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::{COMPLETION_BATCH, Shared};
use crate::service::DATABASE_ERRORS;
use crate::store::{Claim, CompleteRequest, Completion, Outcome, StoreError};

/// What a job's task tells the completer.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Report {
    /// The run's handler is starting: from now on a rescue counts its attempt.
    Started(Claim),
    /// The run ended with this outcome; whether its job is in a batch or
    /// others may wait on it (its ending is to be settled).
    Ended(Completion, bool),
}

/// Failed writes of a batch of several outcomes before they are written one
/// by one, to find one the database refuses.
const ISOLATE_AFTER: u32 = 3;

/// The longest error kept when an outcome the database refused is written
/// again in short.
const SHORT_ERROR_BYTES: usize = 1_024;

/// What waits to be written: start marks and outcomes.
#[derive(Debug, Default)]
struct Batch {
    started: Vec<Claim>,
    ended: Vec<Completion>,
    /// Whether a job of `ended` is in a batch or others may wait on it.
    settles: bool,
}

impl Batch {
    fn add(&mut self, report: Report) {
        match report {
            Report::Started(claim) => self.started.push(claim),
            Report::Ended(completion, settles) => {
                self.ended.push(completion);
                self.settles |= settles;
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.started.is_empty() && self.ended.is_empty()
    }

    /// Drops the start marks of runs whose outcome is here too: the outcome
    /// ends the claim, so the mark would change nothing.
    fn drop_ended_marks(&mut self) {
        if self.started.is_empty() || self.ended.is_empty() {
            return;
        }
        let ended: HashSet<Claim> = self.ended.iter().map(|c| c.claim).collect();
        self.started.retain(|claim| !ended.contains(claim));
    }
}

/// Writes what the pool's job tasks report until every sender is gone;
/// returns how many outcomes it gave up on at stop.
pub(super) async fn run(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Report>) -> usize {
    let mut given_up = 0;
    let mut batch = Batch::default();
    let mut reports = Vec::with_capacity(COMPLETION_BATCH);
    let mut failures = 0u32;
    loop {
        if batch.is_empty() {
            if receiver.recv_many(&mut reports, COMPLETION_BATCH).await == 0 {
                break;
            }
        } else {
            // Reports that came while a write was failing join the batch: with
            // others beside it, an outcome the database refuses on its own
            // shows itself.
            while reports.len() < COMPLETION_BATCH {
                match receiver.try_recv() {
                    Ok(report) => reports.push(report),
                    Err(_) => break,
                }
            }
        }
        for report in reports.drain(..) {
            batch.add(report);
        }
        batch.drop_ended_marks();
        match write(&shared, &mut batch, failures).await {
            Ok(()) => failures = 0,
            Err(error) => {
                failures += 1;
                let wait = DATABASE_ERRORS.delay(failures);
                let jobs = batch.started.len() + batch.ended.len();
                if shared.stops.give_up.is_cancelled() {
                    tracing::error!(
                        %error, jobs,
                        "giving up recording job starts and outcomes at stop; the rescuer will return these jobs"
                    );
                    given_up += give_up(&shared, &mut batch);
                    continue;
                }
                tracing::warn!(%error, jobs, retry_in = ?wait, "recording job outcomes failed");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shared.stops.give_up.cancelled() => {}
                }
            }
        }
    }
    given_up
}

/// Writes the batch's start marks, then its outcomes, emptying what was
/// written. After [`ISOLATE_AFTER`] failures in a row, several outcomes are
/// written one by one: when some go through and others do not, the others
/// are refused for what they hold, and are written again with a short error
/// or set aside.
async fn write(shared: &Shared, batch: &mut Batch, failures: u32) -> Result<(), StoreError> {
    let store = shared.hopper.store();
    if !batch.started.is_empty() {
        store.mark_started(&batch.started).await?;
        batch.started.clear();
    }
    if batch.ended.is_empty() {
        return Ok(());
    }
    shared.claims.ending(batch.ended.iter().map(|c| c.claim));
    let now = shared.hopper.now();
    let written = if failures >= ISOLATE_AFTER && batch.ended.len() > 1 {
        one_by_one(shared, &batch.ended).await
    } else {
        store
            .complete(CompleteRequest {
                completions: &batch.ended,
                ended_at: now,
            })
            .await
    }?;
    let dropped = batch.ended.len() as u64 - written.min(batch.ended.len() as u64);
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "outcomes not recorded: those jobs' claims had been lost (rescued or released)"
        );
    }
    let ended = std::mem::take(&mut batch.ended);
    let settles = std::mem::take(&mut batch.settles);
    shared.claims.finished(ended.iter().map(|c| c.claim));
    // Those waiting on these jobs in this process look at them now.
    shared.hopper.waiters().ended(
        ended
            .iter()
            .filter(|c| !matches!(c.outcome, Outcome::Retry { .. } | Outcome::Snoozed { .. }))
            .map(|c| c.claim.id),
    );
    shared.bump();
    // A queue with a concurrency limit may have found itself full while
    // these jobs were still recorded as running: its producer looks again
    // now, not a poll interval later.
    super::producer::wake_all(shared);
    if settles {
        // Jobs waiting on these may be due now, and the batches they
        // ended in may have callbacks due.
        shared.batches_ended.notify_one();
    }
    Ok(())
}

/// One completion as a request of its own, ended at `ended_at`.
fn alone(completion: &Completion, ended_at: DateTime<Utc>) -> CompleteRequest<'_> {
    CompleteRequest {
        completions: std::slice::from_ref(completion),
        ended_at,
    }
}

/// Writes `ended` one outcome at a time; returns how many applied, or the
/// error when none went through (the database is away, not one row). An
/// outcome refused while others went through is written again with its
/// error cut short, and if that too is refused, set aside: its claim is no
/// longer renewed, so its lease runs out and the rescuer hands the job out.
async fn one_by_one(shared: &Shared, ended: &[Completion]) -> Result<u64, StoreError> {
    let store = shared.hopper.store();
    let now = shared.hopper.now();
    let mut applied = 0;
    let mut refused = Vec::new();
    let mut last_error = None;
    for completion in ended {
        match store.complete(alone(completion, now)).await {
            Ok(n) => applied += n,
            Err(error) => {
                refused.push(completion);
                last_error = Some(error);
            }
        }
    }
    if let Some(error) = last_error.filter(|_| refused.len() == ended.len()) {
        return Err(error);
    }
    for completion in refused {
        let short = shortened(completion);
        match store.complete(alone(&short, now)).await {
            Ok(n) => {
                tracing::warn!(
                    id = completion.claim.id,
                    "an outcome the database refused was recorded with its error cut short"
                );
                applied += n;
            }
            Err(error) => {
                tracing::error!(
                    id = completion.claim.id, %error,
                    "the database refuses this job's outcome; its lease will run out and the rescuer will hand it out again"
                );
                shared.claims.set_aside(completion.claim);
            }
        }
    }
    Ok(applied)
}

/// `completion` with its error cut to [`SHORT_ERROR_BYTES`].
fn shortened(completion: &Completion) -> Completion {
    let cut = |error: &str| {
        let mut end = error.len().min(SHORT_ERROR_BYTES);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{} … (error cut short: the database refused it whole)",
            &error[..end]
        )
    };
    let outcome = match &completion.outcome {
        Outcome::Finished => Outcome::Finished,
        Outcome::FinishedWith { output } => Outcome::FinishedWith {
            output: output.clone(),
        },
        Outcome::Retry { at, error } => Outcome::Retry {
            at: *at,
            error: cut(error),
        },
        Outcome::Failed { error } => Outcome::Failed { error: cut(error) },
        Outcome::Snoozed { at } => Outcome::Snoozed { at: *at },
        Outcome::Cancelled => Outcome::Cancelled,
    };
    Completion {
        outcome,
        ..completion.clone()
    }
}

/// Gives up on writing the batch (past the shutdown deadline, with the
/// database away): its jobs come back through the rescuer. Returns how many
/// outcomes it dropped.
fn give_up(shared: &Shared, batch: &mut Batch) -> usize {
    batch.started.clear();
    batch.settles = false;
    let ended = std::mem::take(&mut batch.ended);
    shared.claims.finished(ended.iter().map(|c| c.claim));
    shared.bump();
    ended.len()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::Hopper;
    use crate::job::{JobId, JobState};
    use crate::store::{ClaimRequest, ClaimedJob, NewJob};
    use crate::worker::WorkerConfig;

    /// Dispatches `n` jobs and claims them for `shared`'s pool, as its
    /// producer would.
    async fn claimed(shared: &Shared, n: usize) -> Vec<Claim> {
        let now = shared.hopper.now();
        let jobs: Vec<NewJob> = (0..n).map(|_| NewJob::ping("default", now)).collect();
        let store = shared.hopper.store();
        store.insert(&jobs).await.unwrap();
        shared.claims.reserve(n);
        let claimed = store
            .claim(ClaimRequest {
                queue: "default",
                worker: &shared.worker_id,
                limit: u32::try_from(n).unwrap(),
                start_now: 0,
                token: crate::store::new_claim_token(),
                due_by: now,
                lease: shared.config.lease,
                now: None,
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), n);
        shared
            .claims
            .claimed(claimed.iter().map(ClaimedJob::claim), n, &shared.stops.hard);
        claimed.iter().map(ClaimedJob::claim).collect()
    }

    fn finished(claim: Claim) -> Report {
        Report::Ended(
            Completion {
                claim,
                attempt: 1,
                outcome: Outcome::Finished,
            },
            false,
        )
    }

    /// A pool's shared state over an SQLite file in `dir`, and the file.
    async fn on_file(dir: &tempfile::TempDir) -> (Arc<Shared>, std::path::PathBuf) {
        let path = dir.path().join("jobs.db");
        let url = format!("sqlite://{}", path.display());
        let hopper = Hopper::builder().connect(&url).await.unwrap();
        let (shared, _) = Shared::new(hopper, WorkerConfig::new(1).worker_id("w"));
        (Arc::new(shared), path)
    }

    async fn state(shared: &Shared, id: JobId) -> JobState {
        shared.hopper.store().get(id).await.unwrap().unwrap().state
    }

    #[tokio::test]
    async fn outcomes_waiting_together_are_written_in_batches_of_at_most_the_limit() {
        let hopper = Hopper::builder().connect("sqlite::memory:").await.unwrap();
        let (shared, _) = Shared::new(hopper, WorkerConfig::new(1).worker_id("w"));
        let shared = Arc::new(shared);
        let ids = claimed(&shared, COMPLETION_BATCH + 1).await;
        let (sender, receiver) = mpsc::channel(COMPLETION_BATCH * 2);
        for id in &ids {
            sender.send(finished(*id)).await.unwrap();
        }
        drop(sender);
        let activity = shared.activity.subscribe();
        run(shared.clone(), receiver).await;
        // One bump per batch written.
        assert_eq!(*activity.borrow(), 2);
        assert_eq!(shared.claims.in_flight(), 0);
        assert!(shared.claims.snapshot().is_empty());
        for claim in [ids[0], ids[COMPLETION_BATCH]] {
            assert_eq!(state(&shared, claim.id).await, JobState::Finished);
        }
    }

    #[tokio::test]
    async fn a_failed_write_is_retried_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, path) = on_file(&dir).await;
        let ids = claimed(&shared, 2).await;
        let outside = rusqlite::Connection::open(&path).unwrap();
        outside
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let (sender, receiver) = mpsc::channel(8);
        let mut activity = shared.activity.subscribe();
        sender.send(finished(ids[0])).await.unwrap();
        sender.send(finished(ids[1])).await.unwrap();
        let completer = tokio::spawn(run(shared.clone(), receiver));
        // At least the first write and its retry fail.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(shared.claims.in_flight(), 2);
        assert_eq!(state(&shared, ids[0].id).await, JobState::Started);
        outside.execute_batch("DROP TRIGGER refuse;").unwrap();
        tokio::time::timeout(Duration::from_secs(10), activity.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(shared.claims.in_flight(), 0);
        for claim in ids {
            assert_eq!(state(&shared, claim.id).await, JobState::Finished);
        }
        drop(sender);
        completer.await.unwrap();
    }

    #[tokio::test]
    async fn an_outcome_the_database_refuses_alone_does_not_hold_up_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let (shared, path) = on_file(&dir).await;
        let ids = claimed(&shared, 3).await;
        // The database refuses any write that would finish the middle job.
        let outside = rusqlite::Connection::open(&path).unwrap();
        outside
            .execute_batch(&format!(
                "CREATE TRIGGER refuse BEFORE UPDATE OF state ON jobs WHEN OLD.id = {} \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
                ids[1].id
            ))
            .unwrap();
        let (sender, receiver) = mpsc::channel(8);
        for claim in &ids {
            sender.send(finished(*claim)).await.unwrap();
        }
        drop(sender);
        tokio::time::timeout(Duration::from_secs(20), run(shared.clone(), receiver))
            .await
            .expect("the completer gets past the refused outcome");
        assert_eq!(state(&shared, ids[0].id).await, JobState::Finished);
        assert_eq!(state(&shared, ids[2].id).await, JobState::Finished);
        // Set aside: no longer renewed, so the rescuer will return it.
        assert_eq!(state(&shared, ids[1].id).await, JobState::Started);
        assert!(shared.claims.snapshot().is_empty());
        assert_eq!(shared.claims.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_start_mark_is_written_unless_the_outcome_came_with_it() {
        let hopper = Hopper::builder().connect("sqlite::memory:").await.unwrap();
        let (shared, _) = Shared::new(hopper, WorkerConfig::new(1).worker_id("w"));
        let shared = Arc::new(shared);
        let ids = claimed(&shared, 2).await;
        let mut batch = Batch::default();
        for report in [
            Report::Started(ids[0]),
            Report::Started(ids[1]),
            finished(ids[1]),
        ] {
            batch.add(report);
        }
        batch.drop_ended_marks();
        assert_eq!(batch.started, [ids[0]]);
        assert_eq!(batch.ended.len(), 1);
    }
}
