//! The worker pool: claims due jobs, runs each in its own task, records how
//! every run ended, keeps leases alive, rescues jobs of dead workers, prunes
//! old jobs, scales each queue's concurrency between its bounds, and stops
//! gracefully.

use std::collections::{BTreeSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::client::Hopper;
use crate::hooks::{EventKind, Hooks, JobEvent};
use crate::job::{DEFAULT_QUEUE, JobContext, JobError, JobId};
use crate::maintenance::Retention;
use crate::store::{
    ClaimRequest, ClaimedJob, Completion, Outcome, StoreError, Wakeup, WorkerConcurrency,
};

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

/// Most completions written, or leases extended, in one transaction.
const COMPLETION_BATCH: usize = 1_000;

/// How many jobs of one queue a pool runs at once: never more than `max`,
/// and down to `min` when the queue is idle. A fixed queue has `min == max`.
///
/// ```
/// let config = hopper::WorkerConfig::new(2).queue_scaled("mail", 1, 8);
/// let mail = config.concurrency("mail").unwrap();
/// assert_eq!((mail.min, mail.max), (1, 8));
/// assert_eq!(config.concurrency("default"), Some(hopper::Concurrency { min: 2, max: 2 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concurrency {
    /// The fewest jobs run at once (0 lets an idle queue take no slot at all).
    pub min: usize,
    /// The most jobs run at once.
    pub max: usize,
}

impl Concurrency {
    /// Exactly `workers` jobs at once: no autoscaling.
    ///
    /// ```
    /// assert_eq!(hopper::Concurrency::fixed(3), hopper::Concurrency { min: 3, max: 3 });
    /// ```
    pub fn fixed(workers: usize) -> Self {
        Self {
            min: workers,
            max: workers,
        }
    }
}

