//! Flow control from inside and outside a run: a handler snoozing, and a
//! running job cancelled from anywhere, on every database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hopper::{DispatchOptions, Job, JobContext, JobError, JobResult, JobState, WorkerConfig};

use crate::backends::TestDb;
use crate::cases::{claim_at, on_test_clock};
use crate::common::*;

/// Not ready at its first run: snoozes for a minute, then finishes.
struct ReadyLater;

impl Job for ReadyLater {
    const TYPE: &'static str = "ready_later";
    type Payload = ();
    async fn handle(&self, _: (), ctx: JobContext) -> JobResult {
        let runs = ctx.state::<Arc<AtomicUsize>>()?;
        if runs.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(JobError::snooze(
                Duration::from_secs(60),
                "the export is not ready",
            ));
        }
        Ok(())
    }
}

/// Runs until it is stopped, never looking at its cancellation.
struct Endless;

impl Job for Endless {
    const TYPE: &'static str = "endless";
    type Payload = ();
    async fn handle(&self, _: (), _: JobContext) -> JobResult {
        std::future::pending().await
    }
}

/// When a run of [`Watched`] was stopped, if one was.
#[derive(Clone, Debug, Default)]
struct StoppedAt(Arc<Mutex<Option<Instant>>>);

impl StoppedAt {
    fn get(&self) -> Option<Instant> {
        *self.0.lock().unwrap()
    }
}

/// Notes when the run holding it is stopped (its future dropped).
struct NotesStop(StoppedAt);

impl Drop for NotesStop {
    fn drop(&mut self) {
        *(self.0).0.lock().unwrap() = Some(Instant::now());
    }
}

/// Runs until it is stopped, noting when.
struct Watched;

impl Job for Watched {
    const TYPE: &'static str = "watched";
    type Payload = ();
    async fn handle(&self, _: (), ctx: JobContext) -> JobResult {
        let _notes = NotesStop(ctx.state::<StoppedAt>()?.clone());
        std::future::pending().await
    }
}

fn flow_builder() -> hopper::Builder {
    builder()
        .register(ReadyLater)
        .and_then(|b| b.register(Endless))
        .expect("distinct job names")
        .state(Arc::new(AtomicUsize::new(0)))
}

pub async fn a_snoozed_job_runs_again_later_without_using_an_attempt(db: &TestDb) {
    let queue = db.start(flow_builder()).await.unwrap();
    let hopper = queue.hopper();
    // One attempt: a snooze that used it would fail the job.
    let id = hopper
        .dispatch_with::<ReadyLater>((), DispatchOptions::new().max_attempts(1))
        .await
        .unwrap();
    queue.wait_idle().await.unwrap();
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Pending, 0));
    assert_eq!(
        job.available_at,
        hopper.now() + chrono::Duration::seconds(60)
    );
    assert!(job.errors.is_empty(), "a snooze is not an error");

    queue.advance(Duration::from_secs(60));
    queue.wait_idle().await.unwrap();
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Finished, 1));
    queue.stop().await.unwrap();
}

pub async fn a_running_job_cancelled_from_anywhere_ends_cancelled_and_its_pool_goes_on(
    db: &TestDb,
) {
    // Renewals every second: a cancel from another process is found then.
    let config = WorkerConfig::new(2).lease(Duration::from_secs(3));
    let queue = db.start_with(flow_builder(), config).await.unwrap();
    let hopper = queue.hopper();
    let elsewhere = builder().connect(db.url()).await.unwrap();

    let first = hopper.dispatch::<Endless>(()).await.unwrap();
    wait_state(hopper, first, JobState::Started).await;
    assert!(elsewhere.cancel(first).await.unwrap(), "it was running");
    wait_state(hopper, first, JobState::Cancelled).await;

    // Cancelled in the process that runs it.
    let second = hopper.dispatch::<Endless>(()).await.unwrap();
    wait_state(hopper, second, JobState::Started).await;
    assert!(hopper.cancel(second).await.unwrap());
    wait_state(hopper, second, JobState::Cancelled).await;
    let second = hopper.job(second).await.unwrap().unwrap();
    assert!(second.errors.is_empty(), "a cancel is not a failure");
    assert_eq!(second.attempts, 1);

    // The pool goes on working.
    let next = hopper.dispatch::<Noop>(()).await.unwrap();
    queue.wait_idle().await.unwrap();
    assert_eq!(
        hopper.job(next).await.unwrap().unwrap().state,
        JobState::Finished
    );
    // A job that is no longer running cannot be cancelled again.
    assert!(!hopper.cancel(next).await.unwrap());
    queue.stop().await.unwrap();
}

