//! The worker pool: claims due jobs, runs each in its own task, records how
//! every run ended, keeps leases alive, rescues jobs of dead workers, prunes
//! old jobs, and stops gracefully.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, field};

use crate::client::Hopper;
use crate::job::{DEFAULT_QUEUE, JobContext, JobError};
use crate::maintenance::Retention;
use crate::store::{ClaimRequest, ClaimedJob, Completion, Outcome, StoreError, Wakeup};

/// What can go wrong starting or stopping workers.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration cannot work.
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// Jobs still held at stop could not be handed back; their leases will
    /// expire and the rescuer will return them.
    #[error("could not hand {what} back at stop: {source}")]
    Release {
        /// What was being handed back.
        what: &'static str,
        /// Why.
        source: StoreError,
    },
    /// A background task of the pool panicked.
    #[error("worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Most completions written in one transaction.
const COMPLETION_BATCH: usize = 1_000;

/// How a worker pool runs: its queues and their concurrency, leases,
/// polling, shutdown deadline and maintenance.
///
/// ```
/// use std::time::Duration;
/// let config = hopper::WorkerConfig::new(10)
///     .queue("mail", 2)
///     .shutdown_timeout(Duration::from_secs(10));
/// assert_eq!(config.queues().len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    queues: Vec<(String, usize)>,
    lease: Duration,
    poll_interval: Duration,
    shutdown_timeout: Duration,
    rescue_interval: Duration,
    prune_interval: Option<Duration>,
    retention: Retention,
    worker_id: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self::new(10)
    }
}

impl WorkerConfig {
    /// `workers` concurrent jobs on the `default` queue; further queues via [`WorkerConfig::queue`].
    ///
    /// ```
    /// let config = hopper::WorkerConfig::new(4);
    /// assert_eq!(config.queues(), &[("default".to_string(), 4)]);
    /// ```
    pub fn new(workers: usize) -> Self {
        Self {
            queues: vec![(DEFAULT_QUEUE.to_owned(), workers)],
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            rescue_interval: Duration::from_secs(15),
            prune_interval: Some(Duration::from_secs(3600)),
            retention: Retention::default(),
            worker_id: None,
        }
    }

    /// Also runs `queue` with `workers` concurrent jobs (or changes its count).
    ///
    /// ```
    /// let config = hopper::WorkerConfig::new(1).queue("default", 3);
    /// assert_eq!(config.queues(), &[("default".to_string(), 3)]);
    /// ```
    pub fn queue(mut self, queue: impl Into<String>, workers: usize) -> Self {
        let queue = queue.into();
        match self.queues.iter_mut().find(|(name, _)| *name == queue) {
            Some(entry) => entry.1 = workers,
            None => self.queues.push((queue, workers)),
        }
        self
    }

    /// Runs only the queues given by later [`WorkerConfig::queue`] calls.
    ///
    /// ```
    /// let config = hopper::WorkerConfig::new(1).only().queue("mail", 2);
    /// assert_eq!(config.queues(), &[("mail".to_string(), 2)]);
    /// ```
    pub fn only(mut self) -> Self {
        self.queues.clear();
        self
    }

    /// The queues run, with their concurrency.
    ///
    /// ```
    /// assert_eq!(hopper::WorkerConfig::default().queues()[0].1, 10);
    /// ```
    pub fn queues(&self) -> &[(String, usize)] {
        &self.queues
    }

