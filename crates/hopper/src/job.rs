//! Jobs: the trait an application implements, the context a handler gets,
//! and the error a handler returns.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::retry::Backoff;
use crate::state::State;
use crate::store::{BatchId, Claim, Progress, ProgressRequest, Store, StoreError};

/// The identifier the database gives a job.
pub type JobId = i64;

/// The queue a job goes to when neither its type nor its dispatch names one.
pub const DEFAULT_QUEUE: &str = "default";

/// How long a job may run before it is cancelled, unless its type says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// What a handler returns: `Ok(())` finishes the job.
pub type JobResult = Result<(), JobError>;

/// A kind of background work.
///
/// A type implementing `Job` names itself with [`Job::TYPE`] (the `type`
/// column of the `jobs` table), says what payload it takes, and handles one.
/// The value registered with a [`Registry`](crate::Registry) is shared by
/// every run, so it can hold the clients its handler needs.
///
/// ```
/// use hopper::{Job, JobContext, JobError, JobResult};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Greeting { name: String }
///
/// struct GreetJob;
///
/// impl Job for GreetJob {
///     const TYPE: &'static str = "greet";
///     type Payload = Greeting;
///
///     async fn handle(&self, payload: Greeting, _ctx: JobContext) -> JobResult {
///         if payload.name.is_empty() {
///             return Err(JobError::permanent("a greeting needs a name"));
///         }
///         println!("hello, {}", payload.name);
///         Ok(())
///     }
/// }
///
/// # tokio_test_block(async {
/// let ctx = JobContext::detached(1, 1);
/// GreetJob.handle(Greeting { name: "Ada".into() }, ctx).await.unwrap();
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub trait Job: Send + Sync + 'static {
    /// The unique type name stored with every job of this kind, e.g. `send_email`.
    const TYPE: &'static str;
    /// The queue this job goes to unless a dispatch says otherwise.
    const QUEUE: &'static str = DEFAULT_QUEUE;
    /// How many times the job runs before it is failed for good.
    const MAX_ATTEMPTS: u32 = 3;

    /// The data one job carries, stored as JSON.
    type Payload: Serialize + DeserializeOwned + Send + 'static;

    /// Does the work. An error retries the job (unless it is
    /// [permanent](JobError::permanent) or attempts are used up).
    fn handle(
        &self,
        payload: Self::Payload,
        ctx: JobContext,
    ) -> impl Future<Output = JobResult> + Send;

    /// How long to wait before running again after failed attempt number
    /// `attempt` (1-based). Default: [`Backoff::default`].
    fn retry_delay(&self, attempt: u32) -> Duration {
        Backoff::default().delay(attempt)
    }

    /// How long one run may take before it is cancelled and counted as a
    /// failed attempt. Default: 5 minutes.
    ///
    /// Cancelling happens where the handler next `.await`s: a handler that
    /// blocks its thread (`std::thread::sleep`, long computation, blocking
    /// I/O) cannot be cancelled, and if it returns `Ok` late its run is
    /// recorded finished. Run blocking work in
    /// [`tokio::task::spawn_blocking`] and await it, so the timeout fires
    /// at that await.
    fn timeout(&self) -> Duration {
        DEFAULT_TIMEOUT
    }

    /// The partition key of a job with `payload`, e.g. the customer it
    /// serves: a queue's per-key limits and fair claims count and serve
    /// the jobs of one key together. Default: none (a dispatch may still
    /// give one, [`DispatchOptions::partition`](crate::DispatchOptions::partition)).
    ///
    /// ```
    /// use hopper::{Job, JobContext, JobResult};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Receipt { customer: u64 }
    /// struct ReceiptJob;
    /// impl Job for ReceiptJob {
    ///     const TYPE: &'static str = "receipt";
    ///     type Payload = Receipt;
    ///     async fn handle(&self, _: Receipt, _: JobContext) -> JobResult { Ok(()) }
    ///     fn partition(receipt: &Receipt) -> Option<String> {
    ///         Some(format!("customer:{}", receipt.customer))
    ///     }
    /// }
    /// assert_eq!(ReceiptJob::partition(&Receipt { customer: 7 }).as_deref(), Some("customer:7"));
    /// ```
    fn partition(payload: &Self::Payload) -> Option<String> {
        let _ = payload;
        None
    }
}

