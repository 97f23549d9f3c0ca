//! MySQL/MariaDB specifics: many instances sharing one database, races the
//! database must settle, dispatch inside the application's transaction, and
//! workers outliving their connections. Each test gets a fresh database on
//! the server at 127.0.0.1:3306.
#![cfg(feature = "mysql")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mysql::{admin, database};
use common::*;
use hopper::store::mysql::MysqlStore;
use hopper::store::{NewJob, Store, Tick, TickRequest};
use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult, JobState, WorkerConfig};
use sqlx::Executor;
use tokio::sync::{Barrier, watch};

/// How long any wait in these tests may take before the test fails.
const BOUND: Duration = Duration::from_secs(60);

fn job(unique_key: Option<&str>) -> NewJob {
    let now = chrono::Utc::now();
    NewJob {
        job_type: "noop".into(),
        queue: "default".into(),
        payload: "null".into(),
        priority: 0,
        max_attempts: 3,
        available_at: now,
        created_at: now,
        unique_key: unique_key.map(str::to_owned),
        partition_key: None,
        sequence: None,
        trace_context: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once() {
    let db = database().await;
    let opened = futures::future::join_all((0..4).map(|_| hopper::store::open(&db.url))).await;
    for store in &opened {
        assert!(store.is_ok(), "{:?}", store.as_ref().err());
    }
    let store = MysqlStore::open(&db.url).await.unwrap();
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/mysql"))
        .unwrap()
        .count();
    assert_eq!(applied.len(), files, "each migration applied once");
    let status = hopper::store::migration_status(&db.url).await.unwrap();
    assert_eq!(status.len(), files);
    assert!(status.iter().all(|m| m.applied_at.is_some()));
    let ids = opened[0]
        .as_ref()
        .unwrap()
        .insert(&[job(None)])
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_dispatches_of_one_unique_key_store_one_job() {
    let db = database().await;
    let store = Arc::new(MysqlStore::open(&db.url).await.unwrap());
    store.migrate().await.unwrap();
    for round in 0..3 {
        let key = format!("race:{round}");
        let barrier = Arc::new(Barrier::new(8));
        let tasks = (0..8).map(|_| {
            let (store, barrier, key) = (store.clone(), barrier.clone(), key.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.insert(&[job(Some(&key))]).await.unwrap()[0]
            })
        });
        let ids: Vec<i64> = futures::future::try_join_all(tasks).await.unwrap();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE unique_key = ?")
            .bind(&key)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_inserts_running_together_get_their_own_ids_in_order() {
    let db = database().await;
    let store = Arc::new(MysqlStore::open(&db.url).await.unwrap());
    store.migrate().await.unwrap();
    let tasks = (0..4).map(|task| {
        let store = store.clone();
        tokio::spawn(async move {
            let jobs: Vec<NewJob> = (0..3_000)
                .map(|i| NewJob {
                    payload: format!("[{task},{i}]"),
                    ..job(None)
                })
                .collect();
            (task, store.insert(&jobs).await.unwrap())
        })
    });
    for (task, ids) in futures::future::try_join_all(tasks).await.unwrap() {
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        for (i, id) in ids.iter().enumerate().step_by(499) {
            let record = store.get(*id).await.unwrap().unwrap();
            assert_eq!(record.payload, format!("[{task},{i}]"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_dispatched_in_the_application_transaction_exists_only_if_it_commits() {
    let db = database().await;
    let store = MysqlStore::open(&db.url).await.unwrap();
    let hopper = builder().build(Arc::new(store.clone()));
    hopper.store().migrate().await.unwrap();
    store
        .pool()
        .execute("CREATE TABLE orders (id BIGINT PRIMARY KEY) ENGINE = InnoDB")
        .await
        .unwrap();

    let mut tx = hopper.transaction(store.pool().begin().await.unwrap());
    sqlx::query("INSERT INTO orders (id) VALUES (1)")
        .execute(&mut **tx)
        .await
        .unwrap();
    let kept = tx.dispatch::<Noop>(()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        hopper.job(kept).await.unwrap().unwrap().state,
        JobState::Pending
    );

    let mut tx = hopper.transaction(store.pool().begin().await.unwrap());
    sqlx::query("INSERT INTO orders (id) VALUES (2)")
        .execute(&mut **tx)
        .await
        .unwrap();
    let dropped = tx
        .dispatch_many::<Noop>([(), (), ()], DispatchOptions::new())
        .await
        .unwrap();
    assert_eq!(dropped.len(), 3);
    tx.rollback().await.unwrap();
    for id in dropped {
        assert!(hopper.job(id).await.unwrap().is_none());
    }
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(orders, 1);
    let total: u64 = hopper.counts().await.unwrap().iter().map(|c| c.count).sum();
    assert_eq!(total, 1);
}

/// Counts the runs of every job, and how many distinct jobs have run.
#[derive(Clone)]
struct Runs {
    seen: Arc<Mutex<HashMap<i64, u32>>>,
    distinct: Arc<watch::Sender<usize>>,
}

impl Runs {
    fn new() -> Self {
        Self {
            seen: Arc::default(),
            distinct: Arc::new(watch::channel(0).0),
        }
    }

    fn snapshot(&self) -> HashMap<i64, u32> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `count` distinct jobs have run, failing the test after [`BOUND`].
    async fn wait_for(&self, count: usize) {
        let mut distinct = self.distinct.subscribe();
        if tokio::time::timeout(BOUND, distinct.wait_for(|n| *n >= count))
            .await
            .is_err()
        {
            panic!(
                "{} of {count} jobs ran within {BOUND:?}",
                self.seen.lock().unwrap().len()
            );
        }
    }
}

/// Records its run in the shared [`Runs`].
struct Counted;

impl Job for Counted {
    const TYPE: &'static str = "counted";
    type Payload = ();
    async fn handle(&self, _: (), ctx: JobContext) -> JobResult {
        let runs = ctx.state::<Runs>()?;
        let distinct = {
            let mut seen = runs.seen.lock().unwrap();
            *seen.entry(ctx.id()).or_default() += 1;
            seen.len()
        };
        // Handlers finish in any order: a count sent late never lowers it.
        runs.distinct.send_modify(|n| *n = (*n).max(distinct));
        Ok(())
    }
}

/// A handle on `url` running [`Counted`], counting into `runs`.
async fn counted(url: &str, runs: &Runs) -> Hopper {
    Hopper::builder()
        .register(Counted)
        .unwrap()
        .state(runs.clone())
        .connect(url)
        .await
        .unwrap()
}

/// Finished jobs, or `None` when the count failed: a connection the test
/// killed less than a second after its last use goes out unchecked, and
/// fails once.
async fn finished(hopper: &Hopper) -> Option<u64> {
    let counts = hopper.counts().await.ok()?;
    Some(
        counts
            .iter()
            .filter(|c| c.state == JobState::Finished)
            .map(|c| c.count)
            .sum(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_pools_share_one_database_and_run_every_job_once() {
    const JOBS: usize = 2_000;
    let db = database().await;
    let runs = Runs::new();
    let mut instances = Vec::new();
    for _ in 0..4 {
        let hopper = counted(&db.url, &runs).await;
        let pool = hopper
            .start(WorkerConfig::new(5).poll_interval(Duration::from_millis(50)))
            .unwrap();
        instances.push((hopper, pool));
    }
    let ids = instances[0]
        .0
        .dispatch_many::<Counted>(vec![(); JOBS], DispatchOptions::new())
        .await
        .unwrap();
    runs.wait_for(JOBS).await;
    for (_, pool) in instances.drain(1..) {
        pool.stop().await.unwrap();
    }
    let (hopper, pool) = instances.pop().unwrap();
    pool.stop().await.unwrap();

    let seen = runs.snapshot();
    assert_eq!(seen.len(), JOBS);
    assert!(
        ids.iter().all(|id| seen.get(id) == Some(&1)),
        "each job ran once"
    );
    assert_eq!(finished(&hopper).await, Some(JOBS as u64));
}

/// Kills every connection to `database` but the caller's own; returns how many.
async fn kill_connections(database: &str) -> usize {
    let mut admin = admin().await;
    let ids: Vec<u64> = sqlx::query_scalar(
        "SELECT CAST(ID AS UNSIGNED) FROM information_schema.PROCESSLIST \
         WHERE DB = ? AND ID <> CONNECTION_ID()",
    )
    .bind(database)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    for id in &ids {
        // It may have gone by itself meanwhile.
        let _ = admin.execute(format!("KILL {id}").as_str()).await;
    }
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_outlive_their_connections_being_killed() {
    const JOBS: usize = 600;
    let db = database().await;
    let runs = Runs::new();
    let hopper = counted(&db.url, &runs).await;
    let pool = hopper
        .start(
            WorkerConfig::new(5)
                .poll_interval(Duration::from_millis(50))
                .lease(Duration::from_secs(1))
                .rescue_interval(Duration::from_millis(200)),
        )
        .unwrap();
    hopper
        .dispatch_many::<Counted>(vec![(); JOBS], DispatchOptions::new())
        .await
        .unwrap();
    // Every 100 jobs run, every connection the pool has is killed.
    let mut killed = 0;
    for progress in (100..JOBS).step_by(100) {
        runs.wait_for(progress).await;
        killed += kill_connections(&db.name).await;
    }
    assert!(killed > 0, "the pool had connections to kill");
    runs.wait_for(JOBS).await;

    // Every outcome reaches the database: none lost, none left started.
    let mut activity = pool.activity();
    let settled = async {
        loop {
            activity.borrow_and_update();
            match finished(&hopper).await {
                Some(done) if done == JOBS as u64 => return,
                // The failed connection is closed: count again at once.
                None => continue,
                Some(_) => {}
            }
            let _ = activity.changed().await;
        }
    };
    if tokio::time::timeout(BOUND, settled).await.is_err() {
        panic!("not every job finished: {:?}", hopper.counts().await);
    }
    pool.stop().await.unwrap();
    assert_eq!(runs.snapshot().len(), JOBS);
    let counts = hopper.counts().await.unwrap();
    assert!(
        counts.iter().all(|c| c.state == JobState::Finished),
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_among_many_takes_each_schedule_tick() {
    let db = database().await;
    let store = Arc::new(MysqlStore::open(&db.url).await.unwrap());
    store.migrate().await.unwrap();
    // Ticks fall on whole seconds.
    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp(), 0).unwrap();
    for minute in 0..3 {
        let fire_at = start + chrono::Duration::minutes(minute);
        let barrier = Arc::new(Barrier::new(8));
        let tasks = (0..8).map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let job = job(None);
                let tick = TickRequest {
                    schedule: "report",
                    fire_at,
                    job: Some(&job),
                };
                store.take_tick(tick).await.unwrap()
            })
        });
        let ticks = futures::future::try_join_all(tasks).await.unwrap();
        let dispatched: Vec<i64> = ticks
            .iter()
            .filter_map(|t| match t {
                Tick::Dispatched(id) => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(dispatched.len(), 1, "{ticks:?}");
        assert_eq!(
            ticks.iter().filter(|t| **t == Tick::Lost).count(),
            7,
            "{ticks:?}"
        );
        let states = store.schedule_states().await.unwrap();
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].name, "report");
        assert_eq!(states[0].last_fire_at, fire_at);
        assert_eq!(states[0].last_job_id, Some(dispatched[0]));
    }
    assert_eq!(
        store
            .take_tick(TickRequest {
                schedule: "report",
                fire_at: start,
                job: None,
            })
            .await
            .unwrap(),
        Tick::Lost,
        "an earlier tick is never taken again"
    );
    let later = start + chrono::Duration::minutes(9);
    assert_eq!(
        store
            .take_tick(TickRequest {
                schedule: "report",
                fire_at: later,
                job: None,
            })
            .await
            .unwrap(),
        Tick::Passed
    );
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(total, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_keys_sharing_their_first_255_characters_stay_distinct() {
    let db = database().await;
    let hopper = builder().connect(&db.url).await.unwrap();
    let prefix = "k".repeat(255);
    let dispatch = |suffix: &str| {
        let options = DispatchOptions::new().unique_key(format!("{prefix}{suffix}"));
        let hopper = hopper.clone();
        async move { hopper.dispatch_with::<Noop>((), options).await }
    };
    let a = dispatch("-a").await.unwrap();
    let b = dispatch("-b").await.unwrap();
    assert_ne!(a, b, "two keys merged into one");
    assert_eq!(dispatch("-a").await.unwrap(), a, "the live key still holds");
    let job = hopper.job(b).await.unwrap().unwrap();
    assert_eq!(
        job.unique_key.as_deref(),
        Some(format!("{prefix}-b").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_too_long_for_its_column_is_refused_whatever_the_server_mode() {
    let db = database().await;
    let store = MysqlStore::open(&db.url).await.unwrap();
    let mode: String = sqlx::query_scalar("SELECT CAST(@@SESSION.sql_mode AS CHAR)")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(mode.contains("STRICT_ALL_TABLES"), "{mode}");
    let hopper = builder().build(std::sync::Arc::new(store));
    hopper.store().migrate().await.unwrap();
    let long_queue = "q".repeat(300);
    let refused = hopper
        .dispatch_with::<Noop>((), DispatchOptions::new().queue(long_queue))
        .await;
    assert!(
        refused.is_err(),
        "a 300-character queue name was cut to fit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_the_server_breaks_is_told_apart_from_other_errors() {
    use hopper::store::{DatabaseErrorKind, StoreError};
    let db = database().await;
    let store = MysqlStore::open(&db.url).await.unwrap();
    let pool = store.pool();
    pool.execute("CREATE TABLE pair (id INT PRIMARY KEY, v INT NOT NULL)")
        .await
        .unwrap();
    pool.execute("INSERT INTO pair VALUES (1, 0), (2, 0)")
        .await
        .unwrap();
    let (one, two) = (
        "UPDATE pair SET v = v + 1 WHERE id = 1",
        "UPDATE pair SET v = v + 1 WHERE id = 2",
    );
    let (mut a, mut b) = (pool.begin().await.unwrap(), pool.begin().await.unwrap());
    a.execute(one).await.unwrap();
    b.execute(two).await.unwrap();
    // Each waits on the row the other holds: the server rolls one back.
    let (first, second) = tokio::time::timeout(BOUND, async {
        tokio::join!(a.execute(two), b.execute(one))
    })
    .await
    .unwrap();
    let victim = first
        .err()
        .or(second.err())
        .expect("one side is the victim");
    let error = StoreError::from(victim);
    assert!(
        matches!(&error, StoreError::Database(e) if e.kind() == DatabaseErrorKind::Deadlock),
        "{error:?}"
    );
    assert!(error.to_string().starts_with("database error: "), "{error}");
}

/// MySQL cannot tell other processes of new jobs, so a pool reads, in one
/// statement for all its idle queues, which have a due job: only those are
/// woken to claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_idle_queues_with_a_due_job_are_reported_due() {
    let db = database().await;
    let store = MysqlStore::open(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let now = chrono::Utc::now();
    let in_queue = |queue: &str, at| NewJob {
        queue: queue.into(),
        available_at: at,
        ..job(None)
    };
    store
        .insert(&[
            in_queue("due", now - chrono::Duration::seconds(1)),
            in_queue("later", now + chrono::Duration::hours(1)),
            in_queue("taken", now),
        ])
        .await
        .unwrap();
    let taken = store
        .claim(hopper::store::ClaimRequest {
            queue: "taken",
            worker: "w",
            limit: 1,
            start_now: 1,
            token: 1,
            due_by: now,
            lease: Duration::from_secs(30),
            now: None,
        })
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let due = store
        .due_queues(&["due", "later", "taken", "empty"], now)
        .await
        .unwrap();
    assert_eq!(due, ["due"]);
    assert!(store.due_queues(&[], now).await.unwrap().is_empty());
}

/// An idle pool whose longest sleep is a minute still takes, within a few
/// poll intervals, a job another process dispatched and a job another
/// process retried: its look for due jobs wakes the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_takes_other_processes_jobs_within_its_poll_interval() {
    let db = database().await;
    let runs = Runs::new();
    let worker = counted(&db.url, &runs).await;
    let pool = worker
        .start(
            WorkerConfig::new(2)
                .poll_interval(Duration::from_millis(200))
                .notified_poll_interval(Duration::from_secs(60)),
        )
        .unwrap();
    let other = counted(&db.url, &Runs::new()).await;
    // The pool's first claim finds the queue empty, and its producer idles.
    let mut activity = pool.activity();
    tokio::time::timeout(Duration::from_secs(10), activity.wait_for(|n| *n > 0))
        .await
        .expect("the pool claimed within 10 s")
        .unwrap();

    let started = std::time::Instant::now();
    let id = other.dispatch::<Counted>(()).await.unwrap();
    runs.wait_for(1).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    wait_state(&other, id, JobState::Finished).await;

    // A finished job cannot be retried; a cancelled one can, from anywhere.
    let later = other
        .dispatch_with::<Counted>((), DispatchOptions::new().delay(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(other.cancel(later).await.unwrap());
    let started = std::time::Instant::now();
    assert!(other.retry(later).await.unwrap());
    runs.wait_for(2).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    pool.stop().await.unwrap();
}
