//! Batches: counts moved by every way a job ends, callbacks fired exactly
//! once (also when the last jobs end at once in two processes), open
//! batches that wait for their seal and take jobs from their own jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hopper::store::{
    BatchAdd, BatchEvent, Claim, ClaimRequest, CompleteRequest, Completion, NewBatch, Outcome,
    Store, StoreError, new_claim_token,
};
use hopper::{DispatchError, DispatchOptions, Hopper, Job, JobContext, JobError, JobResult};

use crate::backends::TestDb;
use crate::common::*;

/// Which callbacks ran, per event name and payload.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<(String, u32), u32>>>);

impl Calls {
    fn count(&self, event: &str, tag: u32) -> u32 {
        let calls = self.0.lock().unwrap();
        calls.get(&(event.to_owned(), tag)).copied().unwrap_or(0)
    }

    fn total(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }
}

/// A batch callback: records `(event, tag)` in [`Calls`].
struct Callback;

impl Job for Callback {
    const TYPE: &'static str = "callback";
    type Payload = (String, u32);
    async fn handle(&self, (event, tag): (String, u32), ctx: JobContext) -> JobResult {
        *ctx.state::<Calls>()?
            .0
            .lock()
            .unwrap()
            .entry((event, tag))
            .or_default() += 1;
        Ok(())
    }
}

/// A batch's job: fails for good when its payload is odd and `fail_odd`;
/// with `children`, first adds that many jobs to its own batch.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy)]
struct Part {
    n: u32,
    fail_odd: bool,
    children: u32,
}

struct PartJob;

impl Job for PartJob {
    const TYPE: &'static str = "part";
    type Payload = Part;
    async fn handle(&self, part: Part, ctx: JobContext) -> JobResult {
        if part.children > 0 {
            let hopper = ctx
                .hopper()
                .ok_or_else(|| JobError::permanent("detached"))?;
            let batch = ctx
                .batch_id()
                .ok_or_else(|| JobError::permanent("not in a batch"))?;
            let children = (0..part.children).map(|n| Part {
                n: 1000 + n,
                fail_odd: false,
                children: 0,
            });
            hopper
                .add_to_batch::<PartJob>(batch, children, DispatchOptions::new())
                .await
                .map_err(|error| JobError::retryable(error.to_string()))?;
        }
        if part.fail_odd && part.n % 2 == 1 {
            return Err(JobError::permanent(format!("part {} is odd", part.n)));
        }
        Ok(())
    }
}

/// A handle on `db` running parts and callbacks, recording into `calls`.
async fn handle(db: &TestDb, calls: &Calls) -> Hopper {
    Hopper::builder()
        .register(PartJob)
        .and_then(|b| b.register(Callback))
        .unwrap()
        .state(calls.clone())
        .connect(db.url())
        .await
        .unwrap()
}

fn parts(n: u32, fail_odd: bool) -> impl Iterator<Item = Part> {
    (0..n).map(move |n| Part {
        n,
        fail_odd,
        children: 0,
    })
}

