//! The behaviour every store must show, written once: each case takes a
//! fresh, empty database of some kind.

use crate::backends::TestDb;
pub use crate::pool_cases::*;

pub use crate::alerts::*;
pub use crate::batch_cases::*;
pub use crate::bulk_cases::*;
pub use crate::flow_cases::*;
pub use crate::flow_usage_cases::*;
pub use crate::group_commit_cases::*;
pub use crate::paging_cases::*;
pub use crate::results_cases::*;
pub use crate::sequence_cases::*;
pub use crate::store_cases::*;
pub use crate::transaction_cases::*;
pub use crate::workflow_cases::*;

use std::time::Duration;

use crate::common::*;
use hopper::store::{
    Claim, ClaimRequest, CompleteRequest, Completion, LeaseHolder, LeaseRequest, NewJob, Outcome,
    RenewRequest, TickRequest, new_claim_token,
};
use hopper::testing::TestQueue;
use hopper::{DispatchError, DispatchOptions, JobState, RegistryError, Retention, WorkerConfig};

/// A claim of up to `limit` jobs of `queue` for `worker`, due by `now` and
/// leased for `lease` from `now` (a test clock standing in for the database's).
pub fn claim_at<'a>(
    queue: &'a str,
    worker: &'a str,
    limit: u32,
    now: chrono::DateTime<chrono::Utc>,
    lease: Duration,
) -> ClaimRequest<'a> {
    ClaimRequest {
        queue,
        worker,
        limit,
        start_now: 0,
        token: new_claim_token(),
        due_by: now,
        lease,
        now: Some(now),
    }
}

/// A handle on `db` whose clock the test moves, and that clock.
pub async fn on_test_clock(db: &TestDb) -> (hopper::clock::ManualClock, hopper::Hopper) {
    let clock = hopper::clock::ManualClock::new();
    let hopper = builder()
        .clock(clock.clone())
        .connect(db.url())
        .await
        .unwrap();
    (clock, hopper)
}

async fn state_of(queue: &TestQueue, id: i64) -> hopper::JobRecord {
    queue.hopper().job(id).await.unwrap().expect("job exists")
}

pub async fn a_dispatched_job_is_processed_and_finished(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let id = queue.hopper().dispatch::<Noop>(()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!(job.state, JobState::Finished);
    assert_eq!(job.attempts, 1);
    assert!(job.finished_at.is_some() && job.started_at.is_some());
    assert!(job.locked_by.is_none() && job.locked_until.is_none());
    queue.stop().await.unwrap();
}

pub async fn a_failing_job_is_retried_after_its_delay_then_succeeds(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let id = queue
        .hopper()
        .dispatch::<Flaky>(FlakyPayload { fail_times: 2 })
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Pending, 1));
    assert_eq!(job.available_at, queue.hopper().now() + FLAKY_DELAY);
    assert_eq!(job.last_error.as_deref(), Some("flaky failure 1"));

    queue.advance(FLAKY_DELAY - Duration::from_secs(1));
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, id).await.attempts, 1, "not run early");

    queue.advance(Duration::from_secs(1));
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, id).await.attempts, 2);

    queue.advance(FLAKY_DELAY);
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Finished, 3));
    assert_eq!(job.errors.len(), 2);
    queue.stop().await.unwrap();
}

pub async fn a_job_that_uses_up_its_attempts_fails_with_every_error_kept(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let id = queue
        .hopper()
        .dispatch::<Flaky>(FlakyPayload { fail_times: 99 })
        .await
        .unwrap();
    for _ in 0..3 {
        queue.wait_idle().await.unwrap();
        queue.advance(FLAKY_DELAY);
    }
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!(
        (job.state, job.attempts, job.max_attempts),
        (JobState::Failed, 3, 3)
    );
    let attempts: Vec<u32> = job.errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
    let messages: Vec<&str> = job.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(
        messages,
        ["flaky failure 1", "flaky failure 2", "flaky failure 3"]
    );
    assert_eq!(job.last_error.as_deref(), Some("flaky failure 3"));
    assert!(job.finished_at.is_some());
    queue.stop().await.unwrap();
}

pub async fn a_permanent_error_fails_the_job_after_one_attempt(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let id = queue
        .hopper()
        .dispatch::<Doomed>("card declined".into())
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    assert_eq!(job.last_error.as_deref(), Some("card declined"));
    queue.stop().await.unwrap();
}

pub async fn a_panicking_job_fails_alone_and_the_workers_go_on(db: &TestDb) {
    let queue = db
        .start_with(builder(), WorkerConfig::new(1))
        .await
        .unwrap();
    let boom = queue
        .hopper()
        .dispatch::<Panicker>("kaboom".into())
        .await
        .unwrap();
    let fine = queue.hopper().dispatch::<Noop>(()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, boom).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.last_error.as_deref(), Some("panicked: kaboom"));
    assert_eq!(state_of(&queue, fine).await.state, JobState::Finished);
    // The same single worker keeps taking jobs.
    let after = queue.hopper().dispatch::<Noop>(()).await.unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, after).await.state, JobState::Finished);
    queue.stop().await.unwrap();
}

pub async fn a_job_past_its_timeout_is_cancelled_and_counted_as_a_failed_attempt(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let id = queue.hopper().dispatch::<Sleeper>(60_000).await.unwrap();
    let quick = queue.hopper().dispatch::<Sleeper>(1).await.unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    assert_eq!(job.last_error.as_deref(), Some("timed out after 100ms"));
    assert_eq!(state_of(&queue, quick).await.state, JobState::Finished);
    queue.stop().await.unwrap();
}

