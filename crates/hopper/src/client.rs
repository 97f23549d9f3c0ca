//! [`Hopper`]: the handle an application dispatches and manages jobs with.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::{Clock, SystemClock};
pub use crate::core::Hopper;
use crate::dispatch::{DispatchError, DispatchOptions};
use crate::group_commit::GroupCommit;
use crate::job::{Job, JobId};
use crate::maintenance::Retention;
use crate::registry::{JobDefaults, Registry, RegistryError};
use crate::state::State;
use crate::status::Status;
use crate::store::{
    FlowRequest, JobFilter, JobPage, JobRecord, MinuteCount, NewJob, PauseRequest, QueueFlow,
    QueueStats, RetriedFailed, RetryFailed, RetryRequest, StateCount, Store, StoreError, TypeCount,
};

/// The database URL used when `DATABASE_URL` is not set: a SQLite file
/// under the working directory, created with its folder when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://storage/hopper.db";

/// Payloads larger than this are refused at dispatch unless configured otherwise.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// `DATABASE_URL` from the environment, or [`DEFAULT_DATABASE_URL`].
///
/// ```
/// let url = hopper::database_url();
/// assert!(!url.is_empty());
/// ```
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

/// Builds a [`Hopper`]: its job types, shared state, clock and database.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = hopper::Hopper::builder()
///     .state(String::from("shared"))
///     .max_payload_bytes(64 * 1024)
///     .connect("sqlite::memory:")
///     .await
///     .unwrap();
/// # let _ = hopper;
/// # });
/// ```
#[derive(Debug)]
pub struct Builder {
    registry: Registry,
    state: State,
    clock: Arc<dyn Clock>,
    max_payload_bytes: usize,
    group_commit: bool,
    /// The direct URL a PostgreSQL store listens and migrates on.
    #[cfg(feature = "postgres")]
    listen_url: Option<ListenUrl>,
}

/// [`Builder::listen_url`]'s URL, which a builder's `Debug` leaves out
/// (it may hold a password).
#[cfg(feature = "postgres")]
struct ListenUrl(String);

#[cfg(feature = "postgres")]
impl std::fmt::Debug for ListenUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ListenUrl(..)")
    }
}

impl Builder {
    /// Registers a job type (see [`Registry::register`]).
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// assert!(hopper::Hopper::builder().register(Ping).unwrap().register(Ping).is_err());
    /// ```
    pub fn register<J: Job>(mut self, job: J) -> Result<Self, RegistryError> {
        self.registry.register(job)?;
        Ok(self)
    }

