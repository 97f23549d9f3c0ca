//! The pruner: on the pool holding [`PRUNE_LEASE`], deletes ended jobs past
//! their retention, resolved alerts and completed batches as old as failed
//! jobs are kept, and partition keys with nothing pending.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{PRUNE_BATCH, PRUNE_LEASE, Retention};
use crate::core::Hopper;
use crate::lease::Lease;
use crate::service::Periodic;
use crate::store::{PruneRequest, Store, StoreError};

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
        let request = PruneRequest {
            before: crate::clock::sub(now, age),
            limit: PRUNE_BATCH,
        };
        loop {
            let n = store.prune(state, request).await?;
            deleted += n;
            if n < u64::from(PRUNE_BATCH) {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    // Resolved alert incidents are kept as long as failed jobs.
    let request = PruneRequest {
        before: crate::clock::sub(now, retention.failed),
        limit: PRUNE_BATCH,
    };
    while store.prune_alerts(request).await? == u64::from(PRUNE_BATCH) {
        tokio::task::yield_now().await;
    }
    // Completed batches too: their failed jobs are gone by then.
    while store.prune_batches(request).await? == u64::from(PRUNE_BATCH) {
        tokio::task::yield_now().await;
    }
    // Partition keys with nothing pending, whatever their age: one comes
    // back with its next pending job.
    while store.prune_idle_keys(PRUNE_BATCH).await? == u64::from(PRUNE_BATCH) {
        tokio::task::yield_now().await;
    }
    // Sequences whose last job was pruned: nothing of them is left to wait on.
    while store.prune_sequences(PRUNE_BATCH).await? == u64::from(PRUNE_BATCH) {
        tokio::task::yield_now().await;
    }
    // Schedule runs whose job was pruned: their outcome is gone with it.
    while store.prune_schedule_runs(PRUNE_BATCH).await? == u64::from(PRUNE_BATCH) {
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::MAINTENANCE_LEASE;
    use crate::store::{ClaimRequest, CompleteRequest, Completion, NewJob, Outcome};

    #[tokio::test]
    async fn pruning_needs_only_its_own_lease_and_gives_it_up_at_stop() {
        let hopper = Hopper::builder().connect("sqlite::memory:").await.unwrap();
        let store = hopper.store();
        let hold = Duration::from_secs(60);
        // A rescuing leader elsewhere does not keep this pool from pruning.
        assert!(
            Lease::new(MAINTENANCE_LEASE, "other", hold)
                .take(&hopper)
                .await
                .unwrap()
        );
        let long_ago = crate::clock::sub(hopper.now(), Duration::from_secs(3600));
        let ids = store
            .insert(&[NewJob {
                max_attempts: 1,
                ..NewJob::ping("default", long_ago)
            }])
            .await
            .unwrap();
        let claimed = store
            .claim(ClaimRequest {
                queue: "default",
                worker: "w",
                limit: 1,
                start_now: 0,
                token: crate::store::new_claim_token(),
                due_by: long_ago,
                lease: hold,
                now: Some(long_ago),
            })
            .await
            .unwrap();
        let ended = Completion {
            claim: claimed[0].claim(),
            attempt: claimed[0].attempt,
            outcome: Outcome::Finished,
        };
        assert_eq!(ids[0], claimed[0].id);
        let request = CompleteRequest {
            completions: &[ended],
            ended_at: long_ago,
        };
        assert_eq!(store.complete(request).await.unwrap(), 1);
        let stop = CancellationToken::new();
        let pruner = tokio::spawn(run(
            hopper.clone(),
            "me".into(),
            Duration::from_millis(5),
            Retention::all(Duration::from_secs(60)),
            stop.clone(),
        ));
        tokio::time::timeout(Duration::from_secs(5), async {
            while store.get(ids[0]).await.unwrap().is_some() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
        assert!(
            !Lease::new(PRUNE_LEASE, "other", hold)
                .take(&hopper)
                .await
                .unwrap()
        );
        stop.cancel();
        pruner.await.unwrap();
        assert!(
            Lease::new(PRUNE_LEASE, "other", hold)
                .take(&hopper)
                .await
                .unwrap()
        );
    }
}
