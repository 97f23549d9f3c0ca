//! The MySQL/MariaDB answers to a batch's reads and writes ([`BatchTx`]),
//! in a transaction that holds each batch's row from its first read on
//! (`SELECT … FOR UPDATE`); firing skips rows another transaction holds,
//! so processes firing at once share the work instead of waiting.

use chrono::{DateTime, Utc};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, MySqlPool, Row};

use super::sql::placeholders;
use super::{INSERT_CHUNK, insert_in, optional_text, text};
use crate::job::JobId;
use crate::store::rows::{from_count, from_micros, micros};
use crate::store::{
    BatchCallback, BatchCounts, BatchEvent, BatchId, BatchRecord, BatchTx, CallbackColumns,
    DueBatch, NewBatch, NewJob, StoreError, batches,
};

/// Inserts a batch: name, created at, awaited callbacks.
const CREATE: &str = "INSERT INTO batches (name, created_at, awaiting) VALUES (?, ?, ?)";

/// Stores a callback: batch, kind, type, queue, payload, priority, max attempts, unique key, partition key.
const ADD_CALLBACK: &str = "INSERT INTO batch_callbacks \
     (batch_id, kind, type, queue, payload, priority, max_attempts, unique_key, partition_key) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Locks a batch's row: its counts and sealed flag.
const LOCK: &str = "SELECT total, finished, failed, cancelled, sealed FROM batches \
     WHERE id = ? FOR UPDATE";

/// Adds jobs to a batch's total, sealing it if asked: count, seal, batch.
const GROW: &str = "UPDATE batches SET total = total + ?, sealed = sealed OR ? WHERE id = ?";

/// Up to `?` batches with a due callback, locked, skipping rows another transaction holds.
const DUE: &str = "SELECT id, total, finished, failed, cancelled, sealed, awaiting FROM batches \
     WHERE due ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED";

/// Records the job a batch's callback became: job, batch, kind.
const FIRED: &str = "UPDATE batch_callbacks SET job_id = ? WHERE batch_id = ? AND kind = ?";

/// Clears a bit set from a batch's awaited set: bits, batch.
const CLEAR: &str = "UPDATE batches SET awaiting = awaiting & ~? WHERE id = ?";

/// Deletes up to `?` completed batches created before `?` (their callbacks go with them): before, limit.
pub(super) const PRUNE: &str = "DELETE FROM batches \
     WHERE sealed AND finished + failed + cancelled >= total AND created_at < ? \
     ORDER BY id LIMIT ?";

/// A batch: id, name, created at, counts, sealed.
const GET: &str = "SELECT id, name, created_at, total, finished, failed, cancelled, sealed \
     FROM batches WHERE id = ?";

/// A batch's callbacks: kind, type, the job each became.
const GET_CALLBACKS: &str = "SELECT CAST(kind AS SIGNED) AS kind, type, job_id FROM batch_callbacks \
     WHERE batch_id = ? ORDER BY kind";

/// Puts the live jobs of `n` ids that are in no batch into a batch: batch, then the ids.
fn join(n: usize) -> String {
    format!(
        "UPDATE jobs SET batch_id = ? WHERE id IN ({}) AND batch_id IS NULL \
         AND state IN ('pending', 'started')",
        placeholders(n)
    )
}

/// A batch's callbacks of `n` kinds: the batch, then the kinds.
fn callbacks(n: usize) -> String {
    format!(
        "SELECT CAST(kind AS SIGNED) AS kind, type, queue, payload, priority, \
             CAST(max_attempts AS SIGNED) AS max_attempts, unique_key, partition_key \
         FROM batch_callbacks WHERE batch_id = ? AND kind IN ({}) ORDER BY kind",
        placeholders(n)
    )
}

/// A batch's steps on an open transaction.
pub(super) struct MySqlBatch<'c>(pub(super) &'c mut MySqlConnection);

/// The counts in the `total`, `finished`, `failed` and `cancelled` columns of `row`.
fn counts(row: &MySqlRow) -> Result<BatchCounts, sqlx::Error> {
    Ok(BatchCounts {
        total: from_count(row.try_get("total")?),
        finished: from_count(row.try_get("finished")?),
        failed: from_count(row.try_get("failed")?),
        cancelled: from_count(row.try_get("cancelled")?),
    })
}