    /// How long a claim holds a job without a heartbeat (default 30 s). A
    /// killed worker's jobs run again elsewhere about this long after.
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).lease(std::time::Duration::from_secs(5));
    /// # let _ = c;
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often an idle worker looks for jobs that no in-process wake-up
    /// announced: delayed jobs coming due, other processes' dispatches (default 1 s).
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).poll_interval(std::time::Duration::from_millis(200));
    /// # let _ = c;
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long [`WorkerPool::stop`] lets running jobs finish (default 30 s).
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).shutdown_timeout(std::time::Duration::from_secs(5));
    /// # let _ = c;
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How often expired leases are looked for (default 15 s). Only one pool
    /// among all sharing the database rescues and prunes at a time; another
    /// takes over within three intervals of its stopping.
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).rescue_interval(std::time::Duration::from_secs(1));
    /// # let _ = c;
    /// ```
    pub fn rescue_interval(mut self, interval: Duration) -> Self {
        self.rescue_interval = interval;
        self
    }

    /// How often old jobs are pruned (default hourly); `None` turns pruning off.
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).prune_interval(None);
    /// # let _ = c;
    /// ```
    pub fn prune_interval(mut self, interval: Option<Duration>) -> Self {
        self.prune_interval = interval;
        self
    }

    /// How long ended jobs are kept (see [`Retention`]).
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).retention(hopper::Retention::default());
    /// # let _ = c;
    /// ```
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// The id written to `locked_by` (default: host, process id and a random suffix).
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).worker_id("web-1");
    /// # let _ = c;
    /// ```
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    fn check(&self) -> Result<(), WorkerError> {
        let bad = |why: String| Err(WorkerError::Config(why));
        if self.queues.is_empty() {
            return bad("no queues to work".into());
        }
        if let Some((queue, _)) = self.queues.iter().find(|(_, n)| *n == 0) {
            return bad(format!("queue {queue:?} has 0 workers"));
        }
        if self.queues.iter().any(|(queue, _)| queue.trim().is_empty()) {
            return bad("a queue name is empty".into());
        }
        if self.lease < Duration::from_millis(100) {
            return bad("the lease must be at least 100 ms".into());
        }
        if self.poll_interval.is_zero() || self.rescue_interval.is_zero() {
            return bad("poll and rescue intervals must be above zero".into());
        }
        Ok(())
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

/// Running workers. Stop them with [`WorkerPool::stop`]: dropping the pool
/// leaves its jobs to the rescuer once their leases expire.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// let pool = hopper.start(hopper::WorkerConfig::new(2)).unwrap();
/// assert!(pool.worker_id().contains(':'));
/// pool.stop().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct WorkerPool {
    shared: Arc<Shared>,
    fetchers: Vec<JoinHandle<()>>,
    completer: JoinHandle<()>,
    maintenance: Vec<JoinHandle<()>>,
    completions: mpsc::Sender<Completion>,
}

#[derive(Debug)]
struct Shared {
    hopper: Hopper,
    worker_id: String,
    config: WorkerConfig,
    /// Fired by `stop`: claim nothing more.
    stop_claiming: CancellationToken,
    /// Fired when the shutdown deadline passes: running jobs are cancelled.
    hard_stop: CancellationToken,
    /// Fired last: heartbeats and maintenance end.
    stop_background: CancellationToken,
    jobs: TaskTracker,
    /// Jobs claimed whose completion is not yet written.
    outstanding: AtomicUsize,
    /// Bumped on every claim and every written completion batch.
    activity: watch::Sender<u64>,
}

impl Shared {
    fn bump(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn lease_until(&self) -> chrono::DateTime<chrono::Utc> {
        crate::clock::add(self.hopper.now(), self.config.lease)
    }
}

impl WorkerPool {
    pub(crate) fn start(hopper: Hopper, config: WorkerConfig) -> Result<Self, WorkerError> {
        config.check()?;
        let worker_id = config.worker_id.clone().unwrap_or_else(default_worker_id);
        let shared = Arc::new(Shared {
            hopper,
            worker_id,
            config,
            stop_claiming: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            stop_background: CancellationToken::new(),
            jobs: TaskTracker::new(),
            outstanding: AtomicUsize::new(0),
            activity: watch::channel(0).0,
        });
        let total: usize = shared.config.queues.iter().map(|(_, n)| n).sum();
        let (completions, receiver) = mpsc::channel(total.max(COMPLETION_BATCH));
        let fetchers = shared
            .config
            .queues
            .iter()
            .map(|(queue, workers)| {
                tokio::spawn(fetch(
                    shared.clone(),
                    queue.clone(),
                    *workers,
                    completions.clone(),
                ))
            })
            .collect();
        let completer = tokio::spawn(complete(shared.clone(), receiver));
        let mut maintenance = vec![
            tokio::spawn(heartbeat(shared.clone())),
            tokio::spawn(rescue(shared.clone())),
        ];
        if let Some(interval) = shared.config.prune_interval {
            maintenance.push(tokio::spawn(prune(shared.clone(), interval)));
        }
        if let Some(wakeups) = shared.hopper.store().listen() {
            maintenance.push(tokio::spawn(forward_wakeups(shared.clone(), wakeups)));
        }
        tracing::info!(worker = %shared.worker_id, queues = ?shared.config.queues, "workers started");
        Ok(Self {
            shared,
            fetchers,
            completer,
            maintenance,
            completions,
        })
    }

