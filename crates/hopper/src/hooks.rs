//! Lifecycle hooks: application code run when a job finishes, is about to be
//! retried, or fails for good, to notify a user, say.
//!
//! Implement [`Hooks`] (every method has a default that does nothing) and
//! add it with [`WorkerConfig::hooks`](crate::WorkerConfig::hooks). Each hook
//! runs once per event, in the job's task, after the outcome is decided and
//! before it is written, inside the job's `tracing` span. A hook that returns
//! an error or panics is logged (`job hook failed`) and changes nothing: the
//! job's outcome stands and the other hooks still run. A hook that is still
//! running when the pool's shutdown deadline passes is abandoned.
//!
//! ```
//! use hopper::hooks::{HookResult, Hooks, JobEvent};
//!
//! #[derive(Debug)]
//! struct TellTheOwner;
//!
//! #[hopper::async_trait]
//! impl Hooks for TellTheOwner {
//!     async fn failed(&self, event: &JobEvent) -> HookResult {
//!         let reason = event.error.as_deref().unwrap_or("unknown");
//!         println!("job {} ({}) failed: {reason}", event.id, event.job_type);
//!         Ok(())
//!     }
//! }
//!
//! let config = hopper::WorkerConfig::new(4).hooks(TellTheOwner);
//! # let _ = config;
//! ```

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::core::Hopper;
use crate::job::JobId;

/// What a hook returns: any error, boxed (so `?` works on most errors).
pub type HookResult = Result<(), Box<dyn Error + Send + Sync>>;

/// Which event of a job's life a hook is called for.
///
/// ```
/// assert_eq!(hopper::hooks::EventKind::Failed.as_str(), "failed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The job finished.
    Finished,
    /// The run failed and the job will be tried again.
    Retrying,
    /// The job failed for good (a permanent error, or its last attempt).
    Failed,
    /// The handler asked to run later; the run used no attempt.
    Snoozed,
    /// The run was stopped because the job was cancelled.
    Cancelled,
}

impl EventKind {
    /// The event's name.
    ///
    /// ```
    /// assert_eq!(hopper::hooks::EventKind::Retrying.as_str(), "retrying");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "finished",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
            Self::Snoozed => "snoozed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One event of a job's life, as a hook sees it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
/// let event = hopper::hooks::JobEvent::new(
///     &hopper, hopper::hooks::EventKind::Finished, 7, "send_email", "default", 1, 3, r#"{"to":"a@b.c"}"#,
/// );
/// let payload: serde_json::Value = event.payload_as().unwrap();
/// assert_eq!(payload["to"], "a@b.c");
/// # });
/// ```
#[derive(Clone)]
pub struct JobEvent {
    /// Which event this is.
    pub kind: EventKind,
    /// The job's id.
    pub id: JobId,
    /// Its type name.
    pub job_type: String,
    /// Its queue.
    pub queue: String,
    /// The attempt that just ran (1-based).
    pub attempt: u32,
    /// Its attempts in all.
    pub max_attempts: u32,
    /// Its payload, as JSON text.
    pub payload: String,
    /// How long the run took.
    pub duration: Duration,
    /// Why the run failed (`Retrying` and `Failed`).
    pub error: Option<String>,
    /// When the next attempt is due (`Retrying`).
    pub retry_at: Option<DateTime<Utc>>,
    hopper: Hopper,
}

impl JobEvent {
    /// An event with no duration, error or retry time (the pool fills those in).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hopper: &Hopper,
        kind: EventKind,
        id: JobId,
        job_type: &str,
        queue: &str,
        attempt: u32,
        max_attempts: u32,
        payload: &str,
    ) -> Self {
        Self {
            kind,
            id,
            job_type: job_type.to_owned(),
            queue: queue.to_owned(),
            attempt,
            max_attempts,
            payload: payload.to_owned(),
            duration: Duration::ZERO,
            error: None,
            retry_at: None,
            hopper: hopper.clone(),
        }
    }

