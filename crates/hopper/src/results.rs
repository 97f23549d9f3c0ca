//! Job results: waiting for a job to end ([`Hopper::wait_for`]) and what it
//! ended with, in this process or any other sharing the database.
//!
//! Waiters are woken, not polling: a completion in this process wakes the
//! waiters of its jobs directly; one in another process reaches them
//! through the store's [`listen_results`](crate::store::Store::listen_results)
//! (PostgreSQL's `NOTIFY` on the results channel, with the job's id;
//! SQLite's watch of the database file). MySQL has no such signal, so its
//! waiters look again every [`POLL_INTERVAL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::client::Hopper;
use crate::job::{JobId, JobState};
use crate::store::{JobRecord, Store, StoreError, Wakeup};

/// How often a waiter reads its job again where the database tells of no
/// ending (MySQL, or while its listener reconnects).
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// How often a waiter reads its job again where the database does tell of
/// endings: a safety net for the endings that are not told of (a rescue
/// that fails a job on its last attempt, or a cancel of a pending job, in
/// another process on PostgreSQL).
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// How a job ended ([`Hopper::wait_for`]).
///
/// ```
/// let done = hopper::JobOutcome::Finished { output: Some(r#"{"rows":3}"#.into()) };
/// let value: serde_json::Value = done.output_as().unwrap().unwrap();
/// assert_eq!(value["rows"], 3);
/// assert!(hopper::JobOutcome::Cancelled.output_as::<u8>().is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// It finished, with the output its handler set, if any (JSON text).
    Finished {
        /// Its output ([`JobContext::set_output`](crate::JobContext::set_output)).
        output: Option<String>,
    },
    /// It failed for good, with its last error.
    Failed {
        /// The last attempt's error.
        error: String,
    },
    /// It was cancelled.
    Cancelled,
}

impl JobOutcome {
    /// How `record` ended, or `None` while it has not.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let store = hopper::store::open("sqlite::memory:").await.unwrap();
    /// # let now = chrono::Utc::now();
    /// # let ids = store.insert(&[hopper::store::NewJob {
    /// #     job_type: "n".into(), queue: "default".into(), payload: "null".into(),
    /// #     priority: 0, max_attempts: 3, available_at: now, created_at: now, unique_key: None, partition_key: None,
    /// #     sequence: None,
    /// #     trace_context: None,
    /// # }]).await.unwrap();
    /// let record = store.get(ids[0]).await.unwrap().unwrap();
    /// assert_eq!(hopper::JobOutcome::of(&record), None);
    /// # });
    /// ```
    pub fn of(record: &JobRecord) -> Option<Self> {
        match record.state {
            JobState::Finished => Some(JobOutcome::Finished {
                output: record.output.clone(),
            }),
            JobState::Failed => Some(JobOutcome::Failed {
                error: record.last_error.clone().unwrap_or_default(),
            }),
            JobState::Cancelled => Some(JobOutcome::Cancelled),
            JobState::Pending | JobState::Started => None,
        }
    }

    /// The output decoded as `T`: `None` unless the job finished with one.
    ///
    /// ```
    /// let done = hopper::JobOutcome::Finished { output: Some("[1,2]".into()) };
    /// assert_eq!(done.output_as::<Vec<u8>>().unwrap().unwrap(), [1, 2]);
    /// ```
    pub fn output_as<T: DeserializeOwned>(&self) -> Option<Result<T, serde_json::Error>> {
        match self {
            JobOutcome::Finished {
                output: Some(output),
            } => Some(serde_json::from_str(output)),
            _ => None,
        }
    }
}

/// Why [`Hopper::wait_for`] returned without an outcome.
///
/// ```
/// use std::time::Duration;
/// let err = hopper::WaitError::TimedOut { id: 7, timeout: Duration::from_secs(1), state: hopper::JobState::Started };
/// assert_eq!(err.to_string(), "job 7 did not end within 1s (it is started)");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The job had not ended when the timeout passed.
    #[error("job {id} did not end within {timeout:?} (it is {state})")]
    TimedOut {
        /// The job.
        id: JobId,
        /// How long the wait lasted.
        timeout: Duration,
        /// The state it was in last.
        state: JobState,
    },
    /// There is no such job (never was, or it was deleted or pruned).
    #[error("there is no job {0}")]
    NotFound(JobId),
    /// Reading the job failed.
    #[error("waiting for a job failed: {0}")]
    Store(#[from] StoreError),
}

/// The waiters of one handle, by job, and its listener for endings in
/// other processes.
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    shared: Arc<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    /// Each waited-on job's wake-up and how many wait on it.
    jobs: Mutex<HashMap<JobId, (usize, Arc<Notify>)>>,
    /// Whether the listener runs, and what stops it.
    listener: Mutex<Listener>,
}

#[derive(Debug, Default)]
enum Listener {
    /// Not started yet (or it ended, and the next wait starts it again).
    #[default]
    Idle,
    /// Running until this guard drops with the handle.
    Running(#[allow(dead_code)] DropGuard),
    /// The store has no signal: waiters poll.
    None,
}

impl Waiting {
    fn jobs(&self) -> MutexGuard<'_, HashMap<JobId, (usize, Arc<Notify>)>> {
        self.jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn listener(&self) -> MutexGuard<'_, Listener> {
        self.listener
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Wakes whoever waits on the jobs `ids`: one look at the waiting jobs
    /// for the whole list, none of it read when no one waits.
    fn wake_each(&self, ids: impl IntoIterator<Item = JobId>) {
        let jobs = self.jobs();
        if jobs.is_empty() {
            return;
        }
        for id in ids {
            if let Some((_, notify)) = jobs.get(&id) {
                notify.notify_waiters();
            }
        }
    }

