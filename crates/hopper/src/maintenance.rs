//! Maintenance: rescuing jobs whose worker died, and pruning old jobs.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::job::JobState;
use crate::store::{Store, StoreError};

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
    /// How long `failed` jobs are kept (default 30 days).
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

    fn ages(&self) -> [(JobState, Duration); 3] {
        [
            (JobState::Finished, self.finished),
            (JobState::Failed, self.failed),
            (JobState::Cancelled, self.cancelled),
        ]
    }
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
