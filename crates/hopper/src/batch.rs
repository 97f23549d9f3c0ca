//! Batches: many jobs dispatched as one, counted as they end, with
//! callback jobs that run exactly once when the batch succeeds, completes
//! or first fails.
//!
//! A batch is a row of counts: the database moves them whenever one of its
//! jobs ends or comes back (a completion, a cancel, a rescue, a retry asked
//! for by hand), in the same transaction as the job's change, so reading a
//! batch's progress is one row's read at any size. A callback's job is
//! inserted in one transaction with the clearing of its event, under the
//! batch row's lock: it exists once however many processes look.
//!
//! - `on_success`: every job of the sealed batch finished.
//! - `on_complete`: every job of the sealed batch ended, whatever the
//!   outcome.
//! - `on_failure`: a job of the batch failed for good (the first one).
//!
//! A batch dispatched whole ([`BatchBuilder::dispatch_many`]) is sealed at
//! once; one opened empty ([`BatchBuilder::open`]) takes jobs
//! ([`Hopper::add_to_batch`]) until it is sealed ([`Hopper::seal_batch`]),
//! and success and completion wait for the seal. A sealed batch still takes
//! jobs its own running jobs add, until it completes.

use crate::client::Hopper;
use crate::dispatch::{DispatchError, DispatchOptions};
use crate::job::{Job, JobId};
use crate::store::{BatchAdd, BatchEvent, BatchId, BatchRecord, NewBatch, NewJob, StoreError};

/// How many batches with due callbacks one firing looks at.
pub const FIRE_LIMIT: u32 = 100;

/// A batch being set up: its name and callbacks, then its jobs
/// ([`Hopper::batch`]).
///
/// ```
/// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
/// # struct ImportRow;
/// # impl Job for ImportRow {
/// #     const TYPE: &'static str = "import_row";
/// #     type Payload = u32;
/// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
/// # }
/// # struct ImportDone;
/// # impl Job for ImportDone {
/// #     const TYPE: &'static str = "import_done";
/// #     type Payload = String;
/// #     async fn handle(&self, _: String, _: JobContext) -> JobResult { Ok(()) }
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = Hopper::builder()
///     .register(ImportRow).unwrap()
///     .register(ImportDone).unwrap()
///     .connect("sqlite::memory:").await.unwrap();
/// let batch = hopper
///     .batch("import 42")
///     .on_success::<ImportDone>("ada@example.com".into())?
///     .dispatch_many::<ImportRow>(1..=3, DispatchOptions::new())
///     .await?;
/// assert_eq!(batch.jobs.len(), 3);
/// let status = hopper.batch_status(batch.id).await?.unwrap();
/// assert_eq!((status.counts.total, status.counts.pending()), (3, 3));
/// # Ok::<_, hopper::DispatchError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
#[must_use = "a batch is created only by `open` or `dispatch_many`"]
pub struct BatchBuilder<'h> {
    hopper: &'h Hopper,
    name: String,
    callbacks: Vec<(BatchEvent, NewJob)>,
}

/// A batch just created, and the ids of the jobs it was created with.
///
/// ```
/// let batch = hopper::batch::Batch { id: 1, jobs: vec![4, 5] };
/// assert_eq!(batch.jobs.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The batch's id.
    pub id: BatchId,
    /// Its jobs' ids, in the order given.
    pub jobs: Vec<JobId>,
}

impl<'h> BatchBuilder<'h> {
    /// A batch called `name` on `hopper`, with no callbacks yet.
    pub(crate) fn new(hopper: &'h Hopper, name: String) -> Self {
        Self {
            hopper,
            name,
            callbacks: Vec::new(),
        }
    }

    /// Runs a job of type `J` with `payload` once every job of the sealed
    /// batch finished. Refused as a dispatch would be (an unregistered
    /// type, a payload over the size limit).
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Done;
    /// # impl Job for Done {
    /// #     const TYPE: &'static str = "done";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let refused = hopper.batch("b").on_success::<Done>(()).unwrap_err();
    /// assert_eq!(refused.to_string(), "no job registered for type done");
    /// # });
    /// ```
    pub fn on_success<J: Job>(self, payload: J::Payload) -> Result<Self, DispatchError> {
        self.on::<J>(BatchEvent::Success, payload, DispatchOptions::new())
    }

    /// Runs a job of type `J` with `payload` once every job of the sealed
    /// batch ended, whatever the outcome.
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Done;
    /// # impl Job for Done {
    /// #     const TYPE: &'static str = "done";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Done).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let id = hopper.batch("b").on_complete::<Done>(()).unwrap().open().await.unwrap();
    /// assert!(hopper.batch_status(id).await.unwrap().is_some());
    /// # });
    /// ```
    pub fn on_complete<J: Job>(self, payload: J::Payload) -> Result<Self, DispatchError> {
        self.on::<J>(BatchEvent::Complete, payload, DispatchOptions::new())
    }

