//! [`Status`]: the state of every queue at one moment, as the dashboard,
//! the JSON API and the console show it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::job::JobState;
use crate::store::{MinuteCount, QueueStats, StateCount, WorkerConcurrency};

/// Jobs per state: of one queue, or of all of them.
///
/// ```
/// use hopper::status::StateCounts;
/// let mut counts = StateCounts::default();
/// counts.add(hopper::JobState::Failed, 2);
/// assert_eq!(counts.get(hopper::JobState::Failed), 2);
/// assert_eq!(counts.total(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Waiting to run.
    pub pending: u64,
    /// Running.
    pub started: u64,
    /// Done.
    pub finished: u64,
    /// Failed for good.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl StateCounts {
    /// The jobs in `state`.
    ///
    /// ```
    /// let counts = hopper::status::StateCounts { pending: 3, ..Default::default() };
    /// assert_eq!(counts.get(hopper::JobState::Pending), 3);
    /// ```
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Pending => self.pending,
            JobState::Started => self.started,
            JobState::Finished => self.finished,
            JobState::Failed => self.failed,
            JobState::Cancelled => self.cancelled,
        }
    }

    /// Adds `count` jobs in `state`.
    ///
    /// ```
    /// let mut counts = hopper::status::StateCounts::default();
    /// counts.add(hopper::JobState::Started, 1);
    /// assert_eq!(counts.started, 1);
    /// ```
    pub fn add(&mut self, state: JobState, count: u64) {
        let slot = match state {
            JobState::Pending => &mut self.pending,
            JobState::Started => &mut self.started,
            JobState::Finished => &mut self.finished,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        };
        *slot += count;
    }

    /// Jobs in any state.
    ///
    /// ```
    /// let counts = hopper::status::StateCounts { pending: 1, failed: 2, ..Default::default() };
    /// assert_eq!(counts.total(), 3);
    /// ```
    pub fn total(&self) -> u64 {
        JobState::ALL.iter().map(|state| self.get(*state)).sum()
    }
}

/// One queue's status: its jobs per state, its due work, whether it is
/// paused, and the worker pools running it.
///
/// ```
/// let queue = hopper::status::QueueStatus::new("mail");
/// assert_eq!((queue.queue.as_str(), queue.due, queue.paused), ("mail", 0, false));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueStatus {
    /// The queue.
    pub queue: String,
    /// Its jobs per state (flattened in JSON: `pending`, `started`, …).
    #[serde(flatten)]
    pub counts: StateCounts,
    /// Pending jobs that are due now.
    pub due: u64,
    /// When the longest-waiting due job came due.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// Whether workers are told to claim nothing from it.
    pub paused: bool,
    /// The live worker pools running it, each with its concurrency.
    pub workers: Vec<WorkerConcurrency>,
}

impl QueueStatus {
    /// A queue with no jobs, not paused, run by no pool.
    ///
    /// ```
    /// assert_eq!(hopper::status::QueueStatus::new("q").counts.total(), 0);
    /// ```
    pub fn new(queue: impl Into<String>) -> Self {
        Self {
            queue: queue.into(),
            counts: StateCounts::default(),
            due: 0,
            oldest_due_at: None,
            paused: false,
            workers: Vec::new(),
        }
    }

    /// How long the longest-waiting due job has waited at `now` (zero for
    /// one that came due in the future of `now`).
    ///
    /// ```
    /// let now = chrono::Utc::now();
    /// let mut queue = hopper::status::QueueStatus::new("q");
    /// assert_eq!(queue.oldest_due_age(now), None);
    /// queue.oldest_due_at = Some(now - chrono::Duration::seconds(90));
    /// assert_eq!(queue.oldest_due_age(now), Some(std::time::Duration::from_secs(90)));
    /// ```
    pub fn oldest_due_age(&self, now: DateTime<Utc>) -> Option<std::time::Duration> {
        self.oldest_due_at
            .map(|at| (now - at).to_std().unwrap_or_default())
    }
}

/// The status of every queue at one moment: each queue with jobs, a pause
/// row or a live worker pool, sorted by name, and the jobs that ended per
/// minute over a recent window. [`Hopper::status`](crate::Hopper::status)
/// reads it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// hopper.pause("mail").await.unwrap();
/// let status = hopper.status(std::time::Duration::from_secs(60)).await.unwrap();
/// assert_eq!(status.queues.len(), 1);
/// assert!(status.queues[0].paused);
/// assert_eq!(status.totals().total(), 0);
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// When it was read (the handle's clock).
    pub now: DateTime<Utc>,
    /// Every queue, by name.
    pub queues: Vec<QueueStatus>,
    /// Jobs finished and failed per minute over the window asked for,
    /// oldest first (minutes with neither left out).
    pub throughput: Vec<MinuteCount>,
}

impl Status {
    /// Puts together what the store reports: jobs per queue and state, due
    /// work per queue, live pools' concurrency and throughput.
    pub(crate) fn assemble(
        now: DateTime<Utc>,
        counts: Vec<StateCount>,
        stats: Vec<QueueStats>,
        workers: Vec<WorkerConcurrency>,
        throughput: Vec<MinuteCount>,
    ) -> Self {
        let mut queues: BTreeMap<String, QueueStatus> = BTreeMap::new();
        fn entry<'a>(
            queues: &'a mut BTreeMap<String, QueueStatus>,
            queue: &str,
        ) -> &'a mut QueueStatus {
            queues
                .entry(queue.to_owned())
                .or_insert_with(|| QueueStatus::new(queue))
        }
        for count in counts {
            entry(&mut queues, &count.queue)
                .counts
                .add(count.state, count.count);
        }
        for stats in stats {
            let queue = entry(&mut queues, &stats.queue);
            queue.due = stats.due;
            queue.oldest_due_at = stats.oldest_due_at;
            queue.paused = stats.paused;
        }
        for row in workers {
            entry(&mut queues, &row.queue).workers.push(row);
        }
        Self {
            now,
            queues: queues.into_values().collect(),
            throughput,
        }
    }

    /// Jobs per state across every queue.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let status = hopper.status(std::time::Duration::from_secs(60)).await.unwrap();
    /// assert_eq!(status.totals(), hopper::status::StateCounts::default());
    /// # });
    /// ```
    pub fn totals(&self) -> StateCounts {
        let mut totals = StateCounts::default();
        for queue in &self.queues {
            for state in JobState::ALL {
                totals.add(state, queue.counts.get(state));
            }
        }
        totals
    }

    /// When the longest-waiting due job of any queue came due.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let status = hopper.status(std::time::Duration::from_secs(60)).await.unwrap();
    /// assert!(status.oldest_due_at().is_none());
    /// # });
    /// ```
    pub fn oldest_due_at(&self) -> Option<DateTime<Utc>> {
        self.queues.iter().filter_map(|q| q.oldest_due_at).min()
    }

    /// Jobs finished within the throughput window.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let status = hopper.status(std::time::Duration::from_secs(60)).await.unwrap();
    /// assert_eq!((status.finished(), status.failed()), (0, 0));
    /// # });
    /// ```
    pub fn finished(&self) -> u64 {
        self.throughput.iter().map(|m| m.finished).sum()
    }

    /// Jobs failed for good within the throughput window.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let status = hopper.status(std::time::Duration::from_secs(60)).await.unwrap();
    /// assert_eq!(status.failed(), 0);
    /// # });
    /// ```
    pub fn failed(&self) -> u64 {
        self.throughput.iter().map(|m| m.failed).sum()
    }
}