pub async fn a_delayed_job_does_not_run_before_its_time(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let id = queue
        .hopper()
        .dispatch_with::<Noop>((), DispatchOptions::new().delay(Duration::from_secs(60)))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, id).await.state, JobState::Pending);
    queue.advance(Duration::from_secs(59));
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, id).await.state, JobState::Pending);
    queue.advance(Duration::from_secs(1));
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, id).await.state, JobState::Finished);

    let at = queue.hopper().now() + chrono::Duration::hours(2);
    let later = queue
        .hopper()
        .dispatch_with::<Noop>((), DispatchOptions::new().run_at(at))
        .await
        .unwrap();
    assert_eq!(state_of(&queue, later).await.available_at, at);
    queue.stop().await.unwrap();
}

pub async fn higher_priority_jobs_run_first(db: &TestDb) {
    let url = db.url().to_owned();
    let journal = Journal::default();
    let hopper = builder()
        .state(journal.clone())
        .connect(&url)
        .await
        .unwrap();
    for (name, priority) in [
        ("low", -1),
        ("normal-1", 0),
        ("urgent", 10),
        ("normal-2", 0),
        ("high", 5),
    ] {
        hopper
            .dispatch_with::<Record>(name.into(), DispatchOptions::new().priority(priority))
            .await
            .unwrap();
    }
    let pool = hopper.start(WorkerConfig::new(1)).unwrap();
    let mut activity = pool.activity();
    while journal.entries().len() < 5 {
        tokio::time::timeout(Duration::from_secs(10), activity.changed())
            .await
            .expect("jobs keep running")
            .unwrap();
    }
    assert_eq!(
        journal.entries(),
        ["urgent", "high", "normal-1", "normal-2", "low"]
    );
    pool.stop().await.unwrap();
}

pub async fn named_queues_run_only_where_a_pool_works_them(db: &TestDb) {
    let queue = db
        .start_with(builder(), WorkerConfig::new(1).queue("mail", 2))
        .await
        .unwrap();
    let mail = queue
        .hopper()
        .dispatch_with::<Noop>((), DispatchOptions::new().queue("mail"))
        .await
        .unwrap();
    let other = queue
        .hopper()
        .dispatch_with::<Noop>((), DispatchOptions::new().queue("reports"))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, mail).await.state, JobState::Finished);
    let other = state_of(&queue, other).await;
    assert_eq!(
        (other.state, other.queue.as_str()),
        (JobState::Pending, "reports")
    );
    queue.stop().await.unwrap();
}

pub async fn a_graceful_stop_lets_a_running_job_finish(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let id = queue.hopper().dispatch::<Slow>(300).await.unwrap();
    let mut activity = queue.pool().activity();
    while state_of(&queue, id).await.state != JobState::Started {
        activity.changed().await.unwrap();
    }
    let hopper = queue.hopper().clone();
    queue.stop().await.unwrap();
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Finished, 1));
}

pub async fn a_stop_past_its_deadline_hands_the_job_back_without_counting_the_attempt(db: &TestDb) {
    let url = db.url().to_owned();
    let hopper = builder().connect(&url).await.unwrap();
    let pool = hopper
        .start(WorkerConfig::new(2).shutdown_timeout(Duration::from_millis(200)))
        .unwrap();
    let id = hopper.dispatch::<Slow>(60_000).await.unwrap();
    let mut activity = pool.activity();
    while hopper.job(id).await.unwrap().unwrap().state != JobState::Started {
        activity.changed().await.unwrap();
    }
    let started = std::time::Instant::now();
    assert_eq!(pool.stop().await.unwrap(), 1, "one job handed back");
    assert!(started.elapsed() < Duration::from_secs(10));
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Pending, 0));
    assert!(job.locked_by.is_none());

    // A new pool picks it up again.
    let pool = hopper.start(WorkerConfig::new(1)).unwrap();
    let mut activity = pool.activity();
    while hopper.job(id).await.unwrap().unwrap().state != JobState::Started {
        activity.changed().await.unwrap();
    }
    assert_eq!(hopper.job(id).await.unwrap().unwrap().attempts, 1);
    drop(pool);
}

pub async fn an_unregistered_type_fails_only_its_own_job(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let now = queue.hopper().now();
    let ghost = queue
        .hopper()
        .store()
        .insert(&[NewJob {
            payload: "{}".into(),
            ..new_job("ghost", "default", now)
        }])
        .await
        .unwrap()[0];
    queue.hopper().wake("default");
    let fine = queue.hopper().dispatch::<Noop>(()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, ghost).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    assert_eq!(
        job.last_error.as_deref(),
        Some("no job registered for type ghost")
    );
    assert_eq!(state_of(&queue, fine).await.state, JobState::Finished);
    queue.stop().await.unwrap();
}

/// Stores a `flaky` job with `payload` as it is, past dispatch's checks,
/// lets the workers take it, and returns the job as they left it.
async fn run_stored_flaky(queue: &TestQueue, payload: &str) -> hopper::JobRecord {
    let now = queue.hopper().now();
    let id = queue
        .hopper()
        .store()
        .insert(&[NewJob {
            payload: payload.into(),
            ..new_job("flaky", "default", now)
        }])
        .await
        .unwrap()[0];
    queue.hopper().wake("default");
    queue.wait_idle().await.unwrap();
    state_of(queue, id).await
}

pub async fn a_stored_payload_that_no_longer_fits_fails_permanently(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let job = run_stored_flaky(&queue, r#"{"fail_times":"many"}"#).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    assert!(
        job.last_error
            .unwrap()
            .starts_with("payload does not fit job type flaky")
    );
    queue.stop().await.unwrap();
}

pub async fn a_dynamic_dispatch_is_checked_against_the_payload_type(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    let bad = hopper
        .dispatch_json(
            "flaky",
            &serde_json::json!({"fail_times": "two"}),
            DispatchOptions::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        bad,
        DispatchError::Registry(RegistryError::InvalidPayload { .. })
    ));
    assert!(
        bad.to_string()
            .contains("invalid type: string \"two\", expected u32"),
        "{bad}"
    );
    let missing = hopper
        .dispatch_json("flaky", &serde_json::json!({}), DispatchOptions::new())
        .await
        .unwrap_err();
    assert!(
        missing.to_string().contains("missing field `fail_times`"),
        "{missing}"
    );
    let unknown = hopper
        .dispatch_json("ghost", &serde_json::json!({}), DispatchOptions::new())
        .await
        .unwrap_err();
    assert_eq!(unknown.to_string(), "no job registered for type ghost");
    assert!(hopper.counts().await.unwrap().is_empty(), "nothing stored");

    let id = hopper
        .dispatch_json(
            "flaky",
            &serde_json::json!({"fail_times": 0}),
            DispatchOptions::new(),
        )
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, id).await.state, JobState::Finished);
    queue.stop().await.unwrap();
}