    /// The id this pool writes to `locked_by`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let pool = hopper.start(hopper::WorkerConfig::new(1).worker_id("w-1")).unwrap();
    /// assert_eq!(pool.worker_id(), "w-1");
    /// # pool.stop().await.unwrap();
    /// # });
    /// ```
    pub fn worker_id(&self) -> &str {
        &self.shared.worker_id
    }

    /// How many jobs this pool has claimed (or is claiming right now) whose
    /// outcome is not yet written.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let pool = hopper.start(hopper::WorkerConfig::new(1)).unwrap();
    /// println!("{} jobs in flight", pool.in_flight());
    /// # pool.stop().await.unwrap();
    /// # });
    /// ```
    pub fn in_flight(&self) -> usize {
        self.shared.outstanding.load(Ordering::SeqCst)
    }

    /// A receiver that changes whenever this pool claims jobs or writes
    /// outcomes: wait on it instead of sleeping.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let pool = hopper.start(hopper::WorkerConfig::new(1)).unwrap();
    /// let activity = pool.activity();
    /// # let _ = activity;
    /// # pool.stop().await.unwrap();
    /// # });
    /// ```
    pub fn activity(&self) -> watch::Receiver<u64> {
        self.shared.activity.subscribe()
    }

    /// Stops gracefully: claims nothing more, lets running jobs finish within
    /// the shutdown timeout, then cancels the rest and hands them back to
    /// `pending` without counting the attempt. Returns how many were handed back.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let pool = hopper.start(hopper::WorkerConfig::new(1)).unwrap();
    /// assert_eq!(pool.stop().await.unwrap(), 0);
    /// # });
    /// ```
    pub async fn stop(self) -> Result<u64, WorkerError> {
        let shared = self.shared;
        tracing::info!(worker = %shared.worker_id, "stopping: no new jobs will be claimed");
        shared.stop_claiming.cancel();
        for fetcher in self.fetchers {
            fetcher.await?;
        }
        shared.jobs.close();
        let deadline = shared.config.shutdown_timeout;
        if tokio::time::timeout(deadline, shared.jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                worker = %shared.worker_id,
                running = shared.jobs.len(),
                "shutdown deadline passed: cancelling running jobs"
            );
            shared.hard_stop.cancel();
            shared.jobs.wait().await;
        }
        drop(self.completions);
        self.completer.await?;
        let released = shared
            .hopper
            .store()
            .release(&shared.worker_id)
            .await
            .map_err(|source| WorkerError::Release {
                what: "unfinished jobs",
                source,
            });
        shared.stop_background.cancel();
        for task in self.maintenance {
            task.await?;
        }
        let released = released?;
        if released > 0 {
            tracing::info!(worker = %shared.worker_id, released, "handed unfinished jobs back to pending");
        }
        tracing::info!(worker = %shared.worker_id, "workers stopped");
        Ok(released)
    }
}

