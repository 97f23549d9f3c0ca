//! The heartbeat: keeps the leases of the claims a pool holds alive, and
//! acts on any it finds lost.

use std::sync::Arc;

use super::{COMPLETION_BATCH, Shared};
use crate::service::{DATABASE_ERRORS, pause};
use crate::store::{Claim, RenewRequest, StoreError};

/// Every third of a lease, renews every claim the pool holds, from the
/// database's now, and stops the runs of jobs someone cancelled (at once
/// when they were cancelled in this process). A claim the database no longer holds for the pool was
/// lost (rescued while the pool was cut off or stalled): its run is
/// cancelled and its outcome will be dropped, so it does not keep running
/// beside the job's new owner. A renewal that fails is tried again soon
/// (200 ms doubling to 5 s), not a third of a lease later.
pub(super) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.lease / 3;
    let mut failures = 0u32;
    loop {
        let wait = match failures {
            0 => interval,
            n => DATABASE_ERRORS.delay(n).min(interval),
        };
        // A job cancelled in this process is looked for at once.
        let cancelled_here = shared.hopper.cancels().notified();
        tokio::select! {
            go_on = pause(&shared.stops.background, wait) => if !go_on { break },
            () = cancelled_here => {}
        }
        match renew(&shared).await {
            Ok(0) => failures = 0,
            Ok(lost) => {
                failures = 0;
                tracing::warn!(
                    worker = %shared.worker_id,
                    lost,
                    "claims lost (their leases ran out and the jobs were rescued): their runs are cancelled"
                );
            }
            Err(error) => {
                failures += 1;
                let retry_in = DATABASE_ERRORS.delay(failures).min(interval);
                tracing::warn!(%error, ?retry_in, "extending job leases failed");
            }
        }
    }
}

/// Renews every held claim; returns how many were found lost.
async fn renew(shared: &Shared) -> Result<usize, StoreError> {
    let held = shared.claims.snapshot();
    let mut lost = 0;
    for claims in held.chunks(COMPLETION_BATCH) {
        let kept = shared
            .hopper
            .store()
            .extend_leases(RenewRequest {
                claims,
                lease: shared.config.lease,
                now: shared.hopper.database_now(),
            })
            .await?;
        lost += shared.claims.lost(missing(claims, &kept));
        let cancelled = shared.hopper.store().cancels_requested(&kept).await?;
        if shared.claims.cancel(cancelled) > 0 {
            tracing::info!(worker = %shared.worker_id, "running jobs cancelled: their runs are stopped");
        }
    }
    Ok(lost)
}

/// The claims of `asked` (in id order) missing from `kept` (in id order).
fn missing(asked: &[Claim], kept: &[Claim]) -> Vec<Claim> {
    let mut kept = kept.iter().peekable();
    asked
        .iter()
        .filter(|claim| {
            while kept.next_if(|k| *k < *claim).is_some() {}
            kept.next_if_eq(claim).is_none()
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: i64) -> Claim {
        Claim { id, token: 1 }
    }

    #[test]
    fn the_claims_not_renewed_are_the_lost_ones() {
        let asked = [claim(1), claim(2), claim(5), claim(9)];
        assert_eq!(missing(&asked, &[claim(2), claim(9)]), [claim(1), claim(5)]);
        assert!(missing(&asked, &asked).is_empty());
        assert_eq!(missing(&asked, &[]), asked);
        // A claim renewed under another token is not this one.
        let other = Claim { id: 5, token: 2 };
        assert_eq!(missing(&[claim(5)], &[other]), [claim(5)]);
    }
}
