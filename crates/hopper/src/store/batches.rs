//! Batches as the store keeps them: a row of counts per batch, moved by
//! the database's triggers whenever one of its jobs ends (or comes back),
//! and the callback jobs waiting on those counts.
//!
//! A callback fires at most once: the transaction that inserts its job
//! also clears its bit in the batch's `awaiting` set, under the batch
//! row's lock (the single writer, on SQLite). Which callbacks are due is
//! decided here, once, from the counts the store reads ([`BatchCounts::due`]);
//! each database's `due` column holds the same rule, so finding the
//! batches to look at is an index read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{NewJob, StoreError};
use crate::job::JobId;

/// Whether some batch has a due callback: the same statement on every
/// database, read first so that most looks for due callbacks need no
/// transaction.
pub(crate) const ANY_DUE: &str = "SELECT EXISTS (SELECT 1 FROM batches WHERE due)";

/// A batch's id.
pub type BatchId = i64;

/// When a batch's callback job is inserted.
///
/// ```
/// use hopper::store::BatchEvent;
/// assert_eq!(BatchEvent::Success.to_string(), "success");
/// assert_eq!(BatchEvent::ALL.len(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchEvent {
    /// Every job of the sealed batch finished.
    Success,
    /// Every job of the sealed batch ended, whatever the outcome.
    Complete,
    /// A job of the batch failed for good (at the first such job).
    Failure,
}

impl BatchEvent {
    /// Every event, in the order callbacks fire when several are due at once.
    pub const ALL: [BatchEvent; 3] = [Self::Failure, Self::Success, Self::Complete];

    /// The event's bit in a batch's `awaiting` set (and its `kind` column).
    ///
    /// ```
    /// assert_eq!(hopper::store::BatchEvent::Failure.bit(), 4);
    /// ```
    pub fn bit(self) -> i64 {
        match self {
            Self::Success => 1,
            Self::Complete => 2,
            Self::Failure => 4,
        }
    }

    /// The event stored as `bit`, if any.
    ///
    /// ```
    /// use hopper::store::BatchEvent;
    /// assert_eq!(BatchEvent::from_bit(2), Some(BatchEvent::Complete));
    /// assert_eq!(BatchEvent::from_bit(3), None);
    /// ```
    pub fn from_bit(bit: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|event| event.bit() == bit)
    }
}

impl std::fmt::Display for BatchEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Success => "success",
            Self::Complete => "complete",
            Self::Failure => "failure",
        })
    }
}

/// A batch to create ([`super::Store::create_batch`]).
///
/// ```
/// let batch = hopper::store::NewBatch { name: "import".into(), created_at: chrono::Utc::now(), callbacks: vec![], sealed: true };
/// assert!(batch.callbacks.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewBatch {
    /// What the batch is, for people reading the dashboard.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its callback jobs, at most one per event.
    pub callbacks: Vec<(BatchEvent, NewJob)>,
    /// Whether the jobs given with it are all it will have (its running
    /// jobs may still add more).
    pub sealed: bool,
}

/// Jobs to add to a batch ([`super::Store::add_to_batch`]).
///
/// ```
/// let add = hopper::store::BatchAdd { batch: 7, jobs: &[], seal: true };
/// assert!(add.jobs.is_empty());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BatchAdd<'a> {
    /// The batch.
    pub batch: BatchId,
    /// The jobs to insert into it.
    pub jobs: &'a [NewJob],
    /// Seal the batch in the same transaction.
    pub seal: bool,
}

/// How many of a batch's jobs there are and how many ended, each way. It
/// serializes with `pending` worked out, as the API and the console show it.
///
/// ```
/// let counts = hopper::store::BatchCounts { total: 10, finished: 7, failed: 1, cancelled: 0 };
/// assert_eq!((counts.ended(), counts.pending()), (8, 2));
/// assert_eq!(serde_json::to_value(counts).unwrap()["pending"], 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct BatchCounts {
    /// Jobs in the batch.
    pub total: u64,
    /// Jobs finished.
    pub finished: u64,
    /// Jobs failed for good.
    pub failed: u64,
    /// Jobs cancelled.
    pub cancelled: u64,
}

impl BatchCounts {
    /// Jobs that ended, whatever the outcome.
    ///
    /// ```
    /// let counts = hopper::store::BatchCounts { total: 3, finished: 1, failed: 1, cancelled: 1 };
    /// assert_eq!(counts.ended(), 3);
    /// ```
    pub fn ended(&self) -> u64 {
        self.finished + self.failed + self.cancelled
    }

    /// Jobs not ended yet: pending or running.
    ///
    /// ```
    /// assert_eq!(hopper::store::BatchCounts { total: 3, ..Default::default() }.pending(), 3);
    /// ```
    pub fn pending(&self) -> u64 {
        self.total.saturating_sub(self.ended())
    }