    /// Uses `registry` as the set of job types, replacing any registered so far.
    ///
    /// ```
    /// let builder = hopper::Hopper::builder().registry(hopper::Registry::new());
    /// # let _ = builder;
    /// ```
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Shares `value` with every handler through [`JobContext::state`](crate::JobContext::state).
    ///
    /// ```
    /// let builder = hopper::Hopper::builder().state(42u64);
    /// # let _ = builder;
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state = std::mem::take(&mut self.state).with(value);
        self
    }

    /// Reads "now" from `clock` (tests use a [`ManualClock`](crate::clock::ManualClock)).
    ///
    /// ```
    /// let builder = hopper::Hopper::builder().clock(hopper::clock::ManualClock::new());
    /// # let _ = builder;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Refuses payloads larger than `bytes` at dispatch (default 1 MiB).
    ///
    /// ```
    /// let builder = hopper::Hopper::builder().max_payload_bytes(1024);
    /// # let _ = builder;
    /// ```
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// Whether single dispatches made at once from many tasks share one
    /// transaction (on by default). Under load, jobs dispatched while
    /// earlier transactions are being written go into the next one
    /// together, up to 500 of them, so a busy server stores many more jobs
    /// per second than it could commit one by one; a dispatch alone still
    /// goes straight through. Every caller gets its id only after the
    /// commit that stored its job; when that commit fails, every caller in
    /// it gets the error ([`StoreError::SharedCommit`]) and none of the
    /// jobs is stored. Jobs with a unique key or a sequence never share.
    /// A caller that stops waiting (its request timed out, say) may still
    /// have its job stored, as a dispatch cut short after its commit was
    /// sent may be without group commit; a shared transaction is written
    /// by a task of its own, so the other callers' jobs are not cut short
    /// with it. Dispatches inside [`Hopper::transaction`] are the caller's
    /// own transaction and are not affected.
    ///
    /// ```
    /// let builder = hopper::Hopper::builder().group_commit(false);
    /// # let _ = builder;
    /// ```
    pub fn group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// PostgreSQL behind a transaction pooler (PgBouncer's `pool_mode =
    /// transaction`, with `pooler=transaction` in the URL given to
    /// [`Builder::connect`]): `url` is the database's direct URL, where
    /// the store listens for notifications (LISTEN needs a session of its
    /// own) and migrates. It takes the place of the `HOPPER_LISTEN_URL`
    /// environment variable; without either, workers poll for due jobs.
    /// Other databases do not use it. See
    /// [`PostgresStore::open_with_listen_url`](crate::store::postgres::PostgresStore::open_with_listen_url).
    ///
    /// ```
    /// let builder = hopper::Hopper::builder().listen_url("postgres://app@db.internal:5432/app");
    /// # let _ = builder;
    /// ```
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn listen_url(mut self, url: impl Into<String>) -> Self {
        self.listen_url = Some(ListenUrl(url.into()));
        self
    }

    /// Opens the database at `url` (creating and migrating it) and builds the handle.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// assert!(hopper::Hopper::builder().connect("nosuchdb://x").await.is_err());
    /// # });
    /// ```
    pub async fn connect(self, url: &str) -> Result<Hopper, StoreError> {
        #[cfg(feature = "postgres")]
        if let Some(ListenUrl(listen_url)) = &self.listen_url {
            if url.starts_with("postgres:") || url.starts_with("postgresql:") {
                use crate::store::postgres::PostgresStore;
                let store = PostgresStore::open_with_listen_url(url, listen_url).await?;
                store.migrate().await?;
                return Ok(self.build(Arc::new(store)));
            }
        }
        let store = crate::store::open(url).await?;
        Ok(self.build(store))
    }

    /// Builds the handle over an already open, migrated store.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = hopper::store::open("sqlite::memory:").await.unwrap();
    /// let hopper = hopper::Hopper::builder().build(store);
    /// # let _ = hopper;
    /// # });
    /// ```
    pub fn build(self, store: Arc<dyn Store>) -> Hopper {
        Hopper::from_parts(
            store,
            self.registry,
            self.clock,
            self.state,
            self.max_payload_bytes,
            self.group_commit,
        )
    }
}

impl Hopper {
    /// Starts building a handle.
    ///
    /// ```
    /// let builder = hopper::Hopper::builder();
    /// # let _ = builder;
    /// ```
    pub fn builder() -> Builder {
        Builder {
            registry: Registry::new(),
            state: State::new(),
            clock: Arc::new(SystemClock),
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            group_commit: true,
            #[cfg(feature = "postgres")]
            listen_url: None,
        }
    }

    /// Dispatches a job of type `J` to run as soon as a worker is free.
    /// The compiler checks the payload's type. Returns the job's id. A type
    /// this handle has not registered is refused
    /// ([`RegistryError::UnknownType`]), as [`Hopper::dispatch_json`] refuses
    /// it: register the types a process dispatches even where it runs no
    /// workers, so a forgotten registration shows at the first dispatch.
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let id = hopper.dispatch::<Ping>(7).await.unwrap();
    /// assert!(id > 0);
    /// let unregistered = Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let refused = unregistered.dispatch::<Ping>(7).await.unwrap_err();
    /// assert_eq!(refused.to_string(), "no job registered for type ping");
    /// # });
    /// ```
    pub async fn dispatch<J: Job>(&self, payload: J::Payload) -> Result<JobId, DispatchError> {
        self.dispatch_with::<J>(payload, DispatchOptions::default())
            .await
    }

