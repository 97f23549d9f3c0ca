//! The rescuer: on the pool holding [`MAINTENANCE_LEASE`], returns jobs
//! whose worker died (their lease expired) to pending or failed, then
//! fires the batch callbacks that endings outside a pool's completions
//! made due.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::MAINTENANCE_LEASE;
use crate::core::Hopper;
use crate::job::JobId;
use crate::lease::Lease;
use crate::service::Periodic;
use crate::store::{Store, StoreError};

/// The most rescued jobs logged one by one (each is read back for its fields).
const RESCUES_LOGGED: usize = 100;

/// Rescues expired jobs every `interval` while `holder` holds
/// [`MAINTENANCE_LEASE`] (renewed for three intervals, so another pool takes
/// over soon after this one dies), waking `queues` after a rescue, until
/// `stop` fires; then gives the lease up.
pub(crate) async fn run(
    hopper: Hopper,
    holder: String,
    interval: Duration,
    queues: Vec<String>,
    stop: CancellationToken,
) {
    let lease = Lease::new(MAINTENANCE_LEASE, holder, interval * 3);
    let service = Periodic::new("rescuing expired jobs", interval).leased(lease, hopper.clone());
    service
        .run(stop, move || {
            let hopper = hopper.clone();
            let queues = queues.clone();
            async move {
                let rescued = rescue(hopper.store().as_ref(), hopper.database_now()).await?;
                if !rescued.is_empty() {
                    for queue in &queues {
                        hopper.wake(queue);
                    }
                }
                // Batch jobs that ended outside a pool's completions (a
                // rescue, a cancel, a deletion, a retry by hand) may have
                // made callbacks due.
                crate::batch::settle(&hopper).await;
                Ok::<_, StoreError>(None)
            }
        })
        .await;
}

/// Returns every job whose lease expired by the database's `now` (`None`:
/// the server's clock) to pending or failed, and logs the rescues; the ids
/// rescued.
pub(crate) async fn rescue(
    store: &dyn Store,
    now: Option<DateTime<Utc>>,
) -> Result<Vec<JobId>, StoreError> {
    let ids = store.rescue(now).await?;
    if ids.is_empty() {
        return Ok(ids);
    }
    if ids.len() > RESCUES_LOGGED {
        tracing::warn!(
            jobs = ids.len(),
            "rescued jobs whose worker stopped heartbeating; logging the first {RESCUES_LOGGED} one by one"
        );
    }
    // Each logged rescue reads its job back; skip the reads when nothing
    // would be logged.
    let logged = if tracing::enabled!(target: "hopper::events", tracing::Level::WARN) {
        RESCUES_LOGGED
    } else {
        0
    };
    for id in ids.iter().take(logged) {
        match store.get(*id).await {
            Ok(Some(job)) => crate::events::rescued(&job),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(id, %error, "reading a rescued job failed");
            }
        }
    }
    Ok(ids)
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use crate::job::JobState;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{ClaimRequest, NewJob};

    #[tokio::test]
    async fn only_jobs_whose_lease_expired_are_rescued() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let at = |secs| crate::clock::add(start, Duration::from_secs(secs));
        let ids = store
            .insert(&[NewJob::ping("short", start), NewJob::ping("long", start)])
            .await
            .unwrap();
        for (queue, lease) in [("short", 10), ("long", 60)] {
            let claimed = store
                .claim(ClaimRequest {
                    queue,
                    worker: "dead",
                    limit: 1,
                    start_now: 0,
                    token: crate::store::new_claim_token(),
                    due_by: start,
                    lease: Duration::from_secs(lease),
                    now: Some(start),
                })
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1);
        }
        assert!(rescue(&store, Some(at(5))).await.unwrap().is_empty());
        assert_eq!(rescue(&store, Some(at(30))).await.unwrap(), [ids[0]]);
        let state = |id| {
            let store = &store;
            async move { store.get(id).await.unwrap().unwrap().state }
        };
        assert_eq!(state(ids[0]).await, JobState::Pending);
        assert_eq!(state(ids[1]).await, JobState::Started);
        assert!(rescue(&store, Some(at(30))).await.unwrap().is_empty());
    }
}
