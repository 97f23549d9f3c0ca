//! Job results and progress: outputs stored with the job and returned by
//! `wait_for` in another process, progress recorded (throttled, kept across
//! retries, guarded by the run's claim).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hopper::store::{
    Claim, CompleteRequest, Completion, Outcome, Progress, ProgressRequest, Store,
};
use hopper::{
    Hopper, Job, JobContext, JobError, JobOutcome, JobResult, JobState, OutputError, WaitError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::backends::TestDb;
use crate::cases::{claim_at, on_test_clock};
use crate::common::*;

/// What a [`Report`] returns.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Summary {
    rows: u32,
    title: String,
}

/// Lets [`Report`] runs through, one permit each.
#[derive(Clone)]
struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(0)))
    }
}

/// Waits at its gate (when the queue has one), then returns a [`Summary`]
/// of its payload's rows.
struct Report;

impl Job for Report {
    const TYPE: &'static str = "report";
    type Payload = u32;
    async fn handle(&self, rows: u32, ctx: JobContext) -> JobResult {
        if let Ok(gate) = ctx.state::<Gate>() {
            gate.0.acquire().await?.forget();
        }
        ctx.set_output(&Summary {
            rows,
            title: format!("{rows} rows"),
        })?;
        Ok(())
    }
}

/// Tries outputs that must be refused, and returns what it was told.
struct Oversize;