    /// Dispatches a job of type `J` with `options` (delay, queue, priority…).
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let id = hopper
    ///     .dispatch_with::<Ping>(7, DispatchOptions::new().queue("slow").priority(5))
    ///     .await
    ///     .unwrap();
    /// let job = hopper.job(id).await.unwrap().unwrap();
    /// assert_eq!((job.queue.as_str(), job.priority), ("slow", 5));
    /// # });
    /// ```
    pub async fn dispatch_with<J: Job>(
        &self,
        payload: J::Payload,
        options: DispatchOptions,
    ) -> Result<JobId, DispatchError> {
        let job = self.typed_job::<J>(&payload, &options, self.now())?;
        self.insert(vec![job]).await.map(|ids| ids[0])
    }

    /// Dispatches many jobs of type `J` in one transaction: all are stored or
    /// none. Returns their ids in order.
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let ids = hopper.dispatch_many::<Ping>(0..100, DispatchOptions::new()).await.unwrap();
    /// assert_eq!(ids.len(), 100);
    /// # });
    /// ```
    pub async fn dispatch_many<J: Job>(
        &self,
        payloads: impl IntoIterator<Item = J::Payload>,
        options: DispatchOptions,
    ) -> Result<Vec<JobId>, DispatchError> {
        let now = self.now();
        let jobs = payloads
            .into_iter()
            .map(|payload| self.typed_job::<J>(&payload, &options, now))
            .collect::<Result<Vec<_>, _>>()?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.insert(jobs).await
    }

    /// Dispatches a job by type name with a JSON payload, checked against
    /// the registered payload type first: an unknown type or a payload that
    /// does not fit is refused, and nothing is stored.
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Mail { to: String }
    /// struct MailJob;
    /// impl Job for MailJob {
    ///     const TYPE: &'static str = "mail";
    ///     type Payload = Mail;
    ///     async fn handle(&self, _: Mail, _: JobContext) -> JobResult { Ok(()) }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(MailJob).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let ok = hopper.dispatch_json("mail", &serde_json::json!({"to": "a@b.c"}), DispatchOptions::new()).await;
    /// assert!(ok.is_ok());
    /// let err = hopper.dispatch_json("mail", &serde_json::json!({"to": 5}), DispatchOptions::new()).await;
    /// assert!(err.unwrap_err().to_string().contains("invalid type"));
    /// # });
    /// ```
    pub async fn dispatch_json(
        &self,
        job_type: &str,
        payload: &serde_json::Value,
        options: DispatchOptions,
    ) -> Result<JobId, DispatchError> {
        let job = self.prepare_json(job_type, payload, options)?;
        self.insert(vec![job]).await.map(|ids| ids[0])
    }

    /// Builds the row a dispatch of `J` would insert, checked and ready,
    /// without storing it (what a dispatch in the application's own
    /// transaction inserts; see [`Hopper::transaction`] and
    /// [`Hopper::sqlite_transaction`]).
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let job = hopper.prepare::<Ping>(1, DispatchOptions::new().queue("pings")).unwrap();
    /// assert_eq!((job.job_type.as_str(), job.queue.as_str()), ("ping", "pings"));
    /// # });
    /// ```
    pub fn prepare<J: Job>(
        &self,
        payload: J::Payload,
        options: DispatchOptions,
    ) -> Result<NewJob, DispatchError> {
        self.typed_job::<J>(&payload, &options, self.now())
    }

    /// Like [`Hopper::prepare`], for a type name and JSON payload checked
    /// against the registered payload type.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let err = hopper.prepare_json("ghost", &serde_json::json!({}), Default::default()).unwrap_err();
    /// assert_eq!(err.to_string(), "no job registered for type ghost");
    /// # });
    /// ```
    pub fn prepare_json(
        &self,
        job_type: &str,
        payload: &serde_json::Value,
        options: DispatchOptions,
    ) -> Result<NewJob, DispatchError> {
        let text = payload.to_string();
        self.check_size(job_type, &text)?;
        if job_type.contains('\0') {
            return Err(DispatchError::NulCharacter {
                job_type: job_type.to_owned(),
                field: "type name",
            });
        }
        let (defaults, partition) = self.registry().inspect(job_type, &text)?;
        let mut job = options.new_job(job_type, defaults, text, self.now());
        job.partition_key = job.partition_key.or(partition);
        crate::dispatch::check_text(&job)?;
        Ok(job)
    }

