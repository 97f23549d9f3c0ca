//! The SQLite answers to a batch's reads and writes ([`BatchTx`]):
//! synchronous calls on the writer's transaction, which holds the
//! database's write lock, so no other process writes between them.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, Transaction, params};

use super::{all, insert_in};
use crate::job::JobId;
use crate::store::rows::{from_count, from_micros, json_list, micros};
use crate::store::{
    BatchCallback, BatchCounts, BatchEvent, BatchId, BatchRecord, BatchTx, CallbackColumns,
    DueBatch, NewBatch, NewJob, StoreError, batches,
};

/// Inserts a batch: `?1` name, `?2` created at, `?3` awaited callbacks.
const CREATE: &str = "INSERT INTO batches (name, created_at, awaiting) VALUES (?1, ?2, ?3)";

/// Stores a callback of batch `?1`: kind, type, queue, payload, priority, max attempts, unique key, partition key.
const ADD_CALLBACK: &str = "INSERT INTO batch_callbacks \
    (batch_id, kind, type, queue, payload, priority, max_attempts, unique_key, partition_key) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// Batch `?1`'s counts and sealed flag.
const COUNTS: &str = "SELECT total, finished, failed, cancelled, sealed FROM batches WHERE id = ?1";

/// Puts the live jobs of `?2` (a JSON array) that are in no batch into batch `?1`.
const JOIN: &str = "UPDATE jobs SET batch_id = ?1 \
    WHERE id IN (SELECT value FROM json_each(?2)) AND batch_id IS NULL \
      AND state IN ('pending', 'started')";

/// Adds `?2` jobs to batch `?1`'s total, sealing it if `?3`.
const GROW: &str = "UPDATE batches SET total = total + ?2, sealed = sealed OR ?3 WHERE id = ?1";

/// Up to `?1` batches with a due callback: id, counts, sealed, awaiting.
const DUE: &str = "SELECT id, total, finished, failed, cancelled, sealed, awaiting \
    FROM batches WHERE due ORDER BY id LIMIT ?1";

/// Batch `?1`'s callbacks of the kinds in the JSON array `?2`, as [`CallbackColumns`].
const CALLBACKS: &str = "SELECT kind, type, queue, payload, priority, max_attempts, unique_key, \
    partition_key FROM batch_callbacks \
    WHERE batch_id = ?1 AND kind IN (SELECT value FROM json_each(?2)) ORDER BY kind";

/// Records job `?3` as what batch `?1`'s callback of kind `?2` became.
const FIRED: &str = "UPDATE batch_callbacks SET job_id = ?3 WHERE batch_id = ?1 AND kind = ?2";

/// Clears the events of bit set `?2` from batch `?1`'s awaited set.
const CLEAR: &str = "UPDATE batches SET awaiting = awaiting & ~?2 WHERE id = ?1";

/// Deletes up to `?2` completed batches created before `?1` (their callbacks go with them).
pub(super) const PRUNE: &str = "DELETE FROM batches WHERE id IN (SELECT id FROM batches \
    WHERE sealed AND finished + failed + cancelled >= total AND created_at < ?1 LIMIT ?2)";

/// Batch `?1`: id, name, created at, counts, sealed.
const GET: &str = "SELECT id, name, created_at, total, finished, failed, cancelled, sealed \
    FROM batches WHERE id = ?1";

/// Batch `?1`'s callbacks: kind, type, the job each became.
const GET_CALLBACKS: &str =
    "SELECT kind, type, job_id FROM batch_callbacks WHERE batch_id = ?1 ORDER BY kind";

/// A batch's steps on the writer's open transaction.
pub(super) struct SqliteBatch<'t, 'c>(pub(super) &'t Transaction<'c>);