/// How a worker pool runs: its queues and their concurrency, leases,
/// polling, shutdown deadline, maintenance, autoscaling and hooks.
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
    /// Every queue with the bounds of its concurrency (`min == max` unless autoscaled).
    queues: Vec<(String, Concurrency)>,
    max_total: Option<usize>,
    scale_interval: Duration,
    scale_down_after: Duration,
    hooks: HookList,
    lease: Duration,
    poll_interval: Duration,
    notified_poll_interval: Duration,
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
            queues: vec![(DEFAULT_QUEUE.to_owned(), Concurrency::fixed(workers))],
            max_total: None,
            scale_interval: Duration::from_secs(1),
            scale_down_after: Duration::from_secs(30),
            hooks: HookList::default(),
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            notified_poll_interval: Duration::from_secs(30),
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
        set(&mut self.queues, queue.into(), Concurrency::fixed(workers));
        self
    }

    /// Also runs `queue` (or changes it) with between `min` and `max`
    /// concurrent jobs: the pool starts at `min`, grows as far as `max` while
    /// the queue has a backlog, and shrinks back once it has needed fewer
    /// slots for [`WorkerConfig::scale_down_after`]. Shrinking never stops a
    /// running job; the pool just takes no new ones past the new limit.
    ///
    /// ```
    /// let config = hopper::WorkerConfig::new(1).queue_scaled("images", 2, 16);
    /// assert_eq!(config.queues()[1], ("images".to_string(), 16));
    /// assert_eq!(config.concurrency("images").unwrap().min, 2);
    /// ```
    pub fn queue_scaled(mut self, queue: impl Into<String>, min: usize, max: usize) -> Self {
        set(&mut self.queues, queue.into(), Concurrency { min, max });
        self
    }

    /// The bounds of `queue`'s concurrency, if this pool runs it.
    ///
    /// ```
    /// let config = hopper::WorkerConfig::new(3);
    /// assert_eq!(config.concurrency("default").unwrap().max, 3);
    /// assert!(config.concurrency("mail").is_none());
    /// ```
    pub fn concurrency(&self, queue: &str) -> Option<Concurrency> {
        self.queues
            .iter()
            .find(|(name, _)| name == queue)
            .map(|(_, bounds)| *bounds)
    }

    /// The most jobs the pool runs at once across all its queues (default:
    /// no cap beyond each queue's `max`). When autoscaled queues want more,
    /// the free slots are shared out among them one at a time.
    ///
    /// ```
    /// let config = hopper::WorkerConfig::new(1)
    ///     .queue_scaled("default", 1, 20)
    ///     .queue_scaled("mail", 1, 20)
    ///     .max_total(24);
    /// # let _ = config;
    /// ```
    pub fn max_total(mut self, jobs: usize) -> Self {
        self.max_total = Some(jobs);
        self
    }

    /// How often the autoscaler looks at each queue's backlog (default 1 s).
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).scale_interval(std::time::Duration::from_millis(250));
    /// # let _ = c;
    /// ```
    pub fn scale_interval(mut self, interval: Duration) -> Self {
        self.scale_interval = interval;
        self
    }

    /// How long, on the queue's clock, an autoscaled queue must have needed
    /// fewer slots than it has before it shrinks (default 30 s).
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).scale_down_after(std::time::Duration::from_secs(120));
    /// # let _ = c;
    /// ```
    pub fn scale_down_after(mut self, idle: Duration) -> Self {
        self.scale_down_after = idle;
        self
    }

    /// Adds application callbacks for finished, retried and failed jobs
    /// (see [`crate::hooks`]). Hooks run in the order added.
    ///
    /// ```
    /// #[derive(Debug)]
    /// struct Quiet;
    /// impl hopper::Hooks for Quiet {}
    /// let config = hopper::WorkerConfig::new(1).hooks(Quiet);
    /// # let _ = config;
    /// ```
    pub fn hooks(mut self, hooks: impl Hooks) -> Self {
        self.hooks.0.push(Arc::new(hooks));
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

    /// The queues run, each with its most concurrent jobs (see
    /// [`WorkerConfig::concurrency`] for both bounds).
    ///
    /// ```
    /// assert_eq!(hopper::WorkerConfig::default().queues()[0].1, 10);
    /// ```
    pub fn queues(&self) -> Vec<(String, usize)> {
        self.queues
            .iter()
            .map(|(queue, bounds)| (queue.clone(), bounds.max))
            .collect()
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

    /// Where every process learns of new and rescheduled jobs (PostgreSQL's
    /// notifications; on an SQLite file, the operating system's report that
    /// the file changed), an idle worker sleeps until its queue's next job is
    /// due or a wake-up comes; this is the longest such sleep, a safety net
    /// for wake-ups lost with a connection or an overflowing watch (default
    /// 30 s). Elsewhere (MySQL, SQLite in memory), and with a clock that does
    /// not move by itself, idle workers poll every [`WorkerConfig::poll_interval`].
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).notified_poll_interval(std::time::Duration::from_secs(60));
    /// # let _ = c;
    /// ```
    pub fn notified_poll_interval(mut self, interval: Duration) -> Self {
        self.notified_poll_interval = interval;
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
        if let Some((queue, _)) = self.queues.iter().find(|(_, c)| c.max == 0) {
            return bad(format!("queue {queue:?} has 0 workers"));
        }
        if let Some((queue, c)) = self.queues.iter().find(|(_, c)| c.min > c.max) {
            return bad(format!(
                "queue {queue:?} has a minimum of {} workers, above its maximum",
                c.min
            ));
        }
        if let Some(cap) = self.max_total {
            let least: usize = self.queues.iter().map(|(_, c)| c.min).sum();
            if cap == 0 || least > cap {
                return bad(format!(
                    "max_total {cap} is below the {least} workers the queues need at least"
                ));
            }
        }
        if self.scale_interval.is_zero() {
            return bad("the scale interval must be above zero".into());
        }
        if self.queues.iter().any(|(queue, _)| queue.trim().is_empty()) {
            return bad("a queue name is empty".into());
        }
        if self.lease < Duration::from_millis(100) {
            return bad("the lease must be at least 100 ms".into());
        }
        if self.poll_interval.is_zero()
            || self.notified_poll_interval.is_zero()
            || self.rescue_interval.is_zero()
        {
            return bad("poll and rescue intervals must be above zero".into());
        }
        Ok(())
    }
}

