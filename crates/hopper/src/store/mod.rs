//! The storage contract: everything Hopper asks of a database.
//!
//! Workers, dispatch and maintenance speak only to [`Store`]; each database
//! is one module implementing it. A store knows nothing of handlers,
//! workers or schedules.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::job::{JobId, JobState};

pub(crate) mod batches;
mod concurrency;
mod error;
mod flow;
mod flow_usage;
#[cfg(feature = "mysql")]
#[cfg_attr(docsrs, doc(cfg(feature = "mysql")))]
pub mod mysql;
#[cfg(any(feature = "mysql", feature = "postgres"))]
mod pool;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
mod rows;
pub mod sequences;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
pub mod workflows;

#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) use batches::CallbackColumns;
pub use batches::{
    BatchAdd, BatchCallback, BatchCounts, BatchEvent, BatchId, BatchRecord, NewBatch,
};
pub(crate) use batches::{BatchTx, DueBatch};
pub use error::{DatabaseError, DatabaseErrorKind, MigrateError, StoreError};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) use flow::{Candidate, FlowQueues, FlowTx, LockedFlow};
pub use flow::{FlowRequest, QueueFlow, Rate};
pub use flow_usage::{BUSIEST_KEYS, FlowUsage, KeyUsage, RateError};
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
pub(crate) use flow_usage::{UsageRows, draft};
pub use sequences::{MAX_SEQUENCE_KEY, Sequence};
pub(crate) use sequences::{SequenceTx, Tail};
pub(crate) use workflows::{DepEvent, Dependent, Waiting, WorkflowTx};
pub use workflows::{Dependency, NewStep, NewWorkflow, Released, WAITING_UNTIL};

/// Refuses a name holding a NUL character, before it reaches a database.
///
/// ```
/// use hopper::store::{check_name, StoreError};
/// assert!(check_name("queue name", "mail").is_ok());
/// let err = check_name("queue name", "ma\0il").unwrap_err();
/// assert!(matches!(err, StoreError::NulCharacter { field: "queue name", .. }));
/// ```
pub fn check_name(field: &'static str, name: &str) -> Result<(), StoreError> {
    if name.contains('\0') {
        return Err(StoreError::NulCharacter {
            field,
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// The databases this build can open, one per enabled feature.
const ENABLED: &[&str] = &[
    #[cfg(feature = "sqlite")]
    "sqlite",
    #[cfg(feature = "postgres")]
    "postgres",
    #[cfg(feature = "mysql")]
    "mysql",
];

/// Opens the store a database URL names, creating and migrating it as needed.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
/// let store = hopper::store::open(&url).await.unwrap();
/// assert!(store.get(1).await.unwrap().is_none());
/// assert!(hopper::store::open("oracle://x").await.is_err());
/// # });
/// ```
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::open(url).await?;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = postgres::PostgresStore::open(url).await?;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    #[cfg(feature = "mysql")]
    if url.starts_with("mysql:") || url.starts_with("mariadb:") {
        let store = mysql::MysqlStore::open(url).await?;
        store.migrate().await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}

/// A job to insert.
///
/// ```
/// let job = hopper::store::NewJob {
///     job_type: "send_email".into(),
///     queue: "default".into(),
///     payload: r#"{"to":"a@b.c"}"#.into(),
///     priority: 0,
///     max_attempts: 3,
///     available_at: chrono::Utc::now(),
///     created_at: chrono::Utc::now(),
///     unique_key: None, partition_key: None,
///     sequence: None,
///     trace_context: None,
/// };
/// assert_eq!(job.queue, "default");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// The job type's name.
    pub job_type: String,
    /// The queue it waits in.
    pub queue: String,
    /// Its payload, as JSON text.
    pub payload: String,
    /// Higher runs first among jobs that are due.
    pub priority: i32,
    /// Attempts before it fails for good.
    pub max_attempts: u32,
    /// Not run before this time.
    pub available_at: DateTime<Utc>,
    /// When it was dispatched.
    pub created_at: DateTime<Utc>,
    /// While a job with this key is pending or started, dispatching another
    /// with the same key stores nothing and returns the existing job's id.
    pub unique_key: Option<String>,
    /// The partition the job belongs to in its queue: per-key limits and
    /// fair claims count and serve the jobs of one key together.
    pub partition_key: Option<String>,
    /// The sequence the job joins: it runs after every job dispatched
    /// before it with the same key has ended ([`sequences`]).
    pub sequence: Option<Sequence>,
    /// The trace the dispatch happened in, as a W3C `traceparent` value
    /// (followed by a newline and the `tracestate` value when that is not
    /// empty), for the job's runs to continue. Only the `otel` feature sets
    /// it; `None` stores NULL.
    pub trace_context: Option<String>,
}

/// A claim's fencing token: written to every job one claim takes, and
/// required by every write that extends, ends or hands back the run, so a
/// run whose job was rescued, released or claimed again (even by the same
/// worker, on the same attempt) cannot touch the new claim's row.
pub type ClaimToken = i64;

/// A new claim token: random and non-zero, unique to one claim for any
/// practical purpose (2^63 values).
///
/// ```
/// let a = hopper::store::new_claim_token();
/// assert!(a > 0);
/// assert_ne!(a, hopper::store::new_claim_token());
/// ```
pub fn new_claim_token() -> ClaimToken {
    fastrand::i64(1..)
}

/// One claim a worker holds: a job and the token of the claim that took it.
///
/// ```
/// let claim = hopper::store::Claim { id: 7, token: 42 };
/// assert_eq!(claim.id, 7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Claim {
    /// The job's id.
    pub id: JobId,
    /// The token of the claim.
    pub token: ClaimToken,
}

#[cfg(test)]
impl NewJob {
    /// A `ping` job in `queue`, due at `at`, for the crate's own tests.
    pub(crate) fn ping(queue: &str, at: DateTime<Utc>) -> Self {
        Self {
            job_type: "ping".into(),
            queue: queue.into(),
            payload: "null".into(),
            priority: 0,
            max_attempts: 3,
            available_at: at,
            created_at: at,
            unique_key: None,
            partition_key: None,
            sequence: None,
            trace_context: None,
        }
    }
}

/// A request to claim due jobs from one queue.
///
/// ```
/// use std::time::Duration;
/// let claim = hopper::store::ClaimRequest {
///     queue: "default", worker: "w1", limit: 10, start_now: 2,
///     token: hopper::store::new_claim_token(),
///     due_by: chrono::Utc::now(), lease: Duration::from_secs(30), now: None,
/// };
/// assert_eq!(claim.limit, 10);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest<'a> {
    /// The queue to claim from.
    pub queue: &'a str,
    /// The claiming worker's id, written to `locked_by`.
    pub worker: &'a str,
    /// The most jobs to claim.
    pub limit: u32,
    /// How many of them start at once (into free slots): their attempts
    /// count from the claim. The rest wait in the worker, claimed ahead, and
    /// count only once their start is recorded ([`Store::mark_started`]).
    pub start_now: u32,
    /// The claim's fencing token, written to every job it takes.
    pub token: ClaimToken,
    /// Jobs with `available_at <= due_by` are due (the claiming worker's
    /// clock, the clock dispatches write `available_at` with).
    pub due_by: DateTime<Utc>,
    /// How long the lease on every claimed job lasts, from the database's now.
    pub lease: std::time::Duration,
    /// The database's now: `None` reads the database server's clock; a test
    /// clock passes its own time.
    pub now: Option<DateTime<Utc>>,
}

/// Completions to apply in one call ([`Store::complete`]).
///
/// ```
/// use hopper::store::{Claim, CompleteRequest, Completion, Outcome};
/// let ended = [Completion { claim: Claim { id: 4, token: 1 }, attempt: 1, outcome: Outcome::Finished }];
/// let request = CompleteRequest { completions: &ended, ended_at: chrono::Utc::now() };
/// assert_eq!(request.completions.len(), 1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct CompleteRequest<'a> {
    /// The runs that ended, each guarded by its claim.
    pub completions: &'a [Completion],
    /// When they ended: the `finished_at` of finished and failed jobs, and
    /// the time of each recorded error.
    pub ended_at: DateTime<Utc>,
}