pub async fn a_payload_over_the_size_limit_is_refused(db: &TestDb) {
    let url = db.url().to_owned();
    let hopper = builder()
        .max_payload_bytes(100)
        .connect(&url)
        .await
        .unwrap();
    let err = hopper
        .dispatch::<Doomed>("x".repeat(200))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DispatchError::TooLarge {
                size: 202,
                limit: 100,
                ..
            }
        ),
        "{err}"
    );
    let err = hopper
        .dispatch_many::<Doomed>(["ok".to_string(), "x".repeat(200)], DispatchOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::TooLarge { .. }));
    assert!(
        hopper.counts().await.unwrap().is_empty(),
        "bulk is all or nothing"
    );
    let big = serde_json::json!("x".repeat(200));
    let err = hopper
        .dispatch_json("doomed", &big, DispatchOptions::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "payload of job type doomed is 202 bytes, over the 100-byte limit"
    );
    let err = hopper
        .prepare::<Doomed>("x".repeat(200), DispatchOptions::new())
        .unwrap_err();
    assert!(matches!(err, DispatchError::TooLarge { size: 202, .. }));
    let err = hopper
        .prepare_json("doomed", &big, DispatchOptions::new())
        .unwrap_err();
    assert!(matches!(err, DispatchError::TooLarge { size: 202, .. }));
    assert!(hopper.counts().await.unwrap().is_empty());
    hopper
        .dispatch::<Doomed>("x".repeat(98))
        .await
        .expect("exactly at the limit");
}

pub async fn bulk_dispatch_stores_every_job_in_order(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let ids = queue
        .hopper()
        .dispatch_many::<Slow>(0..9_000, DispatchOptions::new().queue("bulk"))
        .await
        .unwrap();
    assert_eq!(ids.len(), 9_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    for (i, id) in ids.iter().enumerate().step_by(997) {
        let job = state_of(&queue, *id).await;
        assert_eq!(job.payload, i.to_string());
        assert_eq!(job.queue, "bulk");
    }
    queue.stop().await.unwrap();
}

pub async fn a_handler_can_ask_for_its_own_retry_delay(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let id = queue.hopper().dispatch::<Snooze>(45).await.unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Pending, 1));
    assert_eq!(
        job.available_at,
        queue.hopper().now() + chrono::Duration::seconds(45)
    );
    queue.stop().await.unwrap();
}

pub async fn pending_jobs_cancel_and_failed_jobs_retry(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    let later = hopper
        .dispatch_with::<Noop>((), DispatchOptions::new().delay(Duration::from_secs(600)))
        .await
        .unwrap();
    assert!(hopper.cancel(later).await.unwrap());
    assert!(!hopper.cancel(later).await.unwrap(), "already cancelled");
    assert_eq!(state_of(&queue, later).await.state, JobState::Cancelled);

    let doomed = hopper.dispatch::<Doomed>("no".into()).await.unwrap();
    queue.wait_idle().await.unwrap();
    assert!(
        !hopper.cancel(doomed).await.unwrap(),
        "a failed job is not pending"
    );
    assert!(hopper.retry(doomed).await.unwrap());
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, doomed).await;
    assert_eq!(
        (job.state, job.attempts, job.errors.len()),
        (JobState::Failed, 2, 2)
    );

    assert!(
        hopper.retry(later).await.unwrap(),
        "a cancelled job can be retried"
    );
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, later).await.state, JobState::Finished);
    assert!(
        !hopper.retry(later).await.unwrap(),
        "a finished job is not retried"
    );
    queue.stop().await.unwrap();
}

pub async fn pruning_deletes_ended_jobs_by_age_and_state(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    let finished = hopper.dispatch::<Noop>(()).await.unwrap();
    let failed = hopper.dispatch::<Doomed>("no".into()).await.unwrap();
    let waiting = hopper
        .dispatch_with::<Noop>(
            (),
            DispatchOptions::new().delay(Duration::from_secs(90 * 86_400)),
        )
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    let store = hopper.store();
    let alert = |rule: &str| hopper::store::NewAlert {
        rule: rule.into(),
        subject: "default".into(),
        summary: "seen".into(),
        fired_at: hopper.now(),
    };
    let resolved = store.open_alert(&alert("resolved")).await.unwrap().unwrap();
    assert!(
        store
            .resolve_alert(resolved.id, hopper.now())
            .await
            .unwrap()
    );
    let firing = store.open_alert(&alert("firing")).await.unwrap().unwrap();

    queue.clock().advance(Duration::from_secs(6 * 86_400));
    assert_eq!(hopper.prune(Retention::default()).await.unwrap(), 0);
    queue.clock().advance(Duration::from_secs(2 * 86_400));
    assert_eq!(hopper.prune(Retention::default()).await.unwrap(), 1);
    assert!(hopper.job(finished).await.unwrap().is_none());
    assert!(hopper.job(failed).await.unwrap().is_some());
    queue.clock().advance(Duration::from_secs(23 * 86_400));
    assert_eq!(hopper.prune(Retention::default()).await.unwrap(), 1);
    assert!(hopper.job(failed).await.unwrap().is_none());
    assert!(
        hopper.job(waiting).await.unwrap().is_some(),
        "pending jobs are never pruned"
    );
    // Resolved alert incidents go with failed jobs; firing ones stay.
    let kept: Vec<_> = store
        .alerts(10)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(kept, [firing.id]);
    queue.stop().await.unwrap();
}

