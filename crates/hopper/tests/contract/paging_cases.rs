//! Listing jobs a page at a time, and counting them by type: through
//! [`hopper::Hopper`], so that the handle and every store's `list` and
//! `counts_by_type` are held to their documented behaviour together.

use std::time::Duration;

use hopper::store::{DEFAULT_PAGE_SIZE, JobFilter, MAX_PAGE_SIZE, Outcome, StoreError, TypeCount};
use hopper::{DispatchOptions, Hopper, JobId, JobState};

use crate::backends::TestDb;
use crate::cases::{claim_at, on_test_clock};
use crate::common::*;
use crate::store_cases::end_due_jobs;

/// Every page `filter` lists, from its `before` on, as the ids of each.
/// Each page but the last is full and its `next` is its last id; the last
/// page's `next` is `None`.
async fn pages(hopper: &Hopper, mut filter: JobFilter) -> Vec<Vec<JobId>> {
    let size = filter.page_size().unwrap() as usize;
    let mut pages = Vec::new();
    loop {
        let page = hopper.jobs(&filter).await.unwrap();
        let ids: Vec<JobId> = page.jobs.iter().map(|job| job.id).collect();
        assert!(ids.len() <= size, "a page of {} jobs at most", size);
        pages.push(ids);
        let Some(next) = page.next else {
            return pages;
        };
        let ids = &pages[pages.len() - 1];
        assert_eq!(ids.len(), size, "a page before another is full");
        assert_eq!(Some(&next), ids.last(), "the cursor is the page's last id");
        assert!(pages.len() <= 1_000, "paging ends");
        filter.before = Some(next);
    }
}

/// `ids`, newest (highest) first.
fn newest_first(ids: &[JobId]) -> Vec<JobId> {
    let mut ids = ids.to_vec();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids
}

/// `n` `noop` jobs dispatched to `queue`; their ids, oldest first.
async fn noops(hopper: &Hopper, queue: &str, n: usize) -> Vec<JobId> {
    hopper
        .dispatch_many::<Noop>(vec![(); n], DispatchOptions::new().queue(queue))
        .await
        .unwrap()
}

pub async fn paging_through_250_jobs_by_100_lists_every_job_once_newest_first(db: &TestDb) {
    let (_clock, hopper) = on_test_clock(db).await;
    let by_100 = || JobFilter {
        limit: Some(100),
        ..JobFilter::default()
    };
    assert_eq!(pages(&hopper, by_100()).await, [Vec::<JobId>::new()]);

    let mut ids = noops(&hopper, "default", 150).await;
    let exact = noops(&hopper, "exact", 100).await;
    ids.extend(&exact);
    let listed = pages(&hopper, by_100()).await;
    let sizes: Vec<usize> = listed.iter().map(Vec::len).collect();
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(
        listed.concat(),
        newest_first(&ids),
        "each job once, in order"
    );

    // A page that holds the last jobs exactly says so: no empty page follows.
    let exactly_one_page = JobFilter {
        queue: Some("exact".into()),
        ..by_100()
    };
    assert_eq!(
        pages(&hopper, exactly_one_page).await,
        [newest_first(&exact)]
    );
    // No limit means DEFAULT_PAGE_SIZE.
    let default = hopper.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(default.jobs.len(), DEFAULT_PAGE_SIZE as usize);
    assert_eq!(default, hopper.jobs(&by_100()).await.unwrap());
}

pub async fn paging_is_stable_while_jobs_are_dispatched_between_pages(db: &TestDb) {
    let (_clock, hopper) = on_test_clock(db).await;
    let old = noops(&hopper, "default", 250).await;
    let mut filter = JobFilter {
        limit: Some(100),
        ..JobFilter::default()
    };
    let mut seen = Vec::new();
    let mut added = Vec::new();
    loop {
        let page = hopper.jobs(&filter).await.unwrap();
        seen.extend(page.jobs.iter().map(|job| job.id));
        // New jobs arrive between every two pages.
        added.extend(noops(&hopper, "default", 30).await);
        let Some(next) = page.next else { break };
        filter.before = Some(next);
    }
    assert_eq!(seen, newest_first(&old), "the old jobs, each once");
    assert!(
        added.iter().all(|id| !seen.contains(id)),
        "no new job shows"
    );

    // A listing started afterwards begins with the newest job.
    let fresh = hopper.jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(fresh.jobs[0].id, *added.last().unwrap());
}

/// A dispatched job as a test keeps it, to hold listings against.
struct Dispatched {
    id: JobId,
    job_type: &'static str,
    queue: &'static str,
    state: JobState,
}

impl Dispatched {
    /// Whether `filter` lists this job (on some page).
    fn matches(&self, filter: &JobFilter) -> bool {
        filter.state.is_none_or(|state| state == self.state)
            && filter
                .queue
                .as_deref()
                .is_none_or(|queue| queue == self.queue)
            && filter
                .job_type
                .as_deref()
                .is_none_or(|t| t == self.job_type)
            && filter.before.is_none_or(|before| self.id < before)
    }
}