/// Sets `name`'s value in a list of named values, adding it if missing.
fn set<T>(list: &mut Vec<(String, T)>, name: String, value: T) {
    match list.iter_mut().find(|(entry, _)| *entry == name) {
        Some(entry) => entry.1 = value,
        None => list.push((name, value)),
    }
}

/// The hooks a pool calls (shown by count).
#[derive(Clone, Default)]
struct HookList(Vec<Arc<dyn Hooks>>);

impl std::fmt::Debug for HookList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} hooks", self.0.len())
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
    /// Each queue's slots, in configuration order.
    slots: Vec<Arc<Slots>>,
    /// Jobs claimed whose completion is not yet written.
    outstanding: AtomicUsize,
    /// The claims this pool received (job id, attempt) until their outcome
    /// is written: the heartbeat renews these and no others, so a claim whose
    /// answer was lost on the way from the database runs out and is rescued.
    held: Mutex<BTreeSet<(JobId, u32)>>,
    /// Bumped on every claim and every written completion batch.
    activity: watch::Sender<u64>,
    /// Whether the database wakes this pool for jobs any process adds.
    notified: bool,
}

impl Shared {
    fn bump(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn lease_until(&self) -> chrono::DateTime<chrono::Utc> {
        crate::clock::add(self.hopper.now(), self.config.lease)
    }

    fn held(&self) -> MutexGuard<'_, BTreeSet<(JobId, u32)>> {
        // Plain ids and attempts: a poisoned lock still holds valid ones.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl WorkerPool {
    pub(crate) fn start(hopper: Hopper, config: WorkerConfig) -> Result<Self, WorkerError> {
        config.check()?;
        let worker_id = config.worker_id.clone().unwrap_or_else(default_worker_id);
        let slots = config
            .queues
            .iter()
            .map(|(queue, bounds)| Arc::new(Slots::new(queue.clone(), *bounds)))
            .collect();
        let wakeups = hopper.store().listen();
        let shared = Arc::new(Shared {
            notified: wakeups.is_some(),
            hopper,
            worker_id,
            config,
            stop_claiming: CancellationToken::new(),
            hard_stop: CancellationToken::new(),
            stop_background: CancellationToken::new(),
            jobs: TaskTracker::new(),
            slots,
            outstanding: AtomicUsize::new(0),
            held: Mutex::new(BTreeSet::new()),
            activity: watch::channel(0).0,
        });
        let total: usize = shared.config.queues.iter().map(|(_, c)| c.max).sum();
        let (completions, receiver) = mpsc::channel(total.max(COMPLETION_BATCH));
        let fetchers = shared
            .slots
            .iter()
            .map(|slots| tokio::spawn(fetch(shared.clone(), slots.clone(), completions.clone())))
            .collect();
        let completer = tokio::spawn(complete(shared.clone(), receiver));
        let mut maintenance = vec![
            tokio::spawn(heartbeat(shared.clone())),
            tokio::spawn(rescue(shared.clone())),
            tokio::spawn(scale(shared.clone())),
        ];
        if let Some(interval) = shared.config.prune_interval {
            maintenance.push(tokio::spawn(prune(shared.clone(), interval)));
        }
        if let Some(wakeups) = wakeups {
            maintenance.push(tokio::spawn(forward_wakeups(shared.clone(), wakeups)));
        }
        tracing::info!(
            worker = %shared.worker_id,
            queues = ?shared.config.queues,
            max_total = ?shared.config.max_total,
            "workers started"
        );
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

    /// How many of `queue`'s jobs this pool runs at once now, as its
    /// autoscaler chose (`None` if the pool does not run the queue).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let pool = hopper.start(hopper::WorkerConfig::new(1).queue_scaled("mail", 2, 8)).unwrap();
    /// assert_eq!(pool.concurrency("mail"), Some(2));
    /// assert_eq!(pool.concurrency("default"), Some(1));
    /// # pool.stop().await.unwrap();
    /// # });
    /// ```
    pub fn concurrency(&self, queue: &str) -> Option<usize> {
        self.shared
            .slots
            .iter()
            .find(|slots| slots.queue == queue)
            .map(|slots| slots.counts().limit)
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
        withdraw(&shared).await;
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
            Some(Wakeup::All) => wake_all(&shared),
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
async fn fetch(shared: Arc<Shared>, slots: Arc<Slots>, completions: mpsc::Sender<Completion>) {
    let queue = slots.queue.clone();
    let wake = shared.hopper.waker(&queue);
    let mut buffer: VecDeque<ClaimedJob> = VecDeque::new();
    let mut prefetch = Prefetch::new();
    let mut failures = 0u32;
    loop {
        let permit = tokio::select! {
            biased;
            _ = shared.stop_claiming.cancelled() => break,
            permit = slots.acquire() => permit,
        };
        if buffer.is_empty() {
            let limit = 1 + slots.free() + prefetch.next_extra();
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
                    let wait = idle_wait(&shared, &queue).await;
                    tokio::select! {
                        _ = shared.stop_claiming.cancelled() => break,
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
                Ok(claimed) => {
                    failures = 0;
                    shared
                        .held()
                        .extend(claimed.iter().map(|job| (job.id, job.attempt)));
                    buffer.extend(claimed);
                    slots.buffered.store(buffer.len(), Ordering::SeqCst);
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
        slots.buffered.store(buffer.len(), Ordering::SeqCst);
        prefetch.started += 1;
        let shared_for_job = shared.clone();
        let completions = completions.clone();
        let permit = permit.run();
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
    slots.buffered.store(0, Ordering::SeqCst);
}

/// How long a queue that found nothing due sleeps, unless woken first.
///
/// Where the database notifies every process of new and rescheduled jobs,
/// until the queue's next job is due, within the notified poll interval;
/// with a job due already but not claimable (a paused queue, or taken by
/// another worker meanwhile), and everywhere else, the poll interval.
async fn idle_wait(shared: &Shared, queue: &str) -> Duration {
    let poll = shared.config.poll_interval;
    if !shared.notified || !shared.hopper.clock_moves_by_itself() {
        return poll;
    }
    let longest = shared.config.notified_poll_interval;
    match shared.hopper.store().next_due(queue).await {
        Ok(None) => longest,
        Ok(Some(at)) => match (at - shared.hopper.now()).to_std() {
            Ok(until) if !until.is_zero() => until.min(longest),
            _ => poll,
        },
        Err(error) => {
            tracing::warn!(%queue, %error, "reading when the next job is due failed");
            poll
        }
    }
}

/// Runs one claimed job; `None` if it was cut off by a hard stop (it is handed back).
async fn run(shared: &Shared, job: ClaimedJob) -> Option<Completion> {
    let span = crate::events::span(job.id, &job.job_type, &job.queue, job.attempt);
    span.in_scope(crate::events::started);
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
            span.in_scope(|| {
                crate::events::retrying(
                    elapsed,
                    error.message(),
                    delay,
                    crate::clock::add(now, delay),
                )
            });
            Outcome::Retry {
                at: crate::clock::add(now, delay),
                error: error.message().to_owned(),
            }
        }
    };
    crate::metrics::ran(&job, &outcome, elapsed);
    match &outcome {
        Outcome::Finished => span.in_scope(|| crate::events::finished(elapsed)),
        Outcome::Retry { .. } => {}
        Outcome::Failed { error } => span.in_scope(|| crate::events::failed(elapsed, error)),
    }
    if !shared.config.hooks.0.is_empty() {
        let event = hook_event(shared, &job, &outcome, elapsed);
        let hooks = crate::hooks::call(&shared.config.hooks.0, &event).instrument(span.clone());
        // The outcome is decided: a hard stop abandons the hooks, not the job.
        tokio::select! {
            biased;
            () = hooks => {}
            _ = shared.hard_stop.cancelled() => {
                span.in_scope(|| crate::events::hook_failed("all", "abandoned at the shutdown deadline"));
            }
        }
    }
    Some(Completion {
        id: job.id,
        attempt: job.attempt,
        outcome,
    })
}

/// What the hooks are told about a run that ended with `outcome`.
fn hook_event(shared: &Shared, job: &ClaimedJob, outcome: &Outcome, elapsed: Duration) -> JobEvent {
    let kind = match outcome {
        Outcome::Finished => EventKind::Finished,
        Outcome::Retry { .. } => EventKind::Retrying,
        Outcome::Failed { .. } => EventKind::Failed,
    };
    let mut event = JobEvent::new(
        &shared.hopper,
        kind,
        job.id,
        &job.job_type,
        &job.queue,
        job.attempt,
        job.max_attempts,
        &job.payload,
    );
    event.duration = elapsed;
    match outcome {
        Outcome::Finished => {}
        Outcome::Retry { at, error } => {
            event.error = Some(error.clone());
            event.retry_at = Some(*at);
        }
        Outcome::Failed { error } => event.error = Some(error.clone()),
    }
    event
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
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
        {
            let mut held = shared.held();
            for completion in &batch {
                held.remove(&(completion.id, completion.attempt));
            }
        }
        shared.outstanding.fetch_sub(batch.len(), Ordering::SeqCst);
        batch.clear();
        shared.bump();
    }
}

/// Extends the lease of every claim this pool received and has not yet
/// written the outcome of, every third of a lease.
async fn heartbeat(shared: Arc<Shared>) {
    let interval = shared.config.lease / 3;
    while pause(&shared.stop_background, interval).await {
        // In id order, the order completion batches lock rows in.
        let held: Vec<(JobId, u32)> = shared.held().iter().copied().collect();
        for claims in held.chunks(COMPLETION_BATCH) {
            if let Err(error) = shared
                .hopper
                .store()
                .extend_leases(&shared.worker_id, claims, shared.lease_until())
                .await
            {
                tracing::warn!(%error, "extending job leases failed");
            }
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

/// The most rescued jobs logged one by one (each is read back for its fields).
const RESCUES_LOGGED: usize = 100;

/// Wakes the fetcher of every queue this pool serves.
fn wake_all(shared: &Shared) {
    for (queue, _) in &shared.config.queues {
        shared.hopper.wake(queue);
    }
}

/// On the leading pool, returns jobs whose worker died (lease expired) to
/// pending or failed.
async fn rescue(shared: Arc<Shared>) {
    loop {
        if lead(&shared).await {
            match shared.hopper.store().rescue(shared.hopper.now()).await {
                Ok(ids) if !ids.is_empty() => {
                    if ids.len() > RESCUES_LOGGED {
                        tracing::warn!(
                            jobs = ids.len(),
                            "rescued jobs whose worker stopped heartbeating; logging the first {RESCUES_LOGGED} one by one"
                        );
                    }
                    // Each logged rescue reads its job back; skip the reads
                    // when nothing would be logged.
                    let logged = if tracing::enabled!(target: "hopper::events", tracing::Level::WARN)
                    {
                        RESCUES_LOGGED
                    } else {
                        0
                    };
                    for id in ids.iter().take(logged) {
                        match shared.hopper.store().get(*id).await {
                            Ok(Some(job)) => crate::events::rescued(&job),
                            Ok(None) => {}
                            Err(error) => {
                                tracing::warn!(id, %error, "reading a rescued job failed");
                            }
                        }
                    }
                    wake_all(&shared);
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

/// One queue's share of a pool: how many of its jobs may run at once (the
/// autoscaler moves this limit), how many do, and how many claimed jobs wait
/// in the fetcher's buffer.
#[derive(Debug)]
struct Slots {
    queue: String,
    bounds: Concurrency,
    counts: Mutex<SlotCounts>,
    /// Signalled when a slot frees up or the limit changes.
    changed: Notify,
    /// Jobs claimed and waiting for a slot in this process.
    buffered: AtomicUsize,
    /// Jobs whose task is running; unlike the used slots, this leaves out
    /// the slot a claim in progress holds.
    running: AtomicUsize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SlotCounts {
    limit: usize,
    used: usize,
}

impl Slots {
    /// Slots for `queue`, starting at its minimum.
    fn new(queue: String, bounds: Concurrency) -> Self {
        crate::metrics::concurrency_changed(&queue, 0, bounds.min);
        Self {
            queue,
            bounds,
            counts: Mutex::new(SlotCounts {
                limit: bounds.min,
                used: 0,
            }),
            changed: Notify::new(),
            buffered: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotCounts> {
        // Two plain counters: a poisoned lock still holds valid ones.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn counts(&self) -> SlotCounts {
        *self.lock()
    }

    /// Slots free right now.
    fn free(&self) -> usize {
        let counts = self.lock();
        counts.limit.saturating_sub(counts.used)
    }

    /// Waits for a free slot under the current limit and takes it.
    async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut counts = self.lock();
                if counts.used < counts.limit {
                    counts.used += 1;
                    return Slot(self.clone());
                }
            }
            notified.await;
        }
    }

    /// Moves the limit; running jobs above a lower limit run on, and no new
    /// job starts until the count is under it.
    fn set_limit(&self, limit: usize) {
        let old = std::mem::replace(&mut self.lock().limit, limit);
        crate::metrics::concurrency_changed(&self.queue, old, limit);
        self.changed.notify_one();
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let limit = self.lock().limit;
        crate::metrics::concurrency_changed(&self.queue, limit, 0);
    }
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
struct Slot(Arc<Slots>);

impl Slot {
    /// Hands the slot to a job's task: the job counts as running until the
    /// returned slot is dropped.
    fn run(self) -> RunningSlot {
        self.0.running.fetch_add(1, Ordering::SeqCst);
        RunningSlot(self)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut counts = self.0.lock();
            counts.used = counts.used.saturating_sub(1);
        }
        self.0.changed.notify_one();
    }
}

/// A slot a running job holds; dropping it ends the job's count and frees the slot.
#[derive(Debug)]
struct RunningSlot(Slot);

impl Drop for RunningSlot {
    fn drop(&mut self) {
        (self.0).0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the autoscaler knows of one queue when it decides.
#[derive(Clone, Copy, Debug)]
struct Load {
    bounds: Concurrency,
    /// The current limit.
    limit: usize,
    /// Jobs running now.
    used: usize,
    /// Jobs running, claimed and waiting here, and due in the database.
    demand: usize,
}

/// Chooses every queue's limit. A queue grows at once to meet its demand
/// (within its bounds); it shrinks to its demand only once its demand has
/// stayed below its limit for `scale_down_after` on the clock (`needed_at`
/// holds, per queue, when it last needed its whole limit). Under `cap`, a
/// queue keeps the slots its running jobs hold (so the cap holds for running
/// jobs too), and the free slots go one at a time to the queue with the
/// fewest that wants more.
fn plan(
    loads: &[Load],
    needed_at: &mut [DateTime<Utc>],
    cap: Option<usize>,
    now: DateTime<Utc>,
    scale_down_after: Duration,
) -> Vec<usize> {
    let wishes: Vec<usize> = loads
        .iter()
        .zip(needed_at.iter_mut())
        .map(|(load, needed_at)| {
            let target = load.demand.clamp(load.bounds.min, load.bounds.max);
            if target >= load.limit {
                *needed_at = now;
                target
            } else if now >= crate::clock::add(*needed_at, scale_down_after) {
                target
            } else {
                load.limit
            }
        })
        .collect();
    let Some(cap) = cap else {
        return wishes;
    };
    let mut chosen: Vec<usize> = wishes
        .iter()
        .zip(loads)
        .map(|(wish, load)| (*wish).min(load.used).max(load.bounds.min))
        .collect();
    let mut left = cap.saturating_sub(chosen.iter().sum());
    while left > 0 {
        let neediest = chosen
            .iter()
            .zip(&wishes)
            .enumerate()
            .filter(|(_, (chosen, wish))| chosen < wish)
            .min_by_key(|(_, (chosen, _))| **chosen)
            .map(|(index, _)| index);
        let Some(index) = neediest else {
            break;
        };
        chosen[index] += 1;
        left -= 1;
    }
    chosen
}

/// Sizes autoscaled queues every scale interval, and publishes every
/// queue's concurrency for the dashboard when it changes and every third of
/// a lease, until the pool stops claiming.
async fn scale(shared: Arc<Shared>) {
    let scalable = shared
        .slots
        .iter()
        .any(|slots| slots.bounds.min < slots.bounds.max);
    let mut needed_at = vec![shared.hopper.now(); shared.slots.len()];
    let mut published: Option<DateTime<Utc>> = None;
    let mut can_publish = true;
    loop {
        let now = shared.hopper.now();
        let mut changed = false;
        if scalable {
            match shared.hopper.store().queue_stats(now).await {
                Ok(stats) => {
                    let loads: Vec<Load> = shared
                        .slots
                        .iter()
                        .map(|slots| {
                            let due = stats
                                .iter()
                                .find(|s| s.queue == slots.queue && !s.paused)
                                .map_or(0, |s| usize::try_from(s.due).unwrap_or(usize::MAX));
                            let counts = slots.counts();
                            Load {
                                bounds: slots.bounds,
                                limit: counts.limit,
                                used: counts.used,
                                demand: counts
                                    .used
                                    .saturating_add(slots.buffered.load(Ordering::SeqCst))
                                    .saturating_add(due),
                            }
                        })
                        .collect();
                    let limits = plan(
                        &loads,
                        &mut needed_at,
                        shared.config.max_total,
                        now,
                        shared.config.scale_down_after,
                    );
                    for ((slots, load), limit) in shared.slots.iter().zip(&loads).zip(limits) {
                        if limit != load.limit {
                            tracing::info!(
                                queue = %slots.queue,
                                from = load.limit,
                                to = limit,
                                demand = load.demand,
                                "concurrency changed"
                            );
                            slots.set_limit(limit);
                            changed = true;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "reading queue backlogs for autoscaling failed")
                }
            }
        }
        let refresh = crate::clock::sub(now, shared.config.lease / 3);
        if can_publish && (changed || published.is_none_or(|at| at <= refresh)) {
            match publish(&shared, now).await {
                Ok(()) => {
                    published = Some(now);
                    changed = true;
                }
                Err(StoreError::Unsupported(what)) => {
                    tracing::debug!(what, "this store keeps no worker concurrency");
                    can_publish = false;
                }
                Err(error) => tracing::warn!(%error, "publishing worker concurrency failed"),
            }
        }
        // Waiters on the pool's activity see new limits and published rows.
        if changed {
            shared.bump();
        }
        // A pool of fixed queues only has its rows to refresh.
        let next = if scalable {
            shared.config.scale_interval
        } else {
            shared.config.lease / 3
        };
        if !pause(&shared.stop_claiming, next).await {
            break;
        }
    }
}

/// Writes this pool's concurrency per queue, live for one lease.
async fn publish(shared: &Shared, now: DateTime<Utc>) -> Result<(), StoreError> {
    let expires_at = shared.lease_until();
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let rows: Vec<WorkerConcurrency> = shared
        .slots
        .iter()
        .map(|slots| {
            let counts = slots.counts();
            WorkerConcurrency {
                worker: shared.worker_id.clone(),
                queue: slots.queue.clone(),
                concurrency: count(counts.limit),
                min: count(slots.bounds.min),
                max: count(slots.bounds.max),
                running: count(slots.running.load(Ordering::SeqCst)),
                expires_at,
            }
        })
        .collect();
    shared
        .hopper
        .store()
        .publish_concurrency(&shared.worker_id, &rows, now)
        .await
}

/// Removes this pool's concurrency rows at stop.
async fn withdraw(shared: &Shared) {
    let now = shared.hopper.now();
    match shared
        .hopper
        .store()
        .publish_concurrency(&shared.worker_id, &[], now)
        .await
    {
        Ok(()) | Err(StoreError::Unsupported(_)) => {}
        Err(error) => tracing::warn!(%error, "removing this pool's concurrency rows failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(min: usize, max: usize, limit: usize, demand: usize) -> Load {
        Load {
            bounds: Concurrency { min, max },
            limit,
            used: 0,
            demand,
        }
    }

    fn busy(mut load: Load, used: usize) -> Load {
        load.used = used;
        load
    }

    #[test]
    fn a_backlog_grows_a_queue_at_once_up_to_its_maximum() {
        let now = Utc::now();
        let mut needed = [now];
        let limits = plan(
            &[load(1, 8, 1, 5)],
            &mut needed,
            None,
            now,
            Duration::from_secs(30),
        );
        assert_eq!(limits, [5]);
        let limits = plan(
            &[load(1, 8, 5, 50)],
            &mut needed,
            None,
            now,
            Duration::from_secs(30),
        );
        assert_eq!(limits, [8]);
    }

    #[test]
    fn an_idle_queue_shrinks_only_after_the_cool_down_and_not_below_its_minimum() {
        let start = Utc::now();
        let mut needed = [start];
        let later = |secs| crate::clock::add(start, Duration::from_secs(secs));
        let cool = Duration::from_secs(30);
        assert_eq!(
            plan(&[load(2, 8, 8, 0)], &mut needed, None, later(29), cool),
            [8]
        );
        assert_eq!(
            plan(&[load(2, 8, 8, 0)], &mut needed, None, later(30), cool),
            [2]
        );
        // Demand at the limit again restarts the wait.
        let mut needed = [start];
        assert_eq!(
            plan(&[load(2, 8, 8, 8)], &mut needed, None, later(20), cool),
            [8]
        );
        assert_eq!(
            plan(&[load(2, 8, 8, 3)], &mut needed, None, later(40), cool),
            [8]
        );
        assert_eq!(
            plan(&[load(2, 8, 8, 3)], &mut needed, None, later(50), cool),
            [3]
        );
    }

    #[test]
    fn the_total_cap_shares_free_slots_out_in_turn_and_keeps_fixed_queues() {
        let now = Utc::now();
        let mut needed = [now; 3];
        let loads = [load(3, 3, 3, 0), load(1, 10, 1, 100), load(1, 10, 1, 100)];
        let limits = plan(&loads, &mut needed, Some(10), now, Duration::from_secs(30));
        assert_eq!(limits, [3, 4, 3]);
        assert!(limits.iter().sum::<usize>() <= 10);
    }

    #[test]
    fn under_the_cap_running_jobs_keep_their_slots_and_freed_ones_go_to_the_neediest() {
        let now = Utc::now();
        let mut needed = [now; 2];
        let cool = Duration::from_secs(30);
        let full = [busy(load(1, 4, 4, 10), 4), busy(load(1, 4, 1, 6), 1)];
        assert_eq!(plan(&full, &mut needed, Some(5), now, cool), [4, 1]);
        let one_done = [busy(load(1, 4, 4, 10), 3), busy(load(1, 4, 1, 6), 1)];
        assert_eq!(plan(&one_done, &mut needed, Some(5), now, cool), [3, 2]);
    }

    #[test]
    fn bounds_and_caps_that_cannot_work_are_refused() {
        let bad = |config: WorkerConfig| config.check().unwrap_err().to_string();
        assert!(bad(WorkerConfig::new(1).queue_scaled("q", 5, 2)).contains("above its maximum"));
        assert!(
            bad(WorkerConfig::new(4).queue_scaled("q", 2, 8).max_total(5)).contains("max_total 5")
        );
        assert!(
            WorkerConfig::new(4)
                .queue_scaled("q", 1, 8)
                .max_total(5)
                .check()
                .is_ok()
        );
        let fixed = WorkerConfig::new(1).queue_scaled("q", 1, 8).queue("q", 3);
        assert_eq!(fixed.concurrency("q"), Some(Concurrency { min: 3, max: 3 }));
    }

    #[tokio::test]
    async fn a_lower_limit_lets_running_jobs_run_and_holds_new_ones_back() {
        let slots = Arc::new(Slots::new("q".into(), Concurrency { min: 1, max: 3 }));
        slots.set_limit(3);
        let taken = [
            slots.acquire().await,
            slots.acquire().await,
            slots.acquire().await,
        ];
        slots.set_limit(1);
        assert_eq!(slots.counts(), SlotCounts { limit: 1, used: 3 });
        drop(taken);
        let _one = slots.acquire().await;
        let second = tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await;
        assert!(
            second.is_err(),
            "a second slot was taken under a limit of one"
        );
    }
}