pub async fn an_outcome_from_a_rescued_claim_cannot_overwrite_the_new_owner(db: &TestDb) {
    let (clock, hopper) = on_test_clock(db).await;
    let store = hopper.store();
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let claim = |worker: &'static str| {
        let request = claim_at("default", worker, 10, hopper.now(), Duration::from_secs(30));
        let store = store.clone();
        async move { store.claim(request).await.unwrap() }
    };
    let first = claim("old").await;
    assert_eq!(first.len(), 1);
    assert_eq!(store.mark_started(&[first[0].claim()]).await.unwrap(), 1);
    clock.advance(Duration::from_secs(31));
    assert_eq!(store.rescue(Some(hopper.now())).await.unwrap(), [id]);
    let rescued = hopper.job(id).await.unwrap().unwrap();
    assert_eq!((rescued.state, rescued.attempts), (JobState::Pending, 1));
    assert!(
        rescued
            .last_error
            .unwrap()
            .contains("lease expired: worker old")
    );
    let second = claim("new").await;
    assert_eq!(second[0].attempt, 2);

    let old_result = Completion {
        claim: first[0].claim(),
        attempt: 1,
        outcome: Outcome::Failed {
            error: "late".into(),
        },
    };
    assert_eq!(
        store
            .complete(CompleteRequest {
                completions: &[old_result],
                ended_at: hopper.now(),
            })
            .await
            .unwrap(),
        0
    );
    let still = hopper.job(id).await.unwrap().unwrap();
    assert_eq!(
        (still.state, still.locked_by.as_deref()),
        (JobState::Started, Some("new"))
    );

    let new_result = Completion {
        claim: second[0].claim(),
        attempt: 2,
        outcome: Outcome::Finished,
    };
    assert_eq!(
        store
            .complete(CompleteRequest {
                completions: &[new_result],
                ended_at: hopper.now(),
            })
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        hopper.job(id).await.unwrap().unwrap().state,
        JobState::Finished
    );
}

pub async fn an_outcome_from_an_undone_claim_cannot_land_on_the_same_workers_next_claim(
    db: &TestDb,
) {
    // A claim undone after its handler started (an asynchronous commit lost
    // in a crash, here a release) and the job claimed again by the same
    // worker on the same attempt: only the claim token tells the runs apart.
    let hopper = builder().connect(db.url()).await.unwrap();
    let store = hopper.store();
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let claim = || {
        let request = ClaimRequest {
            token: new_claim_token(),
            ..claim_at("default", "w", 1, hopper.now(), Duration::from_secs(30))
        };
        let store = store.clone();
        async move {
            store
                .claim(ClaimRequest {
                    now: None,
                    ..request
                })
                .await
                .unwrap()
        }
    };
    let first = claim().await;
    assert_eq!(store.release(&[first[0].claim()]).await.unwrap(), 1);
    let second = claim().await;
    assert_eq!(
        (second[0].id, second[0].attempt),
        (first[0].id, first[0].attempt),
        "the same job, attempt and worker"
    );
    let stale = |claim: Claim| Completion {
        claim,
        attempt: 1,
        outcome: Outcome::Failed {
            error: "from the undone run".into(),
        },
    };
    assert_eq!(
        store
            .complete(CompleteRequest {
                completions: &[stale(first[0].claim())],
                ended_at: hopper.now(),
            })
            .await
            .unwrap(),
        0
    );
    assert!(
        store
            .extend_leases(RenewRequest {
                claims: &[first[0].claim()],
                lease: Duration::from_secs(60),
                now: None,
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.release(&[first[0].claim()]).await.unwrap(), 0);
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Started, 1));
    assert!(job.errors.is_empty(), "{:?}", job.errors);
}

pub async fn releasing_hands_back_only_the_claims_named(db: &TestDb) {
    // Two pools given one worker id each hand back only their own claims.
    let hopper = builder().connect(db.url()).await.unwrap();
    let store = hopper.store();
    hopper
        .dispatch_many::<Noop>([(), ()], DispatchOptions::new())
        .await
        .unwrap();
    let request = || ClaimRequest {
        now: None,
        ..claim_at(
            "default",
            "same-id",
            1,
            hopper.now(),
            Duration::from_secs(30),
        )
    };
    let mine = store.claim(request()).await.unwrap();
    let theirs = store.claim(request()).await.unwrap();
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_eq!(store.release(&[mine[0].claim()]).await.unwrap(), 1);
    let released = hopper.job(mine[0].id).await.unwrap().unwrap();
    assert_eq!((released.state, released.attempts), (JobState::Pending, 0));
    let kept = hopper.job(theirs[0].id).await.unwrap().unwrap();
    assert_eq!((kept.state, kept.attempts), (JobState::Started, 1));
    assert_eq!(store.release(&[]).await.unwrap(), 0);
}

pub async fn a_claim_whose_handler_never_started_gets_its_attempt_back(db: &TestDb) {
    let (clock, hopper) = on_test_clock(db).await;
    let store = hopper.store();
    let ids = hopper
        .dispatch_many::<Noop>([(), (), ()], DispatchOptions::new().max_attempts(1))
        .await
        .unwrap();
    // One job claimed to start at once, two claimed ahead.
    let claimed = store
        .claim(ClaimRequest {
            start_now: 1,
            ..claim_at("default", "gone", 3, hopper.now(), Duration::from_secs(5))
        })
        .await
        .unwrap();
    let started: Vec<bool> = claimed.iter().map(|job| job.run_started).collect();
    assert_eq!(started, [true, false, false]);
    // The worker started the first one claimed ahead too, then died.
    assert_eq!(store.mark_started(&[claimed[1].claim()]).await.unwrap(), 1);
    clock.advance(Duration::from_secs(6));
    assert_eq!(store.rescue(Some(hopper.now())).await.unwrap(), ids);
    for ran in [&claimed[0], &claimed[1]] {
        let job = hopper.job(ran.id).await.unwrap().unwrap();
        assert_eq!(
            (job.state, job.attempts, job.errors.len()),
            (JobState::Failed, 1, 1),
            "{job:?}"
        );
    }
    let never_ran = hopper.job(claimed[2].id).await.unwrap().unwrap();
    assert_eq!(
        (never_ran.state, never_ran.attempts, never_ran.errors.len()),
        (JobState::Pending, 0, 0),
        "{never_ran:?}"
    );
    // Marks and renewals name claims; a stale one changes nothing.
    assert_eq!(store.mark_started(&[claimed[2].claim()]).await.unwrap(), 0);
}

