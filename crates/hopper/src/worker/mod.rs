//! The worker pool: claims due jobs, runs each in its own task, records how
//! every run ended, keeps leases alive, scales each queue's concurrency
//! between its bounds, runs maintenance (rescuing and pruning), and stops
//! gracefully.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::Hopper;
use crate::store::{StoreError, Wakeup};

mod autoscale;
mod callbacks;
mod claims;
mod completer;
mod config;
mod due_watch;
mod executor;
mod heartbeat;
mod producer;
mod slots;

pub use crate::maintenance::MAINTENANCE_LEASE;
pub use config::{Concurrency, WorkerConfig};

use claims::Claims;
use completer::Report;
use slots::Slots;

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
    /// Jobs still held at stop could not be handed back before the
    /// shutdown deadline (the database did not answer in time).
    #[error(
        "could not hand {jobs} unfinished jobs back before the shutdown deadline; the rescuer will return them"
    )]
    ReleaseTimedOut {
        /// How many claims were still held.
        jobs: usize,
    },
    /// Outcomes of finished runs could not be written before the shutdown
    /// deadline (the database did not answer in time).
    #[error(
        "could not record the outcomes of {jobs} jobs before the shutdown deadline; the rescuer will return them"
    )]
    OutcomesGivenUp {
        /// How many outcomes were given up.
        jobs: usize,
    },
    /// A background task of the pool panicked.
    #[error("worker task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The process could not listen for its stop signals (see
    /// [`WorkerPool::run_until_signal`]).
    #[error("cannot listen for stop signals: {0}")]
    Signals(std::io::Error),
}

/// Most completions written, or leases extended, in one transaction.
const COMPLETION_BATCH: usize = 1_000;

/// How long each step of a stop past the shutdown deadline may still take
/// (cut-off runs ending, outcomes given up, handing jobs back, background
/// tasks ending), so a stop never takes much longer than the deadline
/// whatever the database does.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Waits for `task` until `by`, then aborts it; an error only if it panicked.
async fn join_by<T>(task: JoinHandle<T>, by: Instant) -> Result<Option<T>, WorkerError> {
    let abort = task.abort_handle();
    match tokio::time::timeout_at(by, task).await {
        Ok(joined) => Ok(Some(joined?)),
        Err(_) => {
            abort.abort();
            Ok(None)
        }
    }
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
    /// What the pool's tasks share.
    shared: Arc<Shared>,
    /// One producer per queue.
    producers: Vec<JoinHandle<()>>,
    /// The completion writer.
    completer: JoinHandle<usize>,
    /// Heartbeat, maintenance, autoscaling and wake-up forwarding.
    background: Vec<JoinHandle<()>>,
    /// Where job tasks send outcomes; dropped at stop to end the completer.
    reports: mpsc::Sender<Report>,
}

/// The pool's stop signals, fired in order by [`WorkerPool::stop`].
#[derive(Debug, Default)]
struct Stops {
    /// Fired first: claim nothing more.
    claiming: CancellationToken,
    /// Fired when the shutdown deadline passes: running jobs are cancelled.
    hard: CancellationToken,
    /// Fired last: heartbeats and maintenance end.
    background: CancellationToken,
    /// Fired when outcomes still unwritten at the shutdown deadline are
    /// given up on: the rescuer returns their jobs.
    give_up: CancellationToken,
}

/// What the pool's tasks share.
#[derive(Debug)]
struct Shared {
    /// The client the pool works for.
    hopper: Hopper,
    /// The id written to `locked_by`.
    worker_id: String,
    /// How the pool runs.
    config: WorkerConfig,
    /// When to stop what.
    stops: Stops,
    /// Every job task.
    jobs: TaskTracker,
    /// Each queue's slots, in configuration order.
    slots: Vec<Arc<Slots>>,
    /// The claims held and the jobs in flight.
    claims: Claims,
    /// Bumped on every claim and every written completion batch.
    activity: watch::Sender<u64>,
    /// Whether the pool's due watcher, not the database, wakes idle queues
    /// when their jobs come due (see [`due_watch`]).
    watched: bool,
    /// The database changed in ways it does not tell apart (see
    /// [`Wakeup::All`]), one of which may be a cancel from another process:
    /// the heartbeat looks for cancels, no more often than
    /// [`heartbeat::LOOK_GAP`].
    changed: Notify,
    /// The completer wrote outcomes of jobs in batches: their callbacks
    /// may be due ([`callbacks`]).
    batches_ended: Notify,
}

impl Shared {
    /// The shared state of a pool for `config` (already checked), with the
    /// database's wake-ups if it sends any.
    fn new(hopper: Hopper, config: WorkerConfig) -> (Self, Option<mpsc::Receiver<Wakeup>>) {
        let worker_id = config
            .worker_id
            .clone()
            .unwrap_or_else(config::default_worker_id);
        let slots = config
            .queues
            .iter()
            .map(|(queue, bounds)| Arc::new(Slots::new(queue.clone(), *bounds)))
            .collect();
        let wakeups = hopper.store().listen();
        let shared = Self {
            watched: wakeups.is_none(),
            hopper,
            worker_id,
            config,
            stops: Stops::default(),
            jobs: TaskTracker::new(),
            slots,
            claims: Claims::new(),
            activity: watch::channel(0).0,
            changed: Notify::new(),
            batches_ended: Notify::new(),
        };
        (shared, wakeups)
    }