/// Wakes this pool's idle fetchers when the database says jobs became due,
/// whichever process dispatched them.
async fn forward_wakeups(shared: Arc<Shared>, mut wakeups: mpsc::Receiver<Wakeup>) {
    loop {
        let wakeup = tokio::select! {
            _ = shared.stop_background.cancelled() => break,
            wakeup = wakeups.recv() => wakeup,
        };
        match wakeup {
            Some(Wakeup::Queue(queue)) => shared.hopper.wake(&queue),
            Some(Wakeup::All) => {
                for (queue, _) in &shared.config.queues {
                    shared.hopper.wake(queue);
                }
            }
            None => break,
        }
    }
}

/// Sleeps for `duration` unless `token` fires first; returns false if it fired.
async fn pause(token: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

/// The next wait after a database error: doubling from 100 ms to 5 s.
fn error_backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.min(6))).min(Duration::from_secs(5))
}

/// The most claimed jobs a queue keeps waiting locally for a free slot.
const MAX_PREFETCH: usize = 1_000;
/// How much work, in time at the recent rate, the local buffer aims to hold.
const PREFETCH_HORIZON: Duration = Duration::from_millis(25);

/// Sizes the local buffer of claimed jobs from the recent rate of starts:
/// about [`PREFETCH_HORIZON`] of work, so fast jobs are claimed hundreds per
/// statement while slow jobs are claimed only as slots free up (and never
/// wait long in one process while another sits idle).
#[derive(Debug)]
struct Prefetch {
    since: Instant,
    started: usize,
}

impl Prefetch {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            started: 0,
        }
    }

    /// How many jobs beyond the free slots the next claim should ask for.
    fn next_extra(&mut self) -> usize {
        let elapsed = self.since.elapsed().as_secs_f64().max(1e-6);
        let rate = self.started as f64 / elapsed;
        self.since = Instant::now();
        self.started = 0;
        ((rate * PREFETCH_HORIZON.as_secs_f64()) as usize).min(MAX_PREFETCH)
    }
}

