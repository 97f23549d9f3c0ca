//! Helpers for testing jobs: a real queue on a temporary SQLite file with a
//! clock you move by hand, waiting for work to finish without sleeping, and
//! running one handler directly.

use std::time::Duration;

use crate::client::{Builder, Hopper};
use crate::clock::ManualClock;
use crate::job::{Job, JobContext, JobResult};
use crate::store::{JobFilter, JobRecord, MAX_PAGE_SIZE, StoreError};
use crate::worker::{WorkerConfig, WorkerError, WorkerPool};

/// What can go wrong in a test queue.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    /// The temporary database could not be made.
    #[error("cannot create a temporary database: {0}")]
    TempDir(#[from] std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The workers failed to start or stop.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// The queue did not become idle in time.
    #[error("queue not idle after {waited:?}: {in_flight} jobs running, {due} due jobs waiting")]
    NotIdle {
        /// How long was waited.
        waited: Duration,
        /// Jobs claimed and not yet recorded.
        in_flight: usize,
        /// Due pending jobs on the pool's queues.
        due: u64,
    },
}

/// Calls a job's handler once, directly, as a unit test would: no database,
/// attempt 1.
///
/// ```
/// # use hopper::{Job, JobContext, JobResult};
/// struct Double;
/// impl Job for Double {
///     const TYPE: &'static str = "double";
///     type Payload = u32;
///     async fn handle(&self, n: u32, _: JobContext) -> JobResult {
///         if n > 100 { return Err(hopper::JobError::permanent("too big")); }
///         Ok(())
///     }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// assert!(hopper::testing::perform(&Double, 2).await.is_ok());
/// assert!(hopper::testing::perform(&Double, 200).await.unwrap_err().is_permanent());
/// # });
/// ```
pub async fn perform<J: Job>(job: &J, payload: J::Payload) -> JobResult {
    job.handle(payload, JobContext::detached(0, 1)).await
}

/// Every job `filter` matches, newest first: its pages one after the other,
/// from `filter.before` on, each of `filter.limit` jobs, or of
/// [`MAX_PAGE_SIZE`] when it sets none. For tests and audits that look at
/// every job; a listing for people reads one page at a time
/// ([`Hopper::jobs`]).
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
/// hopper.dispatch_many::<Ping>(0..700, DispatchOptions::new()).await.unwrap();
/// let every = hopper::testing::all_jobs(&hopper, &JobFilter::default()).await.unwrap();
/// assert_eq!((every.len(), every[0].payload.as_str()), (700, "699"));
/// let small_pages = JobFilter { limit: Some(3), ..Default::default() };
/// assert_eq!(hopper::testing::all_jobs(&hopper, &small_pages).await.unwrap(), every);
/// # });
/// ```
pub async fn all_jobs(hopper: &Hopper, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
    let mut filter = JobFilter {
        limit: Some(filter.limit.unwrap_or(MAX_PAGE_SIZE)),
        ..filter.clone()
    };
    let mut jobs = Vec::new();
    loop {
        let page = hopper.jobs(&filter).await?;
        jobs.extend(page.jobs);
        match page.next {
            Some(next) => filter.before = Some(next),
            None => return Ok(jobs),
        }
    }
}

