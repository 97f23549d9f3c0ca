//! Bulk actions: retry, cancel or delete every job a filter matches (type,
//! queue, state, age), worked through page by page on the server, each job
//! as [`Hopper::retry`], [`Hopper::cancel`] or [`Hopper::delete`] would
//! treat it alone. The dashboard, the API and the console all call
//! [`Hopper::bulk`]; [`Hopper::count_jobs`] gives the count a confirmation
//! shows first.

use serde::{Deserialize, Serialize};

use crate::client::Hopper;
use crate::job::{JobId, JobState};
use crate::store::{JobFilter, MAX_PAGE_SIZE, StoreError};

/// What to do with every matching job.
///
/// ```
/// use hopper::bulk::BulkAction;
/// assert_eq!("retry".parse::<BulkAction>().unwrap(), BulkAction::Retry);
/// assert!("explode".parse::<BulkAction>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Put failed and cancelled jobs back to pending ([`Hopper::retry`]).
    Retry,
    /// Cancel pending jobs, and ask running ones to stop ([`Hopper::cancel`]).
    Cancel,
    /// Delete jobs that are not running ([`Hopper::delete`]).
    Delete,
}

impl BulkAction {
    /// Every action, as named on the command line and in the API.
    pub const ALL: [BulkAction; 3] = [Self::Retry, Self::Cancel, Self::Delete];

    /// The action's name.
    ///
    /// ```
    /// assert_eq!(hopper::bulk::BulkAction::Delete.as_str(), "delete");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Cancel => "cancel",
            Self::Delete => "delete",
        }
    }

    /// The action's name as a title: `Retry`, `Cancel` or `Delete`.
    ///
    /// ```
    /// assert_eq!(hopper::bulk::BulkAction::Cancel.title(), "Cancel");
    /// ```
    pub fn title(self) -> &'static str {
        match self {
            Self::Retry => "Retry",
            Self::Cancel => "Cancel",
            Self::Delete => "Delete",
        }
    }

    /// What a job it changed became: `retried`, `cancelled` or `deleted`.
    ///
    /// ```
    /// assert_eq!(hopper::bulk::BulkAction::Retry.done(), "retried");
    /// ```
    pub fn done(self) -> &'static str {
        match self {
            Self::Retry => "retried",
            Self::Cancel => "cancelled",
            Self::Delete => "deleted",
        }
    }

    /// Whether a job in `state` is one this action changes.
    ///
    /// ```
    /// use hopper::{JobState, bulk::BulkAction};
    /// assert!(BulkAction::Retry.applies_to(JobState::Failed));
    /// assert!(!BulkAction::Delete.applies_to(JobState::Started));
    /// ```
    pub fn applies_to(self, state: JobState) -> bool {
        match self {
            Self::Retry => matches!(state, JobState::Failed | JobState::Cancelled),
            Self::Cancel => matches!(state, JobState::Pending | JobState::Started),
            Self::Delete => state != JobState::Started,
        }
    }
}

impl std::str::FromStr for BulkAction {
    type Err = UnknownAction;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
            .ok_or_else(|| UnknownAction(name.to_owned()))
    }
}

/// A bulk action's name that is none of [`BulkAction::ALL`].
///
/// ```
/// let e = "nuke".parse::<hopper::bulk::BulkAction>().unwrap_err();
/// assert_eq!(e.to_string(), "unknown bulk action \"nuke\": expected retry, cancel or delete");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("unknown bulk action {0:?}: expected retry, cancel or delete")]
pub struct UnknownAction(pub String);

/// What a bulk action did.
///
/// ```
/// let done = hopper::bulk::BulkOutcome::default();
/// assert_eq!(done.matched, done.applied + done.skipped);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkOutcome {
    /// Jobs the filter matched when they were read.
    pub matched: u64,
    /// Jobs the action changed.
    pub applied: u64,
    /// Jobs it left as they were: in a state it does not apply to, or
    /// changed meanwhile (a retry whose unique key another live job holds,
    /// a job that started before its cancel or deletion).
    pub skipped: u64,
}

impl Hopper {
    /// How many jobs match `filter` (its state, queue, type, age and
    /// cursor; its page size does not count).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = hopper::Hopper::builder().connect("sqlite::memory:").await.unwrap();
    /// let failed = hopper::JobFilter { state: Some(hopper::JobState::Failed), ..Default::default() };
    /// assert_eq!(hopper.count_jobs(&failed).await.unwrap(), 0);
    /// # });
    /// ```
    pub async fn count_jobs(&self, filter: &JobFilter) -> Result<u64, StoreError> {
        self.store().count_jobs(filter).await
    }

    /// Applies `action` to every job `filter` matches, newest first, a
    /// page of [`MAX_PAGE_SIZE`] jobs at a time, each job as the one-job
    /// call would (its events, wake-ups and batch counts included; the
    /// batches and workflows those changes touch are settled once a page). Jobs
    /// the action does not apply to are skipped. Stops at the first
    /// database error, with what it did so far lost to the caller but kept
    /// in the database; calling it again goes on where it stopped.
    ///
    /// ```
    /// # use hopper::{Hopper, Job, JobContext, JobResult, JobFilter, bulk::BulkAction};
    /// # struct Ping;
    /// # impl Job for Ping {
    /// #     const TYPE: &'static str = "ping";
    /// #     type Payload = u32;
    /// #     async fn handle(&self, _: u32, _: JobContext) -> JobResult { Ok(()) }
    /// # }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let hopper = Hopper::builder().register(Ping).unwrap().connect("sqlite::memory:").await.unwrap();
    /// hopper.dispatch_many::<Ping>(0..3, Default::default()).await.unwrap();
    /// let pings = JobFilter { job_type: Some("ping".into()), ..Default::default() };
    /// let done = hopper.bulk(BulkAction::Cancel, &pings).await.unwrap();
    /// assert_eq!((done.matched, done.applied), (3, 3));
    /// # });
    /// ```
    pub async fn bulk(
        &self,
        action: BulkAction,
        filter: &JobFilter,
    ) -> Result<BulkOutcome, StoreError> {
        let mut outcome = BulkOutcome::default();
        let mut page_filter = JobFilter {
            limit: Some(MAX_PAGE_SIZE),
            ..filter.clone()
        };
        loop {
            let page = self.store().list(&page_filter).await?;
            let mut ended = false;
            for job in &page.jobs {
                outcome.matched += 1;
                let applied = if action.applies_to(job.state) {
                    let (applied, ends) = self.apply(action, job.id).await?;
                    ended |= ends;
                    applied
                } else {
                    false
                };
                if applied {
                    outcome.applied += 1;
                } else {
                    outcome.skipped += 1;
                }
            }
            if ended {
                crate::batch::settle(self).await;
            }
            match page.next {
                Some(next) => page_filter.before = Some(next),
                None => return Ok(outcome),
            }
        }
    }

    /// Applies `action` to job `id`: whether it changed the job, and
    /// whether a batch may need settling for it (it ended or left one).
    async fn apply(&self, action: BulkAction, id: JobId) -> Result<(bool, bool), StoreError> {
        match action {
            BulkAction::Retry => match self.retry(id).await {
                Err(StoreError::UniqueKeyHeld { .. }) => Ok((false, false)),
                done => done.map(|retried| (retried, false)),
            },
            BulkAction::Cancel => self.cancel_one(id).await,
            BulkAction::Delete => {
                let deleted = self.store().delete(id).await?;
                Ok((deleted, deleted))
            }
        }
    }
}