/// Claims jobs of one queue and runs each in its own task as slots free up.
async fn fetch(
    shared: Arc<Shared>,
    queue: String,
    workers: usize,
    completions: mpsc::Sender<Completion>,
) {
    let slots = Arc::new(Semaphore::new(workers));
    let wake = shared.hopper.waker(&queue);
    let mut buffer: VecDeque<ClaimedJob> = VecDeque::new();
    let mut prefetch = Prefetch::new();
    let mut failures = 0u32;
    loop {
        let permit = tokio::select! {
            biased;
            _ = shared.stop_claiming.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        if buffer.is_empty() {
            let limit = 1 + slots.available_permits() + prefetch.next_extra();
            let request = ClaimRequest {
                queue: &queue,
                worker: &shared.worker_id,
                limit: u32::try_from(limit).unwrap_or(u32::MAX),
                now: shared.hopper.now(),
                lease_until: shared.lease_until(),
            };
            // Counted as outstanding before the claim, so a claimed job is never
            // invisible to `in_flight` between the database and this task.
            shared.outstanding.fetch_add(limit, Ordering::SeqCst);
            let result = shared.hopper.store().claim(request).await;
            let taken = result.as_ref().map_or(0, Vec::len);
            shared
                .outstanding
                .fetch_sub(limit - taken, Ordering::SeqCst);
            shared.bump();
            match result {
                Ok(claimed) if claimed.is_empty() => {
                    failures = 0;
                    drop(permit);
                    tokio::select! {
                        _ = shared.stop_claiming.cancelled() => break,
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(shared.config.poll_interval) => {}
                    }
                    continue;
                }
                Ok(claimed) => {
                    failures = 0;
                    buffer.extend(claimed);
                }
                Err(error) => {
                    failures += 1;
                    let wait = error_backoff(failures);
                    tracing::warn!(%queue, %error, retry_in = ?wait, "claiming jobs failed");
                    drop(permit);
                    if !pause(&shared.stop_claiming, wait).await {
                        break;
                    }
                    continue;
                }
            }
        }
        let Some(job) = buffer.pop_front() else {
            continue;
        };
        prefetch.started += 1;
        let shared_for_job = shared.clone();
        let completions = completions.clone();
        shared.jobs.spawn(async move {
            let outcome = run(&shared_for_job, job).await;
            match outcome {
                Some(completion) => {
                    // The completer outlives every job task, so this only fails if it panicked.
                    let _ = completions.send(completion).await;
                }
                None => {
                    shared_for_job.outstanding.fetch_sub(1, Ordering::SeqCst);
                }
            }
            // The slot frees only once the outcome is queued: while outcomes are
            // written slower than jobs run, new jobs wait, instead of finished
            // ones piling up in memory.
            drop(permit);
        });
    }
    // Jobs claimed but never started stay leased to this worker; `stop` hands them back.
    shared.outstanding.fetch_sub(buffer.len(), Ordering::SeqCst);
}

/// Runs one claimed job; `None` if it was cut off by a hard stop (it is handed back).
async fn run(shared: &Shared, job: ClaimedJob) -> Option<Completion> {
    let span = tracing::info_span!(
        "job",
        id = job.id,
        r#type = %job.job_type,
        queue = %job.queue,
        attempt = job.attempt,
        duration_ms = field::Empty,
        outcome = field::Empty,
    );
    let started = Instant::now();
    let _busy = crate::metrics::busy();
    let registered = shared.hopper.registry().get(&job.job_type).cloned();
    let result = match &registered {
        Err(unknown) => Err(JobError::permanent(unknown)),
        Ok(registered) => {
            let token = shared.hard_stop.child_token();
            let ctx = JobContext::new(&job, token.clone(), shared.hopper.shared_state().clone());
            let timeout = registered.timeout();
            let handler =
                AssertUnwindSafe(registered.clone().run(&job.payload, ctx)).catch_unwind();
            let result = tokio::select! {
                biased;
                _ = shared.hard_stop.cancelled() => None,
                result = tokio::time::timeout(timeout, handler).instrument(span.clone()) => Some(result),
            };
            match result? {
                Err(_elapsed) => {
                    token.cancel();
                    Err(JobError::retryable(format!("timed out after {timeout:?}")))
                }
                Ok(Err(panic)) => Err(JobError::retryable(format!(
                    "panicked: {}",
                    panic_message(panic.as_ref())
                ))),
                Ok(Ok(result)) => result,
            }
        }
    };
    let elapsed = started.elapsed();
    let now = shared.hopper.now();
    let outcome = match result {
        Ok(()) => Outcome::Finished,
        Err(error) if error.is_permanent() || job.attempt >= job.max_attempts => Outcome::Failed {
            error: error.message().to_owned(),
        },
        Err(error) => {
            let delay = error.delay().unwrap_or_else(|| match &registered {
                Ok(registered) => registered.retry_delay(job.attempt),
                Err(_) => Duration::ZERO,
            });
            Outcome::Retry {
                at: crate::clock::add(now, delay),
                error: error.message().to_owned(),
            }
        }
    };
    crate::metrics::ran(&job, &outcome, elapsed);
    let duration_ms = elapsed.as_secs_f64() * 1e3;
    span.record("duration_ms", duration_ms);
    let _entered = span.enter();
    match &outcome {
        Outcome::Finished => {
            span.record("outcome", "finished");
            tracing::debug!(duration_ms, "job finished");
        }
        Outcome::Retry { at, error } => {
            span.record("outcome", "retry");
            tracing::warn!(duration_ms, %error, retry_at = %at, "job failed; will retry");
        }
        Outcome::Failed { error } => {
            span.record("outcome", "failed");
            tracing::error!(duration_ms, %error, "job failed for good");
        }
    }
    Some(Completion {
        id: job.id,
        attempt: job.attempt,
        outcome,
    })
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = panic.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// Writes outcomes in batches: whatever has arrived since the last write, in one transaction.
async fn complete(shared: Arc<Shared>, mut receiver: mpsc::Receiver<Completion>) {
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    while receiver.recv_many(&mut batch, COMPLETION_BATCH).await > 0 {
        let mut failures = 0u32;
        loop {
            let now = shared.hopper.now();
            match shared
                .hopper
                .store()
                .complete(&shared.worker_id, &batch, now)
                .await
            {
                Ok(applied) => {
                    let lost = batch.len() as u64 - applied.min(batch.len() as u64);
                    if lost > 0 {
                        tracing::warn!(
                            lost,
                            "outcomes not recorded: those jobs' leases had expired and they were rescued"
                        );
                    }
                    break;
                }
                Err(error) => {
                    failures += 1;
                    let wait = error_backoff(failures);
                    tracing::warn!(%error, jobs = batch.len(), retry_in = ?wait, "recording job outcomes failed");
                    // Past the shutdown deadline, give up: the leases expire and the jobs run again.
                    if shared.hard_stop.is_cancelled() && failures >= 5 {
                        tracing::error!(
                            jobs = batch.len(),
                            "giving up recording outcomes; the rescuer will return these jobs"
                        );
                        break;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
        shared.outstanding.fetch_sub(batch.len(), Ordering::SeqCst);
        batch.clear();
        shared.bump();
    }
}

/// Extends the lease of every job this pool holds, every third of a lease.
async fn heartbeat(shared: Arc<Shared>) {
    let interval = shared.config.lease / 3;
    while pause(&shared.stop_background, interval).await {
        if shared.outstanding.load(Ordering::SeqCst) == 0 {
            continue;
        }
        if let Err(error) = shared
            .hopper
            .store()
            .extend_leases(&shared.worker_id, shared.lease_until())
            .await
        {
            tracing::warn!(%error, "extending job leases failed");
        }
    }
}

/// The lease that decides which pool, among all sharing the database, runs
/// maintenance (rescuing and pruning).
pub const MAINTENANCE_LEASE: &str = "maintenance";

/// Whether this pool leads maintenance: takes or renews [`MAINTENANCE_LEASE`]
/// for three rescue intervals, so another pool takes over soon after this
/// one dies.
async fn lead(shared: &Shared) -> bool {
    let now = shared.hopper.now();
    let until = crate::clock::add(now, shared.config.rescue_interval * 3);
    match shared
        .hopper
        .store()
        .try_lease(MAINTENANCE_LEASE, &shared.worker_id, now, until)
        .await
    {
        Ok(leading) => leading,
        Err(error) => {
            tracing::warn!(%error, "checking the maintenance lease failed");
            false
        }
    }
}

/// On the leading pool, returns jobs whose worker died (lease expired) to
/// pending or failed.
async fn rescue(shared: Arc<Shared>) {
    loop {
        if lead(&shared).await {
            match shared.hopper.store().rescue(shared.hopper.now()).await {
                Ok(ids) if !ids.is_empty() => {
                    tracing::warn!(jobs = ?ids, "rescued jobs whose worker stopped heartbeating");
                    for (queue, _) in &shared.config.queues {
                        shared.hopper.wake(queue);
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "rescuing expired jobs failed"),
            }
        }
        if !pause(&shared.stop_background, shared.config.rescue_interval).await {
            break;
        }
    }
    if let Err(error) = shared
        .hopper
        .store()
        .drop_lease(MAINTENANCE_LEASE, &shared.worker_id)
        .await
    {
        tracing::warn!(%error, "giving up the maintenance lease failed");
    }
}

/// On the leading pool, deletes ended jobs past their retention, every `interval`.
async fn prune(shared: Arc<Shared>, interval: Duration) {
    while pause(&shared.stop_background, interval).await {
        if !lead(&shared).await {
            continue;
        }
        match crate::maintenance::prune(
            shared.hopper.store().as_ref(),
            shared.hopper.now(),
            shared.config.retention,
        )
        .await
        {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "pruned old jobs"),
            Err(error) => tracing::warn!(%error, "pruning old jobs failed"),
        }
    }
}