/// Claims whose leases to renew ([`Store::extend_leases`]).
///
/// ```
/// use std::time::Duration;
/// use hopper::store::{Claim, RenewRequest};
/// let held = [Claim { id: 7, token: 42 }];
/// let request = RenewRequest { claims: &held, lease: Duration::from_secs(30), now: None };
/// assert_eq!(request.lease.as_secs(), 30);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RenewRequest<'a> {
    /// The claims to renew; only those still holding their job are.
    pub claims: &'a [Claim],
    /// How long each renewed lease lasts, from the database's now.
    pub lease: std::time::Duration,
    /// The database's now: `None` reads the database server's clock; a test
    /// clock passes its own time.
    pub now: Option<DateTime<Utc>>,
}

/// A queue to pause or resume ([`Store::set_paused`]).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::store::PauseRequest;
/// let store = hopper::store::open("sqlite::memory:").await.unwrap();
/// let now = chrono::Utc::now();
/// store.set_paused(PauseRequest { queue: "mail", paused: true, now }).await.unwrap();
/// assert!(store.queue_stats(now).await.unwrap()[0].paused);
/// # });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct PauseRequest<'a> {
    /// The queue.
    pub queue: &'a str,
    /// `true` pauses claiming from it, `false` resumes it.
    pub paused: bool,
    /// When it changed, recorded with the queue.
    pub now: DateTime<Utc>,
}

/// A named lease and the holder taking, renewing or giving it up
/// ([`Store::try_lease`], [`Store::drop_lease`]).
///
/// ```
/// let lease = hopper::store::LeaseHolder { name: "maintenance", holder: "host-1" };
/// assert_eq!(lease.name, "maintenance");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseHolder<'a> {
    /// The lease's name: one holder at a time holds it.
    pub name: &'a str,
    /// Who holds it, or wants to.
    pub holder: &'a str,
}

/// A lease to take or renew ([`Store::try_lease`]).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::time::Duration;
/// use hopper::store::{LeaseHolder, LeaseRequest};
/// let store = hopper::store::open("sqlite::memory:").await.unwrap();
/// let ttl = Duration::from_secs(30);
/// let a = LeaseRequest { lease: LeaseHolder { name: "m", holder: "a" }, ttl, now: None };
/// let b = LeaseRequest { lease: LeaseHolder { name: "m", holder: "b" }, ..a };
/// assert!(store.try_lease(a).await.unwrap());
/// assert!(!store.try_lease(b).await.unwrap());
/// store.drop_lease(a.lease).await.unwrap();
/// assert!(store.try_lease(b).await.unwrap());
/// # });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LeaseRequest<'a> {
    /// The lease and who asks for it.
    pub lease: LeaseHolder<'a>,
    /// How long it is held, from the database's now.
    pub ttl: std::time::Duration,
    /// The database's now: `None` reads the database server's clock; a test
    /// clock passes its own time.
    pub now: Option<DateTime<Utc>>,
}

/// A schedule tick to take, and the job to dispatch for it ([`Store::take_tick`]).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::store::{Tick, TickRequest};
/// let store = hopper::store::open("sqlite::memory:").await.unwrap();
/// let tick = TickRequest { schedule: "report", fire_at: chrono::Utc::now(), job: None };
/// assert_eq!(store.take_tick(tick).await.unwrap(), Tick::Passed);
/// assert_eq!(store.take_tick(tick).await.unwrap(), Tick::Lost);
/// # });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TickRequest<'a> {
    /// The schedule's name.
    pub schedule: &'a str,
    /// The tick: when the schedule fires.
    pub fire_at: DateTime<Utc>,
    /// The job to dispatch with the tick, if any.
    pub job: Option<&'a NewJob>,
}

/// What one worker pool publishes of its concurrency
/// ([`Store::publish_concurrency`]).
///
/// ```
/// let report = hopper::store::ConcurrencyReport { worker: "web-1", rows: &[], now: chrono::Utc::now() };
/// assert!(report.rows.is_empty());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ConcurrencyReport<'a> {
    /// The pool's worker id.
    pub worker: &'a str,
    /// Its concurrency per queue; none when it stops.
    pub rows: &'a [WorkerConcurrency],
    /// Rows of any pool that expired before this time are deleted.
    pub now: DateTime<Utc>,
}

/// A failed or cancelled job to put back to `pending` ([`Store::retry`]).
///
/// ```
/// let retry = hopper::store::RetryRequest { id: 7, now: chrono::Utc::now(), extra_attempts: 3 };
/// assert_eq!(retry.extra_attempts, 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryRequest {
    /// The job.
    pub id: JobId,
    /// When it becomes due again.
    pub now: DateTime<Utc>,
    /// Attempts it gets on top of those it used (at least one).
    pub extra_attempts: u32,
}

/// Which ended rows to delete, and how many at most
/// ([`Store::prune`], [`Store::prune_alerts`]).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::store::PruneRequest;
/// let store = hopper::store::open("sqlite::memory:").await.unwrap();
/// let request = PruneRequest { before: chrono::Utc::now(), limit: 100 };
/// assert_eq!(store.prune(hopper::JobState::Finished, request).await.unwrap(), 0);
/// assert_eq!(store.prune_alerts(request).await.unwrap(), 0);
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneRequest {
    /// Only rows that ended (or resolved) before this time.
    pub before: DateTime<Utc>,
    /// The most rows to delete.
    pub limit: u32,
}

/// A job a worker has claimed: it is `started`, leased to that worker.
///
/// ```
/// let job = hopper::store::ClaimedJob {
///     id: 1, token: 9, job_type: "ping".into(), queue: "default".into(), payload: "null".into(),
///     priority: 0, attempt: 1, max_attempts: 3, batch: None, has_dependents: false, run_started: true,
///     trace_context: None,
/// };
/// assert_eq!(job.attempt, 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedJob {
    /// The job's id.
    pub id: JobId,
    /// The claim's fencing token.
    pub token: ClaimToken,
    /// Its type name.
    pub job_type: String,
    /// Its queue.
    pub queue: String,
    /// Its payload, as JSON text.
    pub payload: String,
    /// Its priority.
    pub priority: i32,
    /// This run's attempt number (1-based). The claim counts it; a claim
    /// whose handler never started (see [`Store::mark_started`]) gives it
    /// back when it is rescued or released.
    pub attempt: u32,
    /// Its attempts in all.
    pub max_attempts: u32,
    /// The batch it belongs to, if any.
    pub batch: Option<BatchId>,
    /// Whether other jobs may wait on it (a workflow step or a job of a
    /// sequence): its ending is to be followed by a release
    /// ([`Store::release_dependents`]).
    pub has_dependents: bool,
    /// Whether it was claimed to start at once, its attempt counted from the
    /// claim; otherwise its start is to be recorded with
    /// [`Store::mark_started`].
    pub run_started: bool,
    /// The trace its dispatch happened in ([`NewJob::trace_context`]):
    /// with the `otel` feature, the run's span continues it.
    pub trace_context: Option<String>,
}

