//! Group commit: single dispatches made at once from many tasks share
//! one transaction.
//!
//! A busy web server dispatches one job per request from many tasks at
//! once, each a transaction of its own that waits for its own commit. With
//! group commit on ([`Builder::group_commit`](crate::client::Builder::group_commit)),
//! a dispatch hands its job to one collector per handle instead: while up
//! to `IN_FLIGHT` transactions are being written, the jobs that arrive
//! wait, and the next transaction stores all of them (up to `MAX_JOBS`)
//! as one bulk insert. A dispatch alone goes straight through, as a
//! transaction of its own.
//!
//! Each caller still gets its job's id only once the transaction holding
//! it committed, and when that transaction fails, every caller whose job
//! was in it gets the error ([`StoreError::SharedCommit`]): none of those
//! jobs was stored. Jobs with a unique key or a sequence do not share:
//! they go through on their own.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::job::JobId;
use crate::store::{NewJob, Store, StoreError};

/// Transactions of shared jobs being written at once, per handle.
pub(crate) const IN_FLIGHT: usize = 4;

/// The most jobs one shared transaction stores.
pub(crate) const MAX_JOBS: usize = 500;

/// A job waiting for the transaction that stores it, and where its id goes.
struct Waiting {
    job: NewJob,
    reply: oneshot::Sender<Result<JobId, StoreError>>,
}

/// What the collector task starts with: where jobs arrive, and the store.
type Collector = (mpsc::UnboundedReceiver<Waiting>, Arc<dyn Store>);

/// One handle's collector of jobs to store together.
pub(crate) struct GroupCommit {
    sender: mpsc::UnboundedSender<Waiting>,
    /// The collector's end until the first dispatch starts it (a handle
    /// may be built outside a runtime).
    collector: Mutex<Option<Collector>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// A collector storing through `store`; its task starts at the first
    /// job and ends when this is dropped.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            sender,
            collector: Mutex::new(Some((receiver, store))),
        }
    }

    /// Whether `job` may share a transaction with other callers' jobs.
    pub(crate) fn takes(job: &NewJob) -> bool {
        job.unique_key.is_none() && job.sequence.is_none()
    }

    /// Stores `job` in the next shared transaction; its id once that
    /// transaction committed.
    pub(crate) async fn insert(&self, job: NewJob) -> Result<JobId, StoreError> {
        let started = self
            .collector
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((receiver, store)) = started {
            tokio::spawn(collect(receiver, store));
        }
        let (reply, id) = oneshot::channel();
        self.sender
            .send(Waiting { job, reply })
            .map_err(|_| StoreError::Closed)?;
        id.await.map_err(|_| StoreError::Closed)?
    }
}

/// The collector: takes every job waiting whenever a transaction may
/// start, and writes them in one.
async fn collect(mut receiver: mpsc::UnboundedReceiver<Waiting>, store: Arc<dyn Store>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = receiver.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut waiting = vec![first];
        while waiting.len() < MAX_JOBS {
            match receiver.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            write(store.as_ref(), waiting).await;
            drop(slot);
        });
    }
}

/// Stores `waiting`'s jobs in one transaction and answers each caller.
async fn write(store: &dyn Store, waiting: Vec<Waiting>) {
    let (jobs, replies): (Vec<NewJob>, Vec<_>) = waiting
        .into_iter()
        .map(|waiting| (waiting.job, waiting.reply))
        .unzip();
    match store.insert(&jobs).await {
        Ok(ids) => {
            for (reply, id) in replies.into_iter().zip(ids) {
                // A caller that stopped waiting has its job stored all the same.
                let _ = reply.send(Ok(id));
            }
        }
        Err(error) if replies.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(error));
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            let jobs = replies.len();
            for reply in replies {
                let _ = reply.send(Err(StoreError::SharedCommit {
                    jobs,
                    source: Arc::clone(&error),
                }));
            }
        }
    }
}