pub async fn leases_are_measured_on_the_database_clock(db: &TestDb) {
    // Without a test clock, a lease runs from the database server's now
    // whatever the claiming host's clock says, and only the server's now
    // expires it: a rescue right after the claim finds nothing.
    let hopper = builder().connect(db.url()).await.unwrap();
    let store = hopper.store();
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let before = chrono::Utc::now();
    let claimed = store
        .claim(ClaimRequest {
            now: None,
            ..claim_at("default", "w", 1, hopper.now(), Duration::from_secs(30))
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let until = hopper.job(id).await.unwrap().unwrap().locked_until.unwrap();
    let lease = (until - before).num_milliseconds();
    assert!((29_000..=31_000).contains(&lease), "a lease of {lease} ms");
    assert!(store.rescue(None).await.unwrap().is_empty());
    let renewed = store
        .extend_leases(RenewRequest {
            claims: &[claimed[0].claim()],
            lease: Duration::from_secs(90),
            now: None,
        })
        .await
        .unwrap();
    assert_eq!(renewed, [claimed[0].claim()]);
    let until = hopper.job(id).await.unwrap().unwrap().locked_until.unwrap();
    let lease = (until - before).num_milliseconds();
    assert!(
        (89_000..=91_000).contains(&lease),
        "a renewal of {lease} ms"
    );
    let take = |holder| LeaseRequest {
        lease: LeaseHolder { name: "m", holder },
        ttl: Duration::from_secs(30),
        now: None,
    };
    assert!(store.try_lease(take("a")).await.unwrap());
    assert!(!store.try_lease(take("b")).await.unwrap());
}

pub async fn extending_leases_renews_only_the_claims_named_by_their_holder(db: &TestDb) {
    let (_clock, hopper) = on_test_clock(db).await;
    let store = hopper.store();
    hopper
        .dispatch_many::<Noop>([(), (), ()], DispatchOptions::new())
        .await
        .unwrap();
    let now = hopper.now();
    let claimed = store
        .claim(claim_at("default", "w", 3, now, Duration::from_secs(10)))
        .await
        .unwrap();
    let lease = now + chrono::Duration::seconds(10);
    let [a, b, c] = [claimed[0].claim(), claimed[1].claim(), claimed[2].claim()];
    let until = now + chrono::Duration::seconds(60);
    // `b` is named with another claim's token; `c` is not named.
    let wrong = Claim {
        token: b.token.wrapping_add(1),
        ..b
    };
    let renewed = store
        .extend_leases(RenewRequest {
            claims: &[wrong, a],
            lease: Duration::from_secs(60),
            now: Some(now),
        })
        .await
        .unwrap();
    assert_eq!(renewed, [a]);
    assert!(
        store
            .extend_leases(RenewRequest {
                claims: &[],
                lease: Duration::from_secs(60),
                now: Some(now),
            })
            .await
            .unwrap()
            .is_empty()
    );
    for (claim, want) in [(a, until), (b, lease), (c, lease)] {
        let job = hopper.job(claim.id).await.unwrap().unwrap();
        assert_eq!(job.locked_until, Some(want), "job {}", claim.id);
    }
}

pub async fn the_next_due_time_is_the_earliest_pending_job_of_the_queue(db: &TestDb) {
    let (clock, hopper) = on_test_clock(db).await;
    let store = hopper.store();
    assert_eq!(store.next_due("default").await.unwrap(), None);
    let now = hopper.now();
    let at = |secs: i64| now + chrono::Duration::seconds(secs);
    let jobs = [
        (30, 0, "default"),
        (20, 5, "default"),
        (50, 9, "default"),
        (18, -1, "default"),
        (10, 0, "mail"),
    ];
    for (secs, priority, queue) in jobs {
        let options = DispatchOptions::new()
            .run_at(at(secs))
            .priority(priority)
            .queue(queue);
        hopper.dispatch_with::<Noop>((), options).await.unwrap();
    }
    // Across priorities (here the lowest holds it), the earliest; per queue.
    assert_eq!(store.next_due("default").await.unwrap(), Some(at(18)));
    assert_eq!(store.next_due("mail").await.unwrap(), Some(at(10)));
    assert_eq!(store.next_due("reports").await.unwrap(), None);
    // Only pending jobs count, and a time that has passed is still reported.
    clock.advance(Duration::from_secs(25));
    let claimed = store
        .claim(claim_at(
            "default",
            "w",
            10,
            hopper.now(),
            Duration::from_secs(35),
        ))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(store.next_due("default").await.unwrap(), Some(at(30)));
    assert_eq!(store.next_due("mail").await.unwrap(), Some(at(10)));
}

pub async fn a_rescued_job_on_its_last_attempt_fails(db: &TestDb) {
    let (clock, hopper) = on_test_clock(db).await;
    let id = hopper
        .dispatch_with::<Noop>((), DispatchOptions::new().max_attempts(1))
        .await
        .unwrap();
    let store = hopper.store();
    let claimed = store
        .claim(claim_at(
            "default",
            "gone",
            1,
            hopper.now(),
            Duration::from_secs(5),
        ))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    store.mark_started(&[claimed[0].claim()]).await.unwrap();
    clock.advance(Duration::from_secs(4));
    assert!(
        store.rescue(Some(hopper.now())).await.unwrap().is_empty(),
        "lease still live"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(store.rescue(Some(hopper.now())).await.unwrap(), [id]);
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    assert_eq!(job.errors.len(), 1);
}

pub async fn handlers_reach_shared_state_and_missing_state_is_a_permanent_error(db: &TestDb) {
    let journal = Journal::default();
    let queue = db.start(builder().state(journal.clone())).await.unwrap();
    queue
        .hopper()
        .dispatch::<Record>("hello".into())
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(journal.entries(), ["hello"]);
    queue.stop().await.unwrap();

    let queue = db.start(builder()).await.unwrap();
    let id = queue
        .hopper()
        .dispatch::<Record>("lost".into())
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    assert!(job.last_error.unwrap().contains("no shared state of type"));
    queue.stop().await.unwrap();
}

pub async fn a_unique_key_stores_one_live_job(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    let later = DispatchOptions::new()
        .unique_key("report:7")
        .delay(Duration::from_secs(60));
    let first = hopper
        .dispatch_with::<Noop>((), later.clone())
        .await
        .unwrap();
    let again = hopper
        .dispatch_with::<Noop>((), later.clone())
        .await
        .unwrap();
    assert_eq!(first, again, "the pending job's id comes back");
    let bulk = hopper
        .dispatch_many::<Noop>([(), ()], later.clone())
        .await
        .unwrap();
    assert_eq!(bulk, [first, first]);
    let total: u64 = hopper.counts().await.unwrap().iter().map(|c| c.count).sum();
    assert_eq!(total, 1);

    queue.advance(Duration::from_secs(60));
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, first).await.state, JobState::Finished);
    let next = hopper.dispatch_with::<Noop>((), later).await.unwrap();
    assert_ne!(next, first, "a finished job no longer holds its key");
    assert_eq!(
        state_of(&queue, next).await.unique_key.as_deref(),
        Some("report:7")
    );
    queue.stop().await.unwrap();
}

pub async fn a_paused_queue_is_not_claimed_from_until_resumed(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    hopper.pause("default").await.unwrap();
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, id).await.state, JobState::Pending);
    let stats = hopper.queue_stats().await.unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].due, stats[0].paused), (1, true));
    assert_eq!(stats[0].oldest_due_at, Some(hopper.now()));

    hopper.resume("default").await.unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(state_of(&queue, id).await.state, JobState::Finished);
    let stats = hopper.queue_stats().await.unwrap();
    assert_eq!((stats[0].due, stats[0].paused), (0, false));
    queue.stop().await.unwrap();
}

