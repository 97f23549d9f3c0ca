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

/// Waits (at most 60 s) until job `id` is in `state`.
async fn wait_state(hopper: &hopper::Hopper, id: hopper::JobId, state: JobState) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = hopper.job(id).await.unwrap().expect("the job exists");
        if job.state == state {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is {:?}, waited for {state:?}",
            job.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