/// The counts in four columns of `row` from `first` on.
fn counts(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<BatchCounts> {
    Ok(BatchCounts {
        total: from_count(row.get(first)?),
        finished: from_count(row.get(first + 1)?),
        failed: from_count(row.get(first + 2)?),
        cancelled: from_count(row.get(first + 3)?),
    })
}

impl BatchTx for SqliteBatch<'_, '_> {
    async fn create(&mut self, batch: &NewBatch) -> Result<BatchId, StoreError> {
        self.0.prepare_cached(CREATE)?.execute(params![
            batch.name,
            micros(batch.created_at),
            batches::awaiting(&batch.callbacks),
        ])?;
        let id = self.0.last_insert_rowid();
        let mut add = self.0.prepare_cached(ADD_CALLBACK)?;
        for (event, job) in &batch.callbacks {
            add.execute(params![
                id,
                event.bit(),
                job.job_type,
                job.queue,
                job.payload,
                job.priority,
                job.max_attempts,
                job.unique_key,
                job.partition_key,
            ])?;
        }
        Ok(id)
    }

    async fn lock_batch(&mut self, id: BatchId) -> Result<Option<(BatchCounts, bool)>, StoreError> {
        let found = all(self.0, COUNTS, [id], |row| {
            Ok((counts(row, 0)?, row.get::<_, bool>(4)?))
        })?;
        Ok(found.into_iter().next())
    }

    async fn insert_jobs(&mut self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        insert_in(self.0, jobs)
    }

    async fn join(&mut self, id: BatchId, ids: &[JobId]) -> Result<u64, StoreError> {
        let joined = self
            .0
            .prepare_cached(JOIN)?
            .execute(params![id, json_list(ids)?])?;
        Ok(super::changed(joined))
    }

    async fn grow(&mut self, id: BatchId, joined: u64, seal: bool) -> Result<(), StoreError> {
        let joined = i64::try_from(joined).unwrap_or(i64::MAX);
        self.0
            .prepare_cached(GROW)?
            .execute(params![id, joined, seal])?;
        Ok(())
    }

    async fn due_batches(&mut self, limit: u32) -> Result<Vec<DueBatch>, StoreError> {
        all(self.0, DUE, [limit], |row| {
            Ok(DueBatch {
                id: row.get(0)?,
                counts: counts(row, 1)?,
                sealed: row.get(5)?,
                awaiting: row.get(6)?,
            })
        })
    }

    async fn callbacks(
        &mut self,
        id: BatchId,
        events: &[BatchEvent],
        now: DateTime<Utc>,
    ) -> Result<Vec<(BatchEvent, NewJob)>, StoreError> {
        let kinds: Vec<i64> = events.iter().map(|event| event.bit()).collect();
        let mut query = self.0.prepare_cached(CALLBACKS)?;
        let rows = query.query_map(params![id, json_list(&kinds)?], |row| {
            Ok::<CallbackColumns, _>((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
            ))
        })?;
        let mut callbacks = Vec::new();
        for columns in rows {
            callbacks.push(batches::callback(id, columns?, now)?);
        }
        Ok(callbacks)
    }

    async fn fired(
        &mut self,
        id: BatchId,
        events: &[BatchEvent],
        fired: &[(BatchEvent, JobId)],
    ) -> Result<(), StoreError> {
        let mut record = self.0.prepare_cached(FIRED)?;
        for (event, job) in fired {
            record.execute(params![id, event.bit(), job])?;
        }
        let bits = events.iter().fold(0, |set, event| set | event.bit());
        self.0.prepare_cached(CLEAR)?.execute(params![id, bits])?;
        Ok(())
    }
}

/// Batch `id` as stored, read on `conn`.
pub(super) fn read(conn: &Connection, id: BatchId) -> Result<Option<BatchRecord>, StoreError> {
    let found = all(conn, GET, [id], |row| {
        Ok((
            row.get::<_, BatchId>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            counts(row, 3)?,
            row.get::<_, bool>(7)?,
        ))
    })?;
    let Some((id, name, created_at, counts, sealed)) = found.into_iter().next() else {
        return Ok(None);
    };
    let mut callbacks = Vec::new();
    for (kind, job_type, job_id) in all(conn, GET_CALLBACKS, [id], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, Option<JobId>>(2)?,
        ))
    })? {
        callbacks.push(BatchCallback {
            event: batches::event_of(id, kind)?,
            job_type,
            job_id,
        });
    }
    Ok(Some(BatchRecord {
        id,
        name,
        created_at: from_micros(id, created_at)?,
        counts,
        sealed,
        callbacks,
    }))
}