/// One recorded failure of a job.
///
/// ```
/// let e = hopper::store::AttemptError { attempt: 1, at: chrono::Utc::now(), error: "boom".into() };
/// assert_eq!(serde_json::to_value(&e).unwrap()["error"], "boom");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed.
    pub attempt: u32,
    /// When.
    pub at: DateTime<Utc>,
    /// Why.
    pub error: String,
}

/// How a claimed run ended.
///
/// ```
/// let o = hopper::store::Outcome::Finished;
/// assert_eq!(o, hopper::store::Outcome::Finished);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The job is done.
    Finished,
    /// The job is done, and its handler set an output
    /// ([`JobContext::set_output`](crate::JobContext::set_output)), stored
    /// with it in the same write.
    FinishedWith {
        /// The output, as JSON text.
        output: String,
    },
    /// The job goes back to `pending`, due at `at`.
    Retry {
        /// When it is due again.
        at: DateTime<Utc>,
        /// Why this attempt failed.
        error: String,
    },
    /// The job is failed for good.
    Failed {
        /// Why.
        error: String,
    },
    /// The job goes back to `pending`, due at `at`, and the run does not
    /// count as an attempt (the handler asked to run later).
    Snoozed {
        /// When it is due again.
        at: DateTime<Utc>,
    },
    /// The run was stopped because someone cancelled the job: it ends
    /// `cancelled`.
    Cancelled,
}

impl Outcome {
    /// Whether the job is done (with or without an output).
    ///
    /// ```
    /// use hopper::store::Outcome;
    /// assert!(Outcome::FinishedWith { output: "1".into() }.is_finished());
    /// assert!(!Outcome::Cancelled.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        matches!(self, Outcome::Finished | Outcome::FinishedWith { .. })
    }

    /// The output a finished run stores, if it set one.
    ///
    /// ```
    /// use hopper::store::Outcome;
    /// assert_eq!(Outcome::FinishedWith { output: "[1]".into() }.output(), Some("[1]"));
    /// assert_eq!(Outcome::Finished.output(), None);
    /// ```
    pub fn output(&self) -> Option<&str> {
        match self {
            Outcome::FinishedWith { output } => Some(output),
            _ => None,
        }
    }
}

impl ClaimedJob {
    /// The claim this job was taken by.
    ///
    /// ```
    /// let job = hopper::store::ClaimedJob {
    ///     id: 1, token: 9, job_type: "ping".into(), queue: "default".into(), payload: "null".into(),
    ///     priority: 0, attempt: 1, max_attempts: 3, batch: None, has_dependents: false, run_started: false,
    ///     trace_context: None,
    /// };
    /// assert_eq!(job.claim(), hopper::store::Claim { id: 1, token: 9 });
    /// ```
    pub fn claim(&self) -> Claim {
        Claim {
            id: self.id,
            token: self.token,
        }
    }
}

/// The end of one claimed run, guarded by the claim it came from: it applies
/// only while the job is still `started` under the same claim token.
///
/// ```
/// let c = hopper::store::Completion {
///     claim: hopper::store::Claim { id: 4, token: 1 }, attempt: 1, outcome: hopper::store::Outcome::Finished,
/// };
/// assert_eq!(c.claim.id, 4);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The job and the claim the run came from.
    pub claim: Claim,
    /// The attempt that ran.
    pub attempt: u32,
    /// How it ended.
    pub outcome: Outcome,
}

/// Everything stored about one job.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let dir = tempfile::tempdir().unwrap();
/// # let url = format!("sqlite://{}", dir.path().join("j.db").display());
/// let store = hopper::store::open(&url).await.unwrap();
/// let now = chrono::Utc::now();
/// let ids = store.insert(&[hopper::store::NewJob {
///     job_type: "ping".into(), queue: "default".into(), payload: "null".into(),
///     priority: 0, max_attempts: 3, available_at: now, created_at: now, unique_key: None, partition_key: None,
///     sequence: None,
///     trace_context: None,
/// }]).await.unwrap();
/// let record = store.get(ids[0]).await.unwrap().unwrap();
/// assert_eq!(record.state, hopper::JobState::Pending);
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobRecord {
    /// The job's id.
    pub id: JobId,
    /// Its type name.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Its queue.
    pub queue: String,
    /// Its payload, as JSON text.
    pub payload: String,
    /// Where it is in its life.
    pub state: JobState,
    /// Higher runs first.
    pub priority: i32,
    /// Runs started so far.
    pub attempts: u32,
    /// Runs allowed in all.
    pub max_attempts: u32,
    /// Not run before this time.
    pub available_at: DateTime<Utc>,
    /// When it was dispatched.
    pub created_at: DateTime<Utc>,
    /// When its latest run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached `finished`, `failed` or `cancelled`.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker holding its lease while `started`.
    pub locked_by: Option<String>,
    /// When that lease runs out.
    pub locked_until: Option<DateTime<Utc>>,
    /// The latest failure's message.
    pub last_error: Option<String>,
    /// Every failure, oldest first.
    pub errors: Vec<AttemptError>,
    /// Its unique key, if it was dispatched with one.
    pub unique_key: Option<String>,
    /// What its handler returned
    /// ([`JobContext::set_output`](crate::JobContext::set_output)), as
    /// JSON text: only a finished job has one.
    pub output: Option<String>,
    /// The latest progress its runs reported
    /// ([`JobContext::progress`](crate::JobContext::progress)), kept across
    /// retries; `None` until one is written.
    pub progress: Option<Progress>,
    /// The batch it belongs to ([`Hopper::batch`](crate::Hopper::batch)), if any.
    pub batch_id: Option<BatchId>,
    /// How many of its workflow dependencies it still waits on
    /// ([`Hopper::workflow`](crate::Hopper::workflow)); 0 if none. While
    /// above 0 the job is `pending` but not due ([`WAITING_UNTIL`]).
    pub waiting_on: u32,
}

/// How far a job's run has got, as its handler last reported it
/// ([`JobContext::progress`](crate::JobContext::progress)).
///
/// ```
/// let p = hopper::store::Progress { percent: 40, message: "copying".into() };
/// assert_eq!(serde_json::to_value(&p).unwrap()["percent"], 40);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// From 0 to 100.
    pub percent: u8,
    /// What the run is doing (may be empty).
    pub message: String,
}

impl Progress {
    /// The progress stored as `percent` and `message` in job `id`'s row, or
    /// `None` when no progress is stored.
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    pub(crate) fn from_columns(
        id: JobId,
        percent: Option<i64>,
        message: Option<String>,
    ) -> Result<Option<Self>, StoreError> {
        let Some(percent) = percent else {
            return Ok(None);
        };
        match u8::try_from(percent) {
            Ok(percent @ 0..=100) => Ok(Some(Self {
                percent,
                message: message.unwrap_or_default(),
            })),
            _ => Err(StoreError::Corrupt {
                id,
                reason: format!("progress {percent} out of range"),
            }),
        }
    }
}

