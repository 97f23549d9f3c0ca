//! Sequences as the store keeps them: jobs sharing a sequence key run one
//! at a time, in the order they were dispatched, built on the same edges
//! and release step as workflows ([`super::workflows`]).
//!
//! The `sequences` table holds each key's last job. A dispatch locks its
//! key's row, then the last job's row, and reads its state: a job still
//! pending or running (or one that failed and holds the sequence) becomes
//! the new job's one dependency, and the new job waits; otherwise the new
//! job is due as usual. Either way it becomes the key's last job. Holding
//! the last job's row while the edge is written means its ending, if it
//! comes now, is recorded after the edge exists, so the release step sees
//! both.
//!
//! Every job of a sequence is stored with `has_dependents` set, so the
//! ending of each is recorded whether or not a later job waits on it yet:
//! the worker that ran it releases what waits without asking first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{NewJob, StoreError, WAITING_UNTIL};
use crate::job::{JobId, JobState};

/// The longest sequence key, in characters (every database stores it
/// whole as a primary key).
///
/// ```
/// assert_eq!(hopper::store::MAX_SEQUENCE_KEY, 255);
/// ```
pub const MAX_SEQUENCE_KEY: usize = 255;

/// A job's place in a sequence: the key it shares with the jobs it runs
/// after, and what its failure does to the jobs dispatched after it.
///
/// ```
/// let seq = hopper::store::Sequence::new("customer:42");
/// assert!(!seq.continue_on_failure);
/// assert!(seq.continue_on_failure().continue_on_failure);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// The sequence key: jobs sharing it run one at a time in dispatch order.
    pub key: String,
    /// Whether the next job runs when this one fails for good or is
    /// cancelled (`false`: the sequence holds until this job is retried
    /// and finishes, or the waiting job is released by hand).
    pub continue_on_failure: bool,
}

impl Sequence {
    /// A place in sequence `key` that holds the sequence if the job fails.
    ///
    /// ```
    /// assert_eq!(hopper::store::Sequence::new("k").key, "k");
    /// ```
    pub fn new(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            continue_on_failure: false,
        }
    }

    /// Lets the sequence go on past this job if it fails for good or is
    /// cancelled.
    ///
    /// ```
    /// assert!(hopper::store::Sequence::new("k").continue_on_failure().continue_on_failure);
    /// ```
    pub fn continue_on_failure(mut self) -> Self {
        self.continue_on_failure = true;
        self
    }
}

/// A sequence's last job as its dispatch finds it, the key's row held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tail {
    pub(crate) job: JobId,
    pub(crate) continue_on_failure: bool,
}

/// The reads and writes of dispatching jobs into sequences, in the
/// dispatch's transaction.
pub(crate) trait SequenceTx {
    /// Locks sequence `key`'s row (creating it if new): its last job.
    async fn lock_sequence(&mut self, key: &str) -> Result<Option<Tail>, StoreError>;

    /// Locks job `id`'s row: its state, if the job still exists.
    async fn lock_job(&mut self, id: JobId) -> Result<Option<JobState>, StoreError>;

    /// Inserts `job` as a dispatch does (its sequence aside); its id.
    async fn insert(&mut self, job: &NewJob) -> Result<JobId, StoreError>;

    /// Marks job `id` as one others may depend on, waiting on `waiting_on` jobs.
    async fn depend(&mut self, id: JobId, waiting_on: i64) -> Result<(), StoreError>;

    /// Records that job `id` waits on `dependency` in sequence `key`: any
    /// outcome of `dependency` satisfies it with `any_outcome`; otherwise a
    /// finish does, and a failure or cancellation holds it.
    async fn add_edge(
        &mut self,
        dependency: JobId,
        id: JobId,
        key: &str,
        any_outcome: bool,
    ) -> Result<(), StoreError>;

    /// Records `tail` as sequence `key`'s last job.
    async fn set_tail(&mut self, key: &str, tail: Tail) -> Result<(), StoreError>;
}