    /// Runs a job of type `J` with `payload` when a job of the batch first
    /// fails for good.
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Alert;
    /// # impl Job for Alert {
    /// #     const TYPE: &'static str = "alert";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Alert).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let builder = hopper.batch("b").on_failure::<Alert>(42).unwrap();
    /// # drop(builder);
    /// # });
    /// ```
    pub fn on_failure<J: Job>(self, payload: J::Payload) -> Result<Self, DispatchError> {
        self.on::<J>(BatchEvent::Failure, payload, DispatchOptions::new())
    }

    /// Runs a job of type `J` with `payload` and `options` (queue,
    /// priority, attempts) at `event`, replacing any callback given for it
    /// before. A delay in `options` is not kept: a callback is due when its
    /// event happens.
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # use hopper::store::BatchEvent;
    /// # struct Done;
    /// # impl Job for Done {
    /// #     const TYPE: &'static str = "done";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Done).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let options = DispatchOptions::new().queue("reports").priority(5);
    /// let id = hopper.batch("b").on::<Done>(BatchEvent::Complete, (), options).unwrap().open().await.unwrap();
    /// # let _ = id;
    /// # });
    /// ```
    pub fn on<J: Job>(
        mut self,
        event: BatchEvent,
        payload: J::Payload,
        options: DispatchOptions,
    ) -> Result<Self, DispatchError> {
        let job = self.hopper.prepare::<J>(payload, options)?;
        set_callback(&mut self.callbacks, event, job);
        Ok(self)
    }

    /// Creates the batch empty and open: jobs join it with
    /// [`Hopper::add_to_batch`], and its success and completion wait until
    /// [`Hopper::seal_batch`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let id = hopper.batch("nightly").open().await.unwrap();
    /// let batch = hopper.batch_status(id).await.unwrap().unwrap();
    /// assert!(!batch.sealed && batch.counts.total == 0);
    /// # });
    /// ```
    pub async fn open(self) -> Result<BatchId, DispatchError> {
        Ok(self.create(Vec::new(), false).await?.id)
    }

