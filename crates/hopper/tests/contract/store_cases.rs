//! The storage contract called directly: each case opens a store on a fresh
//! database and holds one [`Store`] method to its documented behaviour,
//! edge cases included, with no worker pool in between. Every time a case
//! hands the store is explicit, counted from [`t0`]: nothing waits on a clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hopper::store::{
    AttemptError, Claim, ClaimedJob, CompleteRequest, Completion, ConcurrencyReport,
    DEFAULT_PAGE_SIZE, FlowRequest, JobFilter, JobRecord, MAX_PAGE_SIZE, MinuteCount, NewAlert,
    NewJob, Outcome, PauseRequest, PruneRequest, QueueFlow, QueueStats, RetryRequest,
    ScheduleState, Sequence, Store, Tick, TickRequest, TypeOutcomes, Wakeup, WorkerConcurrency,
};
use hopper::{JobId, JobState};

use crate::backends::TestDb;
use crate::cases::claim_at;
use crate::common::*;

/// A fixed time on a whole minute (2027-01-15 08:00 UTC), so that minute
/// buckets are known in advance.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a time in range")
}

/// `secs` seconds after [`t0`] (before it, when negative).
fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// Claims every job of `queue` due at `now` (`expected` of them), records
/// that their handlers started and ends each run with `outcome` at `now`,
/// through the store alone. Returns their ids in claim order.
pub async fn end_due_jobs(
    store: &dyn Store,
    queue: &str,
    now: DateTime<Utc>,
    expected: usize,
    outcome: Outcome,
) -> Vec<JobId> {
    let limit = u32::try_from(expected + 1).unwrap();
    let claimed = store
        .claim(claim_at(queue, "w", limit, now, Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(claimed.len(), expected, "jobs of {queue} due at {now}");
    let claims: Vec<Claim> = claimed.iter().map(ClaimedJob::claim).collect();
    assert_eq!(store.mark_started(&claims).await.unwrap(), expected as u64);
    let ended: Vec<Completion> = claimed
        .iter()
        .map(|job| Completion {
            claim: job.claim(),
            attempt: job.attempt,
            outcome: outcome.clone(),
        })
        .collect();
    let request = CompleteRequest {
        completions: &ended,
        ended_at: now,
    };
    assert_eq!(store.complete(request).await.unwrap(), expected as u64);
    claimed.iter().map(|job| job.id).collect()
}

/// Stores one job; its id.
async fn stored(store: &dyn Store, job: NewJob) -> JobId {
    store.insert(&[job]).await.unwrap()[0]
}

/// Job `id`, which must exist.
async fn record(store: &dyn Store, id: JobId) -> JobRecord {
    store.get(id).await.unwrap().expect("job kept")
}

/// How many jobs the store holds, in every queue and state.
async fn total(store: &dyn Store) -> u64 {
    store.counts().await.unwrap().iter().map(|c| c.count).sum()
}

/// The ids `filter` lists, in the order listed.
async fn listed(store: &dyn Store, filter: JobFilter) -> Vec<JobId> {
    let page = store.list(&filter).await.unwrap();
    page.jobs.iter().map(|job| job.id).collect()
}

/// One job in each state, each in the queue named after its state and due
/// at `when`: the started one claimed (leased for a minute, its handler
/// started), the others ended, all at `when`.
struct OneInEachState {
    pending: JobId,
    started: JobId,
    finished: JobId,
    failed: JobId,
    cancelled: JobId,
}

impl OneInEachState {
    async fn store(store: &dyn Store, when: DateTime<Utc>) -> Self {
        let queues = ["pending", "started", "finished", "failed", "cancelled"];
        let jobs: Vec<NewJob> = queues.iter().map(|q| new_job("noop", q, when)).collect();
        let ids = store.insert(&jobs).await.unwrap();
        let claimed = store
            .claim(claim_at("started", "w", 1, when, Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(store.mark_started(&[claimed[0].claim()]).await.unwrap(), 1);
        end_due_jobs(store, "finished", when, 1, Outcome::Finished).await;
        let failed = Outcome::Failed { error: "no".into() };
        end_due_jobs(store, "failed", when, 1, failed).await;
        assert!(store.cancel(ids[4], when).await.unwrap());
        Self {
            pending: ids[0],
            started: ids[1],
            finished: ids[2],
            failed: ids[3],
            cancelled: ids[4],
        }
    }

    fn all(&self) -> [JobId; 5] {
        [
            self.pending,
            self.started,
            self.finished,
            self.failed,
            self.cancelled,
        ]
    }
}

pub async fn migrating_a_migrated_store_again_changes_nothing(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let id = stored(&*store, new_job("noop", "default", t0())).await;
    let job = record(&*store, id).await;
    let applied = hopper::store::migration_status(db.url()).await.unwrap();
    assert!(!applied.is_empty());
    assert!(
        applied.iter().all(|m| m.applied_at.is_some()),
        "{applied:?}"
    );

    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        hopper::store::migration_status(db.url()).await.unwrap(),
        applied,
        "no migration applied again"
    );
    assert_eq!(record(&*store, id).await, job, "the data is kept");
    let next = stored(&*store, new_job("noop", "default", t0())).await;
    assert!(next > id);
}

pub async fn inserting_no_jobs_stores_nothing(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert_eq!(store.insert(&[]).await.unwrap(), Vec::<JobId>::new());
    assert_eq!(total(&*store).await, 0);
}

pub async fn inserted_jobs_get_ids_in_order_and_a_live_unique_key_stands_for_its_job(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let plain = |payload: &str| NewJob {
        payload: payload.into(),
        ..new_job("noop", "default", t0())
    };
    // A job with a unique key waits in the queue named after its key.
    let keyed = |key: &str, payload: &str| NewJob {
        payload: payload.into(),
        unique_key: Some(key.into()),
        partition_key: None,
        ..new_job("noop", key, t0())
    };

    // Jobs alike but for their payloads, then jobs differing in everything.
    let alike: Vec<NewJob> = (0..4).map(|i| plain(&i.to_string())).collect();
    let varied: Vec<NewJob> = (0..4i32)
        .map(|i| NewJob {
            job_type: format!("type{i}"),
            queue: format!("queue{}", i % 2),
            priority: -i,
            max_attempts: 1 + i as u32,
            available_at: at(i64::from(i)),
            ..plain(&format!("[{i}]"))
        })
        .collect();
    for jobs in [alike, varied] {
        let ids = store.insert(&jobs).await.unwrap();
        assert_eq!(ids.len(), jobs.len());
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        for (id, job) in ids.iter().zip(&jobs) {
            let kept = record(&*store, *id).await;
            assert_eq!(
                (
                    &kept.job_type,
                    &kept.queue,
                    &kept.payload,
                    kept.priority,
                    kept.max_attempts,
                    kept.available_at
                ),
                (
                    &job.job_type,
                    &job.queue,
                    &job.payload,
                    job.priority,
                    job.max_attempts,
                    job.available_at
                ),
                "job {id}"
            );
        }
    }
    assert_eq!(total(&*store).await, 8);

    // A job whose key an earlier job of the same call holds gets its id.
    let mixed = [
        plain("p1"),
        keyed("k", "k1"),
        plain("p2"),
        keyed("k", "k2"),
        keyed("other", "o"),
    ];
    let ids = store.insert(&mixed).await.unwrap();
    assert_eq!(ids.len(), 5);
    assert_eq!(ids[3], ids[1], "{ids:?}");
    assert!(
        ids[0] < ids[1] && ids[1] < ids[2] && ids[2] < ids[4],
        "{ids:?}"
    );
    assert_eq!(
        record(&*store, ids[1]).await.payload,
        "k1",
        "the first kept"
    );
    assert_eq!(total(&*store).await, 12);
    let holder = ids[1];

    // A pending holder, then a started one, stands for a later insert.
    assert_eq!(stored(&*store, keyed("k", "k3")).await, holder);
    let claimed = store
        .claim(claim_at("k", "w", 10, t0(), Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(stored(&*store, keyed("k", "k4")).await, holder);
    assert_eq!(total(&*store).await, 12);

    // Once its holder finished, or was cancelled, the key is free.
    let finish = Completion {
        claim: claimed[0].claim(),
        attempt: 1,
        outcome: Outcome::Finished,
    };
    let request = CompleteRequest {
        completions: &[finish],
        ended_at: t0(),
    };
    assert_eq!(store.complete(request).await.unwrap(), 1);
    let second = stored(&*store, keyed("k", "k5")).await;
    assert!(second > ids[4]);
    let job = record(&*store, second).await;
    assert_eq!(
        (job.state, job.unique_key.as_deref(), job.payload.as_str()),
        (JobState::Pending, Some("k"), "k5")
    );
    assert!(store.cancel(second, t0()).await.unwrap());
    let third = store.insert(&[keyed("k", "k6")]).await.unwrap();
    assert!(third[0] > second);

    // All or none: a job every schema refuses (no attempts) takes the
    // others of its call with it, keyed or not.
    let refused = NewJob {
        max_attempts: 0,
        ..plain("refused")
    };
    let before = total(&*store).await;
    assert!(store.insert(&[plain("ok"), refused.clone()]).await.is_err());
    assert!(
        store
            .insert(&[keyed("fresh", "f1"), refused])
            .await
            .is_err()
    );
    assert_eq!(total(&*store).await, before, "nothing stored");
    let fresh = stored(&*store, keyed("fresh", "f2")).await;
    assert_eq!(
        record(&*store, fresh).await.payload,
        "f2",
        "the refused call holds no key"
    );
}

pub async fn a_stored_job_reads_back_whole_and_a_missing_one_is_none(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert_eq!(store.get(1).await.unwrap(), None);
    let job = NewJob {
        job_type: "report".into(),
        queue: "reports".into(),
        payload: r#"{"to":"zoë","n":[1,2]}"#.into(),
        priority: -3,
        max_attempts: 2,
        available_at: at(30),
        created_at: t0(),
        unique_key: Some("report:1".into()),
        partition_key: None,
        sequence: None,
        trace_context: None,
    };
    let id = stored(&*store, job.clone()).await;
    let pending = JobRecord {
        id,
        job_type: job.job_type,
        queue: job.queue,
        payload: job.payload,
        state: JobState::Pending,
        priority: -3,
        attempts: 0,
        max_attempts: 2,
        available_at: at(30),
        created_at: t0(),
        started_at: None,
        finished_at: None,
        locked_by: None,
        locked_until: None,
        last_error: None,
        errors: Vec::new(),
        unique_key: job.unique_key,
        output: None,
        progress: None,
        batch_id: None,
        waiting_on: 0,
    };
    assert_eq!(store.get(id).await.unwrap(), Some(pending.clone()));
    assert_eq!(store.get(id + 1).await.unwrap(), None);

    // Claimed: started, leased to its worker until now plus the lease.
    let lease = Duration::from_secs(60);
    let first = store
        .claim(claim_at("reports", "w1", 1, at(30), lease))
        .await
        .unwrap();
    let running = record(&*store, id).await;
    assert_eq!(
        (
            running.state,
            running.attempts,
            running.locked_by.as_deref(),
            running.locked_until
        ),
        (JobState::Started, 1, Some("w1"), Some(at(90)))
    );
    assert!(running.started_at.is_some());

    // Each failure is kept, oldest first.
    let end = |job: &ClaimedJob, outcome| Completion {
        claim: job.claim(),
        attempt: job.attempt,
        outcome,
    };
    let retry = end(
        &first[0],
        Outcome::Retry {
            at: at(200),
            error: "try later".into(),
        },
    );
    let request = CompleteRequest {
        completions: &[retry],
        ended_at: at(40),
    };
    assert_eq!(store.complete(request).await.unwrap(), 1);
    let first_error = AttemptError {
        attempt: 1,
        at: at(40),
        error: "try later".into(),
    };
    let waiting = record(&*store, id).await;
    assert_eq!(
        JobRecord {
            started_at: None,
            ..waiting.clone()
        },
        JobRecord {
            attempts: 1,
            available_at: at(200),
            last_error: Some("try later".into()),
            errors: vec![first_error.clone()],
            ..pending.clone()
        }
    );
    assert!(waiting.started_at.is_some());

    let second = store
        .claim(claim_at("reports", "w2", 1, at(200), lease))
        .await
        .unwrap();
    let fail = end(
        &second[0],
        Outcome::Failed {
            error: "gave up".into(),
        },
    );
    let request = CompleteRequest {
        completions: &[fail],
        ended_at: at(210),
    };
    assert_eq!(store.complete(request).await.unwrap(), 1);
    let failed = record(&*store, id).await;
    assert_eq!(
        JobRecord {
            started_at: None,
            ..failed
        },
        JobRecord {
            state: JobState::Failed,
            attempts: 2,
            available_at: at(200),
            finished_at: Some(at(210)),
            last_error: Some("gave up".into()),
            errors: vec![
                first_error,
                AttemptError {
                    attempt: 2,
                    at: at(210),
                    error: "gave up".into(),
                }
            ],
            ..pending
        }
    );
}

pub async fn listing_filters_by_state_queue_type_and_id_newest_first(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let all = JobFilter::default;
    assert!(listed(&*store, all()).await.is_empty());
    let jobs: Vec<NewJob> = [
        ("a", "q1"),
        ("b", "q1"),
        ("a", "q2"),
        ("b", "q2"),
        ("a", "q1"),
        ("b", "q2"),
    ]
    .iter()
    .map(|(job_type, queue)| new_job(job_type, queue, t0()))
    .collect();
    let id = store.insert(&jobs).await.unwrap();
    for cancelled in [id[1], id[4]] {
        assert!(store.cancel(cancelled, t0()).await.unwrap());
    }
    let newest_first = |picked: &[usize]| picked.iter().map(|&i| id[i]).collect::<Vec<_>>();

    assert_eq!(
        listed(&*store, all()).await,
        newest_first(&[5, 4, 3, 2, 1, 0])
    );
    let cases = [
        (
            JobFilter {
                state: Some(JobState::Cancelled),
                ..all()
            },
            vec![4, 1],
        ),
        (
            JobFilter {
                state: Some(JobState::Pending),
                ..all()
            },
            vec![5, 3, 2, 0],
        ),
        (
            JobFilter {
                state: Some(JobState::Finished),
                ..all()
            },
            vec![],
        ),
        (
            JobFilter {
                queue: Some("q1".into()),
                ..all()
            },
            vec![4, 1, 0],
        ),
        (
            JobFilter {
                queue: Some("elsewhere".into()),
                ..all()
            },
            vec![],
        ),
        (
            JobFilter {
                job_type: Some("b".into()),
                ..all()
            },
            vec![5, 3, 1],
        ),
        (
            JobFilter {
                before: Some(id[3]),
                ..all()
            },
            vec![2, 1, 0],
        ),
        (
            JobFilter {
                before: Some(id[0]),
                ..all()
            },
            vec![],
        ),
        (
            JobFilter {
                limit: Some(2),
                ..all()
            },
            vec![5, 4],
        ),
        (
            JobFilter {
                state: Some(JobState::Pending),
                queue: Some("q2".into()),
                job_type: Some("b".into()),
                created_before: None,
                batch_id: None,
                before: Some(id[5]),
                limit: Some(1),
            },
            vec![3],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(
            listed(&*store, filter.clone()).await,
            newest_first(&want),
            "{filter:?}"
        );
    }

    // Listed jobs are whole.
    let newest = store.list(&all()).await.unwrap().jobs.remove(0);
    assert_eq!(newest, record(&*store, id[5]).await);

    // No limit means a page of DEFAULT_PAGE_SIZE jobs.
    let more = store
        .insert(&vec![new_job("c", "q3", t0()); 100])
        .await
        .unwrap();
    let page = listed(&*store, all()).await;
    assert_eq!(page.len(), DEFAULT_PAGE_SIZE as usize);
    assert_eq!(page[0], *more.last().unwrap());
    assert!(page.windows(2).all(|w| w[0] > w[1]));
    let every = JobFilter {
        limit: Some(MAX_PAGE_SIZE),
        ..all()
    };
    assert_eq!(listed(&*store, every).await.len(), 106);
}

/// Every queue's stats at `now`, by queue name.
async fn stats_at(store: &dyn Store, now: DateTime<Utc>) -> Vec<QueueStats> {
    let mut stats = store.queue_stats(now).await.unwrap();
    stats.sort_by(|a, b| a.queue.cmp(&b.queue));
    stats
}

fn stats(queue: &str, due: u64, oldest_due_at: Option<DateTime<Utc>>, paused: bool) -> QueueStats {
    QueueStats {
        queue: queue.into(),
        due,
        oldest_due_at,
        paused,
    }
}

pub async fn queue_stats_count_due_pending_jobs_and_show_paused_queues(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert!(store.queue_stats(t0()).await.unwrap().is_empty());
    let jobs = [
        new_job("noop", "a", t0()),
        new_job("noop", "a", at(10)),
        new_job("noop", "a", at(100)),
        new_job("noop", "b", at(100)),
        new_job("noop", "c", t0()),
    ];
    store.insert(&jobs).await.unwrap();
    // `c`'s one job runs: a started job is not waiting.
    let claimed = store
        .claim(claim_at("c", "w", 1, t0(), Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // `d` has no jobs, only a pause.
    let pause = |queue| PauseRequest {
        queue,
        paused: true,
        now: t0(),
    };
    store.set_paused(pause("d")).await.unwrap();

    assert_eq!(
        stats_at(&*store, at(9)).await,
        [stats("a", 1, Some(t0()), false), stats("d", 0, None, true)]
    );
    assert_eq!(
        stats_at(&*store, at(10)).await,
        [stats("a", 2, Some(t0()), false), stats("d", 0, None, true)],
        "a job due at `now` is due"
    );
    assert_eq!(
        stats_at(&*store, at(100)).await,
        [
            stats("a", 3, Some(t0()), false),
            stats("b", 1, Some(at(100)), false),
            stats("d", 0, None, true),
        ]
    );
    store.set_paused(pause("a")).await.unwrap();
    assert_eq!(
        stats_at(&*store, at(10)).await,
        [stats("a", 2, Some(t0()), true), stats("d", 0, None, true)],
        "a paused queue's jobs are still counted"
    );
}

pub async fn a_paused_queue_gives_no_claims_while_other_queues_go_on(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let jobs = [
        new_job("noop", "a", t0()),
        new_job("noop", "a", t0()),
        new_job("noop", "b", t0()),
    ];
    let ids = store.insert(&jobs).await.unwrap();
    let set = |queue, paused, now| PauseRequest { queue, paused, now };
    let claim = |queue| claim_at(queue, "w", 10, at(5), Duration::from_secs(60));

    store.set_paused(set("a", true, t0())).await.unwrap();
    store.set_paused(set("a", true, at(1))).await.unwrap();
    assert!(store.claim(claim("a")).await.unwrap().is_empty());
    assert_eq!(record(&*store, ids[0]).await.state, JobState::Pending);
    let other = store.claim(claim("b")).await.unwrap();
    assert_eq!(other.len(), 1, "another queue is claimed from");
    assert_eq!(
        stats_at(&*store, at(5)).await,
        [stats("a", 2, Some(t0()), true)]
    );

    store.set_paused(set("a", false, at(2))).await.unwrap();
    let resumed = store.claim(claim("a")).await.unwrap();
    let mut resumed: Vec<JobId> = resumed.iter().map(|job| job.id).collect();
    resumed.sort_unstable();
    assert_eq!(resumed, ids[..2]);
    // Resuming a queue never paused changes nothing.
    store.set_paused(set("c", false, at(3))).await.unwrap();
    let queues = stats_at(&*store, at(5)).await;
    assert!(queues.iter().all(|s| !s.paused), "{queues:?}");
}

/// Jobs that end at known times, through the store alone: two `a` jobs
/// finish at t0+5 s and one fails for good at t0+50 s (minute t0); a `b`
/// job fails at t0+130 s (minute t0+2 min); a `d` job finished a minute
/// before t0; of two `c` jobs one is retried and one cancelled, which end
/// nothing. Each type waits in the queue of its name.
async fn jobs_ended_around_t0(store: &dyn Store) {
    let due = |job_type: &'static str, n: usize| async move {
        let jobs = vec![new_job(job_type, job_type, at(-60)); n];
        store.insert(&jobs).await.unwrap();
    };
    let failed = || Outcome::Failed { error: "no".into() };
    due("d", 1).await;
    end_due_jobs(store, "d", at(-60), 1, Outcome::Finished).await;
    due("a", 2).await;
    end_due_jobs(store, "a", at(5), 2, Outcome::Finished).await;
    due("a", 1).await;
    end_due_jobs(store, "a", at(50), 1, failed()).await;
    due("b", 1).await;
    end_due_jobs(store, "b", at(130), 1, failed()).await;
    due("c", 1).await;
    let later = Outcome::Retry {
        at: at(3600),
        error: "later".into(),
    };
    end_due_jobs(store, "c", at(20), 1, later).await;
    let cancelled = stored(store, new_job("c", "c", at(-60))).await;
    assert!(store.cancel(cancelled, at(30)).await.unwrap());
}

fn minute(start: DateTime<Utc>, finished: u64, failed: u64) -> MinuteCount {
    MinuteCount {
        minute: start,
        finished,
        failed,
    }
}

pub async fn throughput_counts_jobs_ended_per_minute_since_a_time(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert!(store.throughput(at(-3600)).await.unwrap().is_empty());
    jobs_ended_around_t0(&*store).await;

    assert_eq!(
        store.throughput(t0()).await.unwrap(),
        [minute(t0(), 2, 1), minute(at(120), 0, 1)],
        "oldest first; the minute with no ends left out"
    );
    assert_eq!(
        store.throughput(at(-60)).await.unwrap(),
        [
            minute(at(-60), 1, 0),
            minute(t0(), 2, 1),
            minute(at(120), 0, 1)
        ]
    );
    assert_eq!(
        store.throughput(at(6)).await.unwrap(),
        [minute(t0(), 0, 1), minute(at(120), 0, 1)],
        "only jobs that ended since, under their minute's start"
    );
    assert_eq!(
        store.throughput(at(51)).await.unwrap(),
        [minute(at(120), 0, 1)]
    );
    assert!(store.throughput(at(131)).await.unwrap().is_empty());
}

/// The outcomes per type since `since`, by type.
async fn outcomes_since(store: &dyn Store, since: DateTime<Utc>) -> Vec<TypeOutcomes> {
    let mut outcomes = store.outcomes(since).await.unwrap();
    outcomes.sort_by(|a, b| a.job_type.cmp(&b.job_type));
    outcomes
}

fn ended(job_type: &str, finished: u64, failed: u64) -> TypeOutcomes {
    TypeOutcomes {
        job_type: job_type.into(),
        finished,
        failed,
    }
}

pub async fn outcomes_count_jobs_finished_and_failed_per_type_since_a_time(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert!(store.outcomes(at(-3600)).await.unwrap().is_empty());
    jobs_ended_around_t0(&*store).await;

    assert_eq!(
        outcomes_since(&*store, t0()).await,
        [ended("a", 2, 1), ended("b", 0, 1)],
        "retried and cancelled jobs ended nothing"
    );
    assert_eq!(
        outcomes_since(&*store, at(-60)).await,
        [ended("a", 2, 1), ended("b", 0, 1), ended("d", 1, 0)]
    );
    assert_eq!(
        outcomes_since(&*store, at(6)).await,
        [ended("a", 0, 1), ended("b", 0, 1)]
    );
    assert!(outcomes_since(&*store, at(131)).await.is_empty());
}

pub async fn deleting_removes_a_job_unless_it_is_started(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert!(!store.delete(1).await.unwrap(), "no such job");
    let jobs = OneInEachState::store(&*store, t0()).await;
    let running = record(&*store, jobs.started).await;

    let mut left = 5;
    for id in [jobs.pending, jobs.finished, jobs.failed, jobs.cancelled] {
        assert!(store.delete(id).await.unwrap(), "job {id}");
        left -= 1;
        assert_eq!(store.get(id).await.unwrap(), None);
        assert_eq!(total(&*store).await, left, "only job {id} deleted");
        assert!(!store.delete(id).await.unwrap(), "job {id} is gone");
    }
    assert!(!store.delete(jobs.started).await.unwrap(), "it is running");
    assert_eq!(record(&*store, jobs.started).await, running, "left running");
}

pub async fn cancelling_ends_only_a_pending_job(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert!(!store.cancel(1, t0()).await.unwrap(), "no such job");
    let jobs = OneInEachState::store(&*store, t0()).await;
    let not_yet_due = stored(&*store, new_job("noop", "pending", at(600))).await;
    let pending = record(&*store, jobs.pending).await;

    assert!(store.cancel(jobs.pending, at(10)).await.unwrap());
    assert_eq!(
        record(&*store, jobs.pending).await,
        JobRecord {
            state: JobState::Cancelled,
            finished_at: Some(at(10)),
            ..pending
        }
    );
    assert!(
        store.cancel(not_yet_due, at(10)).await.unwrap(),
        "pending, if not yet due"
    );
    assert_eq!(
        record(&*store, not_yet_due).await.state,
        JobState::Cancelled
    );

    for id in jobs.all() {
        let before = record(&*store, id).await;
        assert!(!store.cancel(id, at(20)).await.unwrap(), "job {id}");
        assert_eq!(record(&*store, id).await, before, "job {id} left as it was");
    }
}

pub async fn retrying_puts_back_only_a_failed_or_cancelled_job(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let retry = |id, extra_attempts| RetryRequest {
        id,
        now: at(100),
        extra_attempts,
    };
    assert!(!store.retry(retry(1, 1)).await.unwrap(), "no such job");
    let jobs = OneInEachState::store(&*store, t0()).await;

    let failed = record(&*store, jobs.failed).await;
    assert!(store.retry(retry(jobs.failed, 2)).await.unwrap());
    assert_eq!(
        record(&*store, jobs.failed).await,
        JobRecord {
            state: JobState::Pending,
            max_attempts: 3,
            available_at: at(100),
            finished_at: None,
            ..failed
        },
        "two more attempts than the one it used, its errors kept"
    );
    let cancelled = record(&*store, jobs.cancelled).await;
    assert!(store.retry(retry(jobs.cancelled, 0)).await.unwrap());
    assert_eq!(
        record(&*store, jobs.cancelled).await,
        JobRecord {
            state: JobState::Pending,
            max_attempts: 1,
            available_at: at(100),
            finished_at: None,
            ..cancelled
        },
        "at least one attempt"
    );

    for id in [jobs.pending, jobs.started, jobs.finished, jobs.failed] {
        let before = record(&*store, id).await;
        assert!(!store.retry(retry(id, 1)).await.unwrap(), "job {id}");
        assert_eq!(record(&*store, id).await, before, "job {id} left as it was");
    }

    // Due again at the retry's `now`, on its next attempt.
    let claim = |now| claim_at("failed", "w", 10, now, Duration::from_secs(60));
    assert!(store.claim(claim(at(99))).await.unwrap().is_empty());
    let again = store.claim(claim(at(100))).await.unwrap();
    assert_eq!(
        (again.len(), again[0].id, again[0].attempt),
        (1, jobs.failed, 2)
    );
}

pub async fn pruning_deletes_old_jobs_of_one_state_up_to_the_limit(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let prune = |before, limit| PruneRequest { before, limit };
    assert_eq!(
        store
            .prune(JobState::Finished, prune(at(1000), 10))
            .await
            .unwrap(),
        0
    );
    // Old: three finished jobs and one of every other state, ended at t0.
    let old = OneInEachState::store(&*store, t0()).await;
    store
        .insert(&vec![new_job("noop", "finished", t0()); 2])
        .await
        .unwrap();
    end_due_jobs(&*store, "finished", t0(), 2, Outcome::Finished).await;
    // Young: one finished at t0+100 s.
    let young = stored(&*store, new_job("noop", "young", at(100))).await;
    end_due_jobs(&*store, "young", at(100), 1, Outcome::Finished).await;
    let pruned = |state, request| {
        let store = store.clone();
        async move { store.prune(state, request).await.unwrap() }
    };

    assert_eq!(pruned(JobState::Finished, prune(at(50), 0)).await, 0);
    assert_eq!(pruned(JobState::Finished, prune(at(50), 2)).await, 2);
    assert_eq!(pruned(JobState::Finished, prune(at(50), 10)).await, 1);
    assert_eq!(pruned(JobState::Finished, prune(at(50), 10)).await, 0);
    assert_eq!(
        pruned(JobState::Finished, prune(at(100), 10)).await,
        0,
        "a job that ended at `before` did not end before it"
    );
    assert_eq!(record(&*store, young).await.state, JobState::Finished);
    for state in [JobState::Pending, JobState::Started] {
        assert_eq!(pruned(state, prune(at(100_000), 10)).await, 0, "{state:?}");
    }
    assert_eq!(total(&*store).await, 5, "the other states untouched");
    for state in [JobState::Failed, JobState::Cancelled] {
        assert_eq!(pruned(state, prune(at(50), 10)).await, 1, "{state:?}");
    }
    for id in [old.pending, old.started, young] {
        assert!(store.get(id).await.unwrap().is_some(), "job {id} kept");
    }
    assert_eq!(total(&*store).await, 3);
}

pub async fn pruning_alerts_deletes_old_resolved_incidents_up_to_the_limit(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let prune = |before, limit| PruneRequest { before, limit };
    assert_eq!(store.prune_alerts(prune(at(1000), 10)).await.unwrap(), 0);
    let open = |subject: &str| {
        let alert = NewAlert {
            rule: "backlog".into(),
            subject: subject.into(),
            summary: "seen".into(),
            fired_at: at(-1000),
        };
        let store = store.clone();
        async move { store.open_alert(&alert).await.unwrap().expect("opened") }
    };
    for subject in ["s1", "s2", "s3"] {
        let old = open(subject).await;
        assert!(store.resolve_alert(old.id, t0()).await.unwrap());
    }
    let young = open("young").await;
    assert!(store.resolve_alert(young.id, at(100)).await.unwrap());
    let firing = open("firing").await;
    let kept = || {
        let store = store.clone();
        async move {
            let alerts = store.alerts(10).await.unwrap();
            alerts.iter().map(|a| a.id).collect::<Vec<_>>()
        }
    };

    assert_eq!(store.prune_alerts(prune(at(50), 0)).await.unwrap(), 0);
    assert_eq!(store.prune_alerts(prune(at(50), 2)).await.unwrap(), 2);
    assert_eq!(store.prune_alerts(prune(at(50), 10)).await.unwrap(), 1);
    assert_eq!(store.prune_alerts(prune(at(50), 10)).await.unwrap(), 0);
    assert_eq!(
        store.prune_alerts(prune(at(100), 10)).await.unwrap(),
        0,
        "resolved at `before`, not before it"
    );
    assert_eq!(kept().await, [firing.id, young.id]);
    assert_eq!(store.prune_alerts(prune(at(100_000), 10)).await.unwrap(), 1);
    assert_eq!(
        kept().await,
        [firing.id],
        "a firing incident is never pruned"
    );
}

pub async fn a_schedule_tick_is_taken_once_and_never_behind_a_later_one(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let job = new_job("report", "reports", t0());
    let tick = |schedule, fire_at, job| TickRequest {
        schedule,
        fire_at,
        job,
    };

    let Tick::Dispatched(id) = store
        .take_tick(tick("report", t0(), Some(&job)))
        .await
        .unwrap()
    else {
        panic!("the first tick is taken");
    };
    let dispatched = record(&*store, id).await;
    assert_eq!(
        (
            dispatched.job_type.as_str(),
            dispatched.queue.as_str(),
            dispatched.state
        ),
        ("report", "reports", JobState::Pending)
    );
    for (fire_at, why) in [(t0(), "the same tick"), (at(-60), "an older tick")] {
        assert_eq!(
            store
                .take_tick(tick("report", fire_at, Some(&job)))
                .await
                .unwrap(),
            Tick::Lost,
            "{why}"
        );
        assert_eq!(total(&*store).await, 1, "{why} dispatches nothing");
    }
    let later = tick("report", at(60), None);
    assert_eq!(store.take_tick(later).await.unwrap(), Tick::Passed);
    assert_eq!(store.take_tick(later).await.unwrap(), Tick::Lost);
    assert_eq!(
        store.take_tick(tick("digest", t0(), None)).await.unwrap(),
        Tick::Passed,
        "another schedule's ticks are its own"
    );

    // A job whose unique key a live job holds: that job stands for it.
    let keyed = NewJob {
        unique_key: Some("report:daily".into()),
        partition_key: None,
        ..job.clone()
    };
    let holder = stored(&*store, keyed.clone()).await;
    assert_eq!(
        store
            .take_tick(tick("report", at(120), Some(&keyed)))
            .await
            .unwrap(),
        Tick::Dispatched(holder)
    );
    assert_eq!(total(&*store).await, 2);

    // Takers of one tick at once, of a new schedule and of a known one:
    // exactly one gets it.
    for (schedule, fire_at) in [("race", t0()), ("report", at(180))] {
        let take = || {
            let store = store.clone();
            let job = job.clone();
            async move {
                let request = TickRequest {
                    schedule,
                    fire_at,
                    job: Some(&job),
                };
                store.take_tick(request).await.unwrap()
            }
        };
        let (a, b, c, d) = tokio::join!(take(), take(), take(), take());
        let won: Vec<Tick> = [a, b, c, d]
            .into_iter()
            .filter(|t| *t != Tick::Lost)
            .collect();
        assert_eq!(won.len(), 1, "{schedule}: {won:?}");
        assert!(matches!(won[0], Tick::Dispatched(_)), "{won:?}");
    }
    assert_eq!(total(&*store).await, 4, "one job per tick taken");
}

pub async fn schedule_states_show_each_schedules_latest_tick_and_its_job(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert!(store.schedule_states().await.unwrap().is_empty());
    let job = new_job("report", "reports", t0());
    let tick = |schedule, fire_at, job| TickRequest {
        schedule,
        fire_at,
        job,
    };
    let Tick::Dispatched(id) = store
        .take_tick(tick("report", t0(), Some(&job)))
        .await
        .unwrap()
    else {
        panic!("the first tick is taken");
    };
    let passed = store.take_tick(tick("report", at(60), None)).await;
    assert_eq!(passed.unwrap(), Tick::Passed);
    let lost = store.take_tick(tick("report", at(30), Some(&job))).await;
    assert_eq!(lost.unwrap(), Tick::Lost);
    let digest = store.take_tick(tick("digest", at(-60), None)).await;
    assert_eq!(digest.unwrap(), Tick::Passed);

    let mut states = store.schedule_states().await.unwrap();
    states.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        states,
        [
            ScheduleState {
                name: "digest".into(),
                last_fire_at: at(-60),
                last_job_id: None,
            },
            ScheduleState {
                name: "report".into(),
                last_fire_at: at(60),
                last_job_id: Some(id),
            },
        ],
        "the latest tick taken, and the job of the latest tick dispatched"
    );
}

pub async fn publishing_concurrency_replaces_the_workers_own_rows_and_drops_expired_ones(
    db: &TestDb,
) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert!(store.worker_concurrency(t0()).await.unwrap().is_empty());
    let row = |worker: &str, queue: &str, concurrency: u32, expires_at| WorkerConcurrency {
        worker: worker.into(),
        queue: queue.into(),
        concurrency,
        min: 1,
        max: 8,
        running: concurrency - 1,
        expires_at,
    };
    let publish = |worker, rows: Vec<WorkerConcurrency>, now| {
        let store = store.clone();
        async move {
            let report = ConcurrencyReport {
                worker,
                rows: &rows,
                now,
            };
            store.publish_concurrency(report).await.unwrap();
        }
    };
    let live = |now| {
        let store = store.clone();
        async move { store.worker_concurrency(now).await.unwrap() }
    };

    let a_q1 = row("a", "q1", 2, at(30));
    let a_q2 = row("a", "q2", 4, at(30));
    let b_q1 = row("b", "q1", 3, at(10));
    publish("a", vec![a_q1.clone(), a_q2.clone()], t0()).await;
    publish("b", vec![b_q1.clone()], t0()).await;
    assert_eq!(
        live(t0()).await,
        [a_q1, b_q1.clone(), a_q2],
        "by queue, then worker"
    );

    // A pool's report replaces its own rows only.
    let a_q2 = row("a", "q2", 5, at(35));
    publish("a", vec![a_q2.clone()], at(5)).await;
    assert_eq!(live(at(5)).await, [b_q1.clone(), a_q2.clone()]);
    // An expired row is not live, but stays until a report deletes it.
    assert_eq!(live(at(11)).await, std::slice::from_ref(&a_q2));
    assert_eq!(live(at(5)).await, [b_q1, a_q2.clone()]);
    publish("a", vec![a_q2.clone()], at(20)).await;
    assert_eq!(
        live(at(5)).await,
        [a_q2],
        "deleted by a report after it expired"
    );

    // Another pool's live row survives; a pool that stops takes its rows away.
    let c_q3 = row("c", "q3", 1, at(60));
    publish("c", vec![c_q3.clone()], at(20)).await;
    publish("a", Vec::new(), at(21)).await;
    assert_eq!(live(at(21)).await, [c_q3]);
}

pub async fn job_counts_per_queue_and_state_leave_out_zero_counts(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    assert!(store.counts().await.unwrap().is_empty());
    OneInEachState::store(&*store, t0()).await;
    stored(&*store, new_job("noop", "pending", at(600))).await;
    let other = store
        .insert(&vec![new_job("noop", "other", t0()); 2])
        .await
        .unwrap();
    let counts = || {
        let store = store.clone();
        async move {
            let mut counts: Vec<(String, JobState, u64)> = store
                .counts()
                .await
                .unwrap()
                .into_iter()
                .map(|c| (c.queue, c.state, c.count))
                .collect();
            counts.sort();
            counts
        }
    };
    let count = |queue: &str, state, n| (queue.to_owned(), state, n);
    assert_eq!(
        counts().await,
        [
            count("cancelled", JobState::Cancelled, 1),
            count("failed", JobState::Failed, 1),
            count("finished", JobState::Finished, 1),
            count("other", JobState::Pending, 2),
            count("pending", JobState::Pending, 2),
            count("started", JobState::Started, 1),
        ]
    );
    for id in other {
        assert!(store.delete(id).await.unwrap());
    }
    let after = counts().await;
    assert!(
        after.iter().all(|(queue, ..)| queue != "other"),
        "{after:?}"
    );
    assert_eq!(after.len(), 5);
}

pub async fn a_store_that_listens_hears_of_a_job_another_instance_inserts(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let other = hopper::store::open(db.url()).await.unwrap();
    let Some(mut wakeups) = store.listen() else {
        // A database without such a signal: workers poll instead.
        return;
    };
    stored(&*other, new_job("noop", "mail", t0())).await;
    loop {
        let wakeup = tokio::time::timeout(Duration::from_secs(10), wakeups.recv())
            .await
            .expect("a wake-up within 10 s")
            .expect("the wake-ups go on while the receiver is kept");
        match wakeup {
            Wakeup::All => break,
            Wakeup::Queue(queue) if queue == "mail" => break,
            Wakeup::Queue(_) | Wakeup::Cancels | Wakeup::Ended(_) => {}
        }
    }
}

pub async fn a_schedules_runs_are_recorded_once_each_newest_first_and_pruned_with_their_jobs(
    db: &TestDb,
) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let plain = new_job("report", "reports", t0());
    let held = NewJob {
        unique_key: Some("schedule:report".into()),
        ..plain.clone()
    };
    let take = |fire_at, job: Option<NewJob>| {
        let store = store.clone();
        async move {
            let request = TickRequest {
                schedule: "report",
                fire_at,
                job: job.as_ref(),
            };
            store.take_tick(request).await.unwrap()
        }
    };
    let mut ids = Vec::new();
    for (fire_at, job) in [(t0(), &plain), (at(60), &plain), (at(120), &held)] {
        match take(fire_at, Some(job.clone())).await {
            Tick::Dispatched(id) => ids.push(id),
            other => panic!("tick at {fire_at} dispatched, got {other:?}"),
        }
    }
    // A tick whose unique key the last run still holds dispatches nothing
    // new, and a passed tick dispatches nothing: neither is a run.
    assert_eq!(take(at(180), Some(held)).await, Tick::Dispatched(ids[2]));
    assert_eq!(take(at(240), None).await, Tick::Passed);

    let runs = store.schedule_runs("report", 5).await.unwrap();
    let seen: Vec<_> = runs
        .iter()
        .map(|r| (r.fire_at, r.job_id, r.state))
        .collect();
    let pending = Some(JobState::Pending);
    assert_eq!(
        seen,
        [
            (at(120), ids[2], pending),
            (at(60), ids[1], pending),
            (t0(), ids[0], pending)
        ]
    );
    assert_eq!(store.schedule_runs("report", 1).await.unwrap().len(), 1);
    assert!(store.schedule_runs("other", 5).await.unwrap().is_empty());

    assert!(store.delete(ids[0]).await.unwrap());
    let runs = store.schedule_runs("report", 5).await.unwrap();
    assert_eq!(
        runs[2].state, None,
        "a run whose job is gone has no outcome"
    );
    assert_eq!(store.prune_schedule_runs(100).await.unwrap(), 1);
    assert_eq!(store.schedule_runs("report", 5).await.unwrap().len(), 2);
}

/// The trace context a dispatch stores comes back with the job's claim, on
/// every way in (one job, jobs alike, jobs that differ, a unique key, a
/// sequence) and both ways out (a plain claim, a flow-controlled one); a
/// job stored without one is claimed without one.
pub async fn a_jobs_trace_context_comes_back_with_its_claim(db: &TestDb) {
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\nvendor=abc";
    let store = hopper::store::open(db.url()).await.unwrap();
    store
        .set_flow(FlowRequest {
            queue: "limited",
            flow: &QueueFlow::default().concurrency(10),
            now: t0(),
        })
        .await
        .unwrap();
    let traced = |queue: &str, payload: &str| NewJob {
        payload: payload.into(),
        trace_context: Some(TRACE.into()),
        ..new_job("noop", queue, t0())
    };
    let untraced = |queue: &str, payload: &str| NewJob {
        payload: payload.into(),
        ..new_job("noop", queue, t0())
    };
    let dispatches: Vec<(&str, Vec<NewJob>)> = vec![
        ("one", vec![traced("one", "1")]),
        (
            "alike",
            (0..3).map(|i| traced("alike", &i.to_string())).collect(),
        ),
        (
            "varied",
            (0..3)
                .map(|i| NewJob {
                    partition_key: Some(format!("k{i}")),
                    priority: i,
                    ..traced("varied", "null")
                })
                .collect(),
        ),
        (
            "unique",
            vec![NewJob {
                unique_key: Some("u".into()),
                ..traced("unique", "null")
            }],
        ),
        (
            "sequenced",
            vec![NewJob {
                sequence: Some(Sequence {
                    key: "s".into(),
                    continue_on_failure: false,
                }),
                ..traced("sequenced", "null")
            }],
        ),
        (
            "mixed",
            vec![
                traced("mixed", "1"),
                untraced("mixed", "2"),
                traced("mixed", "3"),
            ],
        ),
        (
            "limited",
            vec![traced("limited", "1"), untraced("limited", "2")],
        ),
        ("plain", vec![untraced("plain", "1")]),
    ];
    for (queue, jobs) in dispatches {
        let ids = store.insert(&jobs).await.unwrap();
        let mut claimed = store
            .claim(claim_at(queue, "w", 10, t0(), Duration::from_secs(60)))
            .await
            .unwrap();
        claimed.sort_by_key(|job| job.id);
        assert_eq!(
            claimed.iter().map(|job| job.id).collect::<Vec<_>>(),
            ids,
            "queue {queue}"
        );
        assert_eq!(
            claimed
                .iter()
                .map(|job| job.trace_context.as_deref())
                .collect::<Vec<_>>(),
            jobs.iter()
                .map(|job| job.trace_context.as_deref())
                .collect::<Vec<_>>(),
            "queue {queue}"
        );
    }
}

/// A bulk insert large enough to go by the database's fastest path (a
/// binary `COPY` on PostgreSQL) keeps every field of every job, gives ids
/// in order, and marks keyed jobs' keys as any insert does.
pub async fn a_large_bulk_insert_keeps_every_job_whole_and_in_order(db: &TestDb) {
    const JOBS: i64 = 600;
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let store = hopper::store::open(db.url()).await.unwrap();
    store
        .set_flow(FlowRequest {
            queue: "keyed",
            flow: &QueueFlow::default().per_key(1),
            now: t0(),
        })
        .await
        .unwrap();
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|i| NewJob {
            job_type: ["mail", "report"][(i % 2) as usize].into(),
            queue: ["plain", "keyed"][(i % 2) as usize].into(),
            payload: format!(r#"{{"n":{i},"to":"zoë \"{i}\""}}"#),
            priority: i32::try_from(i % 7).unwrap() - 3,
            max_attempts: u32::try_from(1 + i % 5).unwrap(),
            available_at: at(-i),
            created_at: at(-1000 - i),
            unique_key: None,
            partition_key: (i % 2 == 1).then(|| format!("k{}", i % 10)),
            sequence: None,
            trace_context: (i % 3 == 0).then(|| TRACE.to_owned()),
        })
        .collect();
    let ids = store.insert(&jobs).await.unwrap();
    assert_eq!(ids.len(), jobs.len());
    assert!(
        ids.windows(2).all(|pair| pair[0] < pair[1]),
        "ids rise in job order"
    );
    for (job, id) in jobs.iter().zip(&ids) {
        let stored = record(&*store, *id).await;
        assert_eq!(
            (
                &stored.job_type,
                &stored.queue,
                &stored.payload,
                stored.priority,
                stored.max_attempts,
                stored.available_at,
                stored.created_at,
                stored.state,
            ),
            (
                &job.job_type,
                &job.queue,
                &job.payload,
                job.priority,
                job.max_attempts,
                job.available_at,
                job.created_at,
                JobState::Pending,
            ),
            "job {id}"
        );
    }
    // The keyed jobs' five keys were marked ready: a claim under the
    // per-key limit finds one job of each.
    let claimed = store
        .claim(claim_at("keyed", "w", 1000, t0(), Duration::from_secs(60)))
        .await
        .unwrap();
    let mut keys: Vec<String> = claimed
        .iter()
        .map(|job| {
            let n: i64 = serde_json::from_str::<serde_json::Value>(&job.payload).unwrap()["n"]
                .as_i64()
                .unwrap();
            format!("k{}", n % 10)
        })
        .collect();
    keys.sort();
    assert_eq!(keys, ["k1", "k3", "k5", "k7", "k9"]);
    let traced = claimed
        .iter()
        .filter(|job| job.trace_context.is_some())
        .count();
    let expected = claimed
        .iter()
        .filter(|job| {
            let n = serde_json::from_str::<serde_json::Value>(&job.payload).unwrap()["n"]
                .as_i64()
                .unwrap();
            n % 3 == 0
        })
        .count();
    assert_eq!(traced, expected, "trace contexts kept");
}

pub async fn a_store_that_tells_of_endings_names_every_job_a_large_batch_ended(db: &TestDb) {
    let store = hopper::store::open(db.url()).await.unwrap();
    let other = hopper::store::open(db.url()).await.unwrap();
    let Some(mut endings) = store.listen_results() else {
        // A database without such a signal: waiters look again instead.
        return;
    };
    // Finishes, in `other`, every job of `jobs` (claimed together) at once.
    async fn finish_all(other: &dyn Store, jobs: usize) -> Vec<JobId> {
        let new: Vec<NewJob> = (0..jobs).map(|_| new_job("noop", "mail", t0())).collect();
        other.insert(&new).await.unwrap();
        let request = claim_at("mail", "w1", 2_000, t0(), Duration::from_secs(60));
        let claimed = other.claim(request).await.unwrap();
        assert_eq!(claimed.len(), jobs);
        let ended: Vec<Completion> = claimed
            .iter()
            .map(|job| Completion {
                claim: job.claim(),
                attempt: 1,
                outcome: Outcome::Finished,
            })
            .collect();
        let request = CompleteRequest {
            completions: &ended,
            ended_at: t0(),
        };
        assert_eq!(other.complete(request).await.unwrap(), jobs as u64);
        claimed.iter().map(|job| job.id).collect()
    }
    // Until every job of `ids` was named, or the database said only that
    // something changed (every waiter then looks): whether it named them all.
    async fn told(endings: &mut tokio::sync::mpsc::Receiver<Wakeup>, ids: &[JobId]) -> bool {
        let mut untold: std::collections::HashSet<JobId> = ids.iter().copied().collect();
        while !untold.is_empty() {
            let wakeup = tokio::time::timeout(Duration::from_secs(10), endings.recv())
                .await
                .expect("a wake-up within 10 s")
                .expect("the wake-ups go on while the receiver is kept");
            match wakeup {
                Wakeup::Ended(ids) => ids.iter().for_each(|id| {
                    untold.remove(id);
                }),
                Wakeup::All => return false,
                Wakeup::Queue(_) | Wakeup::Cancels => {}
            }
        }
        true
    }
    // One ending, heard (by name or not) once the listener runs.
    let first = finish_all(&*other, 1).await;
    told(&mut endings, &first).await;
    // More endings in one batch than one notification names on
    // PostgreSQL: each is named all the same.
    let batch = finish_all(&*other, 1_000).await;
    let named = told(&mut endings, &batch).await;
    if db.url().starts_with("postgres") {
        assert!(named, "the endings were not named");
    }
    // More endings, each its own notification, than the listener holds
    // for a receiver that does not read: once it reads, each is named or
    // it is told that anything may have changed, never left untold.
    let mut one_by_one = Vec::new();
    for _ in 0..300 {
        one_by_one.extend(finish_all(&*other, 1).await);
    }
    told(&mut endings, &one_by_one).await;
}