/// Waits until `done` holds, failing after 60 s with `what`.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn a_batch_fires_success_and_complete_once_after_every_job_finished(db: &TestDb) {
    let calls = Calls::default();
    let hopper = handle(db, &calls).await;
    let batch = hopper
        .batch("import")
        .on_success::<Callback>(("success".into(), 1))
        .unwrap()
        .on_complete::<Callback>(("complete".into(), 1))
        .unwrap()
        .on_failure::<Callback>(("failure".into(), 1))
        .unwrap()
        .dispatch_many::<PartJob>(parts(40, false), DispatchOptions::new())
        .await
        .unwrap();
    assert_eq!(batch.jobs.len(), 40);
    let member = hopper.job(batch.jobs[0]).await.unwrap().unwrap();
    assert_eq!(member.batch_id, Some(batch.id), "a job knows its batch");
    let status = hopper.batch_status(batch.id).await.unwrap().unwrap();
    assert_eq!((status.counts.total, status.counts.pending()), (40, 40));
    assert!(status.sealed && !status.is_complete());

    let pool = hopper.start(hopper::WorkerConfig::new(8)).unwrap();
    wait_until("both callbacks", || calls.total() >= 2).await;
    pool.stop().await.unwrap();

    assert_eq!(calls.count("success", 1), 1);
    assert_eq!(calls.count("complete", 1), 1);
    assert_eq!(calls.count("failure", 1), 0, "no job failed");
    let status = hopper.batch_status(batch.id).await.unwrap().unwrap();
    assert_eq!(status.counts.finished, 40);
    assert!(status.is_complete());
    for callback in &status.callbacks {
        let fired = callback.event != BatchEvent::Failure;
        assert_eq!(callback.job_id.is_some(), fired, "{callback:?}");
    }
    // Firing again finds nothing due.
    let again = hopper
        .store()
        .fire_batch_callbacks(hopper.now(), 100)
        .await
        .unwrap();
    assert!(again.is_empty());
    // A completed batch takes no more jobs, and stores none.
    let refused = hopper
        .add_to_batch::<PartJob>(batch.id, parts(1, false), DispatchOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, DispatchError::Store(StoreError::BatchComplete(id)) if id == batch.id),
        "{refused}"
    );
    assert_eq!(
        hopper
            .batch_status(batch.id)
            .await
            .unwrap()
            .unwrap()
            .counts
            .total,
        40
    );
}

pub async fn a_job_failing_for_good_fires_failure_once_then_complete_but_never_success(
    db: &TestDb,
) {
    let calls = Calls::default();
    let hopper = handle(db, &calls).await;
    let batch = hopper
        .batch("half fail")
        .on_success::<Callback>(("success".into(), 2))
        .unwrap()
        .on_complete::<Callback>(("complete".into(), 2))
        .unwrap()
        .on_failure::<Callback>(("failure".into(), 2))
        .unwrap()
        .dispatch_many::<PartJob>(parts(20, true), DispatchOptions::new())
        .await
        .unwrap();
    let pool = hopper.start(hopper::WorkerConfig::new(4)).unwrap();
    wait_until("failure and complete", || calls.total() >= 2).await;
    // The pool settles once more as it stops: after that, a wrongly fired
    // success (or a second failure) would be a callback job stored.
    pool.stop().await.unwrap();
    let callbacks = hopper::JobFilter {
        job_type: Some(Callback::TYPE.into()),
        ..hopper::JobFilter::default()
    };
    assert_eq!(hopper.count_jobs(&callbacks).await.unwrap(), 2);
    assert!(
        hopper
            .store()
            .fire_batch_callbacks(hopper.now(), 100)
            .await
            .unwrap()
            .is_empty(),
        "nothing more is due"
    );
    assert_eq!(calls.count("failure", 2), 1, "at the first failure, once");
    assert_eq!(calls.count("complete", 2), 1);
    assert_eq!(calls.count("success", 2), 0, "ten jobs failed");
    let counts = hopper.batch_status(batch.id).await.unwrap().unwrap().counts;
    assert_eq!(
        (counts.finished, counts.failed, counts.pending()),
        (10, 10, 0)
    );
}

pub async fn an_open_batch_waits_for_its_seal_and_its_jobs_can_add_to_it(db: &TestDb) {
    let calls = Calls::default();
    let hopper = handle(db, &calls).await;
    let id = hopper
        .batch("open")
        .on_success::<Callback>(("success".into(), 3))
        .unwrap()
        .open()
        .await
        .unwrap();
    let pool = hopper.start(hopper::WorkerConfig::new(4)).unwrap();
    let first = hopper
        .add_to_batch::<PartJob>(id, parts(5, false), DispatchOptions::new())
        .await
        .unwrap();
    wait_finished(&hopper, &pool, &first).await;
    // Every job ended: an open batch is still not due.
    let fired = hopper
        .store()
        .fire_batch_callbacks(hopper.now(), 100)
        .await
        .unwrap();
    assert!(fired.is_empty(), "{fired:?}");
    let status = hopper.batch_status(id).await.unwrap().unwrap();
    assert!(status.callbacks.iter().all(|c| c.job_id.is_none()));
    assert_eq!(calls.total(), 0, "an open batch does not succeed");

    // A job that adds three more to its own batch; then the seal.
    let parent = Part {
        n: 0,
        fail_odd: false,
        children: 3,
    };
    hopper
        .add_to_batch::<PartJob>(id, [parent], DispatchOptions::new())
        .await
        .unwrap();
    hopper.seal_batch(id).await.unwrap();
    wait_until("success", || calls.total() >= 1).await;
    pool.stop().await.unwrap();
    assert_eq!(calls.count("success", 3), 1);
    let status = hopper.batch_status(id).await.unwrap().unwrap();
    assert_eq!((status.counts.total, status.counts.finished), (9, 9));

    let missing = hopper.seal_batch(404_404).await.unwrap_err();
    assert!(
        matches!(missing, StoreError::NoSuchBatch(404_404)),
        "{missing}"
    );
}