/// A real queue for tests: a fresh SQLite file in a temporary folder, a
/// [`ManualClock`], and a running worker pool.
///
/// ```
/// # use hopper::{Job, JobContext, JobResult, JobState};
/// # struct Ping;
/// # impl Job for Ping {
/// #     const TYPE: &'static str = "ping";
/// #     type Payload = ();
/// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
/// # }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::testing::TestQueue;
/// let queue = TestQueue::start(hopper::Hopper::builder().register(Ping).unwrap()).await.unwrap();
/// let id = queue.hopper().dispatch::<Ping>(()).await.unwrap();
/// queue.wait_idle().await.unwrap();
/// assert_eq!(queue.hopper().job(id).await.unwrap().unwrap().state, JobState::Finished);
/// queue.stop().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct TestQueue {
    hopper: Hopper,
    clock: ManualClock,
    pool: WorkerPool,
    queues: Vec<String>,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestQueue {
    /// Starts a queue with 4 workers on the `default` queue.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// queue.stop().await.unwrap();
    /// # });
    /// ```
    pub async fn start(builder: Builder) -> Result<Self, TestingError> {
        Self::start_with(builder, WorkerConfig::new(4)).await
    }

    /// Starts a queue with the given worker configuration.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let config = hopper::WorkerConfig::new(1).queue("mail", 1);
    /// let queue = hopper::testing::TestQueue::start_with(hopper::Hopper::builder(), config).await.unwrap();
    /// queue.stop().await.unwrap();
    /// # });
    /// ```
    pub async fn start_with(builder: Builder, config: WorkerConfig) -> Result<Self, TestingError> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("hopper.db").display());
        let mut queue = Self::start_on(&url, builder, config).await?;
        queue._dir = Some(dir);
        Ok(queue)
    }

    /// Starts a queue on the database at `url` (which should be empty and
    /// reserved for this test).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}", dir.path().join("t.db").display());
    /// let config = hopper::WorkerConfig::new(2);
    /// let queue = hopper::testing::TestQueue::start_on(&url, hopper::Hopper::builder(), config).await.unwrap();
    /// queue.stop().await.unwrap();
    /// # });
    /// ```
    pub async fn start_on(
        url: &str,
        builder: Builder,
        config: WorkerConfig,
    ) -> Result<Self, TestingError> {
        let clock = ManualClock::new();
        let hopper = builder.clock(clock.clone()).connect(url).await?;
        let queues = config.queues().iter().map(|(q, _)| q.clone()).collect();
        let pool = hopper.start(config)?;
        Ok(Self {
            hopper,
            clock,
            pool,
            queues,
            url: url.to_owned(),
            _dir: None,
        })
    }

    /// The queue's handle: dispatch and inspect through it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// assert!(queue.hopper().job(1).await.unwrap().is_none());
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub fn hopper(&self) -> &Hopper {
        &self.hopper
    }

    /// The manual clock every timestamp comes from.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// use hopper::clock::Clock;
    /// assert_eq!(queue.clock().now(), queue.hopper().now());
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// The database URL.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// assert!(queue.database_url().starts_with("sqlite://"));
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub fn database_url(&self) -> &str {
        &self.url
    }

    /// The running pool.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// queue.wait_idle().await.unwrap();
    /// assert!(queue.pool().worker_id().contains(':'));
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// Moves the clock forward and wakes the workers, so delayed jobs and
    /// retries that came due run now.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// queue.advance(std::time::Duration::from_secs(60));
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
        for queue in &self.queues {
            self.hopper.wake(queue);
        }
    }

    /// Waits (up to 30 s) until no job is running and no due job waits on
    /// the pool's queues.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// queue.wait_idle().await.unwrap();
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub async fn wait_idle(&self) -> Result<(), TestingError> {
        self.wait_idle_for(Duration::from_secs(30)).await
    }

    /// [`TestQueue::wait_idle`] with a chosen limit.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// queue.wait_idle_for(std::time::Duration::from_secs(1)).await.unwrap();
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub async fn wait_idle_for(&self, limit: Duration) -> Result<(), TestingError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut activity = self.pool.activity();
        loop {
            activity.borrow_and_update();
            // Due jobs first: a job claimed after this count is already
            // counted in flight when `in_flight` is read below.
            let due: u64 = self
                .hopper
                .store()
                .queue_stats(self.hopper.now())
                .await?
                .iter()
                .filter(|stats| self.queues.contains(&stats.queue) && !stats.paused)
                .map(|stats| stats.due)
                .sum();
            let in_flight = self.pool.in_flight();
            if in_flight == 0 && due == 0 {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, activity.changed())
                .await
                .is_err()
            {
                return Err(TestingError::NotIdle {
                    waited: limit,
                    in_flight,
                    due,
                });
            }
        }
    }

    /// Stops the workers gracefully.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let queue = hopper::testing::TestQueue::start(hopper::Hopper::builder()).await.unwrap();
    /// queue.stop().await.unwrap();
    /// # });
    /// ```
    pub async fn stop(self) -> Result<(), TestingError> {
        self.pool.stop().await?;
        Ok(())
    }
}