/// Where a job is in its life.
///
/// `pending → started → finished`, `started → pending` (a retry),
/// `started → failed`, and `pending → cancelled`.
///
/// ```
/// use hopper::JobState;
/// assert_eq!("failed".parse::<JobState>().unwrap(), JobState::Failed);
/// assert_eq!(JobState::Pending.as_str(), "pending");
/// assert!("lost".parse::<JobState>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting to run (possibly not before `available_at`).
    Pending,
    /// Claimed by a worker and running.
    Started,
    /// Ran successfully.
    Finished,
    /// Failed permanently or used up its attempts.
    Failed,
    /// Cancelled before it ran.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    ///
    /// ```
    /// assert_eq!(hopper::JobState::ALL.len(), 5);
    /// ```
    pub const ALL: [JobState; 5] = [
        JobState::Pending,
        JobState::Started,
        JobState::Finished,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The name stored in the `state` column.
    ///
    /// ```
    /// assert_eq!(hopper::JobState::Cancelled.as_str(), "cancelled");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Started => "started",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will never run again by itself.
    ///
    /// ```
    /// assert!(hopper::JobState::Finished.is_final());
    /// assert!(!hopper::JobState::Started.is_final());
    /// ```
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Finished | JobState::Failed | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of the five.
///
/// ```
/// let err = "done".parse::<hopper::JobState>().unwrap_err();
/// assert!(err.to_string().contains("done"));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown job state {0:?} (expected pending, started, finished, failed or cancelled)")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// What a handler knows about the run it is in.
///
/// ```
/// let ctx = hopper::JobContext::detached(7, 2);
/// assert_eq!(ctx.id(), 7);
/// assert_eq!(ctx.attempt(), 2);
/// assert!(!ctx.is_cancelled());
/// ```
#[derive(Clone, Debug)]
pub struct JobContext {
    id: JobId,
    attempt: u32,
    max_attempts: u32,
    job_type: Arc<str>,
    queue: Arc<str>,
    batch: Option<BatchId>,
    cancel: CancellationToken,
    state: Arc<State>,
    run: Arc<Run>,
}

/// The longest progress message stored: a longer one is cut (on a
/// character boundary).
pub const MAX_PROGRESS_MESSAGE_BYTES: usize = 1024;

/// The least time between two progress writes of one run
/// ([`JobContext::progress`]).
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// What every clone of one run's context shares: where its output and
/// progress go.
#[derive(Debug)]
struct Run {
    /// The store and the claim progress is written under; `None` for a
    /// detached context, which keeps both in memory only.
    link: Option<(Arc<dyn Store>, Claim)>,
    /// The handle whose pool runs the job; `None` for a detached context.
    hopper: Option<crate::Hopper>,
    /// The largest output, in bytes, [`JobContext::set_output`] accepts.
    max_output_bytes: usize,
    /// The output set so far, as JSON text.
    output: Mutex<Option<String>>,
    /// The latest progress, and when one was last written.
    progress: Mutex<ProgressState>,
}

/// A run's latest progress and its writes.
#[derive(Debug, Default)]
struct ProgressState {
    /// The latest value reported.
    latest: Option<Progress>,
    /// Whether `latest` is not written yet.
    unwritten: bool,
    /// When a write last began.
    written_at: Option<Instant>,
}

impl Run {
    fn detached() -> Self {
        Self {
            link: None,
            hopper: None,
            max_output_bytes: crate::client::DEFAULT_MAX_PAYLOAD_BYTES,
            output: Mutex::new(None),
            progress: Mutex::new(ProgressState::default()),
        }
    }

    fn progress(&self) -> MutexGuard<'_, ProgressState> {
        self.progress
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn output(&self) -> MutexGuard<'_, Option<String>> {
        self.output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `progress` under the run's claim.
    async fn write(&self, progress: &Progress) -> Result<(), ProgressError> {
        let Some((store, claim)) = &self.link else {
            return Ok(());
        };
        let request = ProgressRequest {
            claim: *claim,
            progress,
        };
        match store.record_progress(request).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ProgressError::ClaimLost { id: claim.id }),
            Err(error) => {
                // Written at the run's end, or by a later call.
                self.progress().unwritten = true;
                Err(ProgressError::Store(error))
            }
        }
    }
}

