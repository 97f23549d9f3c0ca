//! The due watcher: on a database that cannot tell a pool of new jobs
//! (MySQL/MariaDB; an in-memory SQLite database), one task per pool looks
//! every poll interval for due jobs in the queues whose producers are idle,
//! in one read ([`Store::due_queues`](crate::store::Store::due_queues)),
//! and wakes only those queues. Idle producers then sleep as they do where
//! the database notifies (until their next job is due, within the notified
//! poll interval) instead of each claiming once per poll interval: one
//! statement a second per idle pool, whatever its number of queues.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Shared;

/// Looks for due jobs in the pool's idle queues every poll interval, and
/// wakes each queue that has one, until background tasks stop. A failed
/// look wakes every idle queue, whose claims then say what is wrong.
pub(super) async fn run(shared: Arc<Shared>) {
    let every = shared.config.poll_interval;
    loop {
        tokio::select! {
            _ = shared.stops.background.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let idle: Vec<&str> = shared
            .slots
            .iter()
            .filter(|slots| slots.idle.load(Ordering::SeqCst))
            .map(|slots| slots.queue.as_str())
            .collect();
        if idle.is_empty() {
            continue;
        }
        let due = match shared
            .hopper
            .store()
            .due_queues(&idle, shared.hopper.now())
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "looking for due jobs in idle queues failed");
                idle.iter().map(|queue| (*queue).to_owned()).collect()
            }
        };
        for queue in due {
            shared.hopper.wake(&queue);
        }
    }
}
