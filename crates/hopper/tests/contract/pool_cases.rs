//! Autoscaling and lifecycle hooks, on every database.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hopper::clock::ManualClock;
use hopper::hooks::{EventKind, HookResult, Hooks, JobEvent};
use hopper::testing::TestQueue;
use hopper::{
    DispatchOptions, Job, JobContext, JobResult, JobState, WorkerConcurrency, WorkerConfig,
};

use crate::backends::TestDb;
use crate::common::*;

/// Holds every job that runs until opened; counts how many run at once.
#[derive(Clone, Debug, Default)]
struct Gate(Arc<GateState>);

#[derive(Debug, Default)]
struct GateState {
    open: tokio::sync::Notify,
    opened: std::sync::atomic::AtomicBool,
    running: AtomicUsize,
    most: AtomicUsize,
    started: tokio::sync::Notify,
}

impl Gate {
    fn open(&self) {
        self.0.opened.store(true, Ordering::SeqCst);
        self.0.open.notify_waiters();
    }

    /// Waits (at most 20 s) until `n` jobs wait at the gate.
    async fn wait_running(&self, n: usize) {
        let wait = async {
            loop {
                let started = self.0.started.notified();
                tokio::pin!(started);
                started.as_mut().enable();
                if self.0.running.load(Ordering::SeqCst) >= n {
                    return;
                }
                started.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .is_err()
        {
            panic!(
                "{} jobs running, wanted {n}",
                self.0.running.load(Ordering::SeqCst)
            );
        }
    }

    fn most(&self) -> usize {
        self.0.most.load(Ordering::SeqCst)
    }
}

/// Waits at the [`Gate`] in the queue's state.
struct GateJob;

impl Job for GateJob {
    const TYPE: &'static str = "gate";
    type Payload = ();
    async fn handle(&self, _: (), ctx: JobContext) -> JobResult {
        let gate = ctx.state::<Gate>()?.0.clone();
        let now = gate.running.fetch_add(1, Ordering::SeqCst) + 1;
        gate.most.fetch_max(now, Ordering::SeqCst);
        gate.started.notify_waiters();
        loop {
            let opened = gate.open.notified();
            tokio::pin!(opened);
            opened.as_mut().enable();
            if gate.opened.load(Ordering::SeqCst) {
                break;
            }
            opened.await;
        }
        gate.running.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The concurrency rows live in the queue's database, by queue.
async fn published(queue: &TestQueue) -> Vec<WorkerConcurrency> {
    let now = queue.hopper().now();
    queue
        .hopper()
        .store()
        .worker_concurrency(now)
        .await
        .unwrap()
}

/// Waits (at most 20 s, woken by the pool's activity) until the published
/// concurrency of each queue is as given.
async fn wait_published(queue: &TestQueue, want: &[(&str, u32)]) -> Vec<WorkerConcurrency> {
    let mut activity = queue.pool().activity();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        activity.borrow_and_update();
        let rows = published(queue).await;
        let seen: Vec<(&str, u32)> = rows
            .iter()
            .map(|r| (r.queue.as_str(), r.concurrency))
            .collect();
        if seen == want {
            return rows;
        }
        if tokio::time::timeout_at(deadline, activity.changed())
            .await
            .is_err()
        {
            panic!("published concurrency stayed {seen:?}, wanted {want:?}");
        }
    }
}

fn scaled(config: WorkerConfig) -> WorkerConfig {
    config
        .scale_interval(Duration::from_millis(20))
        .scale_down_after(Duration::from_secs(60))
}

pub async fn a_scaled_queue_grows_under_a_backlog_and_shrinks_once_idle_on_the_clock(db: &TestDb) {
    let gate = Gate::default();
    let builder = builder().register(GateJob).unwrap().state(gate.clone());
    let config = scaled(WorkerConfig::new(1).only().queue_scaled("default", 1, 4));
    let queue = db.start_with(builder, config).await.unwrap();
    let rows = wait_published(&queue, &[("default", 1)]).await;
    assert_eq!((rows[0].min, rows[0].max), (1, 4));
    assert_eq!(rows[0].worker, queue.pool().worker_id());

    let jobs = vec![(); 10];
    let ids = queue
        .hopper()
        .dispatch_many::<GateJob>(jobs, DispatchOptions::new())
        .await
        .unwrap();
    wait_published(&queue, &[("default", 4)]).await;
    assert_eq!(queue.pool().concurrency("default"), Some(4));
    gate.wait_running(4).await;

    gate.open();
    queue.wait_idle().await.unwrap();
    for id in ids {
        assert_eq!(
            queue.hopper().job(id).await.unwrap().unwrap().state,
            JobState::Finished
        );
    }
    assert_eq!(gate.most(), 4);
    // Idle, but the clock has not moved: the pool keeps its size.
    assert_eq!(queue.pool().concurrency("default"), Some(4));

    queue.advance(Duration::from_secs(61));
    wait_published(&queue, &[("default", 1)]).await;
    let worker = queue.pool().worker_id().to_owned();
    let store = queue.hopper().store().clone();
    let clock = queue.clock().clone();
    queue.stop().await.unwrap();
    use hopper::clock::Clock;
    let left = store.worker_concurrency(clock.now()).await.unwrap();
    assert!(
        left.iter().all(|row| row.worker != worker),
        "rows removed at stop: {left:?}"
    );
}

pub async fn autoscaled_queues_share_the_total_cap(db: &TestDb) {
    let gate = Gate::default();
    // Both backlogs are there before the pool starts, so its first decision sees both.
    let hopper = builder()
        .register(GateJob)
        .unwrap()
        .connect(db.url())
        .await
        .unwrap();
    for name in ["default", "mail"] {
        hopper
            .dispatch_many::<GateJob>(vec![(); 6], DispatchOptions::new().queue(name))
            .await
            .unwrap();
    }
    let builder = builder().register(GateJob).unwrap().state(gate.clone());
    let config = scaled(
        WorkerConfig::new(1)
            .only()
            .queue_scaled("default", 1, 4)
            .queue_scaled("mail", 1, 4)
            .max_total(5),
    );
    let queue = db.start_with(builder, config).await.unwrap();
    wait_published(&queue, &[("default", 3), ("mail", 2)]).await;
    gate.wait_running(5).await;
    gate.open();
    queue.wait_idle().await.unwrap();
    assert_eq!(gate.most(), 5);
    queue.stop().await.unwrap();
}

/// Waits (at most 20 s) until `id`'s lease runs at least until `until`.
async fn wait_leased_until(hopper: &hopper::Hopper, id: i64, until: chrono::DateTime<chrono::Utc>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let job = hopper.job(id).await.unwrap().unwrap();
        if job.locked_until.is_some_and(|at| at >= until) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} still leased until {:?}, wanted {until}",
            job.locked_until
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A claim the database committed under a pool's worker id but whose answer
/// never reached the pool (the connection died on the way back) is not kept
/// alive by that pool's heartbeat: its lease runs out and the rescuer hands
/// it out again while the pool stays busy with a job it knows it holds.
pub async fn a_claim_the_pool_never_received_expires_while_the_pool_is_busy(db: &TestDb) {
    let clock = ManualClock::new();
    let gate = Gate::default();
    let hopper = builder()
        .register(GateJob)
        .unwrap()
        .state(gate.clone())
        .clock(clock.clone())
        .connect(db.url())
        .await
        .unwrap();
    let orphan = hopper.dispatch::<Noop>(()).await.unwrap();
    let t0 = hopper.now();
    let claimed = hopper
        .store()
        .claim(crate::cases::claim_at(
            "default",
            "w",
            1,
            t0,
            Duration::from_secs(1),
        ))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    let lease = Duration::from_secs(3);
    let config = WorkerConfig::new(2)
        .worker_id("w")
        .lease(lease)
        .rescue_interval(Duration::from_millis(100));
    let pool = hopper.start(config).unwrap();
    let busy = hopper.dispatch::<GateJob>(()).await.unwrap();
    gate.wait_running(1).await;

    // A heartbeat while the orphan's lease is still live...
    clock.advance(Duration::from_millis(500));
    wait_leased_until(&hopper, busy, hopper.now() + lease).await;
    let orphaned = hopper.job(orphan).await.unwrap().unwrap();
    assert_eq!(
        orphaned.locked_until,
        Some(t0 + chrono::Duration::seconds(1)),
        "the heartbeat renewed a claim the pool does not know it holds"
    );
    // ...then past it, well within the busy job's.
    clock.advance(Duration::from_secs(1));
    let mut activity = pool.activity();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let rerun = loop {
        activity.borrow_and_update();
        let job = hopper.job(orphan).await.unwrap().unwrap();
        if job.state == JobState::Finished {
            break job;
        }
        if tokio::time::timeout_at(deadline, activity.changed())
            .await
            .is_err()
        {
            panic!("the orphaned claim was not rescued and run again: {job:?}");
        }
    };
    // Its handler never started: the lost claim gave its attempt back.
    assert_eq!((rerun.attempts, rerun.errors.len()), (1, 0), "{rerun:?}");
    let still = hopper.job(busy).await.unwrap().unwrap();
    assert_eq!(
        (still.state, still.locked_by.as_deref()),
        (JobState::Started, Some("w"))
    );

    gate.open();
    pool.stop().await.unwrap();
    assert_eq!(
        hopper.job(busy).await.unwrap().unwrap().state,
        JobState::Finished
    );
}

/// One event a hook saw: kind, job id, attempt, error, whether it had a retry time.
type Sighting = (EventKind, i64, u32, Option<String>, bool);

/// Every event a hook saw.
#[derive(Clone, Debug, Default)]
struct Seen(Arc<Mutex<Vec<Sighting>>>);

impl Seen {
    fn push(&self, event: &JobEvent) -> HookResult {
        self.0.lock().unwrap().push((
            event.kind,
            event.id,
            event.attempt,
            event.error.clone(),
            event.retry_at.is_some(),
        ));
        Ok(())
    }
}

#[hopper::async_trait]
impl Hooks for Seen {
    async fn finished(&self, event: &JobEvent) -> HookResult {
        self.push(event)
    }
    async fn retrying(&self, event: &JobEvent) -> HookResult {
        self.push(event)
    }
    async fn failed(&self, event: &JobEvent) -> HookResult {
        self.push(event)
    }
}

/// A hook that errs on finished and retried jobs and panics on failed ones.
#[derive(Debug)]
struct Broken;

#[hopper::async_trait]
impl Hooks for Broken {
    async fn finished(&self, _: &JobEvent) -> HookResult {
        Err("the notification service is down".into())
    }
    async fn retrying(&self, _: &JobEvent) -> HookResult {
        Err(std::io::Error::other("cannot notify").into())
    }
    async fn failed(&self, _: &JobEvent) -> HookResult {
        panic!("a hook panicked");
    }
}

pub async fn hooks_fire_once_per_event_and_their_failures_change_no_outcome(db: &TestDb) {
    let seen = Seen::default();
    let config = WorkerConfig::new(4)
        .hooks(Broken)
        .hooks(seen.clone())
        .hooks(Broken);
    let queue = db.start_with(builder(), config).await.unwrap();
    let hopper = queue.hopper();
    let ok = hopper.dispatch::<Noop>(()).await.unwrap();
    let flaky = hopper
        .dispatch::<Flaky>(FlakyPayload { fail_times: 1 })
        .await
        .unwrap();
    let doomed = hopper.dispatch::<Doomed>("bad input".into()).await.unwrap();
    queue.wait_idle().await.unwrap();
    let state = |id| async move { hopper.job(id).await.unwrap().unwrap() };
    assert_eq!(state(ok).await.state, JobState::Finished);
    assert_eq!(
        (state(flaky).await.state, state(flaky).await.attempts),
        (JobState::Pending, 1)
    );
    assert_eq!(state(doomed).await.state, JobState::Failed);

    queue.advance(FLAKY_DELAY);
    queue.wait_idle().await.unwrap();
    let flaky_job = state(flaky).await;
    assert_eq!(
        (flaky_job.state, flaky_job.attempts),
        (JobState::Finished, 2)
    );

    let mut events = seen.0.lock().unwrap().clone();
    events.sort_by_key(|(_, id, attempt, _, _)| (*id, *attempt));
    assert_eq!(
        events,
        [
            (EventKind::Finished, ok, 1, None, false),
            (
                EventKind::Retrying,
                flaky,
                1,
                Some("flaky failure 1".to_owned()),
                true
            ),
            (EventKind::Finished, flaky, 2, None, false),
            (
                EventKind::Failed,
                doomed,
                1,
                Some("bad input".to_owned()),
                false
            ),
        ]
    );
    queue.stop().await.unwrap();
}

/// A maintenance leader whose host clock runs a minute ahead still measures
/// leases on the database's clock: a job whose worker keeps it alive
/// elsewhere is never rescued, however often the leader looks.
pub async fn a_maintenance_leader_whose_clock_runs_ahead_rescues_no_live_job(db: &TestDb) {
    let hopper = builder().connect(db.url()).await.unwrap();
    let store = hopper.store();
    // One job whose worker elsewhere keeps it for 30 s, and one whose lease
    // has run out, both on the database's clock.
    let claim = async |lease: Duration| {
        let id = hopper.dispatch::<Noop>(()).await.unwrap();
        let claimed = store
            .claim(hopper::store::ClaimRequest {
                now: None,
                ..crate::cases::claim_at("default", "elsewhere", 1, hopper.now(), lease)
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        store.mark_started(&[claimed[0].claim()]).await.unwrap();
        id
    };
    let live = claim(Duration::from_secs(30)).await;
    let expired = claim(Duration::ZERO).await;

    let ahead = builder()
        .clock(hopper::clock::OffsetClock::ahead(Duration::from_secs(60)))
        .connect(db.url())
        .await
        .unwrap();
    let pool = ahead
        .start(
            WorkerConfig::new(1)
                .only()
                .queue("other", 1)
                .rescue_interval(Duration::from_millis(50))
                .prune_interval(None),
        )
        .unwrap();
    // The skewed pool leads maintenance (nobody else competes): once it has
    // rescued the expired job, a pass has looked at the live one too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hopper.job(expired).await.unwrap().unwrap().state != JobState::Pending {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pool never rescued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let job = hopper.job(live).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempts, job.locked_by.as_deref()),
        (JobState::Started, 1, Some("elsewhere")),
        "{job:?}"
    );
    assert!(job.errors.is_empty(), "{:?}", job.errors);
    pool.stop().await.unwrap();
}

/// Records, when dropped, that the run holding it was cut off.
struct Witness(Journal);

impl Drop for Witness {
    fn drop(&mut self) {
        self.0.0.lock().unwrap().push("cut off".into());
    }
}

/// Runs until its run is cancelled.
struct Vigil;

impl Job for Vigil {
    const TYPE: &'static str = "vigil";
    const MAX_ATTEMPTS: u32 = 1;
    type Payload = ();
    async fn handle(&self, _: (), ctx: JobContext) -> JobResult {
        let _witness = Witness(ctx.state::<Journal>()?.clone());
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// A run whose claim the database no longer holds for its pool (its job was
/// rescued while the pool was cut off, say) is cancelled at the next
/// heartbeat, instead of running on beside the job's new owner.
pub async fn a_run_whose_claim_was_lost_is_cancelled(db: &TestDb) {
    let clock = ManualClock::new();
    let journal = Journal::default();
    let hopper = builder()
        .register(Vigil)
        .unwrap()
        .state(journal.clone())
        .clock(clock.clone())
        .connect(db.url())
        .await
        .unwrap();
    let pool = hopper
        .start(
            WorkerConfig::new(1)
                .lease(Duration::from_millis(300))
                .rescue_interval(Duration::from_secs(3600))
                .shutdown_timeout(Duration::from_millis(200)),
        )
        .unwrap();
    let id = hopper.dispatch::<Vigil>(()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while hopper.job(id).await.unwrap().unwrap().state != JobState::Started {
        assert!(tokio::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A rescue an hour ahead of the pool's clock finds the lease run out
    // and takes the job back, as if the pool had been cut off for a while;
    // the pool's renewals, on its own clock, cannot keep the lease past it.
    let later = hopper.now() + chrono::Duration::hours(1);
    let rescued = hopper.store().rescue(Some(later)).await.unwrap();
    assert!(rescued.contains(&id), "rescued {rescued:?}");
    while !journal.entries().contains(&"cut off".to_owned()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the run went on after its claim was lost"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    pool.stop().await.unwrap();
}

/// Fails, then panics in its own `retry_delay`, which the runtime calls
/// outside the handler.
struct Clumsy;

impl Job for Clumsy {
    const TYPE: &'static str = "clumsy";
    const MAX_ATTEMPTS: u32 = 2;
    type Payload = ();
    async fn handle(&self, _: (), _: JobContext) -> JobResult {
        Err(hopper::JobError::retryable(
            "failed, so the retry delay is asked",
        ))
    }
    fn retry_delay(&self, _attempt: u32) -> Duration {
        panic!("retry_delay() panicked")
    }
}

/// A panic anywhere in a job's task, not only in its handler (here in its
/// own `retry_delay`), still ends the run with an outcome: a failed attempt,
/// retried until the attempts run out, instead of a job `started` for as
/// long as its pool lives.
pub async fn a_panic_outside_the_handler_still_ends_the_run(db: &TestDb) {
    let hopper = builder()
        .register(Clumsy)
        .unwrap()
        .connect(db.url())
        .await
        .unwrap();
    let pool = hopper.start(WorkerConfig::new(2)).unwrap();
    let id = hopper.dispatch::<Clumsy>(()).await.unwrap();
    let mut activity = pool.activity();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let job = loop {
        activity.borrow_and_update();
        let job = hopper.job(id).await.unwrap().unwrap();
        if job.state == JobState::Failed {
            break job;
        }
        if tokio::time::timeout_at(deadline, activity.changed())
            .await
            .is_err()
        {
            panic!("the run never ended: {job:?}");
        }
    };
    assert_eq!(job.attempts, 2);
    assert!(
        job.errors[0]
            .error
            .contains("panicked outside the handler: retry_delay() panicked"),
        "{:?}",
        job.errors
    );
    pool.stop().await.unwrap();
}
