//! The claims a pool holds: which claims the heartbeat renews and `stop`
//! hands back, the cancellation of each claim's run, and how many jobs are
//! in flight (claimed, or being claimed, and their outcome not yet written).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use crate::store::Claim;

/// The claims a pool holds and its in-flight count; every change to either
/// goes through one of its methods.
#[derive(Debug, Default)]
pub(super) struct Claims {
    /// Jobs claimed, or being claimed, whose outcome is not yet written.
    in_flight: AtomicUsize,
    /// The claims this pool received until their outcome is written or the
    /// claim is lost: the heartbeat renews these and no others, so a claim
    /// whose answer was lost on the way from the database runs out and is
    /// rescued.
    held: Mutex<BTreeMap<Claim, Held>>,
}

/// One held claim.
#[derive(Debug)]
struct Held {
    /// Cancels the claim's run.
    run: CancellationToken,
    /// Its outcome is being written: a renewal that no longer finds the
    /// claim has most likely met that write, not lost the claim.
    ending: bool,
    /// Someone cancelled its job: its run was stopped to end `cancelled`.
    cancel_requested: bool,
}

impl Claims {
    /// No claims, nothing in flight.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The held claims, locked.
    fn held(&self) -> MutexGuard<'_, BTreeMap<Claim, Held>> {
        // Plain claims and tokens: a poisoned lock still holds valid ones.
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts `n` jobs in flight before a claim for up to `n` goes out, so a
    /// claimed job is never invisible to [`Claims::in_flight`] between the
    /// database and the pool.
    pub(super) fn reserve(&self, n: usize) {
        self.in_flight.fetch_add(n, Ordering::SeqCst);
    }

    /// A claim that reserved `reserved` returned `claimed` (empty if it
    /// failed): the rest of the reservation is given back and the claims are
    /// held until their outcome is written. Returns, in the same order, the
    /// token that cancels each claim's run: a child of `stop` (the shutdown
    /// deadline), also cancelled when the claim is lost, so a job whose
    /// token is cancelled before it starts must not start.
    pub(super) fn claimed(
        &self,
        claimed: impl IntoIterator<Item = Claim>,
        reserved: usize,
        stop: &CancellationToken,
    ) -> Vec<CancellationToken> {
        let mut runs = Vec::new();
        {
            let mut held = self.held();
            for claim in claimed {
                let run = stop.child_token();
                runs.push(run.clone());
                held.insert(
                    claim,
                    Held {
                        run,
                        ending: false,
                        cancel_requested: false,
                    },
                );
            }
        }
        self.in_flight
            .fetch_sub(reserved.saturating_sub(runs.len()), Ordering::SeqCst);
        runs
    }

    /// The outcomes of `ending` are being written.
    pub(super) fn ending(&self, ending: impl IntoIterator<Item = Claim>) {
        let mut held = self.held();
        for claim in ending {
            if let Some(held) = held.get_mut(&claim) {
                held.ending = true;
            }
        }
    }

    /// The database no longer holds `lost` for this pool (rescued while the
    /// pool was cut off, say): their runs are cancelled and their leases no
    /// longer renewed. Claims whose outcome is being written are left to
    /// that write. Returns how many were lost.
    pub(super) fn lost(&self, lost: impl IntoIterator<Item = Claim>) -> usize {
        let mut held = self.held();
        let mut count = 0;
        for claim in lost {
            if held.get(&claim).is_some_and(|held| !held.ending) {
                if let Some(gone) = held.remove(&claim) {
                    gone.run.cancel();
                    count += 1;
                }
            }
        }
        count
    }

    /// Someone cancelled the jobs of `requested`: the runs of those still
    /// held, and not ending already, are stopped, to end `cancelled`.
    /// Returns how many were stopped.
    pub(super) fn cancel(&self, requested: impl IntoIterator<Item = Claim>) -> usize {
        let mut held = self.held();
        let mut count = 0;
        for claim in requested {
            if let Some(run) = held.get_mut(&claim).filter(|held| !held.ending) {
                if !run.cancel_requested {
                    run.cancel_requested = true;
                    run.run.cancel();
                    count += 1;
                }
            }
        }
        count
    }

