//! Sequences: jobs sharing a key run one at a time in dispatch order while
//! other keys run in parallel; a job that fails for good holds its
//! sequence (until retried and finished, or the next job's wait is
//! skipped) unless it lets the sequence go on; two processes dispatching
//! into one key at once still form one line; a deleted job others wait on
//! ends their wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hopper::store::PruneRequest;
use hopper::{
    DispatchError, DispatchOptions, Hopper, Job, JobContext, JobError, JobId, JobResult, JobState,
    StoreError, WorkerConfig,
};

use crate::backends::TestDb;
use crate::common::{wait_finished, wait_state};

/// What the sequence jobs saw: per key, the numbers in the order they
/// started, how many ran at once at most, and how many of all keys.
#[derive(Clone, Default)]
struct Line(Arc<Mutex<Seen>>);

#[derive(Default)]
struct Seen {
    started: HashMap<String, Vec<u32>>,
    running: HashMap<String, u32>,
    most_per_key: u32,
    running_all: u32,
    most_all: u32,
}

/// Fails for good while this is set and the payload says so.
#[derive(Clone, Default)]
struct Failing(Arc<AtomicBool>);

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    key: String,
    n: u32,
    fail: bool,
}

struct EntryJob;

impl Job for EntryJob {
    const TYPE: &'static str = "sequence entry";
    type Payload = Entry;
    async fn handle(&self, entry: Entry, ctx: JobContext) -> JobResult {
        let line = ctx.state::<Line>()?;
        {
            let mut seen = line.0.lock().unwrap();
            seen.started
                .entry(entry.key.clone())
                .or_default()
                .push(entry.n);
            let running = seen.running.entry(entry.key.clone()).or_default();
            *running += 1;
            let running = *running;
            seen.most_per_key = seen.most_per_key.max(running);
            seen.running_all += 1;
            seen.most_all = seen.most_all.max(seen.running_all);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        {
            let mut seen = line.0.lock().unwrap();
            *seen.running.entry(entry.key.clone()).or_default() -= 1;
            seen.running_all -= 1;
        }
        if entry.fail && ctx.state::<Failing>()?.0.load(Ordering::SeqCst) {
            return Err(JobError::permanent("told to fail"));
        }
        Ok(())
    }
}

fn entry(key: &str, n: u32, fail: bool) -> Entry {
    Entry {
        key: key.to_owned(),
        n,
        fail,
    }
}

async fn handle(db: &TestDb, line: &Line, failing: &Failing) -> Hopper {
    Hopper::builder()
        .register(EntryJob)
        .unwrap()
        .state(line.clone())
        .state(failing.clone())
        .connect(db.url())
        .await
        .unwrap()
}

async fn dispatch(hopper: &Hopper, key: &str, n: u32, fail: bool) -> JobId {
    hopper
        .dispatch_with::<EntryJob>(entry(key, n, fail), DispatchOptions::new().sequence(key))
        .await
        .unwrap()
}

async fn job(hopper: &Hopper, id: JobId) -> hopper::JobRecord {
    hopper.job(id).await.unwrap().expect("the job exists")
}

pub async fn a_sequences_jobs_run_one_at_a_time_in_dispatch_order_and_keys_in_parallel(
    db: &TestDb,
) {
    let line = Line::default();
    let hopper = handle(db, &line, &Failing::default()).await;
    let keys = ["a", "b", "c", "d"];
    let mut ids = Vec::new();
    // Half before the pool starts, half while it runs: some jobs join a
    // sequence whose last job is running or ending at that moment.
    for n in 0..10 {
        for key in keys {
            ids.push(dispatch(&hopper, key, n, false).await);
        }
    }
    let pool = hopper.start(WorkerConfig::new(8)).unwrap();
    for n in 10..15 {
        for key in keys {
            ids.push(dispatch(&hopper, key, n, false).await);
        }
    }
    // A bulk dispatch lines its jobs up in order too.
    let bulk = (15..20).map(|n| entry("a", n, false));
    ids.extend(
        hopper
            .dispatch_many::<EntryJob>(bulk, DispatchOptions::new().sequence("a"))
            .await
            .unwrap(),
    );
    wait_finished(&hopper, &pool, &ids).await;
    pool.stop().await.unwrap();
    let seen = line.0.lock().unwrap();
    for key in keys {
        let want: Vec<u32> = (0..if key == "a" { 20 } else { 15 }).collect();
        assert_eq!(seen.started[key], want, "sequence {key} in dispatch order");
    }
    assert_eq!(seen.most_per_key, 1, "one job of a sequence at a time");
    assert!(
        seen.most_all > 1,
        "different sequences ran in parallel (at most {} at once)",
        seen.most_all
    );
}

pub async fn a_failed_job_holds_its_sequence_until_skipped_or_retried_unless_it_lets_it_go_on(
    db: &TestDb,
) {
    let line = Line::default();
    let failing = Failing::default();
    failing.0.store(true, Ordering::SeqCst);
    let hopper = handle(db, &line, &failing).await;
    // Held: the second job waits after the first fails; skipping its wait runs it.
    let held = dispatch(&hopper, "held", 0, true).await;
    let second = dispatch(&hopper, "held", 1, false).await;
    let third = dispatch(&hopper, "held", 2, false).await;
    // Retried: the failed job, retried by hand and finished, lets the next go.
    let retried = dispatch(&hopper, "retried", 0, true).await;
    let after_retry = dispatch(&hopper, "retried", 1, false).await;
    // Going on: a job dispatched to continue lets the next run after its failure.
    let goes_on = hopper
        .dispatch_with::<EntryJob>(
            entry("goes on", 0, true),
            DispatchOptions::new()
                .sequence("goes on")
                .continue_sequence_on_failure(),
        )
        .await
        .unwrap();
    let next = dispatch(&hopper, "goes on", 1, false).await;

    let pool = hopper.start(WorkerConfig::new(4)).unwrap();
    wait_state(&hopper, next, JobState::Finished).await;
    wait_state(&hopper, held, JobState::Failed).await;
    wait_state(&hopper, retried, JobState::Failed).await;
    pool.stop().await.unwrap();
    assert_eq!(job(&hopper, goes_on).await.state, JobState::Failed);
    // The pool's last settle saw both failures: what waits on them still waits.
    for id in [second, third, after_retry] {
        let waiting = job(&hopper, id).await;
        assert_eq!((waiting.state, waiting.waiting_on), (JobState::Pending, 1));
    }
    // A job dispatched behind a held sequence waits too.
    let fourth = dispatch(&hopper, "held", 3, false).await;
    assert_eq!(job(&hopper, fourth).await.waiting_on, 1);
    let deps = hopper.store().dependencies(&[second]).await.unwrap();
    assert_eq!(deps.len(), 1);
    assert_eq!(
        (deps[0].job_id, deps[0].state, deps[0].step.as_str()),
        (held, JobState::Failed, "held")
    );

    assert!(hopper.skip_wait(second).await.unwrap());
    assert!(!hopper.skip_wait(second).await.unwrap(), "skipped once");
    failing.0.store(false, Ordering::SeqCst);
    assert!(hopper.retry(retried).await.unwrap());
    let pool = hopper.start(WorkerConfig::new(4)).unwrap();
    wait_finished(
        &hopper,
        &pool,
        &[second, third, fourth, retried, after_retry],
    )
    .await;
    pool.stop().await.unwrap();
    let seen = line.0.lock().unwrap();
    assert_eq!(seen.started["held"], [0, 1, 2, 3]);
    assert_eq!(seen.started["retried"], [0, 0, 1]);
    assert_eq!(seen.started["goes on"], [0, 1]);
    assert_eq!(seen.most_per_key, 1);
}

pub async fn two_processes_dispatching_into_one_sequence_at_once_form_one_line(db: &TestDb) {
    let line = Line::default();
    let hopper = handle(db, &line, &Failing::default()).await;
    let other = handle(db, &line, &Failing::default()).await;
    let dispatching = |hopper: Hopper, from: u32| {
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in from..from + 30 {
                ids.push(dispatch(&hopper, "shared", n, false).await);
            }
            ids
        })
    };
    let (mine, theirs) = tokio::join!(dispatching(hopper.clone(), 0), dispatching(other, 100));
    let mut ids = mine.unwrap();
    ids.extend(theirs.unwrap());
    ids.sort_unstable();
    // One line: every job but the first waits on exactly one other, and
    // no job has two waiting on it.
    let deps = hopper.store().dependencies(&ids).await.unwrap();
    assert_eq!(deps.len(), ids.len() - 1, "{deps:?}");
    let mut waited_on: Vec<JobId> = deps.iter().map(|d| d.job_id).collect();
    waited_on.sort_unstable();
    waited_on.dedup();
    assert_eq!(waited_on.len(), ids.len() - 1);
    let waiting = deps.iter().map(|d| d.dependent).collect::<Vec<_>>();
    let heads: Vec<&JobId> = ids.iter().filter(|id| !waiting.contains(id)).collect();
    assert_eq!(heads.len(), 1, "one job of the line waits on nothing");

    let pool = hopper.start(WorkerConfig::new(8)).unwrap();
    wait_finished(&hopper, &pool, &ids).await;
    pool.stop().await.unwrap();
    assert_eq!(line.0.lock().unwrap().most_per_key, 1);
    // Each process's own jobs ran in the order it dispatched them.
    let started = line.0.lock().unwrap().started["shared"].clone();
    for range in [0..30, 100..130] {
        let own: Vec<u32> = started
            .iter()
            .copied()
            .filter(|n| range.contains(n))
            .collect();
        assert_eq!(own, range.collect::<Vec<_>>());
    }

    // Once its last job is pruned, the sequence is forgotten, and its next
    // job has nothing to wait on.
    let request = PruneRequest {
        before: hopper.now() + chrono::Duration::hours(1),
        limit: 1_000,
    };
    assert_eq!(
        hopper
            .store()
            .prune(JobState::Finished, request)
            .await
            .unwrap(),
        60
    );
    assert_eq!(hopper.store().prune_sequences(100).await.unwrap(), 1);
    let fresh = dispatch(&hopper, "shared", 200, false).await;
    assert_eq!(job(&hopper, fresh).await.waiting_on, 0);
}

