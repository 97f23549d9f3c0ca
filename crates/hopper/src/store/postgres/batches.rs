//! The PostgreSQL answers to a batch's reads and writes ([`BatchTx`]), in
//! a transaction that holds each batch's row from its first read on
//! (`SELECT … FOR UPDATE`); firing skips rows another transaction holds,
//! so processes firing at once share the work instead of waiting.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::insert_in;
use crate::job::JobId;
use crate::store::rows::from_count;
use crate::store::{
    BatchCallback, BatchCounts, BatchEvent, BatchId, BatchRecord, BatchTx, DueBatch, NewBatch,
    NewJob, StoreError, batches,
};

/// Inserts a batch: $1 name, $2 created at, $3 awaited callbacks; answers its id.
const CREATE: &str =
    "INSERT INTO batches (name, created_at, awaiting) VALUES ($1, $2, $3) RETURNING id";

/// Stores a callback of batch $1: kind, type, queue, payload, priority, max attempts, unique key, partition key.
const ADD_CALLBACK: &str = "INSERT INTO batch_callbacks \
     (batch_id, kind, type, queue, payload, priority, max_attempts, unique_key, partition_key) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// Locks batch $1's row: its counts and sealed flag.
const LOCK: &str = "SELECT total, finished, failed, cancelled, sealed FROM batches \
     WHERE id = $1 FOR UPDATE";

// The ids read through a sub-select, as every array joined to a table is
// (see `sql`).
/// Puts the live jobs of $2 (bigint[]) that are in no batch into batch $1.
const JOIN: &str = "UPDATE jobs SET batch_id = $1 FROM UNNEST((SELECT $2::bigint[])) AS c(id) \
     WHERE jobs.id = c.id AND jobs.batch_id IS NULL AND jobs.state IN ('pending', 'started')";

/// Adds $2 jobs to batch $1's total, sealing it if $3.
const GROW: &str = "UPDATE batches SET total = total + $2, sealed = sealed OR $3 WHERE id = $1";

/// Up to $1 batches with a due callback, locked, skipping rows another transaction holds.
const DUE: &str = "SELECT id, total, finished, failed, cancelled, sealed, awaiting FROM batches \
     WHERE due ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";

/// Batch $1's callbacks of kinds $2 (smallint[]).
const CALLBACKS: &str = "SELECT kind::bigint, type, queue, payload, priority, \
         max_attempts::bigint, unique_key, partition_key \
     FROM batch_callbacks WHERE batch_id = $1 AND kind = ANY($2::smallint[]) ORDER BY kind";

/// Records the jobs $3 (bigint[]) that batch $1's callbacks of kinds $2 (smallint[]) became.
const FIRED: &str = "UPDATE batch_callbacks SET job_id = c.job \
     FROM UNNEST($2::smallint[], $3::bigint[]) AS c(kind, job) \
     WHERE batch_callbacks.batch_id = $1 AND batch_callbacks.kind = c.kind";

/// Clears the events of bit set $2 from batch $1's awaited set.
const CLEAR: &str = "UPDATE batches SET awaiting = awaiting & ~$2::int WHERE id = $1";

/// Deletes up to $2 completed batches created before $1 (their callbacks go with them), skipping rows another transaction holds.
pub(super) const PRUNE: &str = "DELETE FROM batches WHERE id IN (SELECT id FROM batches \
     WHERE sealed AND finished + failed + cancelled >= total AND created_at < $1 \
     LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Batch $1: id, name, created at, counts, sealed.
const GET: &str = "SELECT id, name, created_at, total, finished, failed, cancelled, sealed \
     FROM batches WHERE id = $1";

/// Batch $1's callbacks: kind, type, the job each became.
const GET_CALLBACKS: &str = "SELECT kind::bigint, type, job_id FROM batch_callbacks \
     WHERE batch_id = $1 ORDER BY kind";

/// A batch's steps on an open transaction.
pub(super) struct PgBatch<'c>(pub(super) &'c mut PgConnection);

/// The counts in the `total`, `finished`, `failed` and `cancelled` columns of `row`.
fn counts(row: &PgRow) -> Result<BatchCounts, sqlx::Error> {
    Ok(BatchCounts {
        total: from_count(row.try_get("total")?),
        finished: from_count(row.try_get("finished")?),
        failed: from_count(row.try_get("failed")?),
        cancelled: from_count(row.try_get("cancelled")?),
    })
}

