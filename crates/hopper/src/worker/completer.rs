//! The completer: writes job outcomes in batches, retrying failed writes.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{COMPLETION_BATCH, Shared};
use crate::service::DATABASE_ERRORS;
use crate::store::Completion;

/// Failed writes of one batch after which, past the shutdown deadline, the
/// completer gives the batch up.
const ATTEMPTS_PAST_DEADLINE: u32 = 5;

/// Writes outcomes in batches: whatever has arrived since the last write, in
/// one transaction, until every sender is gone.
pub(super) async fn run(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Completion>) {
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    while receiver.recv_many(&mut batch, COMPLETION_BATCH).await > 0 {
        write(&shared, &batch).await;
        shared.claims.finished(
            batch
                .iter()
                .map(|completion| (completion.id, completion.attempt)),
        );
        batch.clear();
        shared.bump();
    }
}

/// Writes one batch, retrying after errors; past the shutdown deadline it
/// gives up after a few tries (the leases expire and the jobs run again).
async fn write(shared: &Shared, batch: &[Completion]) {
    let mut failures = 0u32;
    loop {
        let now = shared.hopper.now();
        match shared
            .hopper
            .store()
            .complete(&shared.worker_id, batch, now)
            .await
        {
            Ok(applied) => {
                let lost = batch.len() as u64 - applied.min(batch.len() as u64);
                if lost > 0 {
                    tracing::warn!(
                        lost,
                        "outcomes not recorded: those jobs' leases had expired and they were rescued"
                    );
                }
                return;
            }
            Err(error) => {
                failures += 1;
                let wait = DATABASE_ERRORS.delay(failures);
                tracing::warn!(%error, jobs = batch.len(), retry_in = ?wait, "recording job outcomes failed");
                if shared.stops.hard.is_cancelled() && failures >= ATTEMPTS_PAST_DEADLINE {
                    tracing::error!(
                        jobs = batch.len(),
                        "giving up recording outcomes; the rescuer will return these jobs"
                    );
                    return;
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::client::Hopper;
    use crate::job::{JobId, JobState};
    use crate::store::{ClaimRequest, NewJob, Outcome};
    use crate::worker::WorkerConfig;

    /// Dispatches `n` jobs and claims them for `shared`'s pool, as its
    /// producer would.
    async fn claimed(shared: &Shared, n: usize) -> Vec<JobId> {
        let now = shared.hopper.now();
        let jobs: Vec<NewJob> = (0..n)
            .map(|_| NewJob {
                job_type: "ping".into(),
                queue: "default".into(),
                payload: "null".into(),
                priority: 0,
                max_attempts: 3,
                available_at: now,
                created_at: now,
                unique_key: None,
            })
            .collect();
        let store = shared.hopper.store();
        store.insert(&jobs).await.unwrap();
        shared.claims.reserve(n);
        let claimed = store
            .claim(ClaimRequest {
                queue: "default",
                worker: &shared.worker_id,
                limit: u32::try_from(n).unwrap(),
                now,
                lease_until: shared.lease_until(),
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), n);
        shared
            .claims
            .claimed(claimed.iter().map(|job| (job.id, job.attempt)), n);
        claimed.iter().map(|job| job.id).collect()
    }

    fn finished(id: JobId) -> Completion {
        Completion {
            id,
            attempt: 1,
            outcome: Outcome::Finished,
        }
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
        for id in [ids[0], ids[COMPLETION_BATCH]] {
            assert_eq!(state(&shared, id).await, JobState::Finished);
        }
    }

    #[tokio::test]
    async fn a_failed_write_is_retried_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let url = format!("sqlite://{}", path.display());
        let hopper = Hopper::builder().connect(&url).await.unwrap();
        let (shared, _) = Shared::new(hopper, WorkerConfig::new(1).worker_id("w"));
        let shared = Arc::new(shared);
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
        assert_eq!(state(&shared, ids[0]).await, JobState::Started);
        outside.execute_batch("DROP TRIGGER refuse;").unwrap();
        tokio::time::timeout(Duration::from_secs(10), activity.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(shared.claims.in_flight(), 0);
        for id in ids {
            assert_eq!(state(&shared, id).await, JobState::Finished);
        }
        drop(sender);
        completer.await.unwrap();
    }
}