/// A run's progress to record under its claim ([`Store::record_progress`]).
///
/// ```
/// use hopper::store::{Claim, Progress, ProgressRequest};
/// let progress = Progress { percent: 10, message: "started".into() };
/// let request = ProgressRequest { claim: Claim { id: 1, token: 2 }, progress: &progress };
/// assert_eq!(request.progress.percent, 10);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ProgressRequest<'a> {
    /// The run's claim: the write applies only while it holds the job.
    pub claim: Claim,
    /// The progress to store.
    pub progress: &'a Progress,
}

impl JobRecord {
    /// The payload decoded as `T`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let store = hopper::store::open("sqlite::memory:").await.unwrap();
    /// # let now = chrono::Utc::now();
    /// # let ids = store.insert(&[hopper::store::NewJob {
    /// #     job_type: "n".into(), queue: "default".into(), payload: "[1,2]".into(),
    /// #     priority: 0, max_attempts: 3, available_at: now, created_at: now, unique_key: None, partition_key: None,
    /// #     sequence: None,
    /// #     trace_context: None,
    /// # }]).await.unwrap();
    /// let record = store.get(ids[0]).await.unwrap().unwrap();
    /// assert_eq!(record.payload_as::<Vec<u8>>().unwrap(), [1, 2]);
    /// # });
    /// ```
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// The output decoded as `T`; `None` when the job has no output.
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
    /// let mut record = store.get(ids[0]).await.unwrap().unwrap();
    /// assert!(record.output_as::<u32>().is_none());
    /// record.output = Some("7".into());
    /// assert_eq!(record.output_as::<u32>().unwrap().unwrap(), 7);
    /// # });
    /// ```
    pub fn output_as<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Option<Result<T, serde_json::Error>> {
        self.output.as_deref().map(serde_json::from_str)
    }
}

/// The waiting work of one queue.
///
/// ```
/// let s = hopper::store::QueueStats { queue: "default".into(), due: 3, oldest_due_at: None, paused: false };
/// assert_eq!(s.due, 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// Pending jobs that are due now.
    pub due: u64,
    /// When the longest-waiting due job came due.
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// Whether workers are told to claim nothing from it.
    pub paused: bool,
}

/// Jobs that ended in one minute.
///
/// ```
/// let m = hopper::store::MinuteCount { minute: chrono::Utc::now(), finished: 10, failed: 1 };
/// assert_eq!(m.finished + m.failed, 11);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    /// Jobs that finished in it.
    pub finished: u64,
    /// Jobs that failed for good in it.
    pub failed: u64,
}

/// How many jobs of one queue are in one state.
///
/// ```
/// let c = hopper::store::StateCount { queue: "default".into(), state: hopper::JobState::Pending, count: 2 };
/// assert_eq!(c.count, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// How many jobs.
    pub count: u64,
}

/// How many jobs of one type are in one state ([`Store::counts_by_type`]).
///
/// ```
/// let c = hopper::store::TypeCount { job_type: "send_email".into(), state: hopper::JobState::Failed, count: 4 };
/// assert_eq!(serde_json::to_value(&c).unwrap()["type"], "send_email");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeCount {
    /// The job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// The state.
    pub state: JobState,
    /// How many jobs.
    pub count: u64,
}

/// What became of one schedule tick offered to the store.
///
/// ```
/// let t = hopper::store::Tick::Dispatched(7);
/// assert_ne!(t, hopper::store::Tick::Lost);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Tick {
    /// Another instance had already taken this tick (or a later one).
    Lost,
    /// The tick was taken and passed over without dispatching.
    Passed,
    /// The tick was taken and this job was dispatched for it (or, for a
    /// unique key held by a live job, that job's id).
    Dispatched(JobId),
}

/// The latest tick a schedule has taken.
///
/// ```
/// let s = hopper::store::ScheduleState { name: "ping".into(), last_fire_at: chrono::Utc::now(), last_job_id: None };
/// assert_eq!(s.name, "ping");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduleState {
    /// The schedule's name.
    pub name: String,
    /// The latest tick taken.
    pub last_fire_at: DateTime<Utc>,
    /// The job dispatched for the latest dispatched tick.
    pub last_job_id: Option<JobId>,
}

/// One run of a schedule: the job a tick dispatched, and where it is now.
///
/// ```
/// let run = hopper::store::ScheduleRun { fire_at: chrono::Utc::now(), job_id: 7, state: Some(hopper::JobState::Finished) };
/// assert_eq!(run.job_id, 7);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScheduleRun {
    /// The tick that dispatched it.
    pub fire_at: DateTime<Utc>,
    /// The job.
    pub job_id: JobId,
    /// The job's state; `None` once the job is pruned or deleted.
    pub state: Option<JobState>,
}

/// Jobs of one type that ended since some time: finished, or failed for good.
///
/// ```
/// let o = hopper::store::TypeOutcomes { job_type: "send_email".into(), finished: 9, failed: 1 };
/// assert_eq!(o.finished + o.failed, 10);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TypeOutcomes {
    /// The job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Jobs of it that finished.
    pub finished: u64,
    /// Jobs of it that failed for good.
    pub failed: u64,
}

/// Most failed jobs [`Store::retry_failed`] looks at in one transaction.
pub const RETRY_FAILED_BATCH: u32 = 500;

/// Which failed jobs [`Store::retry_failed`] puts back to `pending`, and
/// with how many more attempts.
///
/// ```
/// let request = hopper::store::RetryFailed {
///     job_type: Some("send_email".into()),
///     queue: None,
///     now: chrono::Utc::now(),
///     extra_attempts: vec![("send_email".into(), 5)],
///     default_extra_attempts: 1,
/// };
/// assert_eq!(request.extra_attempts_for("send_email"), 5);
/// assert_eq!(request.extra_attempts_for("other"), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RetryFailed {
    /// Only jobs of this type; every type when `None`.
    pub job_type: Option<String>,
    /// Only jobs in this queue; every queue when `None`.
    pub queue: Option<String>,
    /// When the retried jobs become due.
    pub now: DateTime<Utc>,
    /// Attempts a retried job of each type gets on top of those it used.
    pub extra_attempts: Vec<(String, u32)>,
    /// Attempts for a job whose type `extra_attempts` does not list.
    pub default_extra_attempts: u32,
}

impl RetryFailed {
    /// The attempts a retried job of `job_type` gets on top of those it
    /// used: at least one, as with [`Store::retry`].
    ///
    /// ```
    /// let request = hopper::store::RetryFailed {
    ///     job_type: None, queue: None, now: chrono::Utc::now(),
    ///     extra_attempts: vec![("a".into(), 0)], default_extra_attempts: 3,
    /// };
    /// assert_eq!(request.extra_attempts_for("a"), 1);
    /// assert_eq!(request.extra_attempts_for("b"), 3);
    /// ```
    pub fn extra_attempts_for(&self, job_type: &str) -> u32 {
        self.extra_attempts
            .iter()
            .find(|(name, _)| name == job_type)
            .map_or(self.default_extra_attempts, |(_, extra)| *extra)
            .max(1)
    }
}

/// What [`Store::retry_failed`] did.
///
/// ```
/// let done = hopper::store::RetriedFailed { retried: 3, skipped: 1, queues: vec!["default".into()] };
/// assert_eq!(done.retried + done.skipped, 4);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetriedFailed {
    /// Jobs put back to `pending`.
    pub retried: u64,
    /// Failed jobs left failed because another live job (or another failed
    /// job retried in the same call) holds their unique key.
    pub skipped: u64,
    /// The queues with a retried job, sorted.
    pub queues: Vec<String>,
}

