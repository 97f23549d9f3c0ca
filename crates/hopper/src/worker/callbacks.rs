//! The pool's batch settler: after the completer writes outcomes of jobs
//! that belong to batches (workflows among them), it releases the workflow
//! steps and fires the callbacks those endings made due, off the
//! completer's path. Notices that come while it fires, or
//! within [`FIRE_GAP`] after, fold into one more look: a batch of 20,000
//! jobs finishing in batches of ten costs a look every few milliseconds,
//! not two thousand.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;

/// The least time between two looks for due callbacks.
pub(super) const FIRE_GAP: Duration = Duration::from_millis(5);

/// Fires due batch callbacks whenever the completer gives notice, until
/// the pool's background tasks stop; then looks once more, for the
/// outcomes written last.
pub(super) async fn run(shared: Arc<Shared>) {
    let stop = &shared.stops.background;
    loop {
        tokio::select! {
            () = shared.batches_ended.notified() => {}
            () = stop.cancelled() => break,
        }
        crate::batch::settle(&shared.hopper).await;
        tokio::select! {
            () = tokio::time::sleep(FIRE_GAP) => {}
            () = stop.cancelled() => break,
        }
    }
    crate::batch::settle(&shared.hopper).await;
}