    /// Which of the `awaiting` callbacks (a set of [`BatchEvent::bit`]s)
    /// are due, in firing order: failure at the first job failed for good;
    /// success and complete once the batch is `sealed` and every job
    /// finished, or ended.
    ///
    /// ```
    /// use hopper::store::{BatchCounts, BatchEvent};
    /// let done = BatchCounts { total: 2, finished: 2, ..Default::default() };
    /// assert_eq!(done.due(3, true), vec![BatchEvent::Success, BatchEvent::Complete]);
    /// assert!(done.due(3, false).is_empty());
    /// ```
    pub fn due(&self, awaiting: i64, sealed: bool) -> Vec<BatchEvent> {
        BatchEvent::ALL
            .into_iter()
            .filter(|event| awaiting & event.bit() != 0)
            .filter(|event| match event {
                BatchEvent::Failure => self.failed > 0,
                BatchEvent::Success => sealed && self.finished == self.total,
                BatchEvent::Complete => sealed && self.ended() == self.total,
            })
            .collect()
    }

    /// Whether the batch completed: sealed, and every job ended.
    ///
    /// ```
    /// let counts = hopper::store::BatchCounts { total: 1, finished: 1, ..Default::default() };
    /// assert!(counts.is_complete(true) && !counts.is_complete(false));
    /// ```
    pub fn is_complete(&self, sealed: bool) -> bool {
        sealed && self.ended() >= self.total
    }
}

/// One of a batch's callbacks and the job it became, once fired.
///
/// ```
/// let cb = hopper::store::BatchCallback { event: hopper::store::BatchEvent::Success, job_type: "mail".into(), job_id: None };
/// assert!(cb.job_id.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchCallback {
    /// When it fires.
    pub event: BatchEvent,
    /// Its job type.
    pub job_type: String,
    /// The job it became, once fired.
    pub job_id: Option<JobId>,
}

/// A batch as stored: its counts and callbacks. It serializes with
/// `complete` worked out, as the API and the console show it.
///
/// ```
/// use hopper::store::{BatchCounts, BatchRecord};
/// let batch = BatchRecord { id: 1, name: "import".into(), created_at: chrono::Utc::now(), counts: BatchCounts::default(), sealed: true, callbacks: vec![] };
/// assert!(batch.is_complete());
/// assert_eq!(serde_json::to_value(&batch).unwrap()["complete"], true);
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BatchRecord {
    /// Its id.
    pub id: BatchId,
    /// What it is.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Its jobs, and how many ended each way.
    pub counts: BatchCounts,
    /// Whether no more jobs are expected but those its running jobs add.
    pub sealed: bool,
    /// Its callbacks.
    pub callbacks: Vec<BatchCallback>,
}

impl BatchRecord {
    /// Whether the batch completed: sealed, and every job ended.
    ///
    /// ```
    /// # use hopper::store::{BatchCounts, BatchRecord};
    /// let open = BatchRecord { id: 1, name: String::new(), created_at: chrono::Utc::now(), counts: BatchCounts::default(), sealed: false, callbacks: vec![] };
    /// assert!(!open.is_complete());
    /// ```
    pub fn is_complete(&self) -> bool {
        self.counts.is_complete(self.sealed)
    }
}

impl Serialize for BatchCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut counts = serializer.serialize_struct("BatchCounts", 5)?;
        counts.serialize_field("total", &self.total)?;
        counts.serialize_field("pending", &self.pending())?;
        counts.serialize_field("finished", &self.finished)?;
        counts.serialize_field("failed", &self.failed)?;
        counts.serialize_field("cancelled", &self.cancelled)?;
        counts.end()
    }
}

impl Serialize for BatchRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut batch = serializer.serialize_struct("BatchRecord", 7)?;
        batch.serialize_field("id", &self.id)?;
        batch.serialize_field("name", &self.name)?;
        batch.serialize_field("created_at", &self.created_at)?;
        batch.serialize_field("sealed", &self.sealed)?;
        batch.serialize_field("complete", &self.is_complete())?;
        batch.serialize_field("counts", &self.counts)?;
        batch.serialize_field("callbacks", &self.callbacks)?;
        batch.end()
    }
}

/// The `awaiting` set of a new batch with these callbacks.
pub(crate) fn awaiting(callbacks: &[(BatchEvent, NewJob)]) -> i64 {
    callbacks
        .iter()
        .fold(0, |set, (event, _)| set | event.bit())
}

/// A callback's columns as stored: kind, type, queue, payload, priority,
/// max attempts, unique key, partition key.
pub(crate) type CallbackColumns = (
    i64,
    String,
    String,
    String,
    i32,
    i64,
    Option<String>,
    Option<String>,
);

/// The callback a row of [`CallbackColumns`] stores for batch `batch`, as a
/// job fired at `now`.
pub(crate) fn callback(
    batch: BatchId,
    columns: CallbackColumns,
    now: DateTime<Utc>,
) -> Result<(BatchEvent, NewJob), StoreError> {
    let (kind, job_type, queue, payload, priority, max_attempts, unique_key, partition_key) =
        columns;
    let event = event_of(batch, kind)?;
    let max_attempts = u32::try_from(max_attempts).map_err(|_| StoreError::CorruptBatch {
        id: batch,
        reason: format!("callback max_attempts {max_attempts}"),
    })?;
    let job = NewJob {
        job_type,
        queue,
        payload,
        priority,
        max_attempts,
        available_at: now,
        created_at: now,
        unique_key,
        partition_key,
        sequence: None,
        trace_context: None,
    };
    Ok((event, job))
}

