//! The PostgreSQL answers to a sequence dispatch's reads and writes
//! ([`SequenceTx`]), in the dispatch's transaction: a key's row is taken
//! (created if new) with a locking upsert, and its last job with
//! `FOR UPDATE`, so dispatches of one key line up, and a last job ending
//! meanwhile ends after the edge to it is written.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::insert_one;
use crate::job::{JobId, JobState};
use crate::store::rows::state_of;
use crate::store::{NewJob, SequenceTx, StoreError, Tail};

/// Locks sequence $1's row, creating it (last job 0: none) if new: its last
/// job and whether that job lets the sequence go on after a failure.
const LOCK_SEQUENCE: &str = "INSERT INTO sequences (name, last_job) VALUES ($1, 0) \
     ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name \
     RETURNING last_job, continue_on_failure";

/// Locks job $1's row: its state.
const LOCK_JOB: &str = "SELECT state FROM jobs WHERE id = $1 FOR UPDATE";

/// Marks job $1 as one others may depend on, waiting on $2 jobs.
const DEPEND: &str = "UPDATE jobs SET has_dependents = TRUE, waiting_on = $2 WHERE id = $1";

/// Records that job $2 waits on job $1 in sequence $3; any outcome
/// satisfies it with $4, a failure holds it otherwise.
const ADD_EDGE: &str = "INSERT INTO job_deps (depends_on, job_id, step, any_outcome, holds) \
     VALUES ($1, $2, $3, $4, NOT $4)";

/// Records job $2 as sequence $1's last job, going on after a failure with $3.
const SET_TAIL: &str =
    "UPDATE sequences SET last_job = $2, continue_on_failure = $3 WHERE name = $1";

/// Makes the pending job $1, if waiting, due at $2 with nothing to wait on: its queue.
const SKIP_WAIT: &str = "UPDATE jobs SET waiting_on = 0, available_at = $2 \
     WHERE id = $1 AND state = 'pending' AND waiting_on > 0 RETURNING queue";

/// Forgets the edges into job $1.
const FORGET_EDGES: &str = "DELETE FROM job_deps WHERE job_id = $1";

/// Forgets up to $1 sequences whose last job is gone, skipping rows a dispatch holds.
pub(super) const PRUNE: &str = "DELETE FROM sequences WHERE name IN (SELECT name FROM sequences AS s \
         WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = s.last_job) \
         LIMIT $1 FOR UPDATE SKIP LOCKED) \
       AND NOT EXISTS (SELECT 1 FROM jobs WHERE id = sequences.last_job)";

/// A sequence dispatch's steps on a connection in a transaction.
pub(super) struct PgSequence<'c>(pub(super) &'c mut PgConnection);

impl SequenceTx for PgSequence<'_> {
    async fn lock_sequence(&mut self, key: &str) -> Result<Option<Tail>, StoreError> {
        let (job, continue_on_failure): (JobId, bool) = sqlx::query_as(LOCK_SEQUENCE)
            .bind(key)
            .fetch_one(&mut *self.0)
            .await?;
        Ok((job != 0).then_some(Tail {
            job,
            continue_on_failure,
        }))
    }

    async fn lock_job(&mut self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let state: Option<String> = sqlx::query_scalar(LOCK_JOB)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        state.map(|state| state_of(id, &state)).transpose()
    }

    async fn insert(&mut self, job: &NewJob) -> Result<JobId, StoreError> {
        insert_one(self.0, job, super::sql::insert_job()).await
    }

    async fn depend(&mut self, id: JobId, waiting_on: i64) -> Result<(), StoreError> {
        sqlx::query(DEPEND)
            .bind(id)
            .bind(i32::try_from(waiting_on).unwrap_or(i32::MAX))
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn add_edge(
        &mut self,
        dependency: JobId,
        id: JobId,
        key: &str,
        any_outcome: bool,
    ) -> Result<(), StoreError> {
        sqlx::query(ADD_EDGE)
            .bind(dependency)
            .bind(id)
            .bind(key)
            .bind(any_outcome)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn set_tail(&mut self, key: &str, tail: Tail) -> Result<(), StoreError> {
        sqlx::query(SET_TAIL)
            .bind(key)
            .bind(tail.job)
            .bind(tail.continue_on_failure)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

/// Stops the pending job `id` waiting, due at `now`, in `conn`'s open
/// transaction ([`crate::store::Store::skip_wait`]).
pub(super) async fn skip_wait(
    conn: &mut PgConnection,
    id: JobId,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let queue: Option<String> = sqlx::query_scalar(SKIP_WAIT)
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    if queue.is_some() {
        sqlx::query(FORGET_EDGES)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(queue)
}