pub async fn cancelling_deleting_and_retrying_a_batchs_jobs_move_its_counts(db: &TestDb) {
    let calls = Calls::default();
    let hopper = handle(db, &calls).await;
    let batch = hopper
        .batch("by hand")
        .on_complete::<Callback>(("complete".into(), 4))
        .unwrap()
        .dispatch_many::<PartJob>(parts(3, false), DispatchOptions::new())
        .await
        .unwrap();
    let [a, b, c] = batch.jobs[..] else {
        panic!("three jobs")
    };
    assert!(hopper.cancel(a).await.unwrap());
    let counts = hopper.batch_status(batch.id).await.unwrap().unwrap().counts;
    assert_eq!((counts.cancelled, counts.pending()), (1, 2));
    assert!(hopper.retry(a).await.unwrap(), "a cancelled job comes back");
    let counts = hopper.batch_status(batch.id).await.unwrap().unwrap().counts;
    assert_eq!((counts.cancelled, counts.pending()), (0, 3));
    assert!(hopper.cancel(a).await.unwrap());
    assert!(hopper.delete(b).await.unwrap());
    let counts = hopper.batch_status(batch.id).await.unwrap().unwrap().counts;
    assert_eq!(
        (counts.total, counts.pending()),
        (2, 1),
        "a deleted job leaves"
    );
    // The last one cancelled: the batch completed, its callback inserted once.
    assert!(hopper.cancel(c).await.unwrap());
    let status = hopper.batch_status(batch.id).await.unwrap().unwrap();
    assert!(status.is_complete());
    let callback = status.callbacks[0]
        .job_id
        .expect("the complete callback fired");
    let job = hopper.job(callback).await.unwrap().unwrap();
    assert_eq!(job.job_type, "callback");
    assert!(
        hopper
            .store()
            .fire_batch_callbacks(hopper.now(), 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn a_batchs_last_two_jobs_ending_at_once_in_two_processes_fire_each_callback_once(
    db: &TestDb,
) {
    let calls = Calls::default();
    let hopper = handle(db, &calls).await;
    // A second process's store on the same database.
    let other = hopper::store::open(db.url()).await.unwrap();
    let store = hopper.store().clone();
    for round in 0..20u32 {
        let now = hopper.now();
        let callback = |event: &str| {
            hopper
                .prepare::<Callback>((event.into(), round), DispatchOptions::new())
                .unwrap()
        };
        let batch = NewBatch {
            name: format!("race {round}"),
            created_at: now,
            callbacks: vec![
                (BatchEvent::Success, callback("success")),
                (BatchEvent::Complete, callback("complete")),
            ],
            sealed: true,
        };
        let queue = format!("race{round}");
        let jobs = [new_job("part", &queue, now), new_job("part", &queue, now)];
        let (id, _) = store.create_batch(&batch, &jobs).await.unwrap();
        let claimed = store
            .claim(ClaimRequest {
                queue: &queue,
                worker: "race",
                token: new_claim_token(),
                limit: 2,
                lease: Duration::from_secs(60),
                now: None,
                due_by: chrono::Utc::now(),
                start_now: 2,
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(claimed.iter().all(|job| job.batch == Some(id)));
        let ending = |claim: Claim| Completion {
            claim,
            attempt: 1,
            outcome: Outcome::Finished,
        };
        let (one, two) = ([ending(claimed[0].claim())], [ending(claimed[1].claim())]);
        let end = |store: Arc<dyn Store>, completions: [Completion; 1]| async move {
            store
                .complete(CompleteRequest {
                    completions: &completions,
                    ended_at: chrono::Utc::now(),
                })
                .await
                .unwrap();
            store
                .fire_batch_callbacks(chrono::Utc::now(), 100)
                .await
                .unwrap()
        };
        let (fired_one, fired_two) = tokio::join!(end(store.clone(), one), end(other.clone(), two));
        let fired = fired_one.len() + fired_two.len();
        assert_eq!(fired, 2, "round {round}: success and complete, once each");
        let status = store.batch(id).await.unwrap().unwrap();
        assert_eq!(status.counts.finished, 2);
        assert!(status.callbacks.iter().all(|cb| cb.job_id.is_some()));
    }
    // Adding to a missing batch stores nothing.
    let refused = store
        .add_to_batch(BatchAdd {
            batch: 404,
            jobs: &[new_job("part", "race", hopper.now())],
            seal: false,
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::NoSuchBatch(404)), "{refused}");
}

pub async fn a_job_rescued_on_its_last_attempt_counts_as_failed_in_its_batch(db: &TestDb) {
    let calls = Calls::default();
    let hopper = handle(db, &calls).await;
    let store = hopper.store().clone();
    let now = hopper.now();
    let batch = NewBatch {
        name: "rescued".into(),
        created_at: now,
        callbacks: vec![(
            BatchEvent::Failure,
            hopper
                .prepare::<Callback>(("failure".into(), 5), DispatchOptions::new())
                .unwrap(),
        )],
        sealed: true,
    };
    let mut job = new_job("part", "rescued", now);
    job.max_attempts = 1;
    let (id, _) = store.create_batch(&batch, &[job]).await.unwrap();
    // A worker takes it, starts it, and dies: its lease runs out.
    let claimed = store
        .claim(ClaimRequest {
            queue: "rescued",
            worker: "dead",
            token: new_claim_token(),
            limit: 1,
            lease: Duration::from_secs(1),
            now: None,
            due_by: chrono::Utc::now(),
            start_now: 1,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(store.rescue(Some(later)).await.unwrap().len(), 1);
    let status = store.batch(id).await.unwrap().unwrap();
    assert_eq!((status.counts.failed, status.counts.pending()), (1, 0));
    let fired = store.fire_batch_callbacks(hopper.now(), 100).await.unwrap();
    assert_eq!(fired.len(), 1, "the failure callback, once");
    assert_eq!(fired[0].1.job_type, "callback");
}

pub async fn completed_batches_are_pruned_and_open_or_running_ones_kept(db: &TestDb) {
    let calls = Calls::default();
    let hopper = handle(db, &calls).await;
    let done = hopper
        .batch("done")
        .dispatch_many::<PartJob>(parts(2, false), DispatchOptions::new())
        .await
        .unwrap();
    for id in &done.jobs {
        assert!(hopper.cancel(*id).await.unwrap());
    }
    let running = hopper
        .batch("running")
        .dispatch_many::<PartJob>(parts(1, false), DispatchOptions::new())
        .await
        .unwrap();
    let open = hopper.batch("open").open().await.unwrap();
    let request = hopper::store::PruneRequest {
        before: hopper.now() + chrono::Duration::hours(1),
        limit: 10,
    };
    assert_eq!(hopper.store().prune_batches(request).await.unwrap(), 1);
    assert!(hopper.batch_status(done.id).await.unwrap().is_none());
    assert!(hopper.batch_status(running.id).await.unwrap().is_some());
    assert!(hopper.batch_status(open).await.unwrap().is_some());
    // Younger than the cut-off: kept.
    let old_only = hopper::store::PruneRequest {
        before: hopper.now() - chrono::Duration::hours(1),
        limit: 10,
    };
    hopper.cancel(running.jobs[0]).await.unwrap();
    assert_eq!(hopper.store().prune_batches(old_only).await.unwrap(), 0);
}