    fn typed_job<J: Job>(
        &self,
        payload: &J::Payload,
        options: &DispatchOptions,
        now: DateTime<Utc>,
    ) -> Result<NewJob, DispatchError> {
        // Refused here, not by a worker later: a type this handle does not
        // know is, in an application that builds one handle for both, a type
        // no worker of it runs.
        if !self.registry().contains(J::TYPE) {
            return Err(RegistryError::UnknownType(J::TYPE.to_owned()).into());
        }
        let text = serde_json::to_string(payload).map_err(|source| DispatchError::Encode {
            job_type: J::TYPE.to_owned(),
            source,
        })?;
        self.check_size(J::TYPE, &text)?;
        let defaults = JobDefaults {
            queue: J::QUEUE,
            max_attempts: J::MAX_ATTEMPTS,
        };
        let mut job = options.new_job(J::TYPE, defaults, text, now);
        if job.partition_key.is_none() {
            job.partition_key = J::partition(payload);
        }
        crate::dispatch::check_text(&job)?;
        Ok(job)
    }

    fn check_size(&self, job_type: &str, payload: &str) -> Result<(), DispatchError> {
        let limit = self.max_payload_bytes();
        if payload.len() > limit {
            return Err(DispatchError::TooLarge {
                job_type: job_type.to_owned(),
                size: payload.len(),
                limit,
            });
        }
        Ok(())
    }

    async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, DispatchError> {
        let ids = match (self.group_commit(), jobs.as_slice()) {
            (Some(group), [job]) if GroupCommit::takes(job) => {
                vec![group.insert(job).await?]
            }
            _ => self.store().insert(&jobs).await?,
        };
        self.dispatched(&ids, &jobs);
        Ok(ids)
    }

    /// Records stored jobs (metrics, hook events) and wakes this process's
    /// idle workers of each queue with a job due now: what follows every
    /// dispatch once its jobs are committed.
    pub(crate) fn dispatched(&self, ids: &[JobId], jobs: &[NewJob]) {
        crate::metrics::dispatched(jobs);
        crate::events::dispatched(ids, jobs);
        let now = self.now();
        let mut woken: Vec<&str> = Vec::new();
        for job in jobs {
            if job.available_at <= now && !woken.contains(&job.queue.as_str()) {
                woken.push(&job.queue);
                self.wake(&job.queue);
            }
        }
    }

