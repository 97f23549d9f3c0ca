//! PostgreSQL specifics: concurrent starts, unique keys under racing
//! dispatchers, dispatch inside the application's transaction, many pools
//! claiming from one table, wake-ups across processes, and workers whose
//! connections are killed under them.
#![cfg(feature = "postgres")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::{Database, database};
use common::*;
use hopper::store::postgres::{LISTENER_NAME, PostgresStore};
use hopper::store::{
    ClaimRequest, CompleteRequest, Completion, Outcome, PruneRequest, Store, new_claim_token,
};
use hopper::{DispatchOptions, Hopper, Job, JobContext, JobResult, JobState, WorkerConfig};
use sqlx::postgres::PgListener;
use tokio::sync::{Barrier, Notify};

fn counting(tally: &Tally) -> hopper::Builder {
    builder().register(Count).unwrap().state(tally.clone())
}

async fn job_count(url: &str, state: &str) -> i64 {
    let store = PostgresStore::open(url).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = $1")
        .bind(state)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once() {
    let db = database().await;
    let pending = hopper::store::migration_status(&db.url).await.unwrap();
    assert!(!pending.is_empty() && pending.iter().all(|m| m.applied_at.is_none()));
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { hopper::store::open(&url).await.map(|_| ()) })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let store = PostgresStore::open(&db.url).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(!applied.is_empty());
    assert!(applied.iter().all(|(_, success)| *success));
    assert_eq!(applied.len(), pending.len(), "each migration once");
    let status = hopper::store::migration_status(&db.url).await.unwrap();
    assert_eq!(status.len(), applied.len());
    assert!(status.iter().all(|m| m.applied_at.is_some()));

    // A newer build migrated further: this build still starts.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99991231000000, 'from a newer build', TRUE, '\\x00', 0)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    hopper::store::open(&db.url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_dispatchers_of_one_unique_key_store_one_job() {
    let db = database().await;
    let hopper = builder().connect(&db.url).await.unwrap();
    for round in 0..10 {
        let key = format!("report:{round}");
        let barrier = Arc::new(Barrier::new(8));
        let dispatches: Vec<_> = (0..8)
            .map(|_| {
                let hopper = hopper.clone();
                let barrier = barrier.clone();
                let options = DispatchOptions::new().unique_key(key.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    hopper.dispatch_with::<Noop>((), options).await.unwrap()
                })
            })
            .collect();
        let mut ids = Vec::new();
        for dispatch in dispatches {
            ids.push(dispatch.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "round {round}: every dispatcher got one id");
    }
    assert_eq!(job_count(&db.url, "pending").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_whose_holder_keeps_finishing_never_fails_a_dispatch() {
    let db = database().await;
    let hopper = builder().connect(&db.url).await.unwrap();
    let store = hopper.store().clone();
    let options = DispatchOptions::new().unique_key("hot");
    // One task claims and finishes whatever holds the key, over and over,
    // while others dispatch it: a look-up may find the holder gone.
    let finisher = {
        let store = store.clone();
        let hopper = hopper.clone();
        tokio::spawn(async move {
            let mut finished = 0;
            while finished < 100 {
                let now = hopper.now();
                let claimed = store
                    .claim(ClaimRequest {
                        queue: "default",
                        worker: "finisher",
                        limit: 10,
                        start_now: 0,
                        token: new_claim_token(),
                        due_by: now,
                        lease: Duration::from_secs(30),
                        now: None,
                    })
                    .await
                    .unwrap();
                let done: Vec<Completion> = claimed
                    .iter()
                    .map(|job| Completion {
                        claim: job.claim(),
                        attempt: job.attempt,
                        outcome: Outcome::Finished,
                    })
                    .collect();
                let request = CompleteRequest {
                    completions: &done,
                    ended_at: now,
                };
                finished += store.complete(request).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let dispatchers: Vec<_> = (0..4)
        .map(|_| {
            let hopper = hopper.clone();
            let options = options.clone();
            tokio::spawn(async move {
                for _ in 0..150 {
                    hopper
                        .dispatch_with::<Noop>((), options.clone())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for dispatcher in dispatchers {
        dispatcher.await.unwrap();
    }
    finisher.abort();
    let live: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE unique_key = 'hot' AND state IN ('pending', 'started')",
    )
    .fetch_one(PostgresStore::open(&db.url).await.unwrap().pool())
    .await
    .unwrap();
    assert!(live <= 1, "{live} live jobs hold one key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_inside_the_applications_transaction_exists_only_if_it_commits() {
    let db = database().await;
    let store = PostgresStore::open(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let hopper = builder().build(Arc::new(store.clone()));
    let mut wakeups = PgListener::connect(&db.url).await.unwrap();
    wakeups.listen("hopper_jobs").await.unwrap();

    sqlx::query("CREATE TABLE users (name TEXT)")
        .execute(store.pool())
        .await
        .unwrap();
    let rolled_back = {
        let mut tx = hopper.transaction(store.pool().begin().await.unwrap());
        sqlx::query("INSERT INTO users VALUES ('ada')")
            .execute(&mut **tx)
            .await
            .unwrap();
        let id = tx
            .dispatch_with::<Noop>((), DispatchOptions::new().queue("rolled-back"))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        id
    };
    assert!(hopper.job(rolled_back).await.unwrap().is_none());

    let mut tx = hopper.transaction(store.pool().begin().await.unwrap());
    sqlx::query("INSERT INTO users VALUES ('grace')")
        .execute(&mut **tx)
        .await
        .unwrap();
    let ids = tx
        .dispatch_many::<Noop>([(), ()], DispatchOptions::new().queue("committed"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for id in &ids {
        assert_eq!(
            hopper.job(*id).await.unwrap().unwrap().state,
            JobState::Pending
        );
    }
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(users, 1);
    // The rolled-back dispatch sent no wake-up; the committed one did, on commit.
    let first = tokio::time::timeout(Duration::from_secs(5), wakeups.recv())
        .await
        .expect("a wake-up")
        .unwrap();
    assert_eq!(first.payload(), "committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_pools_run_every_job_exactly_once() {
    const JOBS: u32 = 2000;
    let db = database().await;
    let tally = Tally::default();
    let mut pools = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let hopper = counting(&tally).connect(&db.url).await.unwrap();
        handles.push(hopper.clone());
        pools.push(hopper.start(WorkerConfig::new(5)).unwrap());
    }
    handles[0]
        .dispatch_many::<Count>(0..JOBS, DispatchOptions::new())
        .await
        .unwrap();
    tally.wait_for(JOBS, Duration::from_secs(60)).await;
    for pool in pools {
        pool.stop().await.unwrap();
    }
    let runs = tally.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS as usize);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
    assert_eq!(job_count(&db.url, "finished").await, i64::from(JOBS));
}

/// Waits until `job` has started, at most `limit`.
async fn started_within(hopper: &Hopper, id: i64, limit: Duration, tally: &Tally) -> Duration {
    let started = Instant::now();
    tally.wait_for(1, limit).await;
    let job = hopper.job(id).await.unwrap().unwrap();
    assert!(job.started_at.is_some());
    started.elapsed()
}

/// The listener's server process, once it is listening.
async fn listener_pid(db: &Database, not: Option<i32>) -> i32 {
    let mut admin = common::postgres::admin().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 \
                AND query ILIKE 'LISTEN%' AND pid IS DISTINCT FROM $3",
        )
        .bind(&db.name)
        .bind(LISTENER_NAME)
        .bind(not)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
        if let Some(pid) = pid {
            return pid;
        }
        assert!(Instant::now() < deadline, "no listener connection appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_from_another_process_wakes_idle_workers_even_after_the_listener_is_killed() {
    let db = database().await;
    let tally = Tally::default();
    let worker_side = counting(&tally).connect(&db.url).await.unwrap();
    let pool = worker_side
        .start(WorkerConfig::new(2).poll_interval(Duration::from_secs(30)))
        .unwrap();
    // Another handle with its own store: no in-process wake-up reaches the pool.
    let dispatcher = counting(&Tally::default()).connect(&db.url).await.unwrap();
    let pid = listener_pid(&db, None).await;
    // Let the pool's first claim and the one the listener's start asks for
    // pass (both find nothing), so it waits on its 30 s poll.
    let mut activity = pool.activity();
    activity.wait_for(|&n| n >= 2).await.unwrap();

    let id = dispatcher.dispatch::<Count>(1).await.unwrap();
    let took = started_within(&dispatcher, id, Duration::from_secs(5), &tally).await;
    assert!(took < Duration::from_secs(1), "woken after {took:?}");

    let mut admin = common::postgres::admin().await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(killed);
    let before = *activity.borrow_and_update();
    listener_pid(&db, Some(pid)).await;
    activity.wait_for(|&n| n > before).await.unwrap();
    tally.runs.lock().unwrap().clear();
    let id = dispatcher.dispatch::<Count>(2).await.unwrap();
    let took = started_within(&dispatcher, id, Duration::from_secs(5), &tally).await;
    assert!(took < Duration::from_secs(1), "woken after {took:?}");
    pool.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_sleeps_until_the_next_job_another_process_schedules() {
    let db = database().await;
    let tally = Tally::default();
    let worker_side = counting(&tally).connect(&db.url).await.unwrap();
    // Both polls outlast the test: only a notification and the next due time
    // can start the job on time.
    let config = WorkerConfig::new(2)
        .poll_interval(Duration::from_secs(60))
        .notified_poll_interval(Duration::from_secs(60));
    let pool = worker_side.start(config).unwrap();
    let dispatcher = counting(&Tally::default()).connect(&db.url).await.unwrap();
    let mut activity = pool.activity();
    activity.wait_for(|&n| n >= 2).await.unwrap();

    // One job for much later, then one for soon: the pool, asleep until the
    // first, is told of the second and runs it when it falls due.
    let later = DispatchOptions::new().delay(Duration::from_secs(300));
    dispatcher.dispatch_with::<Count>(1, later).await.unwrap();
    let soon = Duration::from_millis(1500);
    let dispatched = Instant::now();
    let id = dispatcher
        .dispatch_with::<Count>(2, DispatchOptions::new().delay(soon))
        .await
        .unwrap();
    tally.wait_for(1, Duration::from_secs(10)).await;
    let took = dispatched.elapsed();
    assert!(took >= soon, "ran early, after {took:?}");
    assert!(
        took < soon + Duration::from_secs(2),
        "ran late, after {took:?}"
    );
    let job = worker_side.job(id).await.unwrap().unwrap();
    assert!(job.started_at.is_some(), "{job:?}");
    assert_eq!(tally.total(), 1, "only the job due soon ran");
    pool.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_whose_connections_are_killed_lose_no_job() {
    const JOBS: u32 = 1500;
    let db = database().await;
    let tally = Tally::default();
    let hopper = counting(&tally).connect(&db.url).await.unwrap();
    // Short leases: a claim whose answer died with its connection is rescued soon.
    let config = WorkerConfig::new(5)
        .lease(Duration::from_millis(600))
        .rescue_interval(Duration::from_millis(200))
        .poll_interval(Duration::from_millis(200));
    let other = counting(&tally).connect(&db.url).await.unwrap();
    let pools = [
        hopper.start(config.clone()).unwrap(),
        other.start(config).unwrap(),
    ];
    hopper
        .dispatch_many::<Count>(0..JOBS, DispatchOptions::new())
        .await
        .unwrap();
    let mut admin = common::postgres::admin().await;
    let mut kills = 0;
    for share in [5, 4, 3, 2] {
        tally.wait_for(JOBS / share, Duration::from_secs(30)).await;
        let killed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&db.name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        kills += killed;
    }
    assert!(kills > 0);
    // Every job finishes: none lost, none left started.
    let check = PostgresStore::open(&db.url).await.unwrap();
    let mut activity = pools[0].activity();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        activity.borrow_and_update();
        let finished: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'finished'")
                .fetch_one(check.pool())
                .await
                .unwrap();
        if finished == i64::from(JOBS) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{finished} of {JOBS} finished after the kills"
        );
        // The other pool's progress and rescues show up as this pool's claims.
        let _ = tokio::time::timeout(Duration::from_millis(250), activity.changed()).await;
    }
    for pool in pools {
        pool.stop().await.unwrap();
    }
    let runs = tally.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS as usize, "every job ran");
    assert_eq!(job_count(&db.url, "started").await, 0);
    assert_eq!(job_count(&db.url, "finished").await, i64::from(JOBS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_racing_for_each_schedule_tick_dispatch_it_once() {
    let db = database().await;
    let clock = hopper::clock::ManualClock::new();
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(
            builder()
                .clock(clock.clone())
                .connect(&db.url)
                .await
                .unwrap(),
        );
    }
    let mut schedules = hopper::schedule::Schedules::new();
    schedules
        .add(hopper::schedule::Schedule::new::<Noop>("a", "@every 1m", ()).unwrap())
        .unwrap();
    schedules
        .add(hopper::schedule::Schedule::new::<Noop>("b", "* * * * * *", ()).unwrap())
        .unwrap();
    let mut total = 0;
    for _ in 0..20 {
        clock.advance(Duration::from_secs(60));
        let runs = futures::future::join_all(instances.iter().map(|i| schedules.run_due(i))).await;
        total += runs.into_iter().map(|r| r.unwrap().len()).sum::<usize>();
    }
    assert_eq!(total, 40, "each tick of both schedules exactly once");
    assert_eq!(job_count(&db.url, "pending").await, 40);
    let states = instances[0].store().schedule_states().await.unwrap();
    let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(states.iter().all(|s| s.last_job_id.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_never_deletes_a_job_retried_while_the_prune_waited_on_it() {
    let db = database().await;
    let hopper = builder().connect(&db.url).await.unwrap();
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let store = PostgresStore::open(&db.url).await.unwrap();
    sqlx::query(
        "UPDATE jobs SET state = 'failed', finished_at = now() - interval '1 day' WHERE id = $1",
    )
    .bind(id)
    .execute(store.pool())
    .await
    .unwrap();
    // A retry of the failed job, held open in its own transaction.
    let mut retry = store.pool().begin().await.unwrap();
    sqlx::query("UPDATE jobs SET state = 'pending', finished_at = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *retry)
        .await
        .unwrap();
    // The prune picks the row as failed and waits on the retry's lock...
    let prune = {
        let hopper = hopper.clone();
        tokio::spawn(async move {
            hopper
                .store()
                .prune(
                    JobState::Failed,
                    PruneRequest {
                        before: chrono::Utc::now(),
                        limit: 100,
                    },
                )
                .await
        })
    };
    let mut waiting = false;
    for _ in 0..100 {
        let blocked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if blocked > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(waiting, "the prune never waited on the retried row");
    // ...and finds it pending once the retry commits.
    retry.commit().await.unwrap();
    assert_eq!(prune.await.unwrap().unwrap(), 0);
    let job = hopper
        .job(id)
        .await
        .unwrap()
        .expect("the retried job is kept");
    assert_eq!(job.state, JobState::Pending);
}

/// Holds every run until the test lets it go.
struct Held;

impl Job for Held {
    const TYPE: &'static str = "held";
    type Payload = ();
    async fn handle(&self, _: (), ctx: JobContext) -> JobResult {
        ctx.state::<Arc<Notify>>()?.notified().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_takes_no_longer_than_the_deadline_while_the_database_is_unreachable() {
    let db = database().await;
    let release = Arc::new(Notify::new());
    let hopper = builder()
        .register(Held)
        .unwrap()
        .state(release.clone())
        .connect(&db.url)
        .await
        .unwrap();
    let shutdown = Duration::from_secs(1);
    let pool = hopper
        .start(WorkerConfig::new(1).shutdown_timeout(shutdown))
        .unwrap();
    let id = hopper.dispatch::<Held>(()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while hopper.job(id).await.unwrap().unwrap().state != JobState::Started {
        assert!(Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The database stops taking connections, and every open one is cut.
    let mut admin = common::postgres::admin().await;
    let cut = |allow: bool| {
        format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS {allow}",
            db.name
        )
    };
    sqlx::query(&cut(false)).execute(&mut admin).await.unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&db.name)
        .execute(&mut admin)
        .await
        .unwrap();
    // The run ends well before the deadline; its outcome cannot be written.
    release.notify_waiters();
    let started = Instant::now();
    let stopped = tokio::time::timeout(Duration::from_secs(30), pool.stop()).await;
    let took = started.elapsed();
    sqlx::query(&cut(true)).execute(&mut admin).await.unwrap();
    let stopped = stopped.expect("stop returned");
    assert!(stopped.is_err(), "the claim could not be handed back");
    assert!(
        took < shutdown + Duration::from_secs(6),
        "stop took {took:?} with a {shutdown:?} deadline"
    );
}

/// How many sequential scans of the jobs table `db` has counted, once
/// every other connection to it has closed (a backend hands its counts
/// over as it exits).
async fn jobs_table_scans(db: &Database) -> i64 {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if others == 0 {
            break;
        }
        if Instant::now() > deadline {
            let open: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT application_name, query FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_all(&mut admin)
            .await
            .unwrap();
            panic!("{others} connections stayed open: {open:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'jobs'")
        .fetch_one(&mut admin)
        .await
        .unwrap()
}

// Claims and completions name the rows they change: looking each one up
// by its key is what keeps their cost flat however large the table. Given
// the arrays of ids as parameters, the planner hashed a scan of the whole
// table instead (50 ms instead of 7 for 500 completions among 100,000 jobs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_completions_of_hundreds_of_jobs_never_scan_the_whole_table() {
    use hopper::store::{FlowRequest, QueueFlow};
    let db = database().await;
    let now = chrono::Utc::now();
    let store = PostgresStore::open(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    let jobs: Vec<_> = (0..100_000)
        .map(|n| {
            let queue = if n % 2 == 0 { "plain" } else { "fair" };
            keyed_job(queue, &format!("k{}", n % 7), now)
        })
        .collect();
    store.insert(&jobs).await.unwrap();
    let fair = QueueFlow::default().fair();
    store
        .set_flow(FlowRequest {
            queue: "fair",
            flow: &fair,
            now,
        })
        .await
        .unwrap();
    store.pool().close().await;
    drop(store);
    let before = jobs_table_scans(&db).await;

    let store = PostgresStore::open(&db.url).await.unwrap();
    for queue in ["plain", "fair"] {
        let claimed = store
            .claim(ClaimRequest {
                queue,
                worker: "w",
                limit: 500,
                start_now: 0,
                token: new_claim_token(),
                due_by: now,
                lease: Duration::from_secs(60),
                now: None,
            })
            .await
            .unwrap();
        assert_eq!(claimed.len(), 500);
        let claims: Vec<_> = claimed.iter().map(|job| job.claim()).collect();
        store.mark_started(&claims).await.unwrap();
        assert_eq!(finish_all(&store, &claimed, now).await, 500);
    }
    store.pool().close().await;
    drop(store);
    assert_eq!(jobs_table_scans(&db).await, before);
}
