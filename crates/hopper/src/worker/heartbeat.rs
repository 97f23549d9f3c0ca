//! The heartbeat: keeps the leases of the claims a pool holds alive, acts
//! on any it finds lost, and stops the runs of jobs someone cancelled.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{COMPLETION_BATCH, Shared};
use crate::service::{DATABASE_ERRORS, pause};
use crate::store::{Claim, RenewRequest, StoreError};

/// The least time between two looks for cancels that changes the database
/// does not tell apart prompt (see [`Wakeup::All`](crate::store::Wakeup::All)):
/// SQLite's file watch reports a busy file about every 50 ms, and a look
/// reads every held claim, so a busy pool reads a few times a second at
/// most and a cancel from another process is still found within this long.
pub(super) const LOOK_GAP: Duration = Duration::from_millis(200);

/// Every third of a lease, renews every claim the pool holds, from the
/// database's now, and stops the runs of jobs someone cancelled. A claim
/// the database no longer holds for the pool was lost (rescued while the
/// pool was cut off or stalled): its run is cancelled and its outcome will
/// be dropped, so it does not keep running beside the job's new owner. A
/// renewal that fails is tried again soon (200 ms doubling to 5 s), not a
/// third of a lease later.
///
/// Between renewals, cancels are looked for (a read, renewing nothing) at
/// once when made in this process or when the database notifies of one
/// (PostgreSQL), and at most every [`LOOK_GAP`] while the pool holds claims
/// and the database reports changes it does not tell apart (SQLite).
pub(super) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.lease / 3;
    let mut failures = 0u32;
    let mut renew_at = Instant::now() + interval;
    let mut looked_at: Option<Instant> = None;
    // A look the database's changes asked for, held back to LOOK_GAP after
    // the last one.
    let mut look_due: Option<Instant> = None;
    let cancels = shared.hopper.cancels();
    // Made again before every read of the requests, so a cancel that
    // arrives during one is looked for after it, not missed.
    let mut cancelled = pin!(cancels.notified());
    loop {
        let until_renewal = renew_at.saturating_duration_since(Instant::now());
        let look_wait = look_due.map(|at| at.saturating_duration_since(Instant::now()));
        // Renewals come first: however often the database reports changes,
        // a lease is renewed on time.
        tokio::select! {
            biased;
            go_on = pause(&shared.stops.background, until_renewal) => {
                if !go_on {
                    break;
                }
                cancelled.set(cancels.notified());
                let wait = match renew(&shared).await {
                    Ok(lost) => {
                        failures = 0;
                        if lost > 0 {
                            tracing::warn!(
                                worker = %shared.worker_id,
                                lost,
                                "claims lost (their leases ran out and the jobs were rescued): their runs are cancelled"
                            );
                        }
                        interval
                    }
                    Err(error) => {
                        failures += 1;
                        let retry_in = DATABASE_ERRORS.delay(failures).min(interval);
                        tracing::warn!(%error, ?retry_in, "extending job leases failed");
                        retry_in
                    }
                };
                renew_at = Instant::now() + wait;
            }
            () = cancelled.as_mut() => {
                cancelled.set(cancels.notified());
                look_for_cancels(&shared).await;
            }
            () = tokio::time::sleep(look_wait.unwrap_or_default()), if look_wait.is_some() => {
                look_due = None;
                looked_at = Some(Instant::now());
                cancelled.set(cancels.notified());
                look_for_cancels(&shared).await;
            }
            () = shared.changed.notified() => {
                if shared.claims.is_empty() {
                    continue;
                }
                let next = looked_at.map_or_else(Instant::now, |at| at + LOOK_GAP);
                look_due = Some(look_due.map_or(next, |due| due.min(next)));
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
        stop_cancelled(shared, &kept).await?;
    }
    Ok(lost)
}

/// Stops the runs of the held claims whose job someone cancelled, renewing
/// nothing; a failed read is logged and left to the next renewal.
async fn look_for_cancels(shared: &Shared) {
    for claims in shared.claims.snapshot().chunks(COMPLETION_BATCH) {
        if let Err(error) = stop_cancelled(shared, claims).await {
            tracing::warn!(%error, "looking for cancelled jobs failed");
            return;
        }
    }
}

/// Stops the runs of those of `claims` whose job someone cancelled.
async fn stop_cancelled(shared: &Shared, claims: &[Claim]) -> Result<(), StoreError> {
    let cancelled = shared.hopper.store().cancels_requested(claims).await?;
    if shared.claims.cancel(cancelled) > 0 {
        tracing::info!(worker = %shared.worker_id, "running jobs cancelled: their runs are stopped");
    }
    Ok(())
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