/// One failed job as [`Store::retry_failed`] reads it.
#[derive(Clone, Debug)]
pub(crate) struct FailedJob {
    pub(crate) id: JobId,
    pub(crate) job_type: String,
    /// Its queue, for stores whose update cannot return the queues it changed.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) queue: String,
    pub(crate) unique_key: Option<String>,
}

/// Which jobs of one batch of failed jobs (in id order) to retry: every job
/// without a unique key, and for each key no live job holds (`held` lists
/// those held) the first job with it. Returns the jobs to retry, grouped by
/// the extra attempts each gets, and how many were skipped.
pub(crate) fn plan_retry<'a>(
    request: &RetryFailed,
    batch: &'a [FailedJob],
    held: &[String],
) -> (Vec<(u32, Vec<&'a FailedJob>)>, u64) {
    let mut taken: Vec<&str> = Vec::new();
    let mut groups: Vec<(u32, Vec<&FailedJob>)> = Vec::new();
    let mut skipped = 0;
    for job in batch {
        if let Some(key) = job.unique_key.as_deref() {
            if held.iter().any(|h| h == key) || taken.contains(&key) {
                skipped += 1;
                continue;
            }
            taken.push(key);
        }
        let extra = request.extra_attempts_for(&job.job_type);
        match groups.iter_mut().find(|(n, _)| *n == extra) {
            Some((_, jobs)) => jobs.push(job),
            None => groups.push((extra, vec![job])),
        }
    }
    (groups, skipped)
}

impl RetriedFailed {
    /// Counts `retried` jobs of `queues` put back and `skipped` left.
    pub(crate) fn add<'a>(
        &mut self,
        retried: u64,
        skipped: u64,
        queues: impl IntoIterator<Item = &'a str>,
    ) {
        self.retried += retried;
        self.skipped += skipped;
        for queue in queues {
            if let Err(at) = self.queues.binary_search_by(|q| q.as_str().cmp(queue)) {
                self.queues.insert(at, queue.to_owned());
            }
        }
    }
}

/// The distinct unique keys of `batch`.
pub(crate) fn batch_keys(batch: &[FailedJob]) -> Vec<&str> {
    let mut keys: Vec<&str> = batch
        .iter()
        .filter_map(|job| job.unique_key.as_deref())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// An alert's row id.
pub type AlertId = i64;

/// An incident to record as firing.
///
/// ```
/// let a = hopper::store::NewAlert {
///     rule: "backlog".into(), subject: "default".into(),
///     summary: "queue default: 1200 jobs due".into(), fired_at: chrono::Utc::now(),
/// };
/// assert_eq!(a.rule, "backlog");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAlert {
    /// The rule that fired.
    pub rule: String,
    /// What it fired about: a job type or a queue.
    pub subject: String,
    /// What was seen, in a sentence.
    pub summary: String,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
}

/// One incident of an alert rule: firing until `resolved_at` is set.
///
/// ```
/// let a = hopper::store::AlertRecord {
///     id: 1, rule: "backlog".into(), subject: "default".into(),
///     summary: "queue default: 1200 jobs due".into(), fired_at: chrono::Utc::now(), resolved_at: None,
/// };
/// assert!(a.resolved_at.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertRecord {
    /// Its id.
    pub id: AlertId,
    /// The rule that fired.
    pub rule: String,
    /// What it fired about: a job type or a queue.
    pub subject: String,
    /// What was seen when it fired.
    pub summary: String,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
    /// When it resolved; `None` while it fires.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Jobs on a page of a listing whose [`JobFilter::limit`] is `None`.
///
/// ```
/// let filter = hopper::JobFilter::default();
/// assert_eq!(filter.page_size().unwrap(), hopper::store::DEFAULT_PAGE_SIZE);
/// ```
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The most jobs one page of a listing holds. A [`JobFilter::limit`] above
/// it is refused ([`StoreError::PageSize`]), never cut down: read further
/// pages with [`JobPage::next`] instead.
///
/// ```
/// use hopper::store::MAX_PAGE_SIZE;
/// let over = hopper::JobFilter { limit: Some(MAX_PAGE_SIZE + 1), ..Default::default() };
/// assert!(over.page_size().is_err());
/// ```
pub const MAX_PAGE_SIZE: u32 = 500;

/// Which jobs a listing returns, newest first (highest id first), one page
/// at a time: the first page starts at the newest job, and each next page
/// starts below the last id of the page before ([`JobPage::next`]).
///
/// ```
/// use hopper::store::{DEFAULT_PAGE_SIZE, JobFilter};
/// let filter = JobFilter { state: Some(hopper::JobState::Failed), ..Default::default() };
/// assert_eq!(filter.page_size().unwrap(), DEFAULT_PAGE_SIZE);
/// let next = JobFilter { before: Some(1_000), limit: Some(20), ..filter };
/// assert_eq!(next.page_size().unwrap(), 20);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs in this queue.
    pub queue: Option<String>,
    /// Only jobs of this type.
    pub job_type: Option<String>,
    /// Only jobs created before this time (older than an age).
    pub created_before: Option<DateTime<Utc>>,
    /// Only jobs of this batch (or workflow).
    pub batch_id: Option<BatchId>,
    /// Only jobs with an id below this: the cursor a page's
    /// [`JobPage::next`] gives for the page after it. `None` starts at the
    /// newest job.
    pub before: Option<JobId>,
    /// The most jobs on the page: `None` means [`DEFAULT_PAGE_SIZE`]. `Some(0)`
    /// and anything above [`MAX_PAGE_SIZE`] are refused
    /// ([`StoreError::PageSize`]).
    pub limit: Option<u32>,
}

impl JobFilter {
    /// The most jobs a page of this listing holds, or
    /// [`StoreError::PageSize`] when its `limit` is 0 or above
    /// [`MAX_PAGE_SIZE`].
    ///
    /// ```
    /// use hopper::store::{JobFilter, MAX_PAGE_SIZE, StoreError};
    /// let sized = |limit| JobFilter { limit, ..Default::default() }.page_size();
    /// assert_eq!(sized(Some(MAX_PAGE_SIZE)).unwrap(), MAX_PAGE_SIZE);
    /// assert!(matches!(sized(Some(0)), Err(StoreError::PageSize { limit: 0 })));
    /// let refused = sized(Some(MAX_PAGE_SIZE + 1)).unwrap_err();
    /// assert_eq!(refused.to_string(), "a page of jobs holds 1 to 500 jobs, not 501");
    /// ```
    pub fn page_size(&self) -> Result<u32, StoreError> {
        match self.limit {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(limit @ 1..=MAX_PAGE_SIZE) => Ok(limit),
            Some(limit) => Err(StoreError::PageSize { limit }),
        }
    }
}

/// One page of a job listing ([`Store::list`]), newest first.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::store::{JobFilter, NewJob};
/// let store = hopper::store::open("sqlite::memory:").await.unwrap();
/// let now = chrono::Utc::now();
/// let job = NewJob {
///     job_type: "ping".into(), queue: "default".into(), payload: "null".into(),
///     priority: 0, max_attempts: 3, available_at: now, created_at: now, unique_key: None, partition_key: None,
///     sequence: None,
///     trace_context: None,
/// };
/// let ids = store.insert(&[job.clone(), job.clone(), job]).await.unwrap();
/// let first = store.list(&JobFilter { limit: Some(2), ..Default::default() }).await.unwrap();
/// assert_eq!(first.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [ids[2], ids[1]]);
/// assert_eq!(first.next, Some(ids[1]));
/// let rest = JobFilter { before: first.next, limit: Some(2), ..Default::default() };
/// let last = store.list(&rest).await.unwrap();
/// assert_eq!((last.jobs.len(), last.next), (1, None));
/// # });
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct JobPage {
    /// The page's jobs, newest first.
    pub jobs: Vec<JobRecord>,
    /// The cursor of the next (older) page: the [`JobFilter::before`] that
    /// reads it. `None` on the last page.
    pub next: Option<JobId>,
}