pub async fn deleting_a_pending_job_others_wait_on_ends_their_wait(db: &TestDb) {
    let line = Line::default();
    let hopper = handle(db, &line, &Failing::default()).await;
    // In a workflow, the dependent is cancelled as at its dependency's cancel.
    let workflow = hopper
        .workflow("deleted")
        .add::<EntryJob>("first", entry("wf", 0, false))
        .unwrap()
        .add_after::<EntryJob>(&["first"], "second", entry("wf", 1, false))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    assert!(hopper.delete(workflow.jobs["first"]).await.unwrap());
    let second = job(&hopper, workflow.jobs["second"]).await;
    assert_eq!(second.state, JobState::Cancelled);
    // In a sequence, the next job is held as at a cancel, and its wait can be skipped.
    let first = dispatch(&hopper, "deleted", 0, false).await;
    let next = dispatch(&hopper, "deleted", 1, false).await;
    assert!(hopper.delete(first).await.unwrap());
    let held = job(&hopper, next).await;
    assert_eq!((held.state, held.waiting_on), (JobState::Pending, 1));
    assert!(hopper.skip_wait(next).await.unwrap());
    let pool = hopper.start(WorkerConfig::new(2)).unwrap();
    wait_finished(&hopper, &pool, &[next]).await;
    pool.stop().await.unwrap();
}

