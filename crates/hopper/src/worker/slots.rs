//! A queue's slots: how many of its jobs may run at once (the limit the
//! autoscaler moves), how many slots are taken, and how many claimed jobs
//! wait for one.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::Concurrency;

/// One queue's share of a pool: how many of its jobs may run at once (the
/// autoscaler moves this limit), how many do, and how many claimed jobs wait
/// in the fetcher's buffer.
#[derive(Debug)]
pub(super) struct Slots {
    /// The queue.
    pub(super) queue: String,
    /// The bounds its limit moves between.
    pub(super) bounds: Concurrency,
    /// The limit and the slots taken.
    counts: Mutex<SlotCounts>,
    /// Signalled when a slot frees up or the limit changes.
    changed: Notify,
    /// Jobs claimed and waiting for a slot in this process.
    pub(super) buffered: AtomicUsize,
    /// Jobs whose task is running; unlike the used slots, this leaves out
    /// the slot a claim in progress holds.
    pub(super) running: AtomicUsize,
    /// Whether the queue's producer found nothing to claim and waits to be
    /// woken (which the due watcher does, on a database that cannot).
    pub(super) idle: AtomicBool,
}

/// A queue's limit and how many slots are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SlotCounts {
    /// How many slots may be taken.
    pub(super) limit: usize,
    /// How many are.
    pub(super) used: usize,
}

impl Slots {
    /// Slots for `queue`, starting at its minimum.
    pub(super) fn new(queue: String, bounds: Concurrency) -> Self {
        crate::metrics::concurrency_changed(&queue, 0, bounds.min);
        Self {
            queue,
            bounds,
            counts: Mutex::new(SlotCounts {
                limit: bounds.min,
                used: 0,
            }),
            changed: Notify::new(),
            buffered: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            idle: AtomicBool::new(false),
        }
    }

    /// The counts, locked.
    fn lock(&self) -> MutexGuard<'_, SlotCounts> {
        // Two plain counters: a poisoned lock still holds valid ones.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of the counts.
    pub(super) fn counts(&self) -> SlotCounts {
        *self.lock()
    }

    /// Slots free right now.
    pub(super) fn free(&self) -> usize {
        let counts = self.lock();
        counts.limit.saturating_sub(counts.used)
    }

    /// Waits for a free slot under the current limit and takes it.
    pub(super) async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut counts = self.lock();
                if counts.used < counts.limit {
                    counts.used += 1;
                    return Slot(self.clone());
                }
            }
            notified.await;
        }
    }

    /// Moves the limit; running jobs above a lower limit run on, and no new
    /// job starts until the count is under it.
    pub(super) fn set_limit(&self, limit: usize) {
        let old = std::mem::replace(&mut self.lock().limit, limit);
        crate::metrics::concurrency_changed(&self.queue, old, limit);
        self.changed.notify_one();
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        let limit = self.lock().limit;
        crate::metrics::concurrency_changed(&self.queue, limit, 0);
    }
}

/// One taken slot; dropping it frees the slot.
#[derive(Debug)]
pub(super) struct Slot(Arc<Slots>);

impl Slot {
    /// Hands the slot to a job's task: the job counts as running until the
    /// returned slot is dropped.
    pub(super) fn run(self) -> RunningSlot {
        self.0.running.fetch_add(1, Ordering::SeqCst);
        RunningSlot(self)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut counts = self.0.lock();
            counts.used = counts.used.saturating_sub(1);
        }
        self.0.changed.notify_one();
    }
}

/// A slot a running job holds; dropping it ends the job's count and frees the slot.
#[derive(Debug)]
pub(super) struct RunningSlot(Slot);

impl Drop for RunningSlot {
    fn drop(&mut self) {
        (self.0).0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_lower_limit_lets_running_jobs_run_and_holds_new_ones_back() {
        let slots = Arc::new(Slots::new("q".into(), Concurrency { min: 1, max: 3 }));
        slots.set_limit(3);
        let taken = [
            slots.acquire().await,
            slots.acquire().await,
            slots.acquire().await,
        ];
        slots.set_limit(1);
        assert_eq!(slots.counts(), SlotCounts { limit: 1, used: 3 });
        drop(taken);
        let _one = slots.acquire().await;
        let second = tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await;
        assert!(
            second.is_err(),
            "a second slot was taken under a limit of one"
        );
    }
}