impl JobPage {
    /// The page of `size` jobs made of `rows`, read newest first with a
    /// limit of `size + 1`: a row beyond `size` shows that an older page
    /// follows (and is left for it), so the last page is known without
    /// reading past it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let store = hopper::store::open("sqlite::memory:").await.unwrap();
    /// # let now = chrono::Utc::now();
    /// # let job = hopper::store::NewJob {
    /// #     job_type: "ping".into(), queue: "default".into(), payload: "null".into(),
    /// #     priority: 0, max_attempts: 3, available_at: now, created_at: now, unique_key: None, partition_key: None,
    /// #     sequence: None,
    /// #     trace_context: None,
    /// # };
    /// # store.insert(&[job.clone(), job.clone(), job]).await.unwrap();
    /// use hopper::store::JobPage;
    /// let rows = store.list(&Default::default()).await.unwrap().jobs;
    /// let page = JobPage::from_rows(rows.clone(), 2);
    /// assert_eq!((page.jobs.len(), page.next), (2, Some(rows[1].id)));
    /// assert_eq!(JobPage::from_rows(rows, 3).next, None);
    /// # });
    /// ```
    pub fn from_rows(mut rows: Vec<JobRecord>, size: u32) -> Self {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let more = rows.len() > size;
        rows.truncate(size);
        let next = more.then(|| rows.last().map(|job| job.id)).flatten();
        Self { jobs: rows, next }
    }
}

/// How many jobs one worker pool runs at once on one queue, as it last
/// published: its autoscaler's choice within its bounds.
///
/// ```
/// let row = hopper::store::WorkerConcurrency {
///     worker: "web-1".into(), queue: "default".into(),
///     concurrency: 4, min: 1, max: 8, running: 3, expires_at: chrono::Utc::now(),
/// };
/// assert!(row.min <= row.concurrency && row.concurrency <= row.max);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkerConcurrency {
    /// The pool's worker id.
    pub worker: String,
    /// The queue.
    pub queue: String,
    /// How many of the queue's jobs the pool runs at once now.
    pub concurrency: u32,
    /// The least it scales down to.
    pub min: u32,
    /// The most it scales up to.
    pub max: u32,
    /// How many of the queue's jobs the pool was running when it published.
    pub running: u32,
    /// When the row goes stale unless the pool publishes again.
    pub expires_at: DateTime<Utc>,
}

/// A wake-up from the database: jobs may have become due, or a running job
/// may have been asked to stop, perhaps by another process.
///
/// ```
/// let w = hopper::store::Wakeup::Queue("mail".into());
/// assert_ne!(w, hopper::store::Wakeup::All);
/// assert_ne!(hopper::store::Wakeup::Cancels, hopper::store::Wakeup::All);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wakeup {
    /// Jobs became due in this queue.
    Queue(String),
    /// Anything may have changed (the listener reconnected, or the database
    /// only says that it changed): look in every queue, and for cancels of
    /// the jobs running.
    All,
    /// A running job was asked to stop ([`Store::request_cancel`]): look
    /// for cancels of the jobs running.
    Cancels,
    /// These jobs ended (finished, failed or cancelled): what
    /// [`Store::listen_results`] tells of, for those waiting on them
    /// ([`Hopper::wait_for`](crate::Hopper::wait_for)).
    Ended(Vec<JobId>),
}

/// The database side of Hopper. Every method is one short transaction.
///
/// Implementations must make [`Store::claim`] safe against concurrent
/// claimers (no job claimed twice) and apply every [`Completion`] only under
/// its guard.
#[async_trait]
pub trait Store: std::any::Any + Send + Sync + std::fmt::Debug {
    /// Creates or upgrades the schema.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Inserts jobs in one transaction: all or none. Returns their ids in
    /// order; a job whose unique key is held by a pending or started job is
    /// not inserted and gets that job's id.
    async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError>;

    /// Claims up to `limit` due pending jobs of one queue, highest priority
    /// first, then oldest due first: each becomes `started`, leased to the
    /// worker under the request's token until the database's now plus the
    /// lease, with its attempt counted. The first `start_now` of them, in
    /// claim order, are recorded as started; the others' starts are recorded
    /// later, or never (a rescue then gives their attempt back). Claims
    /// nothing from a paused queue.
    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, StoreError>;