    /// Creates the batch with one job of type `J` per payload, all with
    /// `options`, sealed, in one transaction: the batch and its jobs exist
    /// together or not at all.
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Row;
    /// # impl Job for Row {
    /// #     const TYPE: &'static str = "row";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Row).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let batch = hopper.batch("rows").dispatch_many::<Row>(0..10, DispatchOptions::new()).await.unwrap();
    /// assert!(hopper.batch_status(batch.id).await.unwrap().unwrap().sealed);
    /// # });
    /// ```
    pub async fn dispatch_many<J: Job>(
        self,
        payloads: impl IntoIterator<Item = J::Payload>,
        options: DispatchOptions,
    ) -> Result<Batch, DispatchError> {
        let jobs = payloads
            .into_iter()
            .map(|payload| self.hopper.prepare::<J>(payload, options.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.create(jobs, true).await
    }

    /// Creates the batch with `jobs` (of any types, built with
    /// [`Hopper::prepare`] or [`Hopper::prepare_json`]), sealed, in one
    /// transaction.
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Row;
    /// # impl Job for Row {
    /// #     const TYPE: &'static str = "row";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Row).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let jobs = vec![hopper.prepare::<Row>(1, DispatchOptions::new().priority(9)).unwrap()];
    /// let batch = hopper.batch("rows").dispatch_jobs(jobs).await.unwrap();
    /// assert_eq!(batch.jobs.len(), 1);
    /// # });
    /// ```
    pub async fn dispatch_jobs(self, jobs: Vec<NewJob>) -> Result<Batch, DispatchError> {
        self.create(jobs, true).await
    }

    async fn create(self, jobs: Vec<NewJob>, sealed: bool) -> Result<Batch, DispatchError> {
        let hopper = self.hopper;
        let batch = NewBatch {
            name: self.name,
            created_at: hopper.now(),
            callbacks: self.callbacks,
            sealed,
        };
        let (id, ids) = hopper.store().create_batch(&batch, &jobs).await?;
        hopper.dispatched(&ids, &jobs);
        if sealed && !batch.callbacks.is_empty() {
            // A batch sealed with no job of its own (none given, or every one
            // already held by a live job's unique key) may be due now.
            settle(hopper).await;
        }
        Ok(Batch { id, jobs: ids })
    }
}

impl Hopper {
    /// Starts setting up a batch called `name`: add callbacks, then create
    /// it with its jobs ([`BatchBuilder::dispatch_many`]) or empty and open
    /// ([`BatchBuilder::open`]).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let id = hopper.batch("empty").open().await.unwrap();
    /// assert_eq!(hopper.batch_status(id).await.unwrap().unwrap().name, "empty");
    /// # });
    /// ```
    pub fn batch(&self, name: impl Into<String>) -> BatchBuilder<'_> {
        BatchBuilder::new(self, name.into())
    }

    /// Adds one job of type `J` per payload, with `options`, to batch
    /// `batch` in one transaction; their ids. Refused, storing nothing, if
    /// the batch does not exist or completed. A job may add to its own
    /// batch ([`JobContext::batch_id`](crate::JobContext::batch_id)).
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Row;
    /// # impl Job for Row {
    /// #     const TYPE: &'static str = "row";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Row).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let id = hopper.batch("rows").open().await.unwrap();
    /// hopper.add_to_batch::<Row>(id, 0..5, DispatchOptions::new()).await.unwrap();
    /// hopper.seal_batch(id).await.unwrap();
    /// assert_eq!(hopper.batch_status(id).await.unwrap().unwrap().counts.total, 5);
    /// let missing = hopper.add_to_batch::<Row>(404, [1], DispatchOptions::new()).await.unwrap_err();
    /// assert_eq!(missing.to_string(), "could not store the job: no batch 404");
    /// # });
    /// ```
    pub async fn add_to_batch<J: Job>(
        &self,
        batch: BatchId,
        payloads: impl IntoIterator<Item = J::Payload>,
        options: DispatchOptions,
    ) -> Result<Vec<JobId>, DispatchError> {
        let jobs = payloads
            .into_iter()
            .map(|payload| self.prepare::<J>(payload, options.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        self.add_jobs_to_batch(batch, jobs).await
    }

    /// Adds `jobs` (of any types, built with [`Hopper::prepare`]) to batch
    /// `batch` in one transaction; their ids.
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Row;
    /// # impl Job for Row {
    /// #     const TYPE: &'static str = "row";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Row).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let id = hopper.batch("rows").open().await.unwrap();
    /// let job = hopper.prepare::<Row>(1, DispatchOptions::new()).unwrap();
    /// assert_eq!(hopper.add_jobs_to_batch(id, vec![job]).await.unwrap().len(), 1);
    /// # });
    /// ```
    pub async fn add_jobs_to_batch(
        &self,
        batch: BatchId,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<JobId>, DispatchError> {
        let add = BatchAdd {
            batch,
            jobs: &jobs,
            seal: false,
        };
        let ids = self.store().add_to_batch(add).await?;
        self.dispatched(&ids, &jobs);
        Ok(ids)
    }

    /// Seals batch `batch`: no jobs but those its running jobs add are
    /// expected, so it succeeds and completes once every job it has ended.
    /// Sealing a sealed batch changes nothing; a completed one is refused.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let id = hopper.batch("empty").open().await.unwrap();
    /// hopper.seal_batch(id).await.unwrap();
    /// // Sealed with no jobs, it completed.
    /// assert!(hopper.batch_status(id).await.unwrap().unwrap().is_complete());
    /// # });
    /// ```
    pub async fn seal_batch(&self, batch: BatchId) -> Result<(), StoreError> {
        let add = BatchAdd {
            batch,
            jobs: &[],
            seal: true,
        };
        self.store().add_to_batch(add).await?;
        settle(self).await;
        Ok(())
    }

    /// Batch `id`'s counts (total, finished, failed, cancelled, pending)
    /// and callbacks, or `None` if there is no such batch: one row's read
    /// at any size.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper.batch_status(404).await.unwrap().is_none());
    /// # });
    /// ```
    pub async fn batch_status(&self, id: BatchId) -> Result<Option<BatchRecord>, StoreError> {
        self.store().batch(id).await
    }
}

/// Makes `job` the callback for `event` in `callbacks`, replacing any given
/// for it before.
pub(crate) fn set_callback(
    callbacks: &mut Vec<(BatchEvent, NewJob)>,
    event: BatchEvent,
    job: NewJob,
) {
    callbacks.retain(|(given, _)| *given != event);
    callbacks.push((event, job));
}

/// Applies what jobs of batches and workflows ending made due: first the
/// release of workflow steps whose dependencies ended (waking their
/// queues), then the callbacks now due (each exactly once, in whichever
/// process gets there first). A failure is logged and left for the next
/// look: the rescuer's pass settles whatever is left.
pub(crate) async fn settle(hopper: &Hopper) {
    // Step by step: each wakes the queues it made due, so a wide fan-out's
    // first dependents run while the rest are released.
    loop {
        match hopper.store().release_dependents(hopper.now()).await {
            Ok(released) => {
                for queue in &released.queues {
                    hopper.wake(queue);
                }
                if !released.more {
                    break;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "releasing workflow steps failed; the next pass releases them");
                break;
            }
        }
    }
    fire_callbacks(hopper).await;
}

/// Inserts the callback jobs now due in batches and records them as
/// dispatched.
async fn fire_callbacks(hopper: &Hopper) {
    match hopper
        .store()
        .fire_batch_callbacks(hopper.now(), FIRE_LIMIT)
        .await
    {
        Ok(fired) if !fired.is_empty() => {
            let (ids, jobs): (Vec<JobId>, Vec<NewJob>) = fired.into_iter().unzip();
            hopper.dispatched(&ids, &jobs);
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "firing batch callbacks failed; the next pass fires them");
        }
    }
}