    /// Tells waiters on the pool's activity that something changed.
    fn bump(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl WorkerPool {
    /// Starts the pool's tasks on the current Tokio runtime.
    pub(crate) fn start(hopper: Hopper, config: WorkerConfig) -> Result<Self, WorkerError> {
        config.check()?;
        let (shared, wakeups) = Shared::new(hopper, config);
        let shared = Arc::new(shared);
        let total: usize = shared.config.queues.iter().map(|(_, c)| c.max).sum();
        let (reports, receiver) = mpsc::channel(total.max(COMPLETION_BATCH));
        let producers = shared
            .slots
            .iter()
            .map(|slots| {
                tokio::spawn(producer::run(
                    shared.clone(),
                    slots.clone(),
                    reports.clone(),
                ))
            })
            .collect();
        let completer = tokio::spawn(completer::run(shared.clone(), receiver));
        let queues: Vec<String> = shared
            .config
            .queues
            .iter()
            .map(|(queue, _)| queue.clone())
            .collect();
        let mut background = vec![
            tokio::spawn(heartbeat::run(shared.clone())),
            tokio::spawn(crate::maintenance::rescuer::run(
                shared.hopper.clone(),
                shared.worker_id.clone(),
                shared.config.rescue_interval,
                queues,
                shared.stops.background.clone(),
            )),
            tokio::spawn(autoscale::scale(shared.clone())),
            tokio::spawn(callbacks::run(shared.clone())),
        ];
        if let Some(interval) = shared.config.prune_interval {
            background.push(tokio::spawn(crate::maintenance::pruner::run(
                shared.hopper.clone(),
                shared.worker_id.clone(),
                interval,
                shared.config.retention,
                shared.stops.background.clone(),
            )));
        }
        match wakeups {
            Some(wakeups) => background.push(tokio::spawn(producer::forward_wakeups(
                shared.clone(),
                wakeups,
            ))),
            None => background.push(tokio::spawn(due_watch::run(shared.clone()))),
        }
        tracing::info!(
            worker = %shared.worker_id,
            queues = ?shared.config.queues,
            max_total = ?shared.config.max_total,
            "workers started"
        );
        Ok(Self {
            shared,
            producers,
            completer,
            background,
            reports,
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
        self.shared.claims.in_flight()
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
    /// the shutdown timeout, then cancels the rest and hands them, and the
    /// jobs claimed but never started, back to `pending` without counting the
    /// attempt. Returns how many were handed back.
    ///
    /// A stop takes at most the shutdown timeout plus five seconds,
    /// whatever the database does: outcomes it has not taken by the deadline
    /// are given up, and with the jobs it could not be given back, they come
    /// back through the rescuer once their leases run out.
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
        let deadline = Instant::now() + shared.config.shutdown_timeout;
        tracing::info!(worker = %shared.worker_id, "stopping: no new jobs will be claimed");
        shared.stops.claiming.cancel();
        for producer in self.producers {
            join_by(producer, deadline).await?;
        }
        shared.jobs.close();
        if tokio::time::timeout_at(deadline, shared.jobs.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                worker = %shared.worker_id,
                running = shared.jobs.len(),
                "shutdown deadline passed: cancelling running jobs"
            );
            shared.stops.hard.cancel();
            // A cancelled run ends at its next await; one that blocks its
            // thread is left behind (its claim is handed back below).
            let _ = tokio::time::timeout(STOP_GRACE, shared.jobs.wait()).await;
        }
        drop(self.reports);
        let mut completer = self.completer;
        let given_up = match tokio::time::timeout_at(deadline, &mut completer).await {
            Ok(joined) => joined?,
            Err(_) => {
                // The database is away or slow past the deadline: outcomes
                // still unwritten are given up, and the rescuer returns their
                // jobs. A completer stuck in a write gives up all it held.
                shared.stops.give_up.cancel();
                match join_by(completer, Instant::now() + STOP_GRACE).await? {
                    Some(given_up) => given_up,
                    None => shared.claims.in_flight(),
                }
            }
        };
        // Exactly the claims this pool still holds: jobs never started, and
        // runs cut off at the deadline.
        let held = shared.claims.snapshot();
        let released = match tokio::time::timeout_at(
            deadline.max(Instant::now() + STOP_GRACE),
            shared.hopper.store().release(&held),
        )
        .await
        {
            Ok(released) => released.map_err(|source| WorkerError::Release {
                what: "unfinished jobs",
                source,
            }),
            Err(_) => Err(WorkerError::ReleaseTimedOut { jobs: held.len() }),
        };
        shared.stops.background.cancel();
        let background_by = Instant::now() + STOP_GRACE;
        for task in self.background {
            join_by(task, background_by).await?;
        }
        let _ = tokio::time::timeout(STOP_GRACE, autoscale::withdraw(&shared)).await;
        let released = released?;
        if given_up > 0 {
            return Err(WorkerError::OutcomesGivenUp { jobs: given_up });
        }
        if released > 0 {
            tracing::info!(worker = %shared.worker_id, released, "handed unfinished jobs back to pending");
        }
        tracing::info!(worker = %shared.worker_id, "workers stopped");
        Ok(released)
    }
}

impl Hopper {
    /// Starts a worker pool running the queues `config` names.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let pool = hopper.start(hopper::WorkerConfig::new(4)).unwrap();
    /// pool.stop().await.unwrap();
    /// # });
    /// ```
    pub fn start(&self, config: WorkerConfig) -> Result<WorkerPool, WorkerError> {
        WorkerPool::start(self.clone(), config)
    }
}