    /// When the next pending job of `queue` is due: the earliest
    /// `available_at` among its pending jobs (which may have passed), or
    /// `None` with nothing pending. An idle worker that the database tells
    /// of new and rescheduled jobs sleeps until then instead of polling.
    async fn next_due(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Which of `queues` hold a pending job due by `now`: one cheap read
    /// that pools on a database without [`Store::listen`] make for all
    /// their idle queues at once, instead of each queue claiming in turn.
    /// Default: all of them (each is then claimed from, as if polled).
    async fn due_queues(
        &self,
        queues: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        let _ = now;
        Ok(queues.iter().map(|queue| (*queue).to_owned()).collect())
    }

    /// Records, for the claims listed that are still held, that their
    /// handlers started: a rescue then counts the attempt, where a claim
    /// whose handler never started gets its attempt back. Returns how many
    /// were still held.
    async fn mark_started(&self, claims: &[Claim]) -> Result<u64, StoreError>;

    /// Applies the request's completions, each only while its claim still
    /// holds the job; returns how many applied (the others were rescued or
    /// released meanwhile and are left alone). `request.ended_at` is when
    /// the runs ended.
    async fn complete(&self, request: CompleteRequest<'_>) -> Result<u64, StoreError>;

    /// Records a run's progress, only while its claim still holds the job
    /// (a rescued run's write changes nothing). Returns whether it did.
    async fn record_progress(&self, request: ProgressRequest<'_>) -> Result<bool, StoreError>;

    /// Extends, to the database's now (`request.now`) plus `request.lease`,
    /// the leases of the claims listed that still hold their job; no other
    /// job's. Returns the claims extended, in id order: a claim missing from
    /// it was lost (its job rescued, released or ended), and its run should
    /// stop.
    async fn extend_leases(&self, request: RenewRequest<'_>) -> Result<Vec<Claim>, StoreError>;

    /// Hands the jobs of the claims listed that still hold them back to
    /// `pending`, not counting the attempt (a graceful stop). Returns how many.
    async fn release(&self, claims: &[Claim]) -> Result<u64, StoreError>;

    /// Returns jobs whose lease ran out before the database's `now` (their
    /// worker died or was cut off) to `pending`. A run whose handler had
    /// started counts as an attempt: its error is recorded and, on its last
    /// attempt, the job fails instead. A claim whose handler never started
    /// gives its attempt back. Returns the ids rescued.
    async fn rescue(&self, now: Option<DateTime<Utc>>) -> Result<Vec<JobId>, StoreError>;

    /// Everything about one job.
    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError>;

    /// One page of the jobs matching `filter`, newest first: those with an
    /// id below `filter.before` (every one when `None`), at most
    /// [`JobFilter::page_size`] of them, with the cursor of the next page
    /// when there are more ([`JobPage::from_rows`]). Paging is on the job id
    /// alone, so jobs stored between two pages never show on the older one.
    /// A `filter.limit` out of range is refused ([`StoreError::PageSize`]).
    async fn list(&self, filter: &JobFilter) -> Result<JobPage, StoreError>;

    /// Due work per queue at `now`: every queue with due jobs or a pause row.
    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, StoreError>;

    /// Jobs finished and failed per minute since `since`, oldest first
    /// (minutes with neither left out).
    async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>, StoreError>;

    /// Pauses (`paused: true`) or resumes (`false`) claiming from the
    /// request's queue.
    async fn set_paused(&self, request: PauseRequest<'_>) -> Result<(), StoreError>;

    /// Replaces a queue's flow settings: from then on its claims start no
    /// more jobs than its limits allow, across every process, and serve
    /// its keys in turn where asked to.
    async fn set_flow(&self, request: FlowRequest<'_>) -> Result<(), StoreError>;

    /// A queue's flow settings (none set: the default).
    async fn flow(&self, queue: &str) -> Result<QueueFlow, StoreError>;

    /// The `n`th most recent start recorded against a queue's per-queue
    /// rate (`None`: fewer than `n` kept): while it is inside the rate's
    /// window the window is full, and it reopens one period after it.
    async fn nth_latest_start(
        &self,
        queue: &str,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Every queue with flow settings, by name, and how much of them is in
    /// use at `now`: its started jobs, its busiest keys, its starts in the
    /// rate window that ends at `now`, and its due pending jobs a limit
    /// holds back (see [`FlowUsage`]). A few grouped reads on the indexes
    /// of started jobs, pending jobs and recorded starts, all in one
    /// snapshot of the database.
    async fn flow_usage(&self, now: DateTime<Utc>) -> Result<Vec<FlowUsage>, StoreError>;

    /// Deletes a job that is not started; false if there was none or it is running.
    async fn delete(&self, id: JobId) -> Result<bool, StoreError>;

    /// Takes or renews the request's lease for its holder until the
    /// database's now (`request.now`) plus `request.ttl`, if it is free,
    /// expired, or already that holder's. Returns whether the holder holds
    /// it now.
    async fn try_lease(&self, request: LeaseRequest<'_>) -> Result<bool, StoreError>;

    /// Gives up the lease `lease.name` if `lease.holder` holds it.
    async fn drop_lease(&self, lease: LeaseHolder<'_>) -> Result<(), StoreError>;

    /// Takes the tick at `request.fire_at` of `request.schedule` if no
    /// instance has taken it or a later one, and in the same transaction
    /// dispatches `request.job` (when given). Exactly one caller per tick
    /// gets anything but [`Tick::Lost`].
    async fn take_tick(&self, request: TickRequest<'_>) -> Result<Tick, StoreError>;

    /// Replaces every row `report.worker` published with `report.rows` (its
    /// concurrency per queue; none when it stops), and deletes rows of any
    /// pool that expired before `report.now`.
    async fn publish_concurrency(&self, report: ConcurrencyReport<'_>) -> Result<(), StoreError>;

    /// The concurrency rows still live at `now`, by queue then worker.
    async fn worker_concurrency(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<WorkerConcurrency>, StoreError>;

    /// The latest tick of every schedule that has taken one.
    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError>;

    /// The jobs the latest `limit` dispatched ticks of schedule `name`
    /// dispatched, newest first, each with its state.
    async fn schedule_runs(&self, name: &str, limit: u32) -> Result<Vec<ScheduleRun>, StoreError>;

    /// Forgets up to `limit` recorded schedule runs whose job is gone;
    /// returns how many.
    async fn prune_schedule_runs(&self, limit: u32) -> Result<u64, StoreError>;

    /// Job counts per queue and state (zero counts left out).
    async fn counts(&self) -> Result<Vec<StateCount>, StoreError>;

    /// Job counts per type and state (zero counts left out), by type then
    /// state.
    async fn counts_by_type(&self) -> Result<Vec<TypeCount>, StoreError>;

    /// Cancels a `pending` job; false if it was not pending.
    async fn cancel(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Asks the run of a `started` job to stop: the pool holding its claim
    /// finds the request when it next renews (see
    /// [`Store::cancels_requested`]), or sooner where [`Store::listen`]
    /// tells it ([`Wakeup::Cancels`] or [`Wakeup::All`]), and ends the job
    /// `cancelled`; a rescue of it ends it `cancelled` too. False if the
    /// job was not started. The request lasts while the job stays started
    /// (a claim clears it).
    async fn request_cancel(&self, id: JobId) -> Result<bool, StoreError>;

    /// The claims listed that still hold their job and whose job someone
    /// asked to cancel ([`Store::request_cancel`]), in id order.
    async fn cancels_requested(&self, claims: &[Claim]) -> Result<Vec<Claim>, StoreError>;

    /// Puts the `failed` or `cancelled` job `request.id` back to `pending`,
    /// due at `request.now`, with `request.extra_attempts` more attempts
    /// (at least one); false if it was in another state.
    async fn retry(&self, request: RetryRequest) -> Result<bool, StoreError>;

    /// Puts every `failed` job `request` selects back to `pending`, due at
    /// `request.now`, with the extra attempts it names for the job's type
    /// (as [`Store::retry`] does), oldest first, in batches of at most
    /// [`RETRY_FAILED_BATCH`] jobs, each its own short transaction. A job
    /// whose unique key another live job holds (or an earlier job of the
    /// same call took) stays failed and is counted as skipped; it never
    /// fails the call. Jobs failing while it runs are left for the next call.
    async fn retry_failed(&self, request: &RetryFailed) -> Result<RetriedFailed, StoreError>;

    /// Deletes up to `request.limit` jobs in `state` that ended before
    /// `request.before`; returns how many.
    async fn prune(&self, state: JobState, request: PruneRequest) -> Result<u64, StoreError>;

    /// Deletes up to `request.limit` alert incidents resolved before
    /// `request.before`; returns how many. Firing incidents are never deleted.
    async fn prune_alerts(&self, request: PruneRequest) -> Result<u64, StoreError>;

    /// Forgets up to `limit` partition keys that claims found with nothing
    /// pending (flow control's `queue_keys` rows marked not ready); returns
    /// how many. A key comes back as soon as one of its jobs is pending
    /// again, so keys used once (a customer id, say) do not pile up.
    /// Rows another transaction holds are left for the next call.
    async fn prune_idle_keys(&self, limit: u32) -> Result<u64, StoreError>;

    /// Forgets up to `limit` sequences whose last job is gone (pruned or
    /// deleted); returns how many. A sequence comes back with its next
    /// job, which then has nothing to wait on. Rows a dispatch holds are
    /// left for the next call.
    async fn prune_sequences(&self, limit: u32) -> Result<u64, StoreError>;

    /// Creates `batch` with `jobs` in it, in one transaction; the batch's id
    /// and the jobs' ids in order.
    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> Result<(BatchId, Vec<JobId>), StoreError>;

    /// Inserts `add.jobs` into their batch (and seals it, if asked) in one
    /// transaction; their ids in order. Refused, storing nothing, for a
    /// batch that does not exist ([`StoreError::NoSuchBatch`]) or completed
    /// ([`StoreError::BatchComplete`]).
    async fn add_to_batch(&self, add: BatchAdd<'_>) -> Result<Vec<JobId>, StoreError>;

    /// Deletes up to `request.limit` batches created before `request.before`
    /// that completed (sealed, every job ended), with their callbacks;
    /// returns how many. Their jobs keep their `batch_id`.
    async fn prune_batches(&self, request: PruneRequest) -> Result<u64, StoreError>;

    /// Creates `workflow` in one transaction: its batch, its jobs (those
    /// with dependencies waiting on them) and its edges; the batch's id and
    /// the jobs' ids in step order. Refused, storing nothing, when its
    /// steps do not form a workflow ([`StoreError::InvalidWorkflow`]).
    async fn create_workflow(
        &self,
        workflow: &NewWorkflow,
    ) -> Result<(BatchId, Vec<JobId>), StoreError>;

    /// Applies the endings of jobs others depend on (see
    /// [`workflows`]): releases the dependents none of whose
    /// dependencies are left, due at `now`, and cancels those whose
    /// dependency failed or was cancelled. One step, in one transaction,
    /// settles a bounded number of dependents: the answer says which
    /// queues got due jobs and whether endings are left for the next call.
    async fn release_dependents(&self, now: DateTime<Utc>) -> Result<Released, StoreError>;

    /// The dependencies of the jobs `ids`, in one read: each one's job
    /// waiting, step name, job, state and output.
    async fn dependencies(&self, ids: &[JobId]) -> Result<Vec<Dependency>, StoreError>;

    /// Stops the pending job `id` waiting on its dependencies (a sequence
    /// held by a failed job, a workflow step), in one transaction: it is
    /// due at `now` and its edges are gone. Its queue, if it was waiting.
    async fn skip_wait(&self, id: JobId, now: DateTime<Utc>) -> Result<Option<String>, StoreError>;

    /// How many jobs match `filter`'s conditions (its page size is not
    /// checked and does not count; its cursor does).
    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64, StoreError>;

    /// Batch `id` with its counts and callbacks, or `None`.
    async fn batch(&self, id: BatchId) -> Result<Option<BatchRecord>, StoreError>;

    /// Inserts the due callback jobs of up to `limit` batches, each exactly
    /// once (with its batch's row held, and the event cleared in the same
    /// transaction), available at `now`; the jobs inserted, with their ids.
    async fn fire_batch_callbacks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(JobId, NewJob)>, StoreError>;

    /// Jobs finished and failed for good per job type since `since` (types
    /// with neither left out).
    async fn outcomes(&self, since: DateTime<Utc>) -> Result<Vec<TypeOutcomes>, StoreError>;

    /// Records `alert` as firing unless an incident of the same rule and
    /// subject is firing already; returns the new incident, or `None` when
    /// another was open (exactly one of concurrent callers gets it).
    async fn open_alert(&self, alert: &NewAlert) -> Result<Option<AlertRecord>, StoreError>;

    /// Resolves incident `id` at `at` if it is still firing; whether it was
    /// (exactly one of concurrent callers gets `true`).
    async fn resolve_alert(&self, id: AlertId, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Every firing incident (oldest first), then up to `resolved` of the
    /// latest resolved ones (latest first).
    async fn alerts(&self, resolved: u32) -> Result<Vec<AlertRecord>, StoreError>;

    /// Wake-ups the database sends when jobs become due, or running jobs are
    /// asked to stop, in any process, for as long as the receiver is kept;
    /// `None` where the database has no such signal (workers then rely on
    /// in-process wake-ups, polling and their lease renewals).
    fn listen(&self) -> Option<tokio::sync::mpsc::Receiver<Wakeup>> {
        None
    }

    /// Wake-ups the database sends when jobs end, in any process, for as
    /// long as the receiver is kept: [`Wakeup::Ended`] with the jobs' ids,
    /// or [`Wakeup::All`] where the database only says that something
    /// changed (and after a reconnection). `None` where the database has no
    /// such signal (waiters then look again at a short interval).
    /// Default: what [`Store::listen`] sends.
    fn listen_results(&self) -> Option<tokio::sync::mpsc::Receiver<Wakeup>> {
        self.listen()
    }

    /// Whether a pool should claim half as far ahead from `queue`: yes on
    /// a server for a queue this store last found with flow settings (a
    /// limit, a rate or fair claims), from its own claims and settings,
    /// without reading the database. Jobs claimed ahead count against the
    /// limits from their claim, and a server writes outcomes beside the
    /// next claim, so half leave room for the jobs ending meanwhile (and
    /// for other processes) instead of one claim taking all the room. One
    /// SQLite writer runs claims and outcomes one after the other, and a
    /// claim taking more costs less there. Default: `false`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = hopper::store::open("sqlite::memory:").await.unwrap();
    /// store.migrate().await.unwrap();
    /// assert!(!store.halve_claims_ahead(hopper::DEFAULT_QUEUE));
    /// # });
    /// ```
    fn halve_claims_ahead(&self, queue: &str) -> bool {
        let _ = queue;
        false
    }
}

/// One schema migration this build carries, and when the database applied it.
///
/// ```
/// let m = hopper::store::MigrationStatus { version: 1, description: "jobs".into(), applied_at: None };
/// assert!(m.applied_at.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    /// The migration's version (its file name's number).
    pub version: i64,
    /// What it does (from its file name).
    pub description: String,
    /// When the database applied it; `None` while it is pending.
    pub applied_at: Option<DateTime<Utc>>,
}

impl MigrationStatus {
    /// Every migration `carried` lists (version and description, oldest
    /// first), each with the time `applied` gives for its version.
    pub(crate) fn of_carried<'a>(
        carried: impl IntoIterator<Item = (i64, &'a str)>,
        applied: &[(i64, DateTime<Utc>)],
    ) -> Vec<Self> {
        carried
            .into_iter()
            .map(|(version, description)| Self {
                version,
                description: description.to_owned(),
                applied_at: applied
                    .iter()
                    .find(|(done, _)| *done == version)
                    .map(|(_, at)| *at),
            })
            .collect()
    }

    /// Every migration `migrator` carries that moves the schema forward,
    /// oldest first, each with the time `applied` gives for its version.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    pub(crate) fn of(
        migrator: &sqlx::migrate::Migrator,
        applied: &[(i64, DateTime<Utc>)],
    ) -> Vec<Self> {
        Self::of_carried(
            migrator
                .iter()
                .filter(|m| !m.migration_type.is_down_migration())
                .map(|m| (m.version, &*m.description)),
            applied,
        )
    }
}

/// The schema migrations this build carries for the database at `url`,
/// oldest first, each with when that database applied it. Applies nothing.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
/// let pending = hopper::store::migration_status(&url).await.unwrap();
/// assert!(pending.iter().all(|m| m.applied_at.is_none()));
/// hopper::store::open(&url).await.unwrap();
/// let applied = hopper::store::migration_status(&url).await.unwrap();
/// assert!(applied.iter().all(|m| m.applied_at.is_some()));
/// # });
/// ```
pub async fn migration_status(url: &str) -> Result<Vec<MigrationStatus>, StoreError> {
    #[cfg(feature = "sqlite")]
    if url.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::open(url).await?;
        return store.migration_status().await;
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = postgres::PostgresStore::open(url).await?;
        return store.migration_status().await;
    }
    #[cfg(feature = "mysql")]
    if url.starts_with("mysql:") || url.starts_with("mariadb:") {
        let store = mysql::MysqlStore::open(url).await?;
        return store.migration_status().await;
    }
    Err(StoreError::UnsupportedUrl(url.to_owned()))
}
