//! Bulk actions by filter: counting what a filter matches, then retrying,
//! cancelling or deleting every matching job, page by page, skipping the
//! jobs an action does not apply to.

use chrono::Duration;
use hopper::bulk::BulkAction;
use hopper::{JobFilter, JobState};

use crate::backends::TestDb;
use crate::common::*;

fn filter(queue: Option<&str>, state: Option<JobState>) -> JobFilter {
    JobFilter {
        queue: queue.map(str::to_owned),
        state,
        ..JobFilter::default()
    }
}

pub async fn bulk_actions_apply_to_every_job_a_filter_matches_and_skip_the_rest(db: &TestDb) {
    let hopper = builder().connect(db.url()).await.unwrap();
    let store = hopper.store().clone();
    let now = hopper.now();
    let old = now - Duration::hours(2);
    // 1,200 jobs in "bulk" (more than two pages), half of them two hours
    // old; 3 in "other".
    let jobs: Vec<_> = (0..1_200)
        .map(|n| {
            let mut job = new_job("noop", "bulk", now);
            if n % 2 == 0 {
                job.created_at = old;
            }
            job
        })
        .chain((0..3).map(|_| new_job("noop", "other", now)))
        .collect();
    store.insert(&jobs).await.unwrap();

    let in_bulk = filter(Some("bulk"), None);
    assert_eq!(hopper.count_jobs(&in_bulk).await.unwrap(), 1_200);
    let older = JobFilter {
        created_before: Some(now - Duration::hours(1)),
        ..in_bulk.clone()
    };
    assert_eq!(hopper.count_jobs(&older).await.unwrap(), 600);
    let typed = JobFilter {
        job_type: Some("noop".into()),
        ..JobFilter::default()
    };
    assert_eq!(hopper.count_jobs(&typed).await.unwrap(), 1_203);

    // Cancel every job of the queue: all 1,200, over three pages.
    let done = hopper.bulk(BulkAction::Cancel, &in_bulk).await.unwrap();
    assert_eq!(
        (done.matched, done.applied, done.skipped),
        (1_200, 1_200, 0)
    );
    let cancelled = filter(Some("bulk"), Some(JobState::Cancelled));
    assert_eq!(hopper.count_jobs(&cancelled).await.unwrap(), 1_200);
    assert_eq!(
        hopper
            .count_jobs(&filter(Some("other"), Some(JobState::Pending)))
            .await
            .unwrap(),
        3,
        "other queues are left alone"
    );

    // Retry the old ones back: pending again.
    let old_cancelled = JobFilter {
        created_before: Some(now - Duration::hours(1)),
        ..cancelled.clone()
    };
    let done = hopper
        .bulk(BulkAction::Retry, &old_cancelled)
        .await
        .unwrap();
    assert_eq!((done.matched, done.applied), (600, 600));
    assert_eq!(
        hopper
            .count_jobs(&filter(Some("bulk"), Some(JobState::Pending)))
            .await
            .unwrap(),
        600
    );

    // A retry of the whole queue skips the pending ones.
    let done = hopper.bulk(BulkAction::Retry, &in_bulk).await.unwrap();
    assert_eq!(
        (done.matched, done.applied, done.skipped),
        (1_200, 600, 600)
    );

    // Delete everything in the queue: nothing there runs, so all go.
    let done = hopper.bulk(BulkAction::Delete, &in_bulk).await.unwrap();
    assert_eq!((done.matched, done.applied), (1_200, 1_200));
    assert_eq!(hopper.count_jobs(&in_bulk).await.unwrap(), 0);
    assert_eq!(hopper.count_jobs(&typed).await.unwrap(), 3);
}
