//! The claims a pool holds: which (job, attempt) pairs the heartbeat renews,
//! and how many jobs are in flight (claimed, or being claimed, and their
//! outcome not yet written).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::job::JobId;

/// The claims a pool holds and its in-flight count; every change to either
/// goes through one of its methods.
#[derive(Debug, Default)]
pub(super) struct Claims {
    /// Jobs claimed, or being claimed, whose outcome is not yet written.
    in_flight: AtomicUsize,
    /// The claims this pool received (job id, attempt) until their outcome
    /// is written: the heartbeat renews these and no others, so a claim whose
    /// answer was lost on the way from the database runs out and is rescued.
    held: Mutex<BTreeSet<(JobId, u32)>>,
}

impl Claims {
    /// No claims, nothing in flight.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The held claims, locked.
    fn held(&self) -> MutexGuard<'_, BTreeSet<(JobId, u32)>> {
        // Plain ids and attempts: a poisoned lock still holds valid ones.
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
    /// held until their outcome is written.
    pub(super) fn claimed(&self, claimed: impl IntoIterator<Item = (JobId, u32)>, reserved: usize) {
        let mut taken = 0;
        {
            let mut held = self.held();
            for claim in claimed {
                held.insert(claim);
                taken += 1;
            }
        }
        self.in_flight
            .fetch_sub(reserved.saturating_sub(taken), Ordering::SeqCst);
    }

    /// The outcomes of `ended` were written (or given up on): they are no
    /// longer held or in flight.
    pub(super) fn finished(&self, ended: impl IntoIterator<Item = (JobId, u32)>) {
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
    /// before stop, or cut off at the shutdown deadline): they leave the
    /// in-flight count, and their claims stay held until stop hands them back.
    pub(super) fn abandoned(&self, n: usize) {
        self.in_flight.fetch_sub(n, Ordering::SeqCst);
    }

    /// Jobs claimed, or being claimed, whose outcome is not yet written.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The held claims in id order, the order completion batches lock rows in.
    pub(super) fn snapshot(&self) -> Vec<(JobId, u32)> {
        self.held().iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_counts_its_whole_request_until_it_returns() {
        let claims = Claims::new();
        claims.reserve(5);
        assert_eq!(claims.in_flight(), 5);
        claims.claimed([(3, 1), (1, 2)], 5);
        assert_eq!(claims.in_flight(), 2);
        assert_eq!(claims.snapshot(), [(1, 2), (3, 1)]);
    }

    #[test]
    fn a_failed_claim_gives_its_reservation_back_and_holds_nothing() {
        let claims = Claims::new();
        claims.reserve(4);
        claims.claimed([], 4);
        assert_eq!(claims.in_flight(), 0);
        assert!(claims.snapshot().is_empty());
    }

    #[test]
    fn written_outcomes_release_their_claims_and_only_those() {
        let claims = Claims::new();
        claims.reserve(3);
        claims.claimed([(1, 1), (2, 1), (3, 1)], 3);
        claims.finished([(2, 1)]);
        assert_eq!(claims.in_flight(), 2);
        assert_eq!(claims.snapshot(), [(1, 1), (3, 1)]);
    }

    #[test]
    fn abandoned_jobs_leave_the_count_but_stay_held_for_the_hand_back() {
        let claims = Claims::new();
        claims.reserve(2);
        claims.claimed([(7, 1), (8, 1)], 2);
        claims.abandoned(2);
        assert_eq!(claims.in_flight(), 0);
        assert_eq!(claims.snapshot(), [(7, 1), (8, 1)]);
    }
}