impl BatchTx for MySqlBatch<'_> {
    async fn create(&mut self, batch: &NewBatch) -> Result<BatchId, StoreError> {
        let done = sqlx::query(CREATE)
            .bind(&batch.name)
            .bind(micros(batch.created_at))
            .bind(batches::awaiting(&batch.callbacks))
            .execute(&mut *self.0)
            .await?;
        let id =
            BatchId::try_from(done.last_insert_id()).map_err(|_| StoreError::CorruptBatch {
                id: 0,
                reason: format!("inserted id {} out of range", done.last_insert_id()),
            })?;
        for (event, job) in &batch.callbacks {
            sqlx::query(ADD_CALLBACK)
                .bind(id)
                .bind(event.bit())
                .bind(&job.job_type)
                .bind(&job.queue)
                .bind(&job.payload)
                .bind(job.priority)
                .bind(job.max_attempts)
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
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        insert_in(self.0, jobs).await
    }

    async fn join(&mut self, id: BatchId, ids: &[JobId]) -> Result<u64, StoreError> {
        let mut joined = 0;
        for chunk in ids.chunks(INSERT_CHUNK) {
            let statement = join(chunk.len());
            let mut query = sqlx::query(&statement).bind(id);
            for job in chunk {
                query = query.bind(*job);
            }
            joined += query.execute(&mut *self.0).await?.rows_affected();
        }
        Ok(joined)
    }

    async fn grow(&mut self, id: BatchId, joined: u64, seal: bool) -> Result<(), StoreError> {
        sqlx::query(GROW)
            .bind(i64::try_from(joined).unwrap_or(i64::MAX))
            .bind(seal)
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn due_batches(&mut self, limit: u32) -> Result<Vec<DueBatch>, StoreError> {
        let rows = sqlx::query(DUE).bind(limit).fetch_all(&mut *self.0).await?;
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
        let statement = callbacks(events.len());
        let mut query = sqlx::query(&statement).bind(id);
        for event in events {
            query = query.bind(event.bit());
        }
        let rows = query.fetch_all(&mut *self.0).await?;
        rows.iter()
            .map(|row| {
                let columns: CallbackColumns = (
                    row.try_get("kind")?,
                    text(row, "type")?,
                    text(row, "queue")?,
                    text(row, "payload")?,
                    row.try_get("priority")?,
                    row.try_get("max_attempts")?,
                    optional_text(row, "unique_key")?,
                    optional_text(row, "partition_key")?,
                );
                batches::callback(id, columns, now)
            })
            .collect()
    }

    async fn fired(
        &mut self,
        id: BatchId,
        events: &[BatchEvent],
        fired: &[(BatchEvent, JobId)],
    ) -> Result<(), StoreError> {
        for (event, job) in fired {
            sqlx::query(FIRED)
                .bind(job)
                .bind(id)
                .bind(event.bit())
                .execute(&mut *self.0)
                .await?;
        }
        let bits = events.iter().fold(0, |set, event| set | event.bit());
        sqlx::query(CLEAR)
            .bind(bits)
            .bind(id)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }
}

/// Batch `id` as stored.
pub(super) async fn read(pool: &MySqlPool, id: BatchId) -> Result<Option<BatchRecord>, StoreError> {
    let Some(row) = sqlx::query(GET).bind(id).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let stored = sqlx::query(GET_CALLBACKS).bind(id).fetch_all(pool).await?;
    let callbacks = stored
        .iter()
        .map(|callback| {
            Ok(BatchCallback {
                event: batches::event_of(id, callback.try_get("kind")?)?,
                job_type: text(callback, "type")?,
                job_id: callback.try_get("job_id")?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Some(BatchRecord {
        id,
        name: text(&row, "name")?,
        created_at: from_micros(id, row.try_get("created_at")?)?,
        counts: counts(&row)?,
        sealed: row.try_get("sealed")?,
        callbacks,
    }))
}
