//! The core every part of the runtime shares: the store, the registered
//! job types, the clock, the shared state and the in-process wake-ups,
//! behind the [`Hopper`] handle.
//!
//! Each part of the handle's API is written where its concept lives
//! (dispatching and managing jobs in [`client`](crate::client), starting
//! workers in [`worker`](crate::worker)); this module holds only what they
//! all need, so none of them depends on another through the handle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::group_commit::GroupCommit;
use crate::registry::Registry;
use crate::state::State;
use crate::store::Store;

/// The handle to a job queue: dispatch jobs, look at them, cancel, retry,
/// prune, and start workers. Cheap to clone; clones share everything.
///
/// ```
/// use hopper::{Hopper, Job, JobContext, JobResult};
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Mail { to: String }
/// struct MailJob;
/// impl Job for MailJob {
///     const TYPE: &'static str = "mail";
///     type Payload = Mail;
///     async fn handle(&self, _: Mail, _: JobContext) -> JobResult { Ok(()) }
/// }
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let hopper = Hopper::builder().register(MailJob).unwrap().connect("sqlite::memory:").await.unwrap();
/// let id = hopper.dispatch::<MailJob>(Mail { to: "ada@example.com".into() }).await.unwrap();
/// assert_eq!(hopper.job(id).await.unwrap().unwrap().state, hopper::JobState::Pending);
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Hopper {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    state: Arc<State>,
    wakers: Wakers,
    /// Fires when a running job is asked to stop in this process.
    cancels: Notify,
    max_payload_bytes: usize,
    /// Who waits on which job's end ([`Hopper::wait_for`]).
    waiters: crate::results::Waiters,
    /// Where single dispatches share transactions, when group commit is on.
    group_commit: Option<GroupCommit>,
}

impl Hopper {
    /// The handle over its parts.
    pub(crate) fn from_parts(
        store: Arc<dyn Store>,
        registry: Registry,
        clock: Arc<dyn Clock>,
        state: State,
        max_payload_bytes: usize,
        group_commit: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                group_commit: group_commit.then(|| GroupCommit::new(Arc::clone(&store))),
                store,
                registry: Arc::new(registry),
                clock,
                state: Arc::new(state),
                wakers: Wakers::default(),
                cancels: Notify::new(),
                max_payload_bytes,
                waiters: Default::default(),
            }),
        }
    }

    /// The store behind this handle as its concrete type, when it is one:
    /// to reach a backend's own API (its connection pool, say).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::sqlite::SqliteStore;
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper.store_as::<SqliteStore>().is_some());
    /// # });
    /// ```
    pub fn store_as<S: Store>(&self) -> Option<&S> {
        let store: &dyn std::any::Any = self.inner.store.as_ref();
        store.downcast_ref::<S>()
    }

    /// Tells this process's pools that a running job was asked to stop, so
    /// they look for such requests now rather than at their next renewal.
    pub(crate) fn cancel_requested(&self) {
        self.inner.cancels.notify_waiters();
    }

    /// Fires when a running job is asked to stop in this process (see
    /// [`Hopper::cancel_requested`]).
    pub(crate) fn cancels(&self) -> &Notify {
        &self.inner.cancels
    }

    /// Who waits on which job's end, to wake when jobs end in this process.
    pub(crate) fn waiters(&self) -> &crate::results::Waiters {
        &self.inner.waiters
    }

    /// Where single dispatches share transactions, when group commit is on.
    pub(crate) fn group_commit(&self) -> Option<&GroupCommit> {
        self.inner.group_commit.as_ref()
    }

    /// The largest payload, in bytes, a dispatch accepts.
    pub(crate) fn max_payload_bytes(&self) -> usize {
        self.inner.max_payload_bytes
    }

    /// Wakes idle workers of `queue` in this process to look for due jobs now
    /// (after moving a manual clock, say).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// hopper.wake("default");
    /// # });
    /// ```
    pub fn wake(&self, queue: &str) {
        self.inner.wakers.wake(queue);
    }

    /// The current time on this handle's clock.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper.now() <= chrono::Utc::now());
    /// # });
    /// ```
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The database's now as statements about leases should take it:
    /// `None` for the server's own clock, or a test clock's time.
    pub(crate) fn database_now(&self) -> Option<DateTime<Utc>> {
        self.inner.clock.database_now()
    }

    /// Whether this handle's clock moves with the wall clock (see
    /// [`Clock::moves_by_itself`]).
    pub(crate) fn clock_moves_by_itself(&self) -> bool {
        self.inner.clock.moves_by_itself()
    }

    /// The registered job types.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert_eq!(hopper.registry().types().count(), 0);
    /// # });
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The store behind this handle.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// assert!(hopper.store().get(1).await.unwrap().is_none());
    /// # });
    /// ```
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub(crate) fn shared_state(&self) -> &Arc<State> {
        &self.inner.state
    }

    pub(crate) fn waker(&self, queue: &str) -> Arc<Notify> {
        self.inner.wakers.get(queue)
    }
}

/// In-process wake-ups, one per queue: a dispatch wakes that queue's idle
/// fetcher at once instead of waiting for its next poll.
#[derive(Debug, Default)]
struct Wakers {
    queues: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    fn get(&self, queue: &str) -> Arc<Notify> {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        queues.entry(queue.to_owned()).or_default().clone()
    }

    fn wake(&self, queue: &str) {
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(notify) = queues.get(queue) {
            notify.notify_one();
        }
    }
}
