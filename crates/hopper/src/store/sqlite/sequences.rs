//! The SQLite answers to a sequence dispatch's reads and writes
//! ([`SequenceTx`]): synchronous calls inside the dispatch's transaction,
//! which holds the database's write lock, so no other process writes
//! between them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{insert_plain, state_of};
use crate::job::{JobId, JobState};
use crate::store::rows::micros;
use crate::store::{NewJob, SequenceTx, StoreError, Tail};

/// Sequence `?1`'s last job and whether it lets the sequence go on after a failure.
const TAIL: &str = "SELECT last_job, continue_on_failure FROM sequences WHERE name = ?1";

/// Job `?1`'s state.
const JOB_STATE: &str = "SELECT state FROM jobs WHERE id = ?1";

/// Marks job `?1` as one others may depend on, waiting on `?2` jobs.
const DEPEND: &str = "UPDATE jobs SET has_dependents = 1, waiting_on = ?2 WHERE id = ?1";

/// Records that job `?2` waits on job `?1` in sequence `?3`; any outcome
/// satisfies it with `?4`, a failure holds it otherwise.
const ADD_EDGE: &str = "INSERT INTO job_deps (depends_on, job_id, step, any_outcome, holds) \
    VALUES (?1, ?2, ?3, ?4, NOT ?4)";

/// Records job `?2` as sequence `?1`'s last job, going on after a failure with `?3`.
const SET_TAIL: &str = "INSERT INTO sequences (name, last_job, continue_on_failure) \
    VALUES (?1, ?2, ?3) ON CONFLICT (name) DO UPDATE \
    SET last_job = excluded.last_job, continue_on_failure = excluded.continue_on_failure";

/// Makes the pending job `?1`, if waiting, due at `?2` with nothing to wait on: its queue.
const SKIP_WAIT: &str = "UPDATE jobs SET waiting_on = 0, available_at = ?2 \
    WHERE id = ?1 AND state = 'pending' AND waiting_on > 0 RETURNING queue";

/// Forgets the edges into job `?1`.
const FORGET_EDGES: &str = "DELETE FROM job_deps WHERE job_id = ?1";

/// Forgets up to `?1` sequences whose last job is gone.
pub(super) const PRUNE: &str = "DELETE FROM sequences WHERE name IN (SELECT name FROM sequences AS s \
    WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = s.last_job) LIMIT ?1)";

/// A sequence dispatch's steps on the connection's open transaction.
pub(super) struct SqliteSequence<'c>(pub(super) &'c Connection);

impl SequenceTx for SqliteSequence<'_> {
    async fn lock_sequence(&mut self, key: &str) -> Result<Option<Tail>, StoreError> {
        Ok(self
            .0
            .prepare_cached(TAIL)?
            .query_row([key], |row| {
                Ok(Tail {
                    job: row.get(0)?,
                    continue_on_failure: row.get(1)?,
                })
            })
            .optional()?)
    }

    async fn lock_job(&mut self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let state: Option<String> = self
            .0
            .prepare_cached(JOB_STATE)?
            .query_row([id], |row| row.get(0))
            .optional()?;
        state.map(|state| state_of(id, &state)).transpose()
    }

    async fn insert(&mut self, job: &NewJob) -> Result<JobId, StoreError> {
        let ids = insert_plain(self.0, std::slice::from_ref(job))?;
        ids.first()
            .copied()
            .ok_or_else(|| StoreError::Internal("an insert returned no id".to_owned()))
    }

    async fn depend(&mut self, id: JobId, waiting_on: i64) -> Result<(), StoreError> {
        self.0
            .prepare_cached(DEPEND)?
            .execute(params![id, waiting_on])?;
        Ok(())
    }

    async fn add_edge(
        &mut self,
        dependency: JobId,
        id: JobId,
        key: &str,
        any_outcome: bool,
    ) -> Result<(), StoreError> {
        self.0
            .prepare_cached(ADD_EDGE)?
            .execute(params![dependency, id, key, any_outcome])?;
        Ok(())
    }

    async fn set_tail(&mut self, key: &str, tail: Tail) -> Result<(), StoreError> {
        self.0.prepare_cached(SET_TAIL)?.execute(params![
            key,
            tail.job,
            tail.continue_on_failure
        ])?;
        Ok(())
    }
}

/// Stops the pending job `id` waiting, due at `now`, on `conn`'s open
/// transaction ([`crate::store::Store::skip_wait`]).
pub(super) fn skip_wait(
    conn: &Connection,
    id: JobId,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let queue: Option<String> = conn
        .prepare_cached(SKIP_WAIT)?
        .query_row(params![id, micros(now)], |row| row.get(0))
        .optional()?;
    if queue.is_some() {
        conn.prepare_cached(FORGET_EDGES)?.execute([id])?;
    }
    Ok(queue)
}