pub async fn a_running_job_cancelled_by_another_process_stops_at_once_where_the_database_notifies(
    db: &TestDb,
) {
    // PostgreSQL and SQLite tell the running pool of the cancel: with
    // renewals 20 s apart, only that is in time. MySQL has no such signal:
    // renewals every second find the cancel.
    let lease = Duration::from_secs(if db.notifies() { 60 } else { 3 });
    let stopped = StoppedAt::default();
    let jobs = flow_builder()
        .register(Watched)
        .expect("distinct job names")
        .state(stopped.clone());
    let config = WorkerConfig::new(1).lease(lease);
    let queue = db.start_with(jobs, config).await.unwrap();
    let hopper = queue.hopper();
    // Another process as far as the store knows: its own connections, and
    // none of the running pool's in-process signals.
    let elsewhere = builder().connect(db.url()).await.unwrap();

    let id = hopper.dispatch::<Watched>(()).await.unwrap();
    wait_state(hopper, id, JobState::Started).await;
    let asked = Instant::now();
    assert!(elsewhere.cancel(id).await.unwrap(), "it was running");
    wait_state(hopper, id, JobState::Cancelled).await;
    let took = stopped.get().expect("the run was stopped") - asked;
    assert!(
        took < Duration::from_secs(5),
        "the run stopped {took:?} after the cancel (renewals every {:?})",
        lease / 3
    );
    let job = hopper.job(id).await.unwrap().unwrap();
    assert!(job.errors.is_empty(), "a cancel is not a failure");
    queue.stop().await.unwrap();
}

pub async fn a_cancelled_running_job_whose_worker_died_is_rescued_as_cancelled(db: &TestDb) {
    let (clock, hopper) = on_test_clock(db).await;
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let store = hopper.store();
    let lease = Duration::from_secs(5);
    let claimed = store
        .claim(claim_at("default", "gone", 1, hopper.now(), lease))
        .await
        .unwrap();
    let claim = claimed[0].claim();
    store.mark_started(&[claim]).await.unwrap();
    assert!(store.request_cancel(id).await.unwrap());
    assert_eq!(store.cancels_requested(&[claim]).await.unwrap(), [claim]);
    assert!(!store.request_cancel(id + 1).await.unwrap(), "no such job");

    clock.advance(lease * 2);
    assert_eq!(store.rescue(Some(hopper.now())).await.unwrap(), [id]);
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.finished_at.is_some());
    assert!(job.errors.is_empty());
    assert!(store.cancels_requested(&[claim]).await.unwrap().is_empty());

    // A later claim of a retried job starts with no request.
    assert!(hopper.retry(id).await.unwrap());
    let again = store
        .claim(claim_at("default", "next", 1, hopper.now(), lease))
        .await
        .unwrap();
    assert!(
        store
            .cancels_requested(&[again[0].claim()])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_running_job_cancelled_just_before_a_stop_ends_cancelled_not_pending(db: &TestDb) {
    // Renewals are far apart: the stop comes before the pool sees the cancel.
    let config = WorkerConfig::new(1).shutdown_timeout(Duration::from_millis(100));
    let queue = db.start_with(flow_builder(), config).await.unwrap();
    let hopper = queue.hopper().clone();
    let elsewhere = builder().connect(db.url()).await.unwrap();
    let id = hopper.dispatch::<Endless>(()).await.unwrap();
    wait_state(&hopper, id, JobState::Started).await;
    assert!(elsewhere.cancel(id).await.unwrap());
    // Cut off at the deadline, the run is handed back: as cancelled.
    queue.stop().await.unwrap();
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.finished_at.is_some());
}

/// Counts how many of its runs overlap, across every pool of the test.
#[derive(Clone, Debug, Default)]
struct Overlap(Arc<(AtomicUsize, AtomicUsize)>);

/// Runs for a moment, counting the runs beside it.
struct Counted;

