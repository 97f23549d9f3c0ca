//! Group commit: single dispatches made at once from many tasks share
//! one transaction.
//!
//! A busy web server dispatches one job per request from many tasks at
//! once, each a transaction of its own that waits for its own commit. With
//! group commit on ([`Builder::group_commit`](crate::client::Builder::group_commit)),
//! up to `WRITERS` transactions of dispatched jobs are written at once per
//! handle; a dispatch that finds them all busy leaves its job in a queue,
//! and the next transaction to start stores every job waiting there (up
//! to `MAX_JOBS`) as one bulk insert. A dispatch that finds a writer free
//! and no job waiting writes its own job itself, on its own task, as it
//! would without group commit: a dispatch alone costs two uncontended
//! lock takings more, nothing else.
//!
//! Each caller still gets its job's id only once the transaction holding
//! it committed, and when that transaction fails, every caller whose job
//! was in it gets the error ([`StoreError::SharedCommit`]): none of those
//! jobs was stored. A transaction holding other callers' jobs is written
//! by a task of its own, so a caller that stops waiting (a request
//! timing out) cannot cut it short. Jobs with a unique key or a sequence do
//! not share: they go through on their own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

use crate::job::JobId;
use crate::store::{NewJob, Store, StoreError};

/// Transactions of dispatched jobs written at once, per handle.
const WRITERS: usize = 4;

/// The most jobs one shared transaction stores.
const MAX_JOBS: usize = 500;

/// A job waiting for the transaction that stores it, and where its id goes.
struct Waiting {
    job: NewJob,
    reply: oneshot::Sender<Result<JobId, StoreError>>,
}

/// One handle's jobs waiting to be stored together, and its writers.
pub(crate) struct GroupCommit {
    store: Arc<dyn Store>,
    shared: Arc<Mutex<Queue>>,
}

/// What the writers share: the jobs waiting, and how many writers are busy.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    writers: usize,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Group commit over `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            shared: Arc::default(),
        }
    }

    /// Whether `job` may share a transaction with other callers' jobs.
    pub(crate) fn takes(job: &NewJob) -> bool {
        job.unique_key.is_none() && job.sequence.is_none()
    }

    /// Stores `job`, alone or in a transaction shared with other callers'
    /// jobs (a copy of it, then); its id once that transaction committed.
    pub(crate) async fn insert(&self, job: &NewJob) -> Result<JobId, StoreError> {
        let turn = {
            let mut queue = lock(&self.shared);
            if queue.writers < WRITERS && queue.waiting.is_empty() {
                queue.writers += 1;
                Turn::Write
            } else {
                let (reply, id) = oneshot::channel();
                let job = job.clone();
                queue.waiting.push_back(Waiting { job, reply });
                if queue.writers < WRITERS {
                    queue.writers += 1;
                    tokio::spawn(write_waiting(
                        Arc::clone(&self.store),
                        Arc::clone(&self.shared),
                    ));
                }
                Turn::Wait(id)
            }
        };
        match turn {
            Turn::Wait(id) => id.await.map_err(|_| StoreError::Closed)?,
            Turn::Write => {
                let _slot = Slot {
                    store: &self.store,
                    shared: &self.shared,
                };
                let ids = self.store.insert(std::slice::from_ref(job)).await?;
                ids.into_iter().next().ok_or(StoreError::Closed)
            }
        }
    }
}

/// What a dispatch does with its job.
enum Turn {
    /// A writer was free and no job waiting: write it, on the caller's task.
    Write,
    /// Wait for the transaction a writing task stores it in.
    Wait(oneshot::Receiver<Result<JobId, StoreError>>),
}

/// The queue, even if a thread panicked holding it (it is never left half
/// changed).
fn lock(shared: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A writer's place held by a dispatch writing its own job; given up when
/// the write ends or is dropped, and handed to a new writing task when
/// jobs arrived meanwhile.
struct Slot<'a> {
    store: &'a Arc<dyn Store>,
    shared: &'a Arc<Mutex<Queue>>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut queue = lock(self.shared);
        if queue.waiting.is_empty() {
            queue.writers -= 1;
        } else {
            tokio::spawn(write_waiting(
                Arc::clone(self.store),
                Arc::clone(self.shared),
            ));
        }
    }
}

/// A writing task: stores the jobs waiting, up to [`MAX_JOBS`] per
/// transaction, until none is left; then gives its place up.
async fn write_waiting(store: Arc<dyn Store>, shared: Arc<Mutex<Queue>>) {
    loop {
        let batch: Vec<Waiting> = {
            let mut queue = lock(&shared);
            if queue.waiting.is_empty() {
                queue.writers -= 1;
                return;
            }
            let take = queue.waiting.len().min(MAX_JOBS);
            queue.waiting.drain(..take).collect()
        };
        write(store.as_ref(), batch).await;
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
