//! Job types shared by the integration tests.
#![allow(dead_code)]

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hopper::store::NewJob;
use hopper::{Job, JobContext, JobError, JobResult};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Does nothing.
pub struct Noop;

impl Job for Noop {
    const TYPE: &'static str = "noop";
    type Payload = ();
    async fn handle(&self, _: (), _: JobContext) -> JobResult {
        Ok(())
    }
}

/// Fails its first `fail_times` attempts, then succeeds; retries after 10 s.
pub struct Flaky;

#[derive(Serialize, Deserialize)]
pub struct FlakyPayload {
    pub fail_times: u32,
}

pub const FLAKY_DELAY: Duration = Duration::from_secs(10);

impl Job for Flaky {
    const TYPE: &'static str = "flaky";
    type Payload = FlakyPayload;
    async fn handle(&self, payload: FlakyPayload, ctx: JobContext) -> JobResult {
        if ctx.attempt() <= payload.fail_times {
            return Err(std::io::Error::other(format!("flaky failure {}", ctx.attempt())).into());
        }
        Ok(())
    }
    fn retry_delay(&self, _attempt: u32) -> Duration {
        FLAKY_DELAY
    }
}

/// Always fails permanently.
pub struct Doomed;

impl Job for Doomed {
    const TYPE: &'static str = "doomed";
    type Payload = String;
    async fn handle(&self, reason: String, _: JobContext) -> JobResult {
        Err(JobError::permanent(reason))
    }
}

/// Panics with its payload as the message.
pub struct Panicker;

impl Job for Panicker {
    const TYPE: &'static str = "panicker";
    const MAX_ATTEMPTS: u32 = 1;
    type Payload = String;
    async fn handle(&self, message: String, _: JobContext) -> JobResult {
        panic!("{message}");
    }
}

/// Sleeps for its payload in milliseconds; times out after 100 ms.
pub struct Sleeper;

impl Job for Sleeper {
    const TYPE: &'static str = "sleeper";
    const MAX_ATTEMPTS: u32 = 1;
    type Payload = u64;
    async fn handle(&self, millis: u64, _: JobContext) -> JobResult {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(())
    }
    fn timeout(&self) -> Duration {
        Duration::from_millis(100)
    }
}

/// Sleeps for its payload in milliseconds, with the default timeout.
pub struct Slow;

impl Job for Slow {
    const TYPE: &'static str = "slow";
    type Payload = u64;
    async fn handle(&self, millis: u64, _: JobContext) -> JobResult {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok(())
    }
}

/// The order jobs ran in, shared through the queue's state.
#[derive(Default, Clone)]
pub struct Journal(pub Arc<Mutex<Vec<String>>>);

impl Journal {
    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Appends its payload to the shared [`Journal`].
pub struct Record;

impl Job for Record {
    const TYPE: &'static str = "record";
    type Payload = String;
    async fn handle(&self, entry: String, ctx: JobContext) -> JobResult {
        ctx.state::<Journal>()?.0.lock().unwrap().push(entry);
        Ok(())
    }
}

/// Asks to be retried after its payload in seconds.
pub struct Snooze;

impl Job for Snooze {
    const TYPE: &'static str = "snooze";
    type Payload = u64;
    async fn handle(&self, secs: u64, _: JobContext) -> JobResult {
        Err(JobError::retry_after(Duration::from_secs(secs), "not yet"))
    }
}

/// A builder with every test job registered.
pub fn builder() -> hopper::Builder {
    hopper::Hopper::builder()
        .register(Noop)
        .and_then(|b| b.register(Flaky))
        .and_then(|b| b.register(Doomed))
        .and_then(|b| b.register(Panicker))
        .and_then(|b| b.register(Sleeper))
        .and_then(|b| b.register(Slow))
        .and_then(|b| b.register(Record))
        .and_then(|b| b.register(Snooze))
        .expect("test jobs have distinct names")
}

/// A `job_type` job for `queue`, dispatched and due at `at`, as a store is
/// handed it: payload `null`, priority 0, 3 attempts, no unique key.
pub fn new_job(job_type: &str, queue: &str, at: chrono::DateTime<chrono::Utc>) -> NewJob {
    NewJob {
        job_type: job_type.into(),
        queue: queue.into(),
        payload: "null".into(),
        priority: 0,
        max_attempts: 3,
        available_at: at,
        created_at: at,
        unique_key: None,
        partition_key: None,
        sequence: None,
        trace_context: None,
    }
}

/// [`new_job`] with partition key `key`.
pub fn keyed_job(queue: &str, key: &str, at: chrono::DateTime<chrono::Utc>) -> NewJob {
    NewJob {
        partition_key: Some(key.into()),
        ..new_job("ping", queue, at)
    }
}

/// Records every job of `claimed` as finished in its first attempt, at
/// `at`; how many outcomes applied.
pub async fn finish_all(
    store: &dyn hopper::store::Store,
    claimed: &[hopper::store::ClaimedJob],
    at: chrono::DateTime<chrono::Utc>,
) -> u64 {
    let done: Vec<hopper::store::Completion> = claimed
        .iter()
        .map(|job| hopper::store::Completion {
            claim: job.claim(),
            attempt: job.attempt,
            outcome: hopper::store::Outcome::Finished,
        })
        .collect();
    let request = hopper::store::CompleteRequest {
        completions: &done,
        ended_at: at,
    };
    store.complete(request).await.unwrap()
}

/// Waits (at most 60 s) until job `id` is in `state`, looking every 20 ms.
pub async fn wait_state(hopper: &hopper::Hopper, id: hopper::JobId, state: hopper::JobState) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let job = hopper.job(id).await.unwrap().expect("the job exists");
        if job.state == state {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} is {:?}, waited for {state:?}",
            job.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits, on the pool's activity, until every job in `ids` has finished.
pub async fn wait_finished(
    hopper: &hopper::Hopper,
    pool: &hopper::WorkerPool,
    ids: &[hopper::JobId],
) {
    let mut activity = pool.activity();
    loop {
        activity.borrow_and_update();
        let mut done = true;
        for &id in ids {
            let job = hopper.job(id).await.unwrap().expect("job kept");
            done &= job.state == hopper::JobState::Finished;
        }
        if done {
            return;
        }
        tokio::time::timeout(Duration::from_secs(30), activity.changed())
            .await
            .expect("the workers kept going")
            .unwrap();
    }
}

/// How many times each job ran, by its payload; wakes waiters on every run.
#[derive(Clone, Default)]
pub struct Tally {
    pub runs: Arc<Mutex<HashMap<u32, u32>>>,
    pub changed: Arc<Notify>,
}

impl Tally {
    pub fn total(&self) -> u32 {
        self.runs.lock().unwrap().values().sum()
    }

    /// Waits until `n` runs in all were counted, at most `limit`.
    pub async fn wait_for(&self, n: u32, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if self.total() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("only {} of {n} runs after {limit:?}", self.total());
            }
        }
    }
}

/// Counts its run in the shared [`Tally`].
pub struct Count;

impl Job for Count {
    const TYPE: &'static str = "count";
    type Payload = u32;
    async fn handle(&self, n: u32, ctx: JobContext) -> JobResult {
        let tally = ctx.state::<Tally>()?;
        *tally.runs.lock().unwrap().entry(n).or_default() += 1;
        tally.changed.notify_waiters();
        Ok(())
    }
}