impl Job for Counted {
    const TYPE: &'static str = "counted";
    type Payload = ();
    async fn handle(&self, _: (), ctx: JobContext) -> JobResult {
        let overlap = ctx.state::<Overlap>()?;
        let (running, most) = &*overlap.0;
        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

pub async fn a_queue_limit_holds_across_pools_and_lifts(db: &TestDb) {
    let overlap = Overlap::default();
    let handle = || async {
        hopper::Hopper::builder()
            .register(Counted)
            .unwrap()
            .state(overlap.clone())
            .connect(db.url())
            .await
            .unwrap()
    };
    // Two pools on one handle: on SQLite, two handles in one process would
    // be two writers contending for the file, which tests nothing here.
    let one = handle().await;
    let two = one.clone();
    one.limit_queue("default", Some(2)).await.unwrap();
    let ids = one
        .dispatch_many::<Counted>(std::iter::repeat_n((), 24), DispatchOptions::new())
        .await
        .unwrap();
    // Two pools of four workers each, and the lease-free rescue out of the way.
    let pools = [
        one.start(WorkerConfig::new(4)).unwrap(),
        two.start(WorkerConfig::new(4)).unwrap(),
    ];
    for id in &ids {
        wait_state(&one, *id, JobState::Finished).await;
    }
    assert_eq!(
        overlap.0.1.load(Ordering::SeqCst),
        2,
        "at most two at once, and two"
    );

    one.limit_queue("default", None).await.unwrap();
    overlap.0.1.store(0, Ordering::SeqCst);
    let ids = one
        .dispatch_many::<Counted>(std::iter::repeat_n((), 24), DispatchOptions::new())
        .await
        .unwrap();
    for id in &ids {
        wait_state(&one, *id, JobState::Finished).await;
    }
    assert!(
        overlap.0.1.load(Ordering::SeqCst) > 2,
        "the limit is lifted"
    );
    for pool in pools {
        pool.stop().await.unwrap();
    }
}

/// One customer's visit: runs `hold_ms`, recording when it ran.
#[derive(serde::Serialize, serde::Deserialize)]
struct Visit {
    key: String,
    hold_ms: u64,
}

/// When one visit ran, by the test's clock.
#[derive(Clone, Debug)]
struct Run {
    key: String,
    start: Instant,
    end: Instant,
}

/// Every run of the test's visits, in the order they started.
#[derive(Clone, Debug, Default)]
struct RunLog(Arc<std::sync::Mutex<Vec<Run>>>);

impl RunLog {
    fn runs(&self) -> Vec<Run> {
        let mut runs = self.0.lock().unwrap().clone();
        runs.sort_by_key(|run| run.start);
        runs
    }
}

/// Serves one customer; its partition key is the customer.
struct CustomerJob;

impl Job for CustomerJob {
    const TYPE: &'static str = "customer";
    type Payload = Visit;
    async fn handle(&self, visit: Visit, ctx: JobContext) -> JobResult {
        let log = ctx.state::<RunLog>()?;
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(visit.hold_ms)).await;
        log.0.lock().unwrap().push(Run {
            key: visit.key,
            start,
            end: Instant::now(),
        });
        Ok(())
    }
    fn partition(visit: &Visit) -> Option<String> {
        Some(visit.key.clone())
    }
}

fn visits(key: &str, n: usize, hold_ms: u64) -> impl Iterator<Item = Visit> + '_ {
    (0..n).map(move |_| Visit {
        key: key.to_owned(),
        hold_ms,
    })
}

/// A handle on `db` that runs [`CustomerJob`]s into `log`.
async fn customers(db: &TestDb, log: &RunLog) -> hopper::Hopper {
    hopper::Hopper::builder()
        .register(CustomerJob)
        .unwrap()
        .state(log.clone())
        .connect(db.url())
        .await
        .unwrap()
}

