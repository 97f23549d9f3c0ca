//! Wake-ups sent after a dispatch commits, instead of inside it.
//!
//! A transaction that notifies holds PostgreSQL's one notification lock
//! from just before its commit until the commit is on disk, so every
//! notifying transaction commits alone: fifty web requests dispatching at
//! once would wait for fifty disk flushes in a row instead of sharing a
//! few. A dispatch of its own (not inside the caller's transaction)
//! therefore inserts without notifying and hands its queue to the
//! [`Announcer`], whose one task notifies every queue handed to it since
//! its last notification in one statement. Under load that is one notifying
//! commit per round trip, however many dispatches went by.
//!
//! A wake-up is a hint, never the only way a job is found: a process that
//! dies between the commit and the announcement leaves a committed job that
//! workers find at their next poll.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::{Db, sql};

/// Hands queues to one task that notifies them after their dispatches
/// committed; shared by the clones of a store.
#[derive(Clone, Debug)]
pub(super) struct Announcer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Single dispatches under way.
    under_way: AtomicUsize,
    /// Queues handed over since the task last took them.
    queues: Mutex<BTreeSet<String>>,
    /// Rings the task; one ring waiting is enough, so it holds one.
    bell: mpsc::Sender<()>,
}

impl Announcer {
    /// An announcer notifying on `channel` through `pool`, its task started
    /// on the current runtime; the task ends when the last clone is dropped.
    pub(super) fn start(pool: Db, channel: &'static str) -> Self {
        let (bell, rung) = mpsc::channel(1);
        let inner = Arc::new(Inner {
            under_way: AtomicUsize::new(0),
            queues: Mutex::new(BTreeSet::new()),
            bell,
        });
        tokio::spawn(run(Arc::downgrade(&inner), rung, pool, channel));
        Announcer { inner }
    }

    /// Starts a single dispatch: [`Dispatch::alone`] says whether it wakes
    /// its queue in its own statement, else [`Dispatch::committed`] does.
    pub(super) fn dispatch(&self) -> Dispatch<'_> {
        let before = self.inner.under_way.fetch_add(1, Ordering::AcqRel);
        Dispatch {
            announcer: self,
            alone: before == 0,
        }
    }

    /// Wakes `queue`'s workers soon, in whichever process they run. Call it
    /// after the dispatch into `queue` committed.
    fn announce(&self, queue: &str) {
        let inner = &self.inner;
        {
            let mut queues = inner.queues.lock().unwrap_or_else(PoisonError::into_inner);
            if !queues.contains(queue) {
                queues.insert(queue.to_owned());
            }
        }
        // Full means a ring is already waiting, which will take this queue too.
        let _ = inner.bell.try_send(());
    }
}

/// A single dispatch under way ([`Announcer::dispatch`]).
pub(super) struct Dispatch<'a> {
    announcer: &'a Announcer,
    alone: bool,
}

impl Dispatch<'_> {
    /// Whether no other single dispatch was under way when this one began:
    /// then its statement wakes its queue on commit itself.
    pub(super) fn alone(&self) -> bool {
        self.alone
    }

    /// Its job into `queue` committed: wakes the queue unless its own
    /// statement did.
    pub(super) fn committed(self, queue: &str) {
        if !self.alone {
            self.announcer.announce(queue);
        }
    }
}

impl Drop for Dispatch<'_> {
    fn drop(&mut self) {
        self.announcer
            .inner
            .under_way
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// The task: at each ring, notifies every queue handed over since the last,
/// in one statement; ends when the announcer is gone.
async fn run(
    inner: std::sync::Weak<Inner>,
    mut rung: mpsc::Receiver<()>,
    pool: Db,
    channel: &'static str,
) {
    while rung.recv().await.is_some() {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let queues: Vec<String> =
            std::mem::take(&mut *inner.queues.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        drop(inner);
        if queues.is_empty() {
            continue;
        }
        if let Err(error) = sqlx::query(sql::NOTIFY_QUEUES)
            .bind(channel)
            .bind(&queues)
            .execute(&pool)
            .await
        {
            tracing::warn!(
                %error,
                ?queues,
                "could not wake the workers of newly dispatched jobs; they find them at their next poll"
            );
        }
    }
}