/// The `kind` column's value of `event` (its bit: 1, 2 or 4).
fn kind(event: BatchEvent) -> i16 {
    i16::try_from(event.bit()).unwrap_or(i16::MAX)
}

/// The `kind` column's values of `events`.
fn kinds(events: impl IntoIterator<Item = BatchEvent>) -> Vec<i16> {
    events.into_iter().map(kind).collect()
}

impl BatchTx for PgBatch<'_> {
    async fn create(&mut self, batch: &NewBatch) -> Result<BatchId, StoreError> {
        let awaiting = i32::try_from(batches::awaiting(&batch.callbacks)).unwrap_or(0);
        let id: BatchId = sqlx::query_scalar(CREATE)
            .bind(&batch.name)
            .bind(batch.created_at)
            .bind(awaiting)
            .fetch_one(&mut *self.0)
            .await?;
        for (event, job) in &batch.callbacks {
            sqlx::query(ADD_CALLBACK)
                .bind(id)
                .bind(kind(*event))
                .bind(&job.job_type)
                .bind(&job.queue)
                .bind(&job.payload)
                .bind(job.priority)
                .bind(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
                .bind(&job.unique_key)
                .bind(&job.partition_key)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(id)
    }

    async fn lock_batch(&mut self, id: BatchId) -> Result<Option<(BatchCounts, bool)>, StoreError> {
        let row = sqlx::query(LOCK)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some((counts(&row)?, row.try_get("sealed")?)))
    }

    async fn insert_jobs(&mut self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        insert_in(self.0, jobs).await
    }

    async fn join(&mut self, id: BatchId, ids: &[JobId]) -> Result<u64, StoreError> {
        let done = sqlx::query(JOIN)
            .bind(id)
            .bind(ids)
            .execute(&mut *self.0)
            .await?;
        Ok(done.rows_affected())
    }

    async fn grow(&mut self, id: BatchId, joined: u64, seal: bool) -> Result<(), StoreError> {
        sqlx::query(GROW)
            .bind(id)
            .bind(i64::try_from(joined).unwrap_or(i64::MAX))
            .bind(seal)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn due_batches(&mut self, limit: u32) -> Result<Vec<DueBatch>, StoreError> {
        let rows = sqlx::query(DUE)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.0)
            .await?;
        let mut due = Vec::with_capacity(rows.len());
        for row in &rows {
            due.push(DueBatch {
                id: row.try_get("id")?,
                counts: counts(row)?,
                sealed: row.try_get("sealed")?,
                awaiting: i64::from(row.try_get::<i32, _>("awaiting")?),
            });
        }
        Ok(due)
    }

    async fn callbacks(
        &mut self,
        id: BatchId,
        events: &[BatchEvent],
        now: DateTime<Utc>,
    ) -> Result<Vec<(BatchEvent, NewJob)>, StoreError> {
        let rows = sqlx::query_as(CALLBACKS)
            .bind(id)
            .bind(kinds(events.iter().copied()))
            .fetch_all(&mut *self.0)
            .await?;
        rows.into_iter()
            .map(|columns| batches::callback(id, columns, now))
            .collect()
    }

    async fn fired(
        &mut self,
        id: BatchId,
        events: &[BatchEvent],
        fired: &[(BatchEvent, JobId)],
    ) -> Result<(), StoreError> {
        if !fired.is_empty() {
            let (fired_kinds, jobs): (Vec<BatchEvent>, Vec<JobId>) = fired.iter().copied().unzip();
            sqlx::query(FIRED)
                .bind(id)
                .bind(kinds(fired_kinds))
                .bind(jobs)
                .execute(&mut *self.0)
                .await?;
        }
        let bits = events.iter().fold(0, |set, event| set | event.bit());
        sqlx::query(CLEAR)
            .bind(id)
            .bind(i32::try_from(bits).unwrap_or(0))
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

/// Batch `id` as stored.
pub(super) async fn read(pool: &super::Db, id: BatchId) -> Result<Option<BatchRecord>, StoreError> {
    let Some(row) = sqlx::query(GET).bind(id).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let stored: Vec<(i64, String, Option<JobId>)> = sqlx::query_as(GET_CALLBACKS)
        .bind(id)
        .fetch_all(pool)
        .await?;
    let callbacks = stored
        .into_iter()
        .map(|(kind, job_type, job_id)| {
            Ok(BatchCallback {
                event: batches::event_of(id, kind)?,
                job_type,
                job_id,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(BatchRecord {
        id,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        counts: counts(&row)?,
        sealed: row.try_get("sealed")?,
        callbacks,
    }))
}