/// The event a callback of batch `batch` stores as `kind`.
pub(crate) fn event_of(batch: BatchId, kind: i64) -> Result<BatchEvent, StoreError> {
    BatchEvent::from_bit(kind).ok_or_else(|| StoreError::CorruptBatch {
        id: batch,
        reason: format!("callback kind {kind}"),
    })
}

/// A batch with a due callback, as [`BatchTx::due_batches`] reads it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DueBatch {
    pub(crate) id: BatchId,
    pub(crate) counts: BatchCounts,
    pub(crate) sealed: bool,
    pub(crate) awaiting: i64,
}

/// The reads and writes of adding to a batch and firing its callbacks,
/// all in one transaction that holds each batch's row from the first read
/// of it.
pub(crate) trait BatchTx {
    /// Inserts a batch row with its callbacks (none sealed yet); its id.
    async fn create(&mut self, batch: &NewBatch) -> Result<BatchId, StoreError>;

    /// Locks batch `id`'s row: its counts and whether it is sealed.
    async fn lock_batch(&mut self, id: BatchId) -> Result<Option<(BatchCounts, bool)>, StoreError>;

    /// Inserts `jobs` as a dispatch does; their ids in order.
    async fn insert_jobs(&mut self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError>;

    /// Puts the jobs of `ids` that are live (pending or started) and in no
    /// batch into batch `id`; how many it took.
    async fn join(&mut self, id: BatchId, ids: &[JobId]) -> Result<u64, StoreError>;

    /// Adds `joined` jobs to batch `id`'s total, and seals it if `seal`.
    async fn grow(&mut self, id: BatchId, joined: u64, seal: bool) -> Result<(), StoreError>;

    /// Up to `limit` batches whose `due` column is set, locked, skipping
    /// rows another transaction holds.
    async fn due_batches(&mut self, limit: u32) -> Result<Vec<DueBatch>, StoreError>;

    /// Batch `id`'s callbacks for `events`, as jobs fired at `now`.
    async fn callbacks(
        &mut self,
        id: BatchId,
        events: &[BatchEvent],
        now: DateTime<Utc>,
    ) -> Result<Vec<(BatchEvent, NewJob)>, StoreError>;

    /// Records the jobs `fired` became and clears `events` from batch
    /// `id`'s awaited set.
    async fn fired(
        &mut self,
        id: BatchId,
        events: &[BatchEvent],
        fired: &[(BatchEvent, JobId)],
    ) -> Result<(), StoreError>;
}

/// Creates `batch` with `jobs` in it on `tx`; its id and the jobs' ids.
pub(crate) async fn create(
    tx: &mut impl BatchTx,
    batch: &NewBatch,
    jobs: &[NewJob],
) -> Result<(BatchId, Vec<JobId>), StoreError> {
    let id = tx.create(batch).await?;
    let ids = add(
        tx,
        BatchAdd {
            batch: id,
            jobs,
            seal: batch.sealed,
        },
    )
    .await?;
    Ok((id, ids))
}

/// Adds `add.jobs` to its batch on `tx`, sealing it if asked; the jobs'
/// ids. A batch that completed takes no more jobs.
pub(crate) async fn add(
    tx: &mut impl BatchTx,
    add: BatchAdd<'_>,
) -> Result<Vec<JobId>, StoreError> {
    let Some((counts, sealed)) = tx.lock_batch(add.batch).await? else {
        return Err(StoreError::NoSuchBatch(add.batch));
    };
    if counts.is_complete(sealed) {
        return Err(StoreError::BatchComplete(add.batch));
    }
    let ids = tx.insert_jobs(add.jobs).await?;
    let joined = if ids.is_empty() {
        0
    } else {
        tx.join(add.batch, &ids).await?
    };
    if joined > 0 || (add.seal && !sealed) {
        tx.grow(add.batch, joined, add.seal).await?;
    }
    Ok(ids)
}

/// Fires the due callbacks of up to `limit` batches on `tx`, at `now`:
/// each callback's job is inserted, and its event cleared from the batch's
/// awaited set, in the same transaction. The jobs inserted, with their ids.
pub(crate) async fn fire(
    tx: &mut impl BatchTx,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<(JobId, NewJob)>, StoreError> {
    let mut inserted = Vec::new();
    for due in tx.due_batches(limit).await? {
        let events = due.counts.due(due.awaiting, due.sealed);
        if events.is_empty() {
            continue;
        }
        let callbacks = tx.callbacks(due.id, &events, now).await?;
        let jobs: Vec<NewJob> = callbacks.iter().map(|(_, job)| job.clone()).collect();
        let ids = tx.insert_jobs(&jobs).await?;
        let fired: Vec<(BatchEvent, JobId)> = callbacks
            .iter()
            .map(|(event, _)| *event)
            .zip(ids.iter().copied())
            .collect();
        tx.fired(due.id, &events, &fired).await?;
        inserted.extend(ids.into_iter().zip(jobs));
    }
    Ok(inserted)
}