    /// Everything stored about job `id`, or `None` if there is no such job.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper.job(404).await.unwrap().is_none());
    /// # });
    /// ```
    pub async fn job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        self.store().get(id).await
    }

    /// One page of the jobs matching `filter`, newest first, with the
    /// cursor of the next (older) page while there is one: pass it as
    /// [`JobFilter::before`] to read that page. A page holds
    /// [`DEFAULT_PAGE_SIZE`](crate::store::DEFAULT_PAGE_SIZE) jobs unless
    /// `filter.limit` says otherwise; a limit of 0 or above
    /// [`MAX_PAGE_SIZE`](crate::store::MAX_PAGE_SIZE) is refused
    /// ([`StoreError::PageSize`]). Paging is on the job id, so jobs
    /// dispatched between two pages show on neither (they are newer than
    /// the first).
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::{DispatchOptions, JobFilter};
    /// let hopper = hopper::Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// hopper.dispatch_many::<Ping>(0..5, DispatchOptions::new()).await.unwrap();
    /// let mut filter = JobFilter { limit: Some(2), ..Default::default() };
    /// let mut seen = Vec::new();
    /// loop {
    ///     let page = hopper.jobs(&filter).await.unwrap();
    ///     seen.extend(page.jobs.iter().map(|job| job.payload.clone()));
    ///     let Some(next) = page.next else { break };
    ///     filter.before = Some(next);
    /// }
    /// assert_eq!(seen, ["4", "3", "2", "1", "0"]);
    /// let nul = JobFilter { queue: Some("a\0b".into()), ..Default::default() };
    /// assert!(hopper.jobs(&nul).await.unwrap().jobs.is_empty());
    /// let huge = JobFilter { limit: Some(100_000), ..Default::default() };
    /// assert!(hopper.jobs(&huge).await.is_err());
    /// # });
    /// ```
    pub async fn jobs(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let names = [filter.queue.as_deref(), filter.job_type.as_deref()];
        if names.into_iter().flatten().any(|name| name.contains('\0')) {
            // Dispatch refuses NUL in these names, so no stored job has one
            // (and PostgreSQL could not even compare with it).
            filter.page_size()?;
            return Ok(JobPage::default());
        }
        self.store().list(filter).await
    }

    /// Job counts per queue and state.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper.counts().await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn counts(&self) -> Result<Vec<StateCount>, StoreError> {
        self.store().counts().await
    }

    /// Job counts per type and state, by type then state; states no job of
    /// a type is in are left out.
    ///
    /// ```
    /// # use hopper::{Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::{JobState, store::TypeCount};
    /// let hopper = hopper::Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper.counts_by_type().await.unwrap().is_empty());
    /// hopper.dispatch::<Ping>(()).await.unwrap();
    /// let id = hopper.dispatch::<Ping>(()).await.unwrap();
    /// hopper.cancel(id).await.unwrap();
    /// let ping = |state, count| TypeCount { job_type: "ping".into(), state, count };
    /// assert_eq!(
    ///     hopper.counts_by_type().await.unwrap(),
    ///     [ping(JobState::Cancelled, 1), ping(JobState::Pending, 1)],
    /// );
    /// # });
    /// ```
    pub async fn counts_by_type(&self) -> Result<Vec<TypeCount>, StoreError> {
        self.store().counts_by_type().await
    }

    /// Cancels job `id`: a pending job is cancelled at once; a running one
    /// is told to stop, wherever it runs. Its handler's
    /// [`JobContext`](crate::JobContext) cancellation fires when the pool
    /// running it hears of the cancel: at once in this process or on
    /// PostgreSQL (which notifies every process), within about 200 ms on
    /// SQLite (pools watch the database file), and on MySQL when the pool
    /// next renews its leases (a third of a lease, 10 s by default); the
    /// run is stopped at its next `.await`, and the job ends `cancelled`,
    /// not retried. A handler that finishes before that ends as it ends.
    /// Returns whether the job was pending or running.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(!hopper.cancel(1).await.unwrap());
    /// # });
    /// ```
    pub async fn cancel(&self, id: JobId) -> Result<bool, StoreError> {
        let (cancelled, ended) = self.cancel_one(id).await?;
        if ended {
            // A batch or workflow it belonged to may be done, or blocked.
            crate::batch::settle(self).await;
        }
        Ok(cancelled)
    }

    /// Cancels job `id` as [`Hopper::cancel`] does, leaving batches to be
    /// settled by the caller: whether it was pending or running, and
    /// whether it ended here (it was pending).
    pub(crate) async fn cancel_one(&self, id: JobId) -> Result<(bool, bool), StoreError> {
        // Pending first, the common case; a job that started meanwhile is
        // then asked to stop.
        let cancelled = self.store().cancel(id, self.now()).await?;
        if !cancelled && self.store().request_cancel(id).await? {
            self.cancel_requested();
            return Ok((true, false));
        }
        // The event carries the job's fields, read back only when it is logged;
        // the job is cancelled either way, so a failed read is only logged.
        if cancelled {
            self.waiters().ended([id]);
        }
        if cancelled && tracing::enabled!(target: "hopper::events", tracing::Level::INFO) {
            match self.store().get(id).await {
                Ok(Some(job)) => crate::events::cancelled(&job),
                Ok(None) => {}
                Err(error) => tracing::warn!(id, %error, "reading a cancelled job failed"),
            }
        }
        Ok((cancelled, cancelled))
    }

    /// Puts a failed or cancelled job back to pending, due now, with as many
    /// new attempts as its type allows; returns whether it was failed or
    /// cancelled. A job whose unique key another live job holds meanwhile
    /// stays as it is: [`StoreError::UniqueKeyHeld`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(!hopper.retry(1).await.unwrap());
    /// # });
    /// ```
    pub async fn retry(&self, id: JobId) -> Result<bool, StoreError> {
        let Some(job) = self.store().get(id).await? else {
            return Ok(false);
        };
        let attempts = self
            .registry()
            .get(&job.job_type)
            .map(|registered| registered.defaults().max_attempts)
            .unwrap_or(1);
        let request = RetryRequest {
            id,
            now: self.now(),
            extra_attempts: attempts,
        };
        let retried = match self.store().retry(request).await {
            Err(error) if error.is_unique_violation() => {
                return Err(StoreError::UniqueKeyHeld {
                    id,
                    key: job.unique_key.unwrap_or_default(),
                });
            }
            retried => retried?,
        };
        if retried {
            self.wake(&job.queue);
        }
        Ok(retried)
    }

    /// Puts every failed job of `job_type` (every type when `None`) in
    /// `queue` (every queue when `None`) back to pending, due now, each with
    /// as many new attempts as its type allows, and wakes the workers of
    /// their queues. A job whose unique key another live job holds stays
    /// failed and is counted in [`RetriedFailed::skipped`] instead of
    /// failing the call. The store works through the jobs in bounded
    /// batches (see [`Store::retry_failed`]).
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobError, JobResult};
    /// struct Doomed;
    /// impl Job for Doomed {
    ///     const TYPE: &'static str = "doomed";
    ///     type Payload = ();
    ///     async fn handle(&self, _: (), _: JobContext) -> JobResult { Err(JobError::permanent("no")) }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let builder = Hopper::builder().register(Doomed).unwrap();
    /// let queue = hopper::testing::TestQueue::start(builder).await.unwrap();
    /// let hopper = queue.hopper();
    /// hopper.dispatch::<Doomed>(()).await.unwrap();
    /// hopper.dispatch_with::<Doomed>((), DispatchOptions::new().queue("other")).await.unwrap();
    /// queue.wait_idle().await.unwrap();
    /// hopper.pause("default").await.unwrap();
    /// let done = hopper.retry_all_failed(Some("doomed"), Some("default")).await.unwrap();
    /// assert_eq!((done.retried, done.skipped), (1, 0));
    /// assert_eq!(done.queues, ["default"]);
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub async fn retry_all_failed(
        &self,
        job_type: Option<&str>,
        queue: Option<&str>,
    ) -> Result<RetriedFailed, StoreError> {
        if [job_type, queue]
            .into_iter()
            .flatten()
            .any(|name| name.contains('\0'))
        {
            // Dispatch refuses NUL in these names, so no stored job has one.
            return Ok(RetriedFailed::default());
        }
        let registry = self.registry();
        let extra_attempts = registry
            .types()
            .filter(|name| job_type.is_none_or(|wanted| wanted == *name))
            .filter_map(|name| {
                let registered = registry.get(name).ok()?;
                Some((name.to_owned(), registered.defaults().max_attempts))
            })
            .collect();
        let request = RetryFailed {
            job_type: job_type.map(str::to_owned),
            queue: queue.map(str::to_owned),
            now: self.now(),
            extra_attempts,
            default_extra_attempts: 1,
        };
        let done = self.store().retry_failed(&request).await?;
        for queue in &done.queues {
            self.wake(queue);
        }
        Ok(done)
    }

    /// Deletes job `id` unless it is running; returns whether it was deleted.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(!hopper.delete(1).await.unwrap());
    /// # });
    /// ```
    pub async fn delete(&self, id: JobId) -> Result<bool, StoreError> {
        // Deleting is the store's one statement; `bulk` calls it directly
        // and settles once a page.
        let deleted = self.store().delete(id).await?;
        if deleted {
            // A batch no longer waiting on it may be done, and jobs waiting
            // on it end their wait as they would at its cancel.
            crate::batch::settle(self).await;
        }
        Ok(deleted)
    }

    /// Runs the pending job `id` now without waiting any longer on the
    /// jobs it waits on: the way past a sequence held by a job that failed
    /// for good (see [`DispatchOptions::sequence`]), or a workflow step
    /// released by hand. Returns whether it was waiting.
    ///
    /// ```
    /// # use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult, JobState};
    /// # struct Post;
    /// # impl Job for Post {
    /// #     const TYPE: &'static str = "post";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Post).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let in_line = DispatchOptions::new().sequence("ledger:7");
    /// let first = hopper.dispatch_with::<Post>(1, in_line.clone()).await.unwrap();
    /// let second = hopper.dispatch_with::<Post>(2, in_line).await.unwrap();
    /// assert_eq!(hopper.job(second).await.unwrap().unwrap().waiting_on, 1);
    /// assert!(hopper.skip_wait(second).await.unwrap());
    /// assert_eq!(hopper.job(second).await.unwrap().unwrap().waiting_on, 0);
    /// assert!(!hopper.skip_wait(first).await.unwrap());
    /// # });
    /// ```
    pub async fn skip_wait(&self, id: JobId) -> Result<bool, StoreError> {
        let released = self.store().skip_wait(id, self.now()).await?;
        if let Some(queue) = &released {
            self.wake(queue);
        }
        Ok(released.is_some())
    }

    /// Tells every worker, in every process, to claim nothing more from
    /// `queue` until it is resumed. Jobs already running finish.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// hopper.pause("mail").await.unwrap();
    /// assert!(hopper.queue_stats().await.unwrap()[0].paused);
    /// # });
    /// ```
    pub async fn pause(&self, queue: &str) -> Result<(), StoreError> {
        crate::store::check_name("queue name", queue)?;
        let request = PauseRequest {
            queue,
            paused: true,
            now: self.now(),
        };
        self.store().set_paused(request).await
    }

    /// Limits how many jobs of `queue` run at once across every process
    /// sharing the database (`None` lifts the limit): "at most 5 calls to
    /// the payment provider at a time", however many pools run. Claims
    /// count the queue's started jobs under the limit, so it holds without
    /// any process knowing of the others; a killed process's share comes
    /// back when its leases run out. The limit is stored in the database
    /// and applies to claims that begin after it is set; the queue's other
    /// flow settings ([`Hopper::set_queue_flow`]) stay as they are.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// hopper.limit_queue("payments", Some(5)).await.unwrap();
    /// assert_eq!(hopper.queue_flow("payments").await.unwrap().concurrency, Some(5));
    /// hopper.limit_queue("payments", None).await.unwrap();
    /// # });
    /// ```
    pub async fn limit_queue(&self, queue: &str, limit: Option<u32>) -> Result<(), StoreError> {
        let flow = QueueFlow {
            concurrency: limit,
            ..self.queue_flow(queue).await?
        };
        self.set_queue_flow(queue, flow).await
    }

    /// Replaces `queue`'s flow settings, across every process sharing the
    /// database: how many of its jobs run at once, how many per partition
    /// key, how many start per period (per queue or per key), and whether
    /// its keys are served in turn. Claims that begin after this follow
    /// them; [`QueueFlow::default`] lifts every one.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use hopper::store::{QueueFlow, Rate};
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// // One mail at a time per customer, at most 100 a minute each.
    /// let flow = QueueFlow::default().per_key(1).rate(Rate::per_key(100, Duration::from_secs(60)));
    /// hopper.set_queue_flow("mailer", flow).await.unwrap();
    /// assert_eq!(hopper.queue_flow("mailer").await.unwrap(), flow);
    /// # });
    /// ```
    pub async fn set_queue_flow(&self, queue: &str, flow: QueueFlow) -> Result<(), StoreError> {
        crate::store::check_name("queue name", queue)?;
        flow.check()?;
        let request = FlowRequest {
            queue,
            flow: &flow,
            now: self.now(),
        };
        self.store().set_flow(request).await?;
        self.wake(queue);
        Ok(())
    }

    /// `queue`'s flow settings ([`Hopper::set_queue_flow`]); none set: the default.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(!hopper.queue_flow("default").await.unwrap().is_controlled());
    /// # });
    /// ```
    pub async fn queue_flow(&self, queue: &str) -> Result<QueueFlow, StoreError> {
        crate::store::check_name("queue name", queue)?;
        self.store().flow(queue).await
    }

    /// Every queue with flow settings, by name, and how much of them is in
    /// use now, across every process: jobs running, the busiest keys,
    /// starts in the current rate window and the due jobs a limit holds
    /// back ([`FlowUsage`](crate::store::FlowUsage)). The one place the
    /// dashboard, the JSON API, `/metrics` and the console read it from.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::QueueFlow;
    /// # use hopper::{Job, JobContext, JobResult};
    /// # struct Charge;
    /// # impl Job for Charge {
    /// #     const TYPE: &'static str = "charge";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let hopper = hopper::Hopper::builder().register(Charge).unwrap().connect("sqlite::memory:").await.unwrap();
    /// hopper.set_queue_flow("default", QueueFlow::default().per_key(1)).await.unwrap();
    /// hopper.dispatch::<Charge>(()).await.unwrap();
    /// let usage = hopper.flow_usage().await.unwrap();
    /// assert_eq!((usage[0].queue.as_str(), usage[0].due, usage[0].running), ("default", 1, 0));
    /// assert_eq!(usage[0].flow.key_concurrency, Some(1));
    /// # });
    /// ```
    pub async fn flow_usage(&self) -> Result<Vec<crate::store::FlowUsage>, StoreError> {
        self.store().flow_usage(self.now()).await
    }

    /// Lets workers claim from `queue` again.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// hopper.pause("mail").await.unwrap();
    /// hopper.resume("mail").await.unwrap();
    /// assert!(!hopper.queue_stats().await.unwrap()[0].paused);
    /// # });
    /// ```
    pub async fn resume(&self, queue: &str) -> Result<(), StoreError> {
        crate::store::check_name("queue name", queue)?;
        let request = PauseRequest {
            queue,
            paused: false,
            now: self.now(),
        };
        self.store().set_paused(request).await?;
        self.wake(queue);
        Ok(())
    }

    /// Due work per queue: how many jobs wait, since when, and whether the
    /// queue is paused.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper.queue_stats().await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn queue_stats(&self) -> Result<Vec<QueueStats>, StoreError> {
        self.store().queue_stats(self.now()).await
    }

    /// The status of every queue now: jobs per state, due work and its
    /// oldest job, whether it is paused and the live pools running it,
    /// with the jobs that ended per minute over the last `window`. The one
    /// place the dashboard, the JSON API and the console read it from.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hopper::{Job, JobContext, JobResult};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let hopper = hopper::Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// hopper.dispatch::<Ping>(()).await.unwrap();
    /// let status = hopper.status(std::time::Duration::from_secs(3600)).await.unwrap();
    /// let default = &status.queues[0];
    /// assert_eq!((default.queue.as_str(), default.counts.pending, default.due), ("default", 1, 1));
    /// assert!(!default.paused && default.workers.is_empty());
    /// # });
    /// ```
    pub async fn status(&self, window: std::time::Duration) -> Result<Status, StoreError> {
        let now = self.now();
        let store = &self.store();
        let counts = store.counts().await?;
        let stats = store.queue_stats(now).await?;
        let workers = store.worker_concurrency(now).await?;
        let throughput = store.throughput(crate::clock::sub(now, window)).await?;
        Ok(Status::assemble(now, counts, stats, workers, throughput))
    }

    /// Jobs finished and failed per minute over the last `window`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let hour = std::time::Duration::from_secs(3600);
    /// assert!(hopper.throughput(hour).await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn throughput(
        &self,
        window: std::time::Duration,
    ) -> Result<Vec<MinuteCount>, StoreError> {
        let since = crate::clock::sub(self.now(), window);
        self.store().throughput(since).await
    }

    /// Deletes ended jobs older than `retention` allows; returns how many.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert_eq!(hopper.prune(hopper::Retention::default()).await.unwrap(), 0);
    /// # });
    /// ```
    pub async fn prune(&self, retention: Retention) -> Result<u64, StoreError> {
        crate::maintenance::prune(self.store().as_ref(), self.now(), retention).await
    }
}
