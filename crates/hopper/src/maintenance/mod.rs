//! Maintenance: rescuing jobs whose worker died, and pruning old jobs, each
//! a periodic task on one pool at a time, under a named lease of its own.

use std::time::Duration;

use crate::job::JobState;

pub(crate) mod pruner;
pub(crate) mod rescuer;

pub(crate) use pruner::prune;

/// The lease that decides which pool, among all sharing the database,
/// rescues jobs whose worker died.
///
/// ```
/// assert_eq!(hopper::MAINTENANCE_LEASE, "maintenance");
/// ```
pub const MAINTENANCE_LEASE: &str = "maintenance";

/// The lease that decides which pool, among all sharing the database,
/// prunes old jobs.
///
/// ```
/// assert_eq!(hopper::maintenance::PRUNE_LEASE, "prune");
/// ```
pub const PRUNE_LEASE: &str = "prune";

/// Rows deleted per statement when pruning, so pruning never holds the
/// database for long.
pub const PRUNE_BATCH: u32 = 1_000;

/// How long ended jobs are kept before pruning deletes them.
///
/// ```
/// use std::time::Duration;
/// let r = hopper::Retention::default();
/// assert_eq!(r.finished, Duration::from_secs(7 * 86_400));
/// assert_eq!(r.failed, Duration::from_secs(30 * 86_400));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// How long `finished` jobs are kept (default 7 days).
    pub finished: Duration,
    /// How long `failed` jobs, and resolved alert incidents, are kept
    /// (default 30 days).
    pub failed: Duration,
    /// How long `cancelled` jobs are kept (default 30 days).
    pub cancelled: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        const DAY: u64 = 86_400;
        Self {
            finished: Duration::from_secs(7 * DAY),
            failed: Duration::from_secs(30 * DAY),
            cancelled: Duration::from_secs(30 * DAY),
        }
    }
}

impl Retention {
    /// Keeps every ended job for `age`.
    ///
    /// ```
    /// let r = hopper::Retention::all(std::time::Duration::from_secs(60));
    /// assert_eq!(r.finished, r.failed);
    /// ```
    pub fn all(age: Duration) -> Self {
        Self {
            finished: age,
            failed: age,
            cancelled: age,
        }
    }

    /// Each ended state with how long its jobs are kept.
    fn ages(&self) -> [(JobState, Duration); 3] {
        [
            (JobState::Finished, self.finished),
            (JobState::Failed, self.failed),
            (JobState::Cancelled, self.cancelled),
        ]
    }
}