    /// The payload decoded as `T` (the job's payload type).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// # let event = hopper::hooks::JobEvent::new(&hopper, hopper::hooks::EventKind::Failed, 1, "n", "default", 1, 1, "[1]");
    /// assert_eq!(event.payload_as::<Vec<u8>>().unwrap(), [1]);
    /// # });
    /// ```
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }

    /// The queue's handle: dispatch a follow-up job from a hook, say.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// # let event = hopper::hooks::JobEvent::new(&hopper, hopper::hooks::EventKind::Failed, 1, "n", "default", 1, 1, "null");
    /// assert!(event.hopper().job(1).await.unwrap().is_none());
    /// # });
    /// ```
    pub fn hopper(&self) -> &Hopper {
        &self.hopper
    }

    /// Shared state given to the builder with
    /// [`Builder::state`](crate::Builder::state), as handlers see it.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().state(5u8).connect("sqlite::memory:").await.unwrap();
    /// # let event = hopper::hooks::JobEvent::new(&hopper, hopper::hooks::EventKind::Failed, 1, "n", "default", 1, 1, "null");
    /// assert_eq!(event.state::<u8>(), Some(&5));
    /// assert_eq!(event.state::<String>(), None);
    /// # });
    /// ```
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.hopper.shared_state().get::<T>()
    }
}

impl fmt::Debug for JobEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobEvent")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("job_type", &self.job_type)
            .field("queue", &self.queue)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("duration", &self.duration)
            .field("error", &self.error)
            .field("retry_at", &self.retry_at)
            .finish_non_exhaustive()
    }
}

/// Application callbacks for the events of a job's life. Every method has a
/// default that does nothing; implement the ones you need.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use hopper::hooks::{HookResult, Hooks, JobEvent};
///
/// #[derive(Debug, Default)]
/// struct Counts { finished: AtomicU64 }
///
/// #[hopper::async_trait]
/// impl Hooks for Counts {
///     async fn finished(&self, _event: &JobEvent) -> HookResult {
///         self.finished.fetch_add(1, Ordering::Relaxed);
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Hooks: Send + Sync + fmt::Debug + 'static {
    /// The job finished.
    async fn finished(&self, event: &JobEvent) -> HookResult {
        let _ = event;
        Ok(())
    }

    /// The run failed; the job will be tried again at `event.retry_at`.
    async fn retrying(&self, event: &JobEvent) -> HookResult {
        let _ = event;
        Ok(())
    }

    /// The job failed for good: a permanent error, or its last attempt failed.
    async fn failed(&self, event: &JobEvent) -> HookResult {
        let _ = event;
        Ok(())
    }

    /// The handler snoozed: the job runs again at `event.retry_at`, and the
    /// run used no attempt.
    async fn snoozed(&self, event: &JobEvent) -> HookResult {
        let _ = event;
        Ok(())
    }

    /// The run was stopped because the job was cancelled; it ends
    /// `cancelled`.
    async fn cancelled(&self, event: &JobEvent) -> HookResult {
        let _ = event;
        Ok(())
    }
}

/// Calls every hook for `event`, one after another; errors and panics are
/// logged and go no further.
pub(crate) async fn call(hooks: &[Arc<dyn Hooks>], event: &JobEvent) {
    use futures::FutureExt;
    for hook in hooks {
        let called = match event.kind {
            EventKind::Finished => hook.finished(event),
            EventKind::Retrying => hook.retrying(event),
            EventKind::Failed => hook.failed(event),
            EventKind::Snoozed => hook.snoozed(event),
            EventKind::Cancelled => hook.cancelled(event),
        };
        let failure = match std::panic::AssertUnwindSafe(called).catch_unwind().await {
            Ok(Ok(())) => continue,
            Ok(Err(error)) => error.to_string(),
            Err(panic) => format!("panicked: {}", crate::panics::panic_message(panic.as_ref())),
        };
        crate::events::hook_failed(&format!("{hook:?}"), &failure);
    }
}
