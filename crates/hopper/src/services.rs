//! [`Services`]: everything a process runs in the background (the worker
//! pool, the scheduler and the alert monitor) started from one
//! configuration and stopped together.

use crate::alerts::{AlertMonitor, Alerts};
use crate::core::Hopper;
use crate::schedule::{Scheduler, Schedules};
use crate::worker::{WorkerConfig, WorkerError, WorkerPool};

/// What a process runs in the background: a worker pool, the scheduler and,
/// when rules are given, the alert monitor. [`Services::start`] starts them
/// all; [`RunningServices::stop`] stops them all gracefully.
///
/// Unless [`Services::only_configured_queues`] is set, the pool also runs
/// every queue a registered job names that the worker configuration does
/// not list, with the bounds of the configuration's first queue.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::services::Services;
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// let services = Services::new(hopper::WorkerConfig::new(2))
///     .schedules(hopper::schedule::Schedules::new())
///     .alerts(hopper::alerts::Alerts::new());
/// let running = services.start(&hopper).unwrap();
/// assert_eq!(running.pool().concurrency("default"), Some(2));
/// assert_eq!(running.stop().await.unwrap(), 0);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Services {
    workers: WorkerConfig,
    schedules: Schedules,
    alerts: Option<Alerts>,
    registered_queues: bool,
}

impl Services {
    /// Workers as `workers` configures them, no schedules, no alerts.
    ///
    /// ```
    /// let services = hopper::services::Services::new(hopper::WorkerConfig::new(4));
    /// # let _ = services;
    /// ```
    pub fn new(workers: WorkerConfig) -> Self {
        Self {
            workers,
            schedules: Schedules::new(),
            alerts: None,
            registered_queues: true,
        }
    }

    /// Runs `schedules` (each tick once across every process running them).
    ///
    /// ```
    /// let services = hopper::services::Services::new(hopper::WorkerConfig::new(1))
    ///     .schedules(hopper::schedule::Schedules::new());
    /// # let _ = services;
    /// ```
    pub fn schedules(mut self, schedules: Schedules) -> Self {
        self.schedules = schedules;
        self
    }

    /// Checks `alerts` (by the one process holding the alerts lease).
    ///
    /// ```
    /// let services = hopper::services::Services::new(hopper::WorkerConfig::new(1))
    ///     .alerts(hopper::alerts::Alerts::new());
    /// # let _ = services;
    /// ```
    pub fn alerts(mut self, alerts: Alerts) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// Runs only the queues the worker configuration lists, not also those
    /// registered jobs name.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hopper::{Job, JobContext, JobResult};
    /// # struct Mail;
    /// # impl Job for Mail {
    /// #     const TYPE: &'static str = "mail";
    /// #     const QUEUE: &'static str = "mail";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let hopper = hopper::Hopper::builder().register(Mail).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let services = hopper::services::Services::new(hopper::WorkerConfig::new(2));
    /// assert_eq!(services.worker_config(&hopper).queues().len(), 2);
    /// let only = services.only_configured_queues();
    /// assert_eq!(only.worker_config(&hopper).queues().len(), 1);
    /// # });
    /// ```
    pub fn only_configured_queues(mut self) -> Self {
        self.registered_queues = false;
        self
    }

    /// The worker configuration the pool starts with on `hopper`: the one
    /// given, plus (unless [`Services::only_configured_queues`]) each queue a
    /// registered job names that it does not list, with the bounds of its
    /// first queue.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use hopper::{Job, JobContext, JobResult};
    /// # struct Mail;
    /// # impl Job for Mail {
    /// #     const TYPE: &'static str = "mail";
    /// #     const QUEUE: &'static str = "mail";
    /// #     type Payload = ();
    /// #     async fn handle(&self, _: (), _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// let hopper = hopper::Hopper::builder().register(Mail).unwrap().connect("sqlite::memory:").await.unwrap();
    /// let workers = hopper::WorkerConfig::new(8).queue_scaled("default", 2, 8);
    /// let config = hopper::services::Services::new(workers).worker_config(&hopper);
    /// assert_eq!(config.concurrency("mail"), Some(hopper::Concurrency { min: 2, max: 8 }));
    /// # });
    /// ```
    pub fn worker_config(&self, hopper: &Hopper) -> WorkerConfig {
        let mut config = self.workers.clone();
        if !self.registered_queues {
            return config;
        }
        let Some((first, _)) = config.queues().into_iter().next() else {
            return config;
        };
        let Some(bounds) = config.concurrency(&first) else {
            return config;
        };
        for queue in hopper.registry().queues() {
            if config.concurrency(queue).is_none() {
                config = config.queue_scaled(queue, bounds.min, bounds.max);
            }
        }
        config
    }

    /// Starts the worker pool, the alert monitor (when rules were given)
    /// and the scheduler on `hopper`, on the current Tokio runtime.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let bad = hopper::services::Services::new(hopper::WorkerConfig::new(1).only());
    /// assert!(bad.start(&hopper).is_err());
    /// # });
    /// ```
    pub fn start(self, hopper: &Hopper) -> Result<RunningServices, WorkerError> {
        let pool = hopper.start(self.worker_config(hopper))?;
        let monitor = self.alerts.map(|alerts| {
            tracing::info!(rules = alerts.rules().count(), "checking alert rules");
            let alerts = if alerts.has_schedules() {
                alerts
            } else {
                alerts.schedules(self.schedules.clone())
            };
            alerts.start(hopper)
        });
        let scheduler = self.schedules.start(hopper);
        Ok(RunningServices {
            pool,
            scheduler,
            monitor,
        })
    }
}

/// The worker pool, the scheduler and the alert monitor of a process, as
/// [`Services::start`] started them.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// let running = hopper::services::Services::new(hopper::WorkerConfig::new(1)).start(&hopper).unwrap();
/// assert_eq!(running.pool().concurrency("default"), Some(1));
/// running.stop().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct RunningServices {
    pool: WorkerPool,
    scheduler: Scheduler,
    monitor: Option<AlertMonitor>,
}

impl RunningServices {
    /// The worker pool.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let running = hopper::services::Services::new(hopper::WorkerConfig::new(3)).start(&hopper).unwrap();
    /// assert_eq!(running.pool().concurrency("default"), Some(3));
    /// # running.stop().await.unwrap();
    /// # });
    /// ```
    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// Stops everything gracefully: the scheduler after its current pass,
    /// then the alert monitor (giving up its lease and delivering queued
    /// webhook calls), then the worker pool (see [`WorkerPool::stop`]).
    /// Returns how many unfinished jobs the pool handed back.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let running = hopper::services::Services::new(hopper::WorkerConfig::new(1)).start(&hopper).unwrap();
    /// assert_eq!(running.stop().await.unwrap(), 0);
    /// # });
    /// ```
    pub async fn stop(self) -> Result<u64, WorkerError> {
        self.scheduler.stop().await;
        if let Some(monitor) = self.monitor {
            monitor.stop().await;
        }
        self.pool.stop().await
    }
}
