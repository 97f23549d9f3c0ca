//! The MariaDB and MySQL answers to a sequence dispatch's reads and writes
//! ([`SequenceTx`]), in the dispatch's transaction: a key's row is taken
//! (created if new) with a locking upsert and read `FOR UPDATE`, and its
//! last job with `FOR UPDATE`, so dispatches of one key line up, and a
//! last job ending meanwhile ends after the edge to it is written.

use chrono::{DateTime, Utc};
use sqlx::MySqlConnection;

use super::{insert_one, text};
use crate::job::{JobId, JobState};
use crate::store::rows::{micros, state_of};
use crate::store::{NewJob, SequenceTx, StoreError, Tail};

/// Creates sequence ?'s row (last job 0: none) if new, locking it.
const TAKE_SEQUENCE: &str = "INSERT INTO sequences (name, last_job) VALUES (?, 0) \
     ON DUPLICATE KEY UPDATE last_job = last_job";

/// Sequence ?'s last job and whether it lets the sequence go on after a failure, locked.
const TAIL: &str = "SELECT last_job, continue_on_failure FROM sequences WHERE name = ? FOR UPDATE";

/// Locks job ?'s row: its state.
const LOCK_JOB: &str = "SELECT state FROM jobs WHERE id = ? FOR UPDATE";

/// Marks a job (id, then waiting count) as one others may depend on.
const DEPEND: &str = "UPDATE jobs SET has_dependents = TRUE, waiting_on = ? WHERE id = ?";

/// Records that a job waits on another in a sequence: dependency, job,
/// key, and whether any outcome satisfies it (a failure holds it otherwise).
const ADD_EDGE: &str = "INSERT INTO job_deps (depends_on, job_id, step, any_outcome, holds) \
     VALUES (?, ?, ?, ?, ?)";

/// Records a sequence's last job: the job, whether it goes on after a failure, the key.
const SET_TAIL: &str = "UPDATE sequences SET last_job = ?, continue_on_failure = ? WHERE name = ?";

/// Locks a pending job if it waits on others: its queue; `?`: the id.
const LOCK_WAITING: &str =
    "SELECT queue FROM jobs WHERE id = ? AND state = 'pending' AND waiting_on > 0 FOR UPDATE";

/// Makes a job due at a time (µs) with nothing to wait on: the time, the id.
const SKIP_WAIT: &str = "UPDATE jobs SET waiting_on = 0, available_at = ? WHERE id = ?";

/// Forgets the edges into a job.
const FORGET_EDGES: &str = "DELETE FROM job_deps WHERE job_id = ?";

/// Up to ? sequences whose last job is gone, locked, skipping rows a dispatch holds.
const LOCK_GONE: &str = "SELECT name FROM sequences AS s \
     WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = s.last_job) \
     LIMIT ? FOR UPDATE SKIP LOCKED";

/// A sequence dispatch's steps on a connection in a transaction.
pub(super) struct MySqlSequence<'c>(pub(super) &'c mut MySqlConnection);

impl SequenceTx for MySqlSequence<'_> {
    async fn lock_sequence(&mut self, key: &str) -> Result<Option<Tail>, StoreError> {
        sqlx::query(TAKE_SEQUENCE)
            .bind(key)
            .execute(&mut *self.0)
            .await?;
        let (job, continue_on_failure): (JobId, bool) = sqlx::query_as(TAIL)
            .bind(key)
            .fetch_one(&mut *self.0)
            .await?;
        Ok((job != 0).then_some(Tail {
            job,
            continue_on_failure,
        }))
    }

    async fn lock_job(&mut self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let row = sqlx::query(LOCK_JOB)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        row.map(|row| state_of(id, &text(&row, "state")?))
            .transpose()
    }

    async fn insert(&mut self, job: &NewJob) -> Result<JobId, StoreError> {
        insert_one(self.0, job).await
    }

    async fn depend(&mut self, id: JobId, waiting_on: i64) -> Result<(), StoreError> {
        sqlx::query(DEPEND)
            .bind(waiting_on)
            .bind(id)
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
            .bind(!any_outcome)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn set_tail(&mut self, key: &str, tail: Tail) -> Result<(), StoreError> {
        sqlx::query(SET_TAIL)
            .bind(tail.job)
            .bind(tail.continue_on_failure)
            .bind(key)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

/// Stops the pending job `id` waiting, due at `now`, in `conn`'s open
/// transaction ([`crate::store::Store::skip_wait`]).
pub(super) async fn skip_wait(
    conn: &mut MySqlConnection,
    id: JobId,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let Some(row) = sqlx::query(LOCK_WAITING)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    sqlx::query(SKIP_WAIT)
        .bind(micros(now))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(FORGET_EDGES)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(Some(text(&row, "queue")?))
}

/// Forgets up to `limit` sequences whose last job is gone, in `conn`'s
/// open transaction: locked first (no DELETE here may read the table it
/// deletes from), then deleted in one statement.
pub(super) async fn prune(conn: &mut MySqlConnection, limit: u32) -> Result<u64, StoreError> {
    let rows = sqlx::query(LOCK_GONE)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let statement = format!(
        "DELETE FROM sequences WHERE name IN ({})",
        super::sql::placeholders(rows.len())
    );
    let mut delete = sqlx::query(&statement);
    for row in &rows {
        delete = delete.bind(text(row, "name")?);
    }
    Ok(delete.execute(&mut *conn).await?.rows_affected())
}
