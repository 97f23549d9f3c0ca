//! How a worker pool is configured: its queues and their concurrency,
//! leases, polling, shutdown deadline, maintenance intervals and hooks.

use std::sync::Arc;
use std::time::Duration;

use super::WorkerError;
use crate::hooks::Hooks;
use crate::job::DEFAULT_QUEUE;
use crate::maintenance::Retention;

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
    pub(super) queues: Vec<(String, Concurrency)>,
    /// The most jobs run at once across all queues, if capped.
    pub(super) max_total: Option<usize>,
    /// How often the autoscaler looks at backlogs.
    pub(super) scale_interval: Duration,
    /// How long a queue needs fewer slots before it shrinks.
    pub(super) scale_down_after: Duration,
    /// Application callbacks for ended runs.
    pub(super) hooks: HookList,
    /// How long a claim holds a job without a heartbeat.
    pub(super) lease: Duration,
    /// How often an idle queue looks for jobs without a wake-up.
    pub(super) poll_interval: Duration,
    /// The longest idle sleep where the database wakes the pool.
    pub(super) notified_poll_interval: Duration,
    /// How long `stop` lets running jobs finish.
    pub(super) shutdown_timeout: Duration,
    /// How often expired leases are looked for.
    pub(super) rescue_interval: Duration,
    /// How often old jobs are pruned; `None`: never.
    pub(super) prune_interval: Option<Duration>,
    /// How long ended jobs are kept.
    pub(super) retention: Retention,
    /// The id written to `locked_by`, if configured.
    pub(super) worker_id: Option<String>,
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

    /// How often, at most, an idle queue is looked at again for jobs that
    /// no wake-up announced: a due job that was not claimable (a paused
    /// queue, a limit), and under a manual clock. Where the database does
    /// not notify (MySQL, SQLite in memory), it is also how often the pool
    /// reads, in one statement for all its idle queues, whether any has a
    /// due job (other processes' dispatches, retries, rescues), and wakes
    /// those that do (default 1 s).
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).poll_interval(std::time::Duration::from_millis(200));
    /// # let _ = c;
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// An idle worker sleeps until its queue's next job is due or a wake-up
    /// comes (PostgreSQL's notifications; on an SQLite file, the operating
    /// system's report that the file changed; elsewhere the pool's look for
    /// due jobs every [`WorkerConfig::poll_interval`]); this is the longest
    /// such sleep, a safety net for wake-ups lost with a connection or an
    /// overflowing watch (default 30 s). With a clock that does not move by
    /// itself, idle workers poll every [`WorkerConfig::poll_interval`].
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).notified_poll_interval(std::time::Duration::from_secs(60));
    /// # let _ = c;
    /// ```
    pub fn notified_poll_interval(mut self, interval: Duration) -> Self {
        self.notified_poll_interval = interval;
        self
    }

    /// How long [`WorkerPool::stop`](crate::WorkerPool::stop) lets running jobs finish (default 30 s).
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
    /// among all sharing the database rescues at a time; another takes over
    /// within three intervals of its stopping.
    ///
    /// ```
    /// let c = hopper::WorkerConfig::new(1).rescue_interval(std::time::Duration::from_secs(1));
    /// # let _ = c;
    /// ```
    pub fn rescue_interval(mut self, interval: Duration) -> Self {
        self.rescue_interval = interval;
        self
    }

    /// How often old jobs are pruned (default hourly); `None` turns pruning
    /// off for this pool. Only one pool among all sharing the database prunes
    /// at a time; another takes over within three intervals of its stopping.
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

    /// Refuses a configuration that cannot work.
    pub(super) fn check(&self) -> Result<(), WorkerError> {
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
pub(super) struct HookList(pub(super) Vec<Arc<dyn Hooks>>);

impl std::fmt::Debug for HookList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} hooks", self.0.len())
    }
}

/// The id a pool writes to `locked_by` unless configured: host, process id
/// and a random suffix.
pub(super) fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}:{}:{:08x}", std::process::id(), fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
