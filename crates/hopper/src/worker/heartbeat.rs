//! The heartbeat: keeps the leases of the claims a pool holds alive.

use std::sync::Arc;

use super::{COMPLETION_BATCH, Shared};
use crate::service::pause;

/// Extends the lease of every claim this pool received and has not yet
/// written the outcome of, every third of a lease, until background tasks stop.
pub(super) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.lease / 3;
    while pause(&shared.stops.background, interval).await {
        let held = shared.claims.snapshot();
        for claims in held.chunks(COMPLETION_BATCH) {
            if let Err(error) = shared
                .hopper
                .store()
                .extend_leases(&shared.worker_id, claims, shared.lease_until())
                .await
            {
                tracing::warn!(%error, "extending job leases failed");
            }
        }
    }
}