/// Why a progress report failed ([`JobContext::progress`]).
///
/// ```
/// let err = hopper::ProgressError::OutOfRange(101);
/// assert_eq!(err.to_string(), "progress is a percentage from 0 to 100, not 101");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// The percentage is above 100.
    #[error("progress is a percentage from 0 to 100, not {0}")]
    OutOfRange(u8),
    /// This run no longer holds its job (it was rescued and handed to
    /// another worker, or cancelled): its progress was not written, and its
    /// outcome will not be either.
    #[error("job {id}: this run no longer holds the job, so its progress was not recorded")]
    ClaimLost {
        /// The job.
        id: JobId,
    },
    /// The database refused the write or could not be reached; the value
    /// is written by a later report or when the run ends.
    #[error("recording progress failed: {0}")]
    Store(#[from] StoreError),
}

/// Why an output was refused ([`JobContext::set_output`]).
///
/// ```
/// let err = hopper::OutputError::TooLarge { size: 10, limit: 4 };
/// assert_eq!(err.to_string(), "a job's output is 10 bytes of JSON, over the limit of 4");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The value could not be written as JSON.
    #[error("a job's output cannot be encoded as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    /// The value's JSON is larger than the handle's
    /// [`max_payload_bytes`](crate::Builder::max_payload_bytes).
    #[error("a job's output is {size} bytes of JSON, over the limit of {limit}")]
    TooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl JobContext {
    /// The context of attempt `attempt` (of `max_attempts`) of job `id`, of
    /// type `job_type` in `queue`, cancelled by `cancel`.
    pub(crate) fn new(
        (id, attempt, max_attempts): (JobId, u32, u32),
        job_type: &str,
        queue: &str,
        cancel: CancellationToken,
        state: Arc<State>,
    ) -> Self {
        Self {
            id,
            attempt,
            max_attempts,
            job_type: job_type.into(),
            queue: queue.into(),
            batch: None,
            cancel,
            state,
            run: Arc::new(Run::detached()),
        }
    }

    /// The same context run by `hopper`'s pool: writing its progress to
    /// the handle's store under `claim`, and taking outputs up to the
    /// handle's payload limit.
    pub(crate) fn linked(mut self, hopper: &crate::Hopper, claim: Claim) -> Self {
        self.run = Arc::new(Run {
            link: Some((hopper.store().clone(), claim)),
            hopper: Some(hopper.clone()),
            max_output_bytes: hopper.max_payload_bytes(),
            ..Run::detached()
        });
        self
    }

    /// The handle whose pool runs this job, to dispatch more jobs from the
    /// handler (follow-ups, or more jobs of its own batch); `None` in a
    /// [`detached`](Self::detached) context.
    ///
    /// ```
    /// assert!(hopper::JobContext::detached(1, 1).hopper().is_none());
    /// ```
    pub fn hopper(&self) -> Option<&crate::Hopper> {
        self.run.hopper.as_ref()
    }

    /// A context for calling a handler directly, outside any queue (unit tests).
    ///
    /// ```
    /// let ctx = hopper::JobContext::detached(1, 1);
    /// assert_eq!(ctx.queue(), "default");
    /// ```
    pub fn detached(id: JobId, attempt: u32) -> Self {
        Self {
            id,
            attempt,
            max_attempts: attempt.max(1),
            job_type: "".into(),
            queue: DEFAULT_QUEUE.into(),
            batch: None,
            cancel: CancellationToken::new(),
            state: Arc::new(State::new()),
            run: Arc::new(Run::detached()),
        }
    }

    /// The same context with `state` as its shared state.
    ///
    /// ```
    /// let ctx = hopper::JobContext::detached(1, 1).with_state(hopper::State::new().with(5u8));
    /// assert_eq!(*ctx.state::<u8>().unwrap(), 5);
    /// ```
    pub fn with_state(mut self, state: State) -> Self {
        self.state = Arc::new(state);
        self
    }

    /// The same context for a job of batch `batch`.
    ///
    /// ```
    /// let ctx = hopper::JobContext::detached(1, 1).in_batch(Some(7));
    /// assert_eq!(ctx.batch_id(), Some(7));
    /// ```
    pub fn in_batch(mut self, batch: Option<BatchId>) -> Self {
        self.batch = batch;
        self
    }

    /// The batch the job belongs to, if any: a job may add more jobs to
    /// its own batch ([`Hopper::add_to_batch`](crate::Hopper::add_to_batch)),
    /// and the batch waits for them too.
    ///
    /// ```
    /// assert_eq!(hopper::JobContext::detached(9, 1).batch_id(), None);
    /// ```
    pub fn batch_id(&self) -> Option<BatchId> {
        self.batch
    }

    /// The steps this job waits on in its workflow
    /// ([`Hopper::workflow`](crate::Hopper::workflow)), each with its job's
    /// state and output; none for a job outside a workflow, or a detached
    /// context.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// assert!(hopper::JobContext::detached(9, 1).dependencies().await.unwrap().is_empty());
    /// # });
    /// ```
    pub async fn dependencies(&self) -> Result<Vec<crate::store::Dependency>, StoreError> {
        match &self.run.link {
            Some((store, _)) => store.dependencies(&[self.id]).await,
            None => Ok(Vec::new()),
        }
    }

    /// The job's id.
    ///
    /// ```
    /// assert_eq!(hopper::JobContext::detached(9, 1).id(), 9);
    /// ```
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Which attempt this run is, starting at 1.
    ///
    /// ```
    /// assert_eq!(hopper::JobContext::detached(9, 3).attempt(), 3);
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How many attempts the job has in all.
    ///
    /// ```
    /// assert_eq!(hopper::JobContext::detached(9, 3).max_attempts(), 3);
    /// ```
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether a failure of this run fails the job for good.
    ///
    /// ```
    /// assert!(hopper::JobContext::detached(9, 3).is_last_attempt());
    /// ```
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The job's type name.
    ///
    /// ```
    /// assert_eq!(hopper::JobContext::detached(1, 1).job_type(), "");
    /// ```
    pub fn job_type(&self) -> &str {
        &self.job_type
    }

    /// The queue the job was claimed from.
    ///
    /// ```
    /// assert_eq!(hopper::JobContext::detached(1, 1).queue(), "default");
    /// ```
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Whether the run has been asked to stop (its timeout passed, or the
    /// worker is shutting down past its deadline).
    ///
    /// ```
    /// assert!(!hopper::JobContext::detached(1, 1).is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes when the run is asked to stop; select on it in long loops.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let ctx = hopper::JobContext::detached(1, 1);
    /// tokio::select! {
    ///     _ = ctx.cancelled() => unreachable!(),
    ///     _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => {}
    /// }
    /// # });
    /// ```
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// The shared value of type `T` the application provided, or a
    /// permanent error naming the missing type.
    ///
    /// ```
    /// let ctx = hopper::JobContext::detached(1, 1).with_state(hopper::State::new().with(1u16));
    /// assert_eq!(*ctx.state::<u16>().unwrap(), 1);
    /// assert!(ctx.state::<String>().is_err());
    /// ```
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, JobError> {
        self.state.get::<T>().ok_or_else(|| {
            JobError::permanent(format!(
                "no shared state of type {} was provided to the queue",
                std::any::type_name::<T>()
            ))
        })
    }

    /// Sets what the job returns: `value` is written as JSON now, and stored
    /// with the job when this run finishes it (in the same write), for
    /// [`Hopper::wait_for`](crate::Hopper::wait_for), the API and the
    /// dashboard. A later call replaces it. A run that does not finish the
    /// job (it fails, is retried, snoozes or is cancelled) stores nothing.
    /// A value that cannot be written as JSON, or whose JSON is larger than
    /// the handle's [`max_payload_bytes`](crate::Builder::max_payload_bytes)
    /// (1 MiB by default), is refused, and the output set before stays.
    ///
    /// ```
    /// let ctx = hopper::JobContext::detached(1, 1);
    /// ctx.set_output(&serde_json::json!({"rows": 120})).unwrap();
    /// assert_eq!(ctx.output().as_deref(), Some(r#"{"rows":120}"#));
    /// let huge = "x".repeat(2 * 1024 * 1024);
    /// assert!(matches!(ctx.set_output(&huge), Err(hopper::OutputError::TooLarge { .. })));
    /// assert_eq!(ctx.output().as_deref(), Some(r#"{"rows":120}"#));
    /// ```
    pub fn set_output<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), OutputError> {
        let text = serde_json::to_string(value)?;
        let limit = self.run.max_output_bytes;
        if text.len() > limit {
            return Err(OutputError::TooLarge {
                size: text.len(),
                limit,
            });
        }
        *self.run.output() = Some(text);
        Ok(())
    }

    /// The output set so far ([`JobContext::set_output`]), as JSON text.
    ///
    /// ```
    /// let ctx = hopper::JobContext::detached(1, 1);
    /// assert_eq!(ctx.output(), None);
    /// ctx.set_output(&[1, 2]).unwrap();
    /// assert_eq!(ctx.output().as_deref(), Some("[1,2]"));
    /// ```
    pub fn output(&self) -> Option<String> {
        self.run.output().clone()
    }

    /// Takes the output set, for the run's outcome.
    pub(crate) fn take_output(&self) -> Option<String> {
        self.run.output().take()
    }

    /// Reports how far the run has got: `percent` (0 to 100) and what it is
    /// doing, stored with the job for the API and the dashboard while it
    /// runs, and kept across retries. Writes are throttled: the first report
    /// of a run is written at once, later ones at most once per
    /// [`PROGRESS_INTERVAL`] (the others only replace the value waiting),
    /// and the latest value still waiting is written when the run ends, so
    /// a loop reporting on every item costs about one write a second.
    /// Returns whether this call wrote. A message longer than
    /// [`MAX_PROGRESS_MESSAGE_BYTES`] is cut. The write applies only while
    /// this run still holds the job: a run whose job was rescued and handed
    /// to another worker gets [`ProgressError::ClaimLost`] and changes
    /// nothing. A detached context keeps the value in memory only.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ctx = hopper::JobContext::detached(1, 1);
    /// for i in 0..=100u8 {
    ///     ctx.progress(i, format!("item {i}")).await.unwrap();
    /// }
    /// let latest = ctx.latest_progress().unwrap();
    /// assert_eq!((latest.percent, latest.message.as_str()), (100, "item 100"));
    /// assert!(ctx.progress(101, "").await.is_err());
    /// # });
    /// ```
    pub async fn progress(
        &self,
        percent: u8,
        message: impl Into<String>,
    ) -> Result<bool, ProgressError> {
        if percent > 100 {
            return Err(ProgressError::OutOfRange(percent));
        }
        let progress = Progress {
            percent,
            message: progress_message(message.into()),
        };
        let due = {
            let mut state = self.run.progress();
            state.latest = Some(progress.clone());
            state.unwritten = true;
            let now = Instant::now();
            let due = self.run.link.is_some()
                && state
                    .written_at
                    .is_none_or(|at| now.duration_since(at) >= PROGRESS_INTERVAL);
            if due {
                state.written_at = Some(now);
                state.unwritten = false;
            }
            due
        };
        if !due {
            return Ok(false);
        }
        self.run.write(&progress).await?;
        Ok(true)
    }

    /// The latest progress reported in this run ([`JobContext::progress`]),
    /// written or not.
    ///
    /// ```
    /// assert!(hopper::JobContext::detached(1, 1).latest_progress().is_none());
    /// ```
    pub fn latest_progress(&self) -> Option<Progress> {
        self.run.progress().latest.clone()
    }

    /// Writes the latest progress if it is still waiting (at the run's
    /// end); whether there was one to write.
    pub(crate) async fn flush_progress(&self) -> Result<bool, ProgressError> {
        let waiting = {
            let mut state = self.run.progress();
            if !state.unwritten || self.run.link.is_none() {
                return Ok(false);
            }
            state.unwritten = false;
            state.latest.clone()
        };
        match waiting {
            Some(progress) => self.run.write(&progress).await.map(|()| true),
            None => Ok(false),
        }
    }
}