impl Job for Oversize {
    const TYPE: &'static str = "oversize";
    type Payload = ();
    async fn handle(&self, (): (), ctx: JobContext) -> JobResult {
        ctx.set_output("kept unless replaced")?;
        let too_large = match ctx.set_output(&"x".repeat(500)) {
            Err(refused @ OutputError::TooLarge { .. }) => refused.to_string(),
            other => return Err(JobError::permanent(format!("not refused: {other:?}"))),
        };
        // JSON maps need text keys.
        let unencodable: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
        let not_json = match ctx.set_output(&unencodable) {
            Err(refused @ OutputError::Encode(_)) => refused.to_string(),
            other => return Err(JobError::permanent(format!("not refused: {other:?}"))),
        };
        assert_eq!(ctx.output().as_deref(), Some(r#""kept unless replaced""#));
        ctx.set_output(&[too_large, not_json])?;
        Ok(())
    }
}

/// How many progress calls of each attempt of [`Crunch`] wrote.
#[derive(Clone, Default)]
struct Writes(Arc<Mutex<Vec<u32>>>);

/// The first attempt reports progress 10,000 times over about 2.5 s, waits
/// at its gate and fails; the second finishes without reporting.
struct Crunch;

const CRUNCH_ITEMS: u32 = 10_000;

impl Job for Crunch {
    const TYPE: &'static str = "crunch";
    const MAX_ATTEMPTS: u32 = 2;
    type Payload = ();
    async fn handle(&self, (): (), ctx: JobContext) -> JobResult {
        if ctx.attempt() > 1 {
            return Ok(());
        }
        let mut writes = 0;
        for item in 0..CRUNCH_ITEMS {
            let percent = u8::try_from(item * 100 / CRUNCH_ITEMS)?;
            if ctx.progress(percent, format!("item {item}")).await? {
                writes += 1;
            }
            if item % 100 == 99 {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        ctx.state::<Writes>()?
            .0
            .lock()
            .map_err(|_| JobError::permanent("poisoned"))?
            .push(writes);
        // Still running until the test has seen its progress.
        ctx.state::<Gate>()?.0.acquire().await?.forget();
        Err(JobError::retry_after(
            Duration::ZERO,
            "the first attempt fails",
        ))
    }
}

fn with_result_jobs(builder: hopper::Builder) -> hopper::Builder {
    builder
        .register(Report)
        .and_then(|b| b.register(Oversize))
        .and_then(|b| b.register(Crunch))
        .expect("distinct job names")
}

/// Another process on the same database: its own handle, store and
/// connections, and no workers.
async fn other_process(db: &TestDb) -> Hopper {
    with_result_jobs(builder()).connect(db.url()).await.unwrap()
}

pub async fn an_output_is_stored_with_the_job_and_wait_for_returns_it_in_another_process(
    db: &TestDb,
) {
    let gate = Gate::default();
    let queue = db
        .start(with_result_jobs(builder()).state(gate.clone()))
        .await
        .unwrap();
    let id = queue.hopper().dispatch::<Report>(120).await.unwrap();
    let other = other_process(db).await;
    let waiting = tokio::spawn(async move {
        let outcome = other.wait_for(id, Duration::from_secs(30)).await;
        (outcome, Instant::now())
    });
    // The waiter reads the job (not ended) and sleeps before the run ends.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the job has not ended yet");
    let released = Instant::now();
    gate.0.add_permits(1);
    let (outcome, woken) = waiting.await.unwrap();
    let outcome = outcome.unwrap();
    // Woken by the ending: well before a waiter would look again on its own
    // where the database notifies (5 s), and within its poll where not.
    let limit = if db.notifies() {
        Duration::from_secs(2)
    } else {
        hopper::POLL_INTERVAL + Duration::from_secs(1)
    };
    assert!(
        woken - released < limit,
        "woken {:?} after the run was let through",
        woken - released
    );
    let expected = Summary {
        rows: 120,
        title: "120 rows".into(),
    };
    assert_eq!(outcome.output_as::<Summary>().unwrap().unwrap(), expected);
    let record = queue.hopper().job(id).await.unwrap().unwrap();
    assert_eq!(record.state, JobState::Finished);
    assert_eq!(record.output_as::<Summary>().unwrap().unwrap(), expected);
    // An ended job answers at once, in any process.
    let again = other_process(db)
        .await
        .wait_for(id, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(again, outcome);
    queue.stop().await.unwrap();
}

pub async fn wait_for_times_out_clearly_and_tells_failed_cancelled_and_missing_jobs(db: &TestDb) {
    let queue = db.start(with_result_jobs(builder())).await.unwrap();
    let hopper = queue.hopper();
    let other = other_process(db).await;
    // No pool works this queue: the job stays pending.
    let options = hopper::DispatchOptions::new().queue("nobody");
    let stuck = hopper.dispatch_with::<Noop>((), options).await.unwrap();
    let started = Instant::now();
    let err = other
        .wait_for(stuck, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err, WaitError::TimedOut { id, state: JobState::Pending, .. } if id == stuck),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("job {stuck} did not end within 300ms (it is pending)")
    );

    // Cancelled in another process while waited on.
    let waiting = {
        let hopper = hopper.clone();
        tokio::spawn(async move { hopper.wait_for(stuck, Duration::from_secs(30)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(other.cancel(stuck).await.unwrap());
    assert_eq!(waiting.await.unwrap().unwrap(), JobOutcome::Cancelled);

    let doomed = hopper
        .dispatch::<Doomed>("no such file".into())
        .await
        .unwrap();
    let failed = other.wait_for(doomed, Duration::from_secs(30)).await;
    assert_eq!(
        failed.unwrap(),
        JobOutcome::Failed {
            error: "no such file".into()
        }
    );
    // A job without an output finishes with none.
    let noop = hopper.dispatch::<Noop>(()).await.unwrap();
    let finished = other.wait_for(noop, Duration::from_secs(30)).await.unwrap();
    assert_eq!(finished, JobOutcome::Finished { output: None });
    assert!(matches!(
        other.wait_for(noop + 1000, Duration::from_secs(1)).await,
        Err(WaitError::NotFound(id)) if id == noop + 1000
    ));
    queue.stop().await.unwrap();
}

pub async fn an_output_over_the_size_limit_or_not_json_is_refused_to_the_handler(db: &TestDb) {
    let queue = db
        .start(with_result_jobs(builder()).max_payload_bytes(256))
        .await
        .unwrap();
    let id = queue.hopper().dispatch::<Oversize>(()).await.unwrap();
    let outcome = queue
        .hopper()
        .wait_for(id, Duration::from_secs(30))
        .await
        .unwrap();
    let told: Vec<String> = outcome.output_as().unwrap().unwrap();
    assert_eq!(
        told[0],
        "a job's output is 502 bytes of JSON, over the limit of 256"
    );
    assert!(
        told[1].starts_with("a job's output cannot be encoded as JSON"),
        "{}",
        told[1]
    );
    queue.stop().await.unwrap();
}

pub async fn progress_is_recorded_live_throttled_and_kept_across_a_retry(db: &TestDb) {
    let writes = Writes::default();
    let gate = Gate::default();
    let queue = db
        .start(
            with_result_jobs(builder())
                .state(writes.clone())
                .state(gate.clone()),
        )
        .await
        .unwrap();
    let id = queue.hopper().dispatch::<Crunch>(()).await.unwrap();
    let other = other_process(db).await;
    // Seen while the first attempt runs (read through the pool's own
    // handle; the other process reads the kept progress once it ends).
    let mut seen_live = None;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let job = queue.hopper().job(id).await.unwrap().unwrap();
        if job.state == JobState::Started
            && let Some(progress) = job.progress.clone()
        {
            seen_live = Some(progress);
            break;
        }
        if job.state.is_final() {
            break;
        }
        seen.push((job.state, job.attempts, job.progress));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.dedup();
    let Some(seen_live) = seen_live else {
        let job = queue.hopper().job(id).await.unwrap().unwrap();
        panic!("no progress while the job ran; seen: {seen:?}; at last: {job:?}");
    };
    gate.0.add_permits(1);
    assert!(seen_live.message.starts_with("item "), "{seen_live:?}");
    let outcome = other.wait_for(id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(outcome, JobOutcome::Finished { output: None });
    let job = other.job(id).await.unwrap().unwrap();
    assert_eq!(job.attempts, 2);
    // The first attempt's last report, written when it ended, kept through
    // the retry and the second attempt, which reported nothing.
    assert_eq!(
        job.progress,
        Some(Progress {
            percent: 99,
            message: "item 9999".into()
        })
    );
    // 10,000 reports over about 2.5 s: one write at once, then at most one
    // a second (and the last value at the run's end).
    let writes = writes.0.lock().unwrap().clone();
    assert_eq!(writes.len(), 1);
    assert!((2..=4).contains(&writes[0]), "{} writes", writes[0]);
    queue.stop().await.unwrap();
}

pub async fn a_rescued_runs_progress_and_output_do_not_land(db: &TestDb) {
    let (clock, hopper) = on_test_clock(db).await;
    let store: &dyn Store = hopper.store().as_ref();
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let claim = |worker: &'static str| {
        let request = claim_at("default", worker, 10, hopper.now(), Duration::from_secs(30));
        async move { store.claim(request).await.unwrap() }
    };
    let progress = |claim: Claim, percent: u8, message: &str| {
        let progress = Progress {
            percent,
            message: message.into(),
        };
        async move {
            store
                .record_progress(ProgressRequest {
                    claim,
                    progress: &progress,
                })
                .await
                .unwrap()
        }
    };
    let first = claim("old").await[0].claim();
    store.mark_started(&[first]).await.unwrap();
    assert!(progress(first, 10, "old run").await);
    clock.advance(Duration::from_secs(31));
    assert_eq!(store.rescue(Some(hopper.now())).await.unwrap(), [id]);
    // Kept through the rescue.
    let kept = Some(Progress {
        percent: 10,
        message: "old run".into(),
    });
    assert_eq!(hopper.job(id).await.unwrap().unwrap().progress, kept);
    let second = claim("new").await[0].claim();

    assert!(!progress(first, 90, "late").await);
    assert_eq!(hopper.job(id).await.unwrap().unwrap().progress, kept);
    assert!(progress(second, 20, "new run").await);

    let finish = |claim: Claim, output: &str| Completion {
        claim,
        attempt: 2,
        outcome: Outcome::FinishedWith {
            output: output.into(),
        },
    };
    let hopper = &hopper;
    let ended = |completion: Completion| async move {
        store
            .complete(CompleteRequest {
                completions: &[completion],
                ended_at: hopper.now(),
            })
            .await
            .unwrap()
    };
    assert_eq!(ended(finish(first, r#""late""#)).await, 0);
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.output), (JobState::Started, None));
    assert_eq!(ended(finish(second, r#"{"ok":true}"#)).await, 1);
    let job = hopper.job(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Finished);
    assert_eq!(job.output.as_deref(), Some(r#"{"ok":true}"#));
    assert_eq!(
        job.progress,
        Some(Progress {
            percent: 20,
            message: "new run".into()
        })
    );
}

pub async fn a_batch_of_completions_stores_each_finished_jobs_own_output(db: &TestDb) {
    let (_clock, hopper) = on_test_clock(db).await;
    let store: &dyn Store = hopper.store().as_ref();
    let ids = hopper
        .dispatch_many::<Noop>(vec![(); 4], hopper::DispatchOptions::new())
        .await
        .unwrap();
    let request = claim_at("default", "w", 10, hopper.now(), Duration::from_secs(30));
    let claimed = store.claim(request).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let outcomes = [
        Outcome::FinishedWith { output: "1".into() },
        Outcome::Finished,
        Outcome::FinishedWith {
            output: r#""zoë \u0000""#.into(),
        },
        Outcome::Failed { error: "no".into() },
    ];
    let completions: Vec<Completion> = claimed
        .iter()
        .zip(outcomes)
        .map(|(job, outcome)| Completion {
            claim: job.claim(),
            attempt: 1,
            outcome,
        })
        .collect();
    let request = CompleteRequest {
        completions: &completions,
        ended_at: hopper.now(),
    };
    assert_eq!(store.complete(request).await.unwrap(), 4);
    let mut outputs = Vec::new();
    for completion in &completions {
        let job = hopper.job(completion.claim.id).await.unwrap().unwrap();
        outputs.push((job.state, job.output));
    }
    assert_eq!(
        outputs,
        [
            (JobState::Finished, Some("1".into())),
            (JobState::Finished, None),
            (JobState::Finished, Some(r#""zoë \u0000""#.into())),
            (JobState::Failed, None),
        ]
    );
    assert_eq!(ids.len(), 4);
}