/// Waits (at most 60 s) until `n` jobs have finished.
async fn wait_finished_count(hopper: &hopper::Hopper, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let finished: u64 = hopper
            .counts()
            .await
            .unwrap()
            .iter()
            .filter(|c| c.state == JobState::Finished)
            .map(|c| c.count)
            .sum();
        if finished >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{finished} of {n} jobs finished in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The most runs of `runs` that overlapped at any instant.
fn most_overlapping<'a>(runs: impl IntoIterator<Item = &'a Run>) -> usize {
    let mut edges: Vec<(Instant, i32)> = Vec::new();
    for run in runs {
        edges.push((run.start, 1));
        edges.push((run.end, -1));
    }
    // An end sorts before a start at the same instant.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

pub async fn a_per_key_limit_holds_across_pools_and_a_full_key_blocks_no_other(db: &TestDb) {
    use hopper::store::QueueFlow;
    let log = RunLog::default();
    let one = customers(db, &log).await;
    one.set_queue_flow("default", QueueFlow::default().per_key(1))
        .await
        .unwrap();
    // One customer with a long backlog of slow visits, queued first, and
    // three with a few quick ones.
    let mut jobs: Vec<Visit> = visits("big", 12, 150).collect();
    for key in ["a", "b", "c"] {
        jobs.extend(visits(key, 4, 20));
    }
    let total = jobs.len() as u64;
    one.dispatch_many::<CustomerJob>(jobs, DispatchOptions::new())
        .await
        .unwrap();
    let pools = [
        one.start(WorkerConfig::new(3)).unwrap(),
        one.clone().start(WorkerConfig::new(3)).unwrap(),
    ];
    wait_finished_count(&one, total).await;
    for pool in pools {
        pool.stop().await.unwrap();
    }
    let runs = log.runs();
    for key in ["big", "a", "b", "c"] {
        let of_key: Vec<&Run> = runs.iter().filter(|run| run.key == key).collect();
        assert_eq!(most_overlapping(of_key), 1, "key {key} ran one at a time");
    }
    assert!(
        most_overlapping(&runs) > 1,
        "different keys ran side by side"
    );
    // The small keys were not held behind the big key's backlog: they all
    // ended while it still had most of its visits to run.
    let small_done = runs
        .iter()
        .filter(|run| run.key != "big")
        .map(|run| run.end)
        .max()
        .unwrap();
    let big_after = runs
        .iter()
        .filter(|run| run.key == "big" && run.start >= small_done)
        .count();
    assert!(
        big_after >= 6,
        "only {big_after} big visits were left when the small keys ended"
    );
}

pub async fn a_fair_queue_serves_every_key_in_turn(db: &TestDb) {
    use hopper::store::QueueFlow;
    let log = RunLog::default();
    let hopper = customers(db, &log).await;
    hopper
        .set_queue_flow("default", QueueFlow::default().fair())
        .await
        .unwrap();
    let mut jobs: Vec<Visit> = visits("big", 40, 0).collect();
    for key in ["s1", "s2", "s3"] {
        jobs.extend(visits(key, 3, 0));
    }
    let total = jobs.len() as u64;
    hopper
        .dispatch_many::<CustomerJob>(jobs, DispatchOptions::new())
        .await
        .unwrap();
    // One worker: the order of runs is the order of claims.
    let pool = hopper.start(WorkerConfig::new(1)).unwrap();
    wait_finished_count(&hopper, total).await;
    pool.stop().await.unwrap();
    let order: Vec<String> = log.runs().into_iter().map(|run| run.key).collect();
    let last_small = order.iter().rposition(|key| key != "big").unwrap();
    // In turn, the nine small visits are done within about twice their
    // count; oldest first, they would wait behind all forty big ones.
    assert!(
        last_small < 2 * 9 + 2,
        "the small keys' last visit ran {}th: {order:?}",
        last_small + 1
    );
    assert_eq!(order.iter().filter(|key| *key == "big").count(), 40);
}

pub async fn a_rate_limit_holds_in_every_window(db: &TestDb) {
    use hopper::store::{QueueFlow, Rate};
    let log = RunLog::default();
    let hopper = customers(db, &log).await;
    let period = Duration::from_millis(500);
    hopper
        .set_queue_flow("default", QueueFlow::default().rate(Rate::new(4, period)))
        .await
        .unwrap();
    let ids = hopper
        .dispatch_many::<CustomerJob>(visits("x", 14, 0), DispatchOptions::new())
        .await
        .unwrap();
    let pool = hopper
        .start(WorkerConfig::new(4).poll_interval(Duration::from_millis(20)))
        .unwrap();
    wait_finished_count(&hopper, ids.len() as u64).await;
    pool.stop().await.unwrap();
    // The starts the database recorded, in order.
    let mut starts = Vec::new();
    for id in &ids {
        let job = hopper.job(*id).await.unwrap().unwrap();
        assert_eq!(job.attempts, 1, "no attempt was used waiting");
        starts.push(job.started_at.unwrap());
    }
    starts.sort();
    for (n, first) in starts.iter().enumerate() {
        let window_end = *first + chrono::Duration::from_std(period).unwrap();
        let in_window = starts[n..]
            .iter()
            .take_while(|at| **at < window_end)
            .count();
        assert!(
            in_window <= 4,
            "{in_window} starts in the window from {first}: {starts:?}"
        );
    }
    // Fourteen starts at four a window need at least four windows.
    let span = starts[13] - starts[0];
    assert!(
        span >= chrono::Duration::from_std(period * 3).unwrap(),
        "{span}"
    );
}

pub async fn a_per_key_rate_limits_each_key_alone(db: &TestDb) {
    use hopper::store::{QueueFlow, Rate};
    let log = RunLog::default();
    let hopper = customers(db, &log).await;
    hopper
        .set_queue_flow(
            "default",
            QueueFlow::default().rate(Rate::per_key(2, Duration::from_secs(60))),
        )
        .await
        .unwrap();
    let mut jobs: Vec<Visit> = visits("a", 5, 0).collect();
    jobs.extend(visits("b", 5, 0));
    hopper
        .dispatch_many::<CustomerJob>(jobs, DispatchOptions::new())
        .await
        .unwrap();
    let pool = hopper.start(WorkerConfig::new(4)).unwrap();
    wait_finished_count(&hopper, 4).await;
    // Two per key in the minute, and the rest wait with their attempts unused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    pool.stop().await.unwrap();
    let runs = log.runs();
    for key in ["a", "b"] {
        assert_eq!(runs.iter().filter(|run| run.key == key).count(), 2, "{key}");
    }
    let pending = hopper
        .counts()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.state == JobState::Pending)
        .map_or(0, |c| c.count);
    assert_eq!(pending, 6);
}