pub async fn a_sequence_that_cannot_be_kept_is_refused_and_stores_nothing(db: &TestDb) {
    let hopper = handle(db, &Line::default(), &Failing::default()).await;
    let refused = |options: DispatchOptions| {
        let hopper = hopper.clone();
        async move {
            match hopper
                .dispatch_with::<EntryJob>(entry("x", 0, false), options)
                .await
            {
                Err(DispatchError::Store(StoreError::InvalidSequence(reason))) => reason,
                other => panic!("refused as an invalid sequence, got {other:?}"),
            }
        }
    };
    let reason = refused(DispatchOptions::new().sequence("k").unique_key("once")).await;
    assert!(reason.contains("unique key"), "{reason}");
    let reason = refused(DispatchOptions::new().sequence("k").partition("p")).await;
    assert!(reason.contains("partition key"), "{reason}");
    let reason = refused(DispatchOptions::new().sequence("k".repeat(256))).await;
    assert!(reason.contains("255"), "{reason}");
    let reason = refused(DispatchOptions::new().sequence("")).await;
    assert!(reason.contains("255"), "{reason}");
    let step = hopper
        .prepare::<EntryJob>(entry("x", 0, false), DispatchOptions::new().sequence("k"))
        .unwrap();
    let err = hopper
        .workflow("with a sequence")
        .step(&[], false, "a", step)
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("sequence"), "{err}");
    assert_eq!(
        hopper
            .count_jobs(&hopper::JobFilter::default())
            .await
            .unwrap(),
        0
    );
}