pub async fn throughput_counts_finished_and_failed_jobs_per_minute(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    hopper
        .dispatch_many::<Noop>([(), (), ()], DispatchOptions::new())
        .await
        .unwrap();
    hopper.dispatch::<Doomed>("no".into()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let minutes = hopper.throughput(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(minutes.len(), 1);
    assert_eq!((minutes[0].finished, minutes[0].failed), (3, 1));
    queue.clock().advance(Duration::from_secs(2 * 3600));
    assert!(
        hopper
            .throughput(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    queue.stop().await.unwrap();
}

pub async fn a_job_can_be_deleted_unless_it_is_running(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    let done = hopper.dispatch::<Noop>(()).await.unwrap();
    let running = hopper.dispatch::<Slow>(60_000).await.unwrap();
    let mut activity = queue.pool().activity();
    while state_of(&queue, running).await.state != JobState::Started
        || state_of(&queue, done).await.state != JobState::Finished
    {
        activity.changed().await.unwrap();
    }
    assert!(hopper.delete(done).await.unwrap());
    assert!(hopper.job(done).await.unwrap().is_none());
    assert!(!hopper.delete(running).await.unwrap());
    assert!(!hopper.delete(done).await.unwrap());
    drop(queue);
}

pub async fn one_holder_at_a_time_has_a_lease_until_it_expires_or_is_dropped(db: &TestDb) {
    let url = db.url().to_owned();
    let store = hopper::store::open(&url).await.unwrap();
    let t0 = chrono::Utc::now();
    let at = |secs: i64| Some(t0 + chrono::Duration::seconds(secs));
    let lease = |holder| LeaseHolder { name: "m", holder };
    let take = |holder, secs| LeaseRequest {
        lease: lease(holder),
        ttl: Duration::from_secs(10),
        now: at(secs),
    };
    assert!(store.try_lease(take("a", 0)).await.unwrap());
    assert!(!store.try_lease(take("b", 1)).await.unwrap());
    assert!(store.try_lease(take("a", 5)).await.unwrap(), "renewed");
    assert!(!store.try_lease(take("b", 12)).await.unwrap());
    assert!(store.try_lease(take("b", 16)).await.unwrap(), "expired");
    store.drop_lease(lease("a")).await.unwrap();
    assert!(!store.try_lease(take("a", 17)).await.unwrap());
    store.drop_lease(lease("b")).await.unwrap();
    assert!(store.try_lease(take("a", 17)).await.unwrap());
}

pub async fn a_retry_while_another_live_job_holds_the_unique_key_is_refused_clearly(db: &TestDb) {
    let hopper = builder().connect(db.url()).await.unwrap();
    let keyed = || DispatchOptions::new().unique_key("report:7");
    let first = hopper.dispatch_with::<Noop>((), keyed()).await.unwrap();
    assert!(hopper.cancel(first).await.unwrap());
    let second = hopper.dispatch_with::<Noop>((), keyed()).await.unwrap();
    assert_ne!(first, second, "a cancelled job no longer holds its key");

    let err = hopper.retry(first).await.unwrap_err();
    assert!(
        matches!(err, hopper::StoreError::UniqueKeyHeld { id, ref key } if id == first && key == "report:7"),
        "{err}"
    );
    assert!(err.to_string().contains("holds its unique key"), "{err}");
    let job = hopper.job(first).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled, "left as it was");
    assert_eq!(
        hopper.job(second).await.unwrap().unwrap().state,
        JobState::Pending
    );

    assert!(hopper.cancel(second).await.unwrap());
    assert!(hopper.retry(first).await.unwrap(), "the key is free again");
    assert_eq!(
        hopper.job(first).await.unwrap().unwrap().state,
        JobState::Pending
    );
}

pub async fn nul_characters_are_refused_in_names_and_kept_inside_payloads_and_errors(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let hopper = queue.hopper();
    let nul_field = |err: DispatchError| match err {
        DispatchError::NulCharacter { field, .. } => field,
        other => panic!("expected a NUL refusal, got {other}"),
    };
    let err = hopper
        .dispatch_with::<Noop>((), DispatchOptions::new().queue("mail\0x"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("NUL character"), "{err}");
    assert_eq!(nul_field(err), "queue name");
    let err = hopper
        .dispatch_with::<Noop>((), DispatchOptions::new().unique_key("k\0"))
        .await
        .unwrap_err();
    assert_eq!(nul_field(err), "unique key");
    let err = hopper
        .dispatch_json("no\0op", &serde_json::Value::Null, DispatchOptions::new())
        .await
        .unwrap_err();
    assert_eq!(nul_field(err), "type name");
    let err = hopper
        .dispatch_many::<Noop>([(), ()], DispatchOptions::new().queue("\0"))
        .await
        .unwrap_err();
    assert_eq!(nul_field(err), "queue name");
    assert!(hopper.counts().await.unwrap().is_empty(), "nothing stored");
    let filter = hopper::JobFilter {
        queue: Some("mail\0x".into()),
        ..Default::default()
    };
    assert!(hopper.jobs(&filter).await.unwrap().jobs.is_empty());
    for paused in [hopper.pause("ma\0il").await, hopper.resume("ma\0il").await] {
        let err = paused.unwrap_err();
        assert!(
            matches!(err, hopper::store::StoreError::NulCharacter { .. }),
            "{err}"
        );
    }
    assert!(
        hopper.queue_stats().await.unwrap().is_empty(),
        "no queue row written"
    );

    // Inside a payload a NUL is JSON's \u0000; the handler's error, holding
    // the same NUL, is recorded with U+FFFD in its place.
    let id = hopper.dispatch::<Doomed>("bad\0byte".into()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let job = state_of(&queue, id).await;
    assert_eq!(job.payload_as::<String>().unwrap(), "bad\0byte");
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    assert_eq!(job.last_error.as_deref(), Some("bad\u{FFFD}byte"));
    assert_eq!(job.errors[0].error, "bad\u{FFFD}byte");
    queue.stop().await.unwrap();
}

pub async fn a_job_type_renamed_while_jobs_wait_fails_clearly_and_retries_once_back(db: &TestDb) {
    let before = builder().connect(db.url()).await.unwrap();
    let waiting = before
        .dispatch_many::<Noop>([(), ()], DispatchOptions::new())
        .await
        .unwrap();

    // The next release calls the type something else: `noop` is unknown.
    let renamed = db
        .start(hopper::Hopper::builder().register(Flaky).unwrap())
        .await
        .unwrap();
    renamed.wait_idle().await.unwrap();
    for &id in &waiting {
        let job = state_of(&renamed, id).await;
        assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
        assert_eq!(
            job.last_error.as_deref(),
            Some("no job registered for type noop")
        );
    }
    renamed.stop().await.unwrap();

    // The type is back: the failed jobs retry and run.
    let back = db.start(builder()).await.unwrap();
    for &id in &waiting {
        assert!(back.hopper().retry(id).await.unwrap());
    }
    back.wait_idle().await.unwrap();
    for &id in &waiting {
        let job = state_of(&back, id).await;
        assert_eq!((job.state, job.attempts), (JobState::Finished, 2));
        assert_eq!(job.errors.len(), 1, "the unknown-type failure is kept");
    }
    back.stop().await.unwrap();
}

pub async fn a_stored_payload_that_is_not_json_fails_permanently(db: &TestDb) {
    let queue = db.start(builder()).await.unwrap();
    let job = run_stored_flaky(&queue, "{fail_times: 1").await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 1));
    let error = job.last_error.unwrap();
    assert!(
        error.starts_with("payload does not fit job type flaky: key must be a string"),
        "{error}"
    );
    assert_eq!(
        job.payload, "{fail_times: 1",
        "the payload is kept as it was"
    );
    queue.stop().await.unwrap();
}

pub async fn instances_migrating_the_same_database_at_once_all_succeed(db: &TestDb) {
    let url = db.url();
    let (a, b, c) = tokio::join!(
        hopper::store::open(url),
        hopper::store::open(url),
        hopper::store::open(url)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    c.unwrap();
    // The schema is whole: every table answers, through either instance.
    let hopper = builder().build(a.clone());
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let now = hopper.now();
    let claimed = b
        .claim(claim_at("default", "w", 1, now, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, id);
    assert!(
        b.try_lease(LeaseRequest {
            lease: LeaseHolder {
                name: "migrated",
                holder: "w",
            },
            ttl: Duration::ZERO,
            now: Some(now),
        })
        .await
        .unwrap()
    );
    assert_eq!(
        a.take_tick(TickRequest {
            schedule: "migrated",
            fire_at: now,
            job: None,
        })
        .await
        .unwrap(),
        hopper::store::Tick::Passed
    );
    hopper.pause("q").await.unwrap();
    // And migrating again later changes nothing.
    hopper::store::open(url).await.unwrap();
    assert_eq!(b.get(id).await.unwrap().unwrap().state, JobState::Started);
}

pub async fn every_failed_job_of_a_type_is_retried_at_once_skipping_held_unique_keys(db: &TestDb) {
    let config = WorkerConfig::new(4).queue("other", 1);
    let queue = db.start_with(builder(), config).await.unwrap();
    let hopper = queue.hopper();
    let keyed = |key: &str| DispatchOptions::new().unique_key(key);
    let doomed = |options: DispatchOptions| hopper.dispatch_with::<Doomed>("no".into(), options);
    let plain = doomed(DispatchOptions::new()).await.unwrap();
    let elsewhere = doomed(DispatchOptions::new().queue("other")).await.unwrap();
    let held = doomed(keyed("held")).await.unwrap();
    let twin = doomed(keyed("twin")).await.unwrap();
    queue.wait_idle().await.unwrap();
    // The first twin failed, so its key is free for a second job with it.
    let second_twin = doomed(keyed("twin")).await.unwrap();
    let panicked = hopper.dispatch::<Panicker>("boom".into()).await.unwrap();
    queue.wait_idle().await.unwrap();
    for id in [plain, elsewhere, held, twin, second_twin, panicked] {
        assert_eq!(state_of(&queue, id).await.state, JobState::Failed, "{id}");
    }
    // Paused, so retried jobs stay pending to be read back, and the live
    // job holding "held" stays live.
    hopper.pause("default").await.unwrap();
    hopper.pause("other").await.unwrap();
    let holder = hopper
        .dispatch_with::<Noop>((), keyed("held"))
        .await
        .unwrap();

    let done = hopper
        .retry_all_failed(Some("doomed"), Some("other"))
        .await
        .unwrap();
    assert_eq!((done.retried, done.skipped), (1, 0));
    assert_eq!(done.queues, ["other"]);
    let job = state_of(&queue, elsewhere).await;
    assert_eq!(
        (job.state, job.attempts, job.max_attempts),
        (JobState::Pending, 1, 4),
        "as many more attempts as the type allows"
    );
    assert_eq!(job.available_at, hopper.now());
    assert!(job.finished_at.is_none());

    let done = hopper.retry_all_failed(Some("doomed"), None).await.unwrap();
    assert_eq!(
        (done.retried, done.skipped),
        (2, 2),
        "the job whose key a live job holds and the second job with a key retried in the same call are skipped"
    );
    assert_eq!(done.queues, ["default"]);
    for (id, state) in [
        (plain, JobState::Pending),
        (twin, JobState::Pending),
        (held, JobState::Failed),
        (second_twin, JobState::Failed),
        (panicked, JobState::Failed),
        (holder, JobState::Pending),
    ] {
        assert_eq!(state_of(&queue, id).await.state, state, "{id}");
    }

    let again = hopper.retry_all_failed(Some("doomed"), None).await.unwrap();
    assert_eq!((again.retried, again.skipped), (0, 2), "still held");

    let every = hopper.retry_all_failed(None, None).await.unwrap();
    assert_eq!((every.retried, every.skipped), (1, 2));
    let job = state_of(&queue, panicked).await;
    assert_eq!(
        (job.state, job.max_attempts),
        (JobState::Pending, 2),
        "each type gets its own attempts"
    );

    let nul = hopper
        .retry_all_failed(Some("doo\0med"), None)
        .await
        .unwrap();
    assert_eq!((nul.retried, nul.skipped), (0, 0));

    assert!(hopper.cancel(holder).await.unwrap());
    let freed = hopper.retry_all_failed(Some("doomed"), None).await.unwrap();
    assert_eq!(
        (freed.retried, freed.skipped),
        (1, 1),
        "the key is free again; the second twin's key is still held by the first"
    );
    assert_eq!(state_of(&queue, held).await.state, JobState::Pending);
    assert_eq!(state_of(&queue, second_twin).await.state, JobState::Failed);
    queue.stop().await.unwrap();
}

pub async fn retrying_every_failed_job_works_through_batches(db: &TestDb) {
    use hopper::store::{RETRY_FAILED_BATCH, RetryFailed};
    let (_clock, hopper) = on_test_clock(db).await;
    let store = hopper.store().clone();
    let now = hopper.now();
    let job = |key: Option<&str>| NewJob {
        max_attempts: 1,
        unique_key: key.map(str::to_owned),
        partition_key: None,
        ..new_job("bulk", "bulk", now)
    };
    let fail_all = |expected: usize| {
        let failed = Outcome::Failed { error: "no".into() };
        end_due_jobs(&*store, "bulk", now, expected, failed)
    };
    // More than two batches; the first and the last job share a unique key,
    // so the last finds it held by a job an earlier batch retried.
    let count = 2 * RETRY_FAILED_BATCH as usize + 7;
    let mut jobs = vec![job(Some("edge"))];
    jobs.extend((1..count - 1).map(|_| job(None)));
    let ids = store.insert(&jobs).await.unwrap();
    fail_all(count - 1).await;
    let last = store.insert(&[job(Some("edge"))]).await.unwrap()[0];
    assert!(ids.iter().all(|id| *id < last));
    fail_all(1).await;

    let request = RetryFailed {
        job_type: Some("bulk".into()),
        queue: None,
        now,
        extra_attempts: vec![("bulk".into(), 2)],
        default_extra_attempts: 1,
    };
    let done = store.retry_failed(&request).await.unwrap();
    assert_eq!(
        (done.retried, done.skipped),
        ((count - 1) as u64, 1),
        "every batch retried; the later job with a held key skipped"
    );
    assert_eq!(done.queues, ["bulk"]);
    let counts = store.counts().await.unwrap();
    let of = |state: JobState| {
        counts
            .iter()
            .find(|c| c.state == state)
            .map_or(0, |c| c.count)
    };
    assert_eq!(
        (of(JobState::Pending), of(JobState::Failed)),
        ((count - 1) as u64, 1)
    );
    assert_eq!(
        store.get(last).await.unwrap().unwrap().state,
        JobState::Failed
    );
    let first = store.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (first.state, first.attempts, first.max_attempts),
        (JobState::Pending, 1, 3)
    );

    let other = RetryFailed {
        job_type: Some("bulk".into()),
        queue: Some("elsewhere".into()),
        ..request
    };
    let none = store.retry_failed(&other).await.unwrap();
    assert_eq!((none.retried, none.skipped), (0, 0));
    assert!(none.queues.is_empty());
}