/// Refuses a job whose sequence cannot be kept: an empty key or one over
/// [`MAX_SEQUENCE_KEY`] characters or holding a NUL, or a sequence with a
/// unique key (a dispatch that stores nothing has no place in the line) or
/// a partition key (a waiting job's key would not be served when it is
/// released).
///
/// ```
/// # let mut job = hopper::store::NewJob { job_type: "t".into(), queue: "default".into(), payload: "null".into(), priority: 0, max_attempts: 1, available_at: chrono::Utc::now(), created_at: chrono::Utc::now(), unique_key: None, partition_key: None, sequence: None, trace_context: None };
/// job.sequence = Some(hopper::store::Sequence::new("customer:42"));
/// assert!(hopper::store::sequences::check(&job).is_ok());
/// job.unique_key = Some("once".into());
/// assert!(hopper::store::sequences::check(&job).is_err());
/// ```
pub fn check(job: &NewJob) -> Result<(), StoreError> {
    let Some(sequence) = &job.sequence else {
        return Ok(());
    };
    let invalid = |reason: &str| {
        Err(StoreError::InvalidSequence(format!(
            "a job of type {:?} in sequence {:?}: {reason}",
            job.job_type, sequence.key
        )))
    };
    let length = sequence.key.chars().count();
    if length == 0 || length > MAX_SEQUENCE_KEY {
        return invalid("a sequence key has 1 to 255 characters");
    }
    if sequence.key.contains('\0') {
        return invalid("a sequence key cannot hold a NUL character");
    }
    if job.unique_key.is_some() {
        return invalid("a job in a sequence cannot have a unique key");
    }
    if job.partition_key.is_some() {
        return invalid("a job in a sequence cannot have a partition key");
    }
    Ok(())
}

/// Inserts `jobs` on `tx`, those with a sequence each behind its key's
/// last job; their ids in order. The keys' rows are locked in key order
/// first, so two dispatches sharing keys cannot deadlock.
pub(crate) async fn insert(
    tx: &mut impl SequenceTx,
    jobs: &[NewJob],
) -> Result<Vec<JobId>, StoreError> {
    let mut tails: BTreeMap<&str, Option<Tail>> = BTreeMap::new();
    for job in jobs {
        check(job)?;
        if let Some(sequence) = &job.sequence {
            tails.insert(&sequence.key, None);
        }
    }
    for (key, tail) in &mut tails {
        *tail = tx.lock_sequence(key).await?;
    }
    let mut ids = Vec::with_capacity(jobs.len());
    for job in jobs {
        let Some(sequence) = &job.sequence else {
            ids.push(tx.insert(job).await?);
            continue;
        };
        let tail = tails.get(sequence.key.as_str()).copied().flatten();
        let waits_on = match tail {
            Some(tail) => waits_on(tail, tx.lock_job(tail.job).await?),
            None => None,
        };
        let id = match waits_on {
            Some(tail) => {
                let mut waiting = job.clone();
                waiting.available_at = WAITING_UNTIL;
                let id = tx.insert(&waiting).await?;
                tx.depend(id, 1).await?;
                tx.add_edge(tail.job, id, &sequence.key, tail.continue_on_failure)
                    .await?;
                id
            }
            None => {
                let id = tx.insert(job).await?;
                tx.depend(id, 0).await?;
                id
            }
        };
        let tail = Tail {
            job: id,
            continue_on_failure: sequence.continue_on_failure,
        };
        tx.set_tail(&sequence.key, tail).await?;
        tails.insert(&sequence.key, Some(tail));
        ids.push(id);
    }
    Ok(ids)
}

/// Whether a new job waits on its sequence's last job, found in `state`
/// (`None`: gone): while it is live, or after it failed or was cancelled
/// unless it lets the sequence go on.
fn waits_on(tail: Tail, state: Option<JobState>) -> Option<Tail> {
    match state? {
        JobState::Finished => None,
        JobState::Failed | JobState::Cancelled if tail.continue_on_failure => None,
        _ => Some(tail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_job_waits_on_a_live_or_holding_last_job_only() {
        let holds = Tail {
            job: 1,
            continue_on_failure: false,
        };
        let goes_on = Tail {
            continue_on_failure: true,
            ..holds
        };
        for state in [JobState::Pending, JobState::Started] {
            assert_eq!(waits_on(holds, Some(state)), Some(holds));
            assert_eq!(waits_on(goes_on, Some(state)), Some(goes_on));
        }
        for state in [JobState::Failed, JobState::Cancelled] {
            assert_eq!(waits_on(holds, Some(state)), Some(holds));
            assert_eq!(waits_on(goes_on, Some(state)), None);
        }
        assert_eq!(waits_on(holds, Some(JobState::Finished)), None);
        assert_eq!(waits_on(holds, None), None);
    }
}
