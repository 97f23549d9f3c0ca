//! Jobs: the trait an application implements, the context a handler gets,
//! and the error a handler returns.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::retry::Backoff;
use crate::state::State;

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
    cancel: CancellationToken,
    state: Arc<State>,
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
            cancel,
            state,
        }
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
            cancel: CancellationToken::new(),
            state: Arc::new(State::new()),
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