pub async fn filters_combine_with_the_cursor(db: &TestDb) {
    let (_clock, hopper) = on_test_clock(db).await;
    // 120 jobs across two types, three queues and two states.
    let mut jobs = Vec::new();
    for i in 0..120u64 {
        let queue = ["q0", "q1", "q2"][(i % 3) as usize];
        let options = DispatchOptions::new().queue(queue);
        let (id, job_type) = if i % 2 == 0 {
            (
                hopper.dispatch_with::<Noop>((), options).await.unwrap(),
                "noop",
            )
        } else {
            (
                hopper.dispatch_with::<Slow>(i, options).await.unwrap(),
                "slow",
            )
        };
        let mut state = JobState::Pending;
        if i % 5 == 0 {
            assert!(hopper.cancel(id).await.unwrap());
            state = JobState::Cancelled;
        }
        jobs.push(Dispatched {
            id,
            job_type,
            queue,
            state,
        });
    }
    let middle = Some(jobs[70].id);
    let filters = [
        JobFilter {
            job_type: Some("slow".into()),
            limit: Some(7),
            ..JobFilter::default()
        },
        JobFilter {
            state: Some(JobState::Pending),
            queue: Some("q1".into()),
            job_type: Some("noop".into()),
            limit: Some(3),
            ..JobFilter::default()
        },
        JobFilter {
            state: Some(JobState::Cancelled),
            before: middle,
            limit: Some(2),
            ..JobFilter::default()
        },
        JobFilter {
            queue: Some("q2".into()),
            before: middle,
            ..JobFilter::default()
        },
        JobFilter {
            queue: Some("nowhere".into()),
            limit: Some(1),
            ..JobFilter::default()
        },
    ];
    for filter in filters {
        let wanted: Vec<JobId> = jobs
            .iter()
            .filter(|job| job.matches(&filter))
            .map(|job| job.id)
            .collect();
        assert_eq!(
            pages(&hopper, filter.clone()).await.concat(),
            newest_first(&wanted),
            "{filter:?}"
        );
    }
}

pub async fn a_page_size_out_of_range_is_refused(db: &TestDb) {
    let (_clock, hopper) = on_test_clock(db).await;
    let ids = noops(&hopper, "default", 3).await;
    for limit in [0, MAX_PAGE_SIZE + 1, u32::MAX] {
        let filter = JobFilter {
            limit: Some(limit),
            ..JobFilter::default()
        };
        let refused = hopper.jobs(&filter).await.unwrap_err();
        assert!(
            matches!(refused, StoreError::PageSize { limit: l } if l == limit),
            "{refused}"
        );
        assert!(
            hopper.store().list(&filter).await.is_err(),
            "the store refuses it too"
        );
    }
    let largest = JobFilter {
        limit: Some(MAX_PAGE_SIZE),
        ..JobFilter::default()
    };
    let page = hopper.jobs(&largest).await.unwrap();
    assert_eq!((page.jobs.len(), page.next), (3, None));
    assert_eq!(page.jobs[0].id, ids[2]);
}

pub async fn job_counts_per_type_and_state_match_the_dispatched_jobs(db: &TestDb) {
    let (_clock, hopper) = on_test_clock(db).await;
    assert!(hopper.counts_by_type().await.unwrap().is_empty());
    let store = hopper.store().clone();
    let now = hopper.now();
    let on = |queue: &str| DispatchOptions::new().queue(queue);

    hopper
        .dispatch_many::<Noop>(vec![(); 3], on("finish"))
        .await
        .unwrap();
    hopper
        .dispatch_many::<Slow>([1, 2], on("finish"))
        .await
        .unwrap();
    end_due_jobs(&*store, "finish", now, 5, Outcome::Finished).await;
    let doomed = ["a".to_owned(), "b".to_owned()];
    hopper
        .dispatch_many::<Doomed>(doomed, on("fail"))
        .await
        .unwrap();
    let failed = Outcome::Failed { error: "no".into() };
    end_due_jobs(&*store, "fail", now, 2, failed).await;
    hopper.dispatch_with::<Slow>(3, on("run")).await.unwrap();
    let claim = claim_at("run", "w", 1, now, Duration::from_secs(60));
    assert_eq!(store.claim(claim).await.unwrap().len(), 1);
    let waiting = hopper
        .dispatch_many::<Noop>(vec![(); 4], on("default"))
        .await
        .unwrap();
    hopper.dispatch::<Slow>(4).await.unwrap();
    assert!(hopper.cancel(waiting[0]).await.unwrap());

    let count = |job_type: &str, state, count| TypeCount {
        job_type: job_type.into(),
        state,
        count,
    };
    // By type, then state by name.
    assert_eq!(
        hopper.counts_by_type().await.unwrap(),
        [
            count("doomed", JobState::Failed, 2),
            count("noop", JobState::Cancelled, 1),
            count("noop", JobState::Finished, 3),
            count("noop", JobState::Pending, 3),
            count("slow", JobState::Finished, 2),
            count("slow", JobState::Pending, 1),
            count("slow", JobState::Started, 1),
        ]
    );
    // The same jobs the counts per queue count.
    let by_queue: u64 = hopper.counts().await.unwrap().iter().map(|c| c.count).sum();
    let by_type: u64 = store
        .counts_by_type()
        .await
        .unwrap()
        .iter()
        .map(|c| c.count)
        .sum();
    assert_eq!((by_queue, by_type), (13, 13));

    // A count that drops to zero is left out.
    assert!(hopper.delete(waiting[0]).await.unwrap());
    let after = hopper.counts_by_type().await.unwrap();
    assert!(
        !after.contains(&count("noop", JobState::Cancelled, 1)) && after.len() == 6,
        "{after:?}"
    );
}