/// `message` as a progress message is stored: NUL characters replaced (as
/// in errors) and cut to [`MAX_PROGRESS_MESSAGE_BYTES`].
fn progress_message(message: String) -> String {
    let mut message = recordable(message);
    if message.len() > MAX_PROGRESS_MESSAGE_BYTES {
        let mut end = MAX_PROGRESS_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

/// Why a handler did not finish its job, and what should happen next.
///
/// Any `std::error::Error` converts into a *retryable* `JobError`, so `?`
/// works in handlers. [`JobError::permanent`] fails the job at once;
/// [`JobError::retry_after`] retries after a delay the handler picks.
///
/// ```
/// use std::time::Duration;
/// use hopper::JobError;
/// fn parse(s: &str) -> Result<u32, JobError> { Ok(s.parse::<u32>()?) }
/// assert!(parse("x").unwrap_err().is_retryable());
/// assert!(!JobError::permanent("bad input").is_retryable());
/// assert_eq!(JobError::retry_after(Duration::from_secs(5), "busy").delay(), Some(Duration::from_secs(5)));
/// ```
#[derive(Debug)]
pub struct JobError {
    kind: ErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    Retryable,
    Permanent,
    RetryAfter(Duration),
    Snooze(Duration),
}

impl JobError {
    /// A failure worth retrying (subject to the job's attempts).
    ///
    /// ```
    /// assert!(hopper::JobError::retryable("timeout talking to SMTP").is_retryable());
    /// ```
    pub fn retryable(message: impl fmt::Display) -> Self {
        Self {
            kind: ErrorKind::Retryable,
            message: recordable(message.to_string()),
        }
    }

    /// A failure that no retry can fix: the job fails now.
    ///
    /// ```
    /// let err = hopper::JobError::permanent("unknown process type: rotate");
    /// assert!(err.is_permanent());
    /// ```
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            message: recordable(message.to_string()),
        }
    }

    /// Retry after `delay` instead of the job's usual backoff. The run still
    /// counts as an attempt.
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = hopper::JobError::retry_after(Duration::from_secs(60), "rate limited");
    /// assert!(err.is_retryable());
    /// ```
    pub fn retry_after(delay: Duration, message: impl fmt::Display) -> Self {
        Self {
            kind: ErrorKind::RetryAfter(delay),
            message: recordable(message.to_string()),
        }
    }

    /// Not a failure: the job is not ready to run (a rate limit upstream, a
    /// resource still being prepared), so it goes back to `pending`, due
    /// after `delay`, and this run does not count as an attempt. Unlike
    /// [`JobError::retry_after`], a job may snooze any number of times.
    ///
    /// ```
    /// use std::time::Duration;
    /// let later = hopper::JobError::snooze(Duration::from_secs(60), "the export is not ready yet");
    /// assert_eq!(later.snoozed_for(), Some(Duration::from_secs(60)));
    /// assert!(!later.is_permanent());
    /// ```
    pub fn snooze(delay: Duration, message: impl fmt::Display) -> Self {
        Self {
            kind: ErrorKind::Snooze(delay),
            message: recordable(message.to_string()),
        }
    }

    /// How long the handler asked to snooze, if it snoozed (see
    /// [`JobError::snooze`]).
    ///
    /// ```
    /// assert_eq!(hopper::JobError::retryable("x").snoozed_for(), None);
    /// ```
    pub fn snoozed_for(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::Snooze(delay) => Some(delay),
            _ => None,
        }
    }

    /// Whether the job may run again after this error.
    ///
    /// ```
    /// assert!(!hopper::JobError::permanent("no").is_retryable());
    /// ```
    pub fn is_retryable(&self) -> bool {
        !self.is_permanent()
    }

    /// Whether this error fails the job at once.
    ///
    /// ```
    /// assert!(hopper::JobError::permanent("no").is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }

    /// The delay the handler asked for, if it asked for one.
    ///
    /// ```
    /// assert_eq!(hopper::JobError::retryable("x").delay(), None);
    /// ```
    pub fn delay(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RetryAfter(delay) => Some(delay),
            _ => None,
        }
    }

    /// The error's message, as recorded in the job's error history (a NUL
    /// character, which not every database can store, becomes U+FFFD).
    ///
    /// ```
    /// assert_eq!(hopper::JobError::retryable("boom").message(), "boom");
    /// assert_eq!(hopper::JobError::permanent("a\0b").message(), "a\u{FFFD}b");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `message` with every NUL character replaced by U+FFFD: PostgreSQL
/// cannot store a NUL in text, and a job's error history must always be
/// recordable, on every database alike.
fn recordable(message: String) -> String {
    if message.contains('\0') {
        message.replace('\0', "\u{FFFD}")
    } else {
        message
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::retryable(message)
    }
}