    /// Whether the run of `claim` was stopped because its job was cancelled.
    pub(super) fn cancel_requested(&self, claim: Claim) -> bool {
        self.held()
            .get(&claim)
            .is_some_and(|held| held.cancel_requested)
    }

    /// Sets aside `claim`, whose outcome the database refuses: its lease is
    /// no longer renewed, so it runs out and the rescuer returns the job.
    pub(super) fn set_aside(&self, claim: Claim) {
        self.held().remove(&claim);
    }

    /// The outcomes of `ended` were written (or given up on): they are no
    /// longer held or in flight.
    pub(super) fn finished(&self, ended: impl IntoIterator<Item = Claim>) {
        let mut count = 0;
        {
            let mut held = self.held();
            for claim in ended {
                held.remove(&claim);
                count += 1;
            }
        }
        self.in_flight.fetch_sub(count, Ordering::SeqCst);
    }

    /// `n` claimed jobs will get no outcome from this pool (never started
    /// before stop, cut off at the shutdown deadline, or their claim lost):
    /// they leave the in-flight count; claims still held stay held until
    /// stop hands them back.
    pub(super) fn abandoned(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::SeqCst);
    }

    /// Jobs claimed, or being claimed, whose outcome is not yet written.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Whether the pool holds no claim.
    pub(super) fn is_empty(&self) -> bool {
        self.held().is_empty()
    }

    /// The held claims in id order, the order every batch locks rows in.
    pub(super) fn snapshot(&self) -> Vec<Claim> {
        self.held().keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: i64) -> Claim {
        Claim { id, token: id * 10 }
    }

    #[test]
    fn a_claim_counts_its_whole_request_until_it_returns() {
        let claims = Claims::new();
        claims.reserve(5);
        assert_eq!(claims.in_flight(), 5);
        claims.claimed([claim(3), claim(1)], 5, &CancellationToken::new());
        assert_eq!(claims.in_flight(), 2);
        assert_eq!(claims.snapshot(), [claim(1), claim(3)]);
    }

    #[test]
    fn a_failed_claim_gives_its_reservation_back_and_holds_nothing() {
        let claims = Claims::new();
        claims.reserve(4);
        claims.claimed([], 4, &CancellationToken::new());
        assert_eq!(claims.in_flight(), 0);
        assert!(claims.snapshot().is_empty());
    }

    #[test]
    fn written_outcomes_release_their_claims_and_only_those() {
        let claims = Claims::new();
        claims.reserve(3);
        claims.claimed([claim(1), claim(2), claim(3)], 3, &CancellationToken::new());
        claims.finished([claim(2)]);
        assert_eq!(claims.in_flight(), 2);
        assert_eq!(claims.snapshot(), [claim(1), claim(3)]);
    }

    #[test]
    fn abandoned_jobs_leave_the_count_but_stay_held_for_the_hand_back() {
        let claims = Claims::new();
        claims.reserve(2);
        claims.claimed([claim(7), claim(8)], 2, &CancellationToken::new());
        claims.abandoned(2);
        assert_eq!(claims.in_flight(), 0);
        assert_eq!(claims.snapshot(), [claim(7), claim(8)]);
    }

    #[test]
    fn a_lost_claim_cancels_its_run_and_is_no_longer_renewed() {
        let claims = Claims::new();
        let stop = CancellationToken::new();
        claims.reserve(2);
        let runs = claims.claimed([claim(1), claim(2)], 2, &stop);
        let [run, other] = [runs[0].clone(), runs[1].clone()];
        // A claim with another token is not this pool's: nothing happens.
        let stranger = Claim { id: 2, token: 99 };
        assert_eq!(claims.lost([claim(1), stranger]), 1);
        assert!(run.is_cancelled() && !other.is_cancelled());
        assert_eq!(claims.snapshot(), [claim(2)]);
        // A claim whose outcome is being written is not taken for lost.
        claims.ending([claim(2)]);
        assert_eq!(claims.lost([claim(2)]), 0);
        assert_eq!(claims.snapshot(), [claim(2)]);
        // The shutdown deadline cancels every run still held.
        stop.cancel();
        assert!(other.is_cancelled());
    }
}
