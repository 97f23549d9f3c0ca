//! The pruner: on the pool holding [`PRUNE_LEASE`], deletes ended jobs past
//! their retention.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::leader::Lease;
use super::{PRUNE_BATCH, PRUNE_LEASE, Retention};
use crate::client::Hopper;
use crate::service::Periodic;
use crate::store::{Store, StoreError};

/// Prunes every `interval` (the first time one interval after starting)
/// while `holder` holds [`PRUNE_LEASE`] (renewed for three intervals), until
/// `stop` fires; then gives the lease up.
pub(crate) async fn run(
    hopper: Hopper,
    holder: String,
    interval: Duration,
    retention: Retention,
    stop: CancellationToken,
) {
    let lease = Lease::new(PRUNE_LEASE, holder, interval * 3);
    let service = Periodic::new("pruning old jobs", interval)
        .wait_first()
        .leased(lease, hopper.clone());
    service
        .run(stop, move || {
            let hopper = hopper.clone();
            async move {
                match prune(hopper.store().as_ref(), hopper.now(), retention).await? {
                    0 => {}
                    deleted => tracing::info!(deleted, "pruned old jobs"),
                }
                Ok::<_, StoreError>(None)
            }
        })
        .await;
}

/// Deletes ended jobs older than `retention` allows, in batches of
/// [`PRUNE_BATCH`]; returns how many were deleted.
pub(crate) async fn prune(
    store: &dyn Store,
    now: DateTime<Utc>,
    retention: Retention,
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for (state, age) in retention.ages() {
        let before = crate::clock::sub(now, age);
        loop {
            let n = store.prune(state, before, PRUNE_BATCH).await?;
            deleted += n;
            if n < u64::from(PRUNE_BATCH) {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(deleted)
}