/// A handle on `db` on a test clock, and that clock, with the `default`
/// queue running at most `limit` jobs of one key at once.
async fn per_key_queue(db: &TestDb, limit: u32) -> (hopper::clock::ManualClock, hopper::Hopper) {
    let (clock, hopper) = on_test_clock(db).await;
    hopper
        .set_queue_flow(
            "default",
            hopper::store::QueueFlow::default().per_key(limit),
        )
        .await
        .unwrap();
    (clock, hopper)
}

pub async fn a_keyed_job_retried_after_its_key_went_idle_still_runs(db: &TestDb) {
    let (clock, hopper) = per_key_queue(db, 2).await;
    let store = hopper.store().clone();
    let now = hopper.now();
    let mut job = crate::common::new_job("ping", "default", now);
    job.partition_key = Some("k".into());
    let id = store.insert(&[job]).await.unwrap()[0];
    let claimed = store
        .claim(claim_at("default", "w", 5, now, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "one job, claimed");
    // With the only job running and room for another (the limit is 2), a
    // claim looks at the key, finds nothing pending and marks it idle.
    let none = store
        .claim(claim_at("default", "w", 5, now, Duration::from_secs(30)))
        .await
        .unwrap();
    assert!(none.is_empty());
    // The run fails; the retry makes the job pending again, and the key ready.
    let failed = hopper::store::Completion {
        claim: claimed[0].claim(),
        attempt: 1,
        outcome: hopper::store::Outcome::Retry {
            at: now,
            error: "try again".into(),
        },
    };
    let request = hopper::store::CompleteRequest {
        completions: &[failed],
        ended_at: now,
    };
    assert_eq!(store.complete(request).await.unwrap(), 1);
    clock.advance(Duration::from_secs(1));
    let again = store
        .claim(claim_at(
            "default",
            "w",
            5,
            hopper.now(),
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert_eq!(again.iter().map(|job| job.id).collect::<Vec<_>>(), [id]);
}

pub async fn a_keyed_claim_passes_keys_that_ran_dry_to_reach_a_due_job(db: &TestDb) {
    let (_clock, hopper) = per_key_queue(db, 1).await;
    let store = hopper.store().clone();
    let now = hopper.now();
    // Fifty keys of one job each, and a last key with two.
    let mut jobs: Vec<_> = (0..50)
        .map(|n| keyed_job("default", &format!("k{n:02}"), now))
        .collect();
    jobs.extend([
        keyed_job("default", "k50", now),
        keyed_job("default", "k50", now),
    ]);
    let ids = store.insert(&jobs).await.unwrap();
    let first = store
        .claim(claim_at("default", "w", 100, now, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(first.len(), 51, "one job of each key");
    assert_eq!(finish_all(&*store, &first, now).await, 51);
    // Every key but the last has run dry, and none is known to be yet: a
    // claim for one job goes round them all to the last key's second job.
    let next = store
        .claim(claim_at("default", "w", 1, now, Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(next.iter().map(|job| job.id).collect::<Vec<_>>(), [ids[51]]);
}

pub async fn a_per_key_limit_takes_jobs_oldest_first_and_a_window_of_one_full_key_holds_no_other_back(
    db: &TestDb,
) {
    let (_clock, hopper) = per_key_queue(db, 2).await;
    let store = hopper.store().clone();
    let now = hopper.now();
    // One key's hundred jobs, more than a claim's window of the oldest,
    // then one of another key.
    let mut jobs: Vec<_> = (0..100).map(|_| keyed_job("default", "big", now)).collect();
    jobs.push(keyed_job("default", "small", now));
    let ids = store.insert(&jobs).await.unwrap();
    let claim = |limit| {
        store.claim(claim_at(
            "default",
            "w",
            limit,
            now,
            Duration::from_secs(30),
        ))
    };
    // Without fairness asked for, the oldest jobs go first: both of the
    // big key's, not one of each key.
    let mut first: Vec<hopper::JobId> = claim(2).await.unwrap().iter().map(|job| job.id).collect();
    first.sort_unstable();
    assert_eq!(first, ids[..2]);
    // The big key is at its limit and fills the window: the claim passes
    // over it to the other key's job.
    let next: Vec<hopper::JobId> = claim(1).await.unwrap().iter().map(|job| job.id).collect();
    assert_eq!(next, [ids[100]]);
    // Room for more, but every key is at its limit or empty.
    assert!(claim(5).await.unwrap().is_empty());
}

/// A transaction of the application's holding job `id`'s row locked, as a
/// sequence dispatch holds its key's last job; `None` on SQLite, whose one
/// writer lets no claim run beside another transaction's writes.
enum HeldRow {
    None,
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    Mysql(sqlx::Transaction<'static, sqlx::MySql>),
}

impl HeldRow {
    /// Ends the transaction, letting the row go.
    #[cfg(any(feature = "postgres", feature = "mysql"))]
    async fn release(self) {
        match self {
            Self::None => {}
            #[cfg(feature = "postgres")]
            Self::Postgres(tx) => tx.rollback().await.unwrap(),
            #[cfg(feature = "mysql")]
            Self::Mysql(tx) => tx.rollback().await.unwrap(),
        }
    }
}

async fn hold_row(hopper: &hopper::Hopper, id: hopper::JobId) -> HeldRow {
    #[cfg(feature = "postgres")]
    if let Some(store) = hopper.store_as::<hopper::store::postgres::PostgresStore>() {
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        return HeldRow::Postgres(tx);
    }
    #[cfg(feature = "mysql")]
    if let Some(store) = hopper.store_as::<hopper::store::mysql::MysqlStore>() {
        let mut tx = store.pool().begin().await.unwrap();
        sqlx::query("SELECT id FROM jobs WHERE id = ? FOR UPDATE")
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        return HeldRow::Mysql(tx);
    }
    let _ = (hopper, id);
    HeldRow::None
}

pub async fn a_flow_claim_passes_over_a_job_another_transaction_holds(db: &TestDb) {
    let (_clock, hopper) = per_key_queue(db, 1).await;
    let store = hopper.store().clone();
    let now = hopper.now();
    let ids = store
        .insert(&[
            keyed_job("default", "a", now),
            keyed_job("default", "b", now),
        ])
        .await
        .unwrap();
    let held = hold_row(&hopper, ids[0]).await;
    let claim = store.claim(claim_at("default", "w", 5, now, Duration::from_secs(30)));
    let claimed = tokio::time::timeout(Duration::from_secs(10), claim)
        .await
        .expect("the claim waited for the transaction holding a job")
        .unwrap();
    let mut taken: Vec<hopper::JobId> = claimed.iter().map(|job| job.id).collect();
    taken.sort_unstable();
    match held {
        HeldRow::None => assert_eq!(taken, ids),
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        held => {
            // The held job is passed over, not waited on; once let go, the
            // next claim takes it.
            assert_eq!(taken, [ids[1]]);
            held.release().await;
            let next = store
                .claim(claim_at("default", "w", 5, now, Duration::from_secs(30)))
                .await
                .unwrap();
            assert_eq!(next.iter().map(|job| job.id).collect::<Vec<_>>(), [ids[0]]);
        }
    }
}

pub async fn keys_that_differ_only_in_case_or_accents_are_partitions_of_their_own(db: &TestDb) {
    let (_clock, hopper) = per_key_queue(db, 1).await;
    let store = hopper.store().clone();
    let now = hopper.now();
    // (MySQL/MariaDB collations ignore trailing spaces: docs/guarantees.md.)
    let keys = ["acme", "ACME", "Acme", "acmé", "acme\u{301}"];
    let jobs: Vec<_> = keys
        .iter()
        .flat_map(|key| {
            [
                keyed_job("default", key, now),
                keyed_job("default", key, now),
            ]
        })
        .collect();
    let ids = store.insert(&jobs).await.unwrap();
    let claimed = store
        .claim(claim_at("default", "w", 20, now, Duration::from_secs(30)))
        .await
        .unwrap();
    // One job of each key, its first: each key is held by its own job only.
    let mut got: Vec<_> = claimed.iter().map(|job| job.id).collect();
    got.sort_unstable();
    let firsts: Vec<_> = ids.iter().step_by(2).copied().collect();
    assert_eq!(got, firsts);
}

pub async fn idle_partition_keys_are_pruned_and_come_back_with_their_next_job(db: &TestDb) {
    let (clock, hopper) = per_key_queue(db, 1).await;
    let store = hopper.store().clone();
    let keyed = |key: &str| keyed_job("default", key, hopper.now());
    let claim = || {
        let store = store.clone();
        let due_by = hopper.now();
        async move {
            store
                .claim(claim_at(
                    "default",
                    "w",
                    10,
                    due_by,
                    Duration::from_secs(30),
                ))
                .await
                .unwrap()
        }
    };
    store
        .insert(&[keyed("a"), keyed("b"), keyed("c")])
        .await
        .unwrap();
    let ran = claim().await;
    assert_eq!(ran.len(), 3);
    assert_eq!(finish_all(&*store, &ran, hopper.now()).await, 3);
    // Nothing is pending under any key: this claim finds each key empty
    // and marks it idle, and the pruner forgets idle keys.
    assert!(claim().await.is_empty());
    assert_eq!(store.prune_idle_keys(100).await.unwrap(), 3);
    assert_eq!(store.prune_idle_keys(100).await.unwrap(), 0);

    // A pruned key comes back with its next pending job.
    clock.advance(Duration::from_secs(1));
    let mut next = store.insert(&[keyed("b"), keyed("a")]).await.unwrap();
    next.sort_unstable();
    let mut again: Vec<_> = claim().await.iter().map(|job| job.id).collect();
    again.sort_unstable();
    assert_eq!(again, next);
}

pub async fn flow_settings_round_trip_and_nonsense_is_refused(db: &TestDb) {
    use hopper::store::{QueueFlow, Rate};
    let log = RunLog::default();
    let hopper = customers(db, &log).await;
    assert_eq!(
        hopper.queue_flow("mail").await.unwrap(),
        QueueFlow::default()
    );
    let flow = QueueFlow::default()
        .concurrency(7)
        .per_key(2)
        .rate(Rate::per_key(30, Duration::from_millis(1500)))
        .fair();
    hopper.set_queue_flow("mail", flow).await.unwrap();
    assert_eq!(hopper.queue_flow("mail").await.unwrap(), flow);
    hopper.limit_queue("mail", None).await.unwrap();
    let lifted = hopper.queue_flow("mail").await.unwrap();
    assert_eq!(
        lifted,
        QueueFlow {
            concurrency: None,
            ..flow
        }
    );
    let zero = hopper
        .set_queue_flow("mail", QueueFlow::default().per_key(0))
        .await
        .unwrap_err();
    assert!(zero.to_string().contains("at least 1"), "{zero}");
    assert_eq!(
        hopper.queue_flow("mail").await.unwrap(),
        lifted,
        "nothing changed"
    );
    hopper
        .set_queue_flow("mail", QueueFlow::default())
        .await
        .unwrap();
    assert!(!hopper.queue_flow("mail").await.unwrap().is_controlled());
    // A partition key too long for every database is refused at dispatch.
    let long = "k".repeat(256);
    let err = hopper
        .dispatch_with::<CustomerJob>(
            Visit {
                key: long,
                hold_ms: 0,
            },
            DispatchOptions::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("255"), "{err}");
}

pub async fn a_rate_limit_under_a_backlog_starts_its_rate_over_thirty_seconds(db: &TestDb) {
    use hopper::store::{QueueFlow, Rate};
    const RATE: usize = 10;
    let log = RunLog::default();
    let hopper = customers(db, &log).await;
    let period = Duration::from_secs(1);
    hopper
        .set_queue_flow(
            "default",
            QueueFlow::default().rate(Rate::new(RATE as u32, period)),
        )
        .await
        .unwrap();
    // More than thirty seconds' worth.
    hopper
        .dispatch_many::<CustomerJob>(visits("x", 40 * RATE, 0), DispatchOptions::new())
        .await
        .unwrap();
    let pool = hopper.start(WorkerConfig::new(4)).unwrap();
    tokio::time::sleep(Duration::from_secs(32)).await;
    pool.stop().await.unwrap();
    let jobs = hopper::testing::all_jobs(&hopper, &hopper::JobFilter::default())
        .await
        .unwrap();
    let mut starts: Vec<_> = jobs.iter().filter_map(|job| job.started_at).collect();
    starts.sort();
    let thirty = chrono::Duration::seconds(30);
    let in_thirty = starts
        .iter()
        .take_while(|at| **at < starts[0] + thirty)
        .count();
    // Thirty windows of ten: never more, and within 5% of it.
    assert!(
        (285..=300).contains(&in_thirty),
        "{in_thirty} starts in the first 30 s, for a rate of {RATE} a second"
    );
}

pub async fn bulk_dispatches_sharing_keys_in_opposite_orders_do_not_deadlock(db: &TestDb) {
    let log = RunLog::default();
    let one = customers(db, &log).await;
    let two = customers(db, &log).await;
    let batch = |reverse: bool| -> Vec<Visit> {
        let mut keys: Vec<String> = (0..10).map(|k| format!("k{k}")).collect();
        if reverse {
            keys.reverse();
        }
        keys.iter()
            .cycle()
            .take(50)
            .map(|key| Visit {
                key: key.clone(),
                hold_ms: 0,
            })
            .collect()
    };
    let send = |hopper: hopper::Hopper, reverse: bool| async move {
        for _ in 0..20 {
            hopper
                .dispatch_many::<CustomerJob>(batch(reverse), DispatchOptions::new())
                .await
                .expect("no dispatch fails");
        }
    };
    tokio::join!(send(one.clone(), false), send(two, true));
    let pending: u64 = one
        .counts()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == JobState::Pending)
        .map(|c| c.count)
        .sum();
    assert_eq!(pending, 2 * 20 * 50);
}

pub async fn a_server_store_halves_claims_ahead_only_from_queues_with_flow_settings(db: &TestDb) {
    let (_clock, hopper) = on_test_clock(db).await;
    let store = hopper.store().clone();
    // Another process's store, which learns the settings from its claims.
    let other = hopper::store::open(db.url()).await.unwrap();
    let server = !db.url().starts_with("sqlite:");
    let now = hopper.now();
    let claim = |store: Arc<dyn hopper::store::Store>| async move {
        store
            .claim(claim_at("default", "w", 1, now, Duration::from_secs(30)))
            .await
            .unwrap()
    };
    assert!(!store.halve_claims_ahead("default"));
    claim(other.clone()).await;
    assert!(!other.halve_claims_ahead("default"), "no settings yet");
    hopper
        .set_queue_flow(
            "default",
            hopper::store::QueueFlow::default().concurrency(5),
        )
        .await
        .unwrap();
    assert_eq!(store.halve_claims_ahead("default"), server);
    claim(other.clone()).await;
    assert_eq!(other.halve_claims_ahead("default"), server);
    assert!(
        !other.halve_claims_ahead("another"),
        "a queue never claimed from"
    );
    hopper
        .set_queue_flow("default", hopper::store::QueueFlow::default())
        .await
        .unwrap();
    assert!(!store.halve_claims_ahead("default"));
    claim(other.clone()).await;
    assert!(!other.halve_claims_ahead("default"), "settings removed");
}