    fn wake_all(&self) {
        for (_, notify) in self.jobs().values() {
            notify.notify_waiters();
        }
    }
}

/// One waiter's registration: removed when it drops.
struct Registered<'a> {
    waiting: &'a Waiting,
    id: JobId,
    notify: Arc<Notify>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut jobs = self.waiting.jobs();
        if let Some((count, _)) = jobs.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                jobs.remove(&self.id);
            }
        }
    }
}

impl Waiters {
    /// Wakes whoever waits on the jobs `ids` (they ended, or may have): the
    /// completer calls this for every batch it writes.
    pub(crate) fn ended(&self, ids: impl IntoIterator<Item = JobId>) {
        self.shared.wake_each(ids);
    }

    fn register(&self, id: JobId) -> Registered<'_> {
        let notify = {
            let mut jobs = self.shared.jobs();
            let entry = jobs.entry(id).or_insert_with(|| (0, Arc::default()));
            entry.0 += 1;
            entry.1.clone()
        };
        Registered {
            waiting: &self.shared,
            id,
            notify,
        }
    }

    /// Starts listening for endings in other processes, unless it runs;
    /// whether the store tells of them at all.
    fn listen(&self, store: &dyn Store) -> bool {
        let mut listener = self.shared.listener();
        match *listener {
            Listener::Running(_) => true,
            Listener::None => false,
            Listener::Idle => match store.listen_results() {
                Some(wakeups) => {
                    let stop = CancellationToken::new();
                    let waiting = Arc::downgrade(&self.shared);
                    tokio::spawn(forward(waiting, wakeups, stop.clone()));
                    *listener = Listener::Running(stop.drop_guard());
                    true
                }
                None => {
                    *listener = Listener::None;
                    false
                }
            },
        }
    }
}

/// Wakes `waiting`'s waiters as `wakeups` tell of endings, until `stop`
/// (the handle dropped) or the listener ends.
async fn forward(
    waiting: Weak<Waiting>,
    mut wakeups: mpsc::Receiver<Wakeup>,
    stop: CancellationToken,
) {
    loop {
        let wakeup = tokio::select! {
            _ = stop.cancelled() => return,
            wakeup = wakeups.recv() => wakeup,
        };
        let Some(waiting) = waiting.upgrade() else {
            return;
        };
        match wakeup {
            Some(Wakeup::Ended(ids)) => waiting.wake_each(ids),
            Some(Wakeup::All) => waiting.wake_all(),
            Some(Wakeup::Queue(_) | Wakeup::Cancels) => {}
            None => {
                // The next wait starts it again.
                *waiting.listener() = Listener::Idle;
                waiting.wake_all();
                return;
            }
        }
    }
}

impl Hopper {
    /// Waits until job `id` ends, for at most `timeout`, and returns how it
    /// ended: finished (with the output its handler set, see
    /// [`JobContext::set_output`](crate::JobContext::set_output)), failed
    /// for good (with its last error), or cancelled. The job may run in any
    /// process sharing the database. The wait is woken, not polled: by a
    /// completion in this process at once, and by one in another process
    /// through PostgreSQL's `NOTIFY` or SQLite's watch of the database file
    /// (within about 50 ms); on MySQL, which has no such signal, it looks
    /// again every [`POLL_INTERVAL`] (250 ms). A job still pending or
    /// running at the timeout is [`WaitError::TimedOut`]; one that does not
    /// exist, [`WaitError::NotFound`]. The first wait on a handle starts its
    /// listener (on PostgreSQL, one connection listening on
    /// `hopper_results`), which
    /// lasts as long as the handle; every wait after it shares it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use hopper::{Hopper, Job, JobContext, JobOutcome, JobResult};
    /// struct Sum;
    /// impl Job for Sum {
    ///     const TYPE: &'static str = "sum";
    ///     type Payload = Vec<u64>;
    ///     async fn handle(&self, numbers: Vec<u64>, ctx: JobContext) -> JobResult {
    ///         ctx.set_output(&numbers.iter().sum::<u64>())?;
    ///         Ok(())
    ///     }
    /// }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let queue = hopper::testing::TestQueue::start(Hopper::builder().register(Sum).unwrap()).await.unwrap();
    /// let hopper = queue.hopper();
    /// let id = hopper.dispatch::<Sum>(vec![1, 2, 3]).await.unwrap();
    /// let outcome = hopper.wait_for(id, Duration::from_secs(10)).await.unwrap();
    /// assert_eq!(outcome, JobOutcome::Finished { output: Some("6".into()) });
    /// assert!(hopper.wait_for(id + 1, Duration::from_millis(10)).await.is_err());
    /// # queue.stop().await.unwrap();
    /// # });
    /// ```
    pub async fn wait_for(&self, id: JobId, timeout: Duration) -> Result<JobOutcome, WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let waiters = self.waiters();
        let registered = waiters.register(id);
        let told = waiters.listen(self.store().as_ref());
        let recheck = if told {
            RECHECK_INTERVAL
        } else {
            POLL_INTERVAL
        };
        loop {
            // Listening before reading: an ending between the two still wakes.
            let notified = registered.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let Some(record) = self.store().get(id).await? else {
                return Err(WaitError::NotFound(id));
            };
            if let Some(outcome) = JobOutcome::of(&record) {
                return Ok(outcome);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WaitError::TimedOut {
                    id,
                    timeout,
                    state: record.state,
                });
            }
            let next = (tokio::time::Instant::now() + recheck).min(deadline);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }
}
