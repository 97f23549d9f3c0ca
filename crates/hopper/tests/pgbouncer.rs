//! Hopper through PgBouncer in transaction pooling mode, the way most
//! production PostgreSQL runs: the PgBouncer `.ci/run` starts on
//! 127.0.0.1:6432, in front of the server on 127.0.0.1:5432, forwarding
//! every database name (each test makes its own database on the server).
//! Dispatch, workers and migrations go through it (`pooler=transaction`);
//! the listener takes the direct URL when given one, or the workers poll.
//! A PgBouncer that does not answer, or pools otherwise, fails every test
//! here: none is skipped.
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::postgres::{Database, admin, database};
use common::{Count, Tally};
use hopper::store::Store;
use hopper::store::postgres::{LISTEN_URL_VAR, LISTENER_NAME, PostgresStore};
use hopper::{DispatchOptions, Hopper, JobState, WorkerConfig};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, Row};

/// Where `.ci/run` starts PgBouncer.
const PGBOUNCER: &str = "127.0.0.1:6432";

/// A connection to PgBouncer's admin console, or a panic saying it is not there.
async fn console() -> PgConnection {
    PgConnection::connect(&format!("postgres://postgres@{PGBOUNCER}/pgbouncer"))
        .await
        .unwrap_or_else(|e| {
            panic!("PgBouncer at {PGBOUNCER} is not reachable ({e}); .ci/run starts it")
        })
}

/// The rows of an admin console command, each as its columns' text by name.
async fn show(command: &str) -> Vec<HashMap<String, String>> {
    let mut console = console().await;
    let rows = sqlx::raw_sql(command)
        .fetch_all(&mut console)
        .await
        .unwrap_or_else(|e| panic!("PgBouncer's console refused {command}: {e}"));
    console.close().await.unwrap();
    rows.iter()
        .map(|row| {
            row.columns()
                .iter()
                .map(|column| {
                    let name = sqlx::Column::name(column);
                    let value: Option<String> = row.try_get(name).ok().flatten();
                    (name.to_owned(), value.unwrap_or_default())
                })
                .collect()
        })
        .collect()
}

/// `db`'s URL through PgBouncer, once PgBouncer is found pooling by transaction.
async fn through_pgbouncer(db: &Database) -> String {
    let config = show("SHOW CONFIG").await;
    let mode = config
        .iter()
        .find(|row| row["key"] == "pool_mode")
        .map(|row| row["value"].clone());
    assert_eq!(
        mode.as_deref(),
        Some("transaction"),
        "PgBouncer at {PGBOUNCER} must pool by transaction"
    );
    format!(
        "postgres://postgres@{PGBOUNCER}/{}?pooler=transaction",
        db.name
    )
}

/// How many clients PgBouncer serves on database `name`.
async fn pgbouncer_clients(name: &str) -> usize {
    show("SHOW CLIENTS")
        .await
        .iter()
        .filter(|row| row["database"] == name)
        .count()
}

/// The test processes give the direct URL themselves.
fn no_listen_url_in_the_environment() {
    assert!(
        std::env::var_os(LISTEN_URL_VAR).is_none(),
        "unset {LISTEN_URL_VAR}: these tests choose the direct URL themselves"
    );
}

fn counting(tally: &Tally) -> hopper::Builder {
    Hopper::builder()
        .register(Count)
        .unwrap()
        .state(tally.clone())
}

/// The listener's server process for `db`, once it listens (at most 10 s).
async fn listener_pid(db: &Database) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = listener(db).await {
            return pid;
        }
        assert!(Instant::now() < deadline, "no listener connection appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The server process listening for `db`'s wake-ups, if one does.
async fn listener(db: &Database) -> Option<i32> {
    let mut admin = admin().await;
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 \
            AND query ILIKE 'LISTEN%'",
    )
    .bind(&db.name)
    .bind(LISTENER_NAME)
    .fetch_optional(&mut admin)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pooler_transaction_sqlx_statements_collide_through_pgbouncer() {
    // What `pooler=transaction` is for: sqlx names its statements per
    // client connection and leaves them on the server connection, which
    // PgBouncer then hands to the next client.
    let db = database().await;
    let url = through_pgbouncer(&db).await;
    let plain = url.trim_end_matches("?pooler=transaction");
    let first = PgPoolOptions::new().connect(plain).await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT $1::int")
        .bind(1)
        .fetch_one(&first)
        .await
        .unwrap();
    assert_eq!(one, 1);
    let second = PgPoolOptions::new().connect(plain).await.unwrap();
    let collided = sqlx::query_scalar::<_, i32>("SELECT $1::int")
        .bind(2)
        .fetch_one(&second)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        collided.contains("prepared statement \"sqlx_s_1\" already exists"),
        "{collided}"
    );
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_migrating_through_pgbouncer_at_once_all_succeed_and_leave_no_lock() {
    no_listen_url_in_the_environment();
    let db = database().await;
    let url = through_pgbouncer(&db).await;
    // Two instances only through PgBouncer (a lock that ends with the
    // migrations' transaction) and two with the direct URL too (sqlx's
    // session lock, on a connection of their own): one lock key for all.
    let mut stores = Vec::new();
    for i in 0..4 {
        let store = if i % 2 == 0 {
            PostgresStore::open(&url).await.unwrap()
        } else {
            PostgresStore::open_with_listen_url(&url, &db.url)
                .await
                .unwrap()
        };
        stores.push(store);
    }
    let migrated = futures::future::join_all(stores.iter().map(|store| store.migrate())).await;
    for result in migrated {
        result.unwrap();
    }
    for store in &stores {
        let status = store.migration_status().await.unwrap();
        assert!(!status.is_empty());
        assert!(status.iter().all(|m| m.applied_at.is_some()), "{status:?}");
    }
    // Again, through PgBouncer alone: nothing to do.
    stores[0].migrate().await.unwrap();

    // No advisory lock stays held by a server connection PgBouncer keeps.
    let mut admin = admin().await;
    let held: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE l.locktype = 'advisory' AND d.datname = $1",
    )
    .bind(&db.name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(held, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_direct_listen_url_a_job_dispatched_through_pgbouncer_is_woken_by_notification() {
    let db = database().await;
    let url = through_pgbouncer(&db).await;
    let tally = Tally::default();
    let worker_side = counting(&tally)
        .listen_url(&db.url)
        .connect(&url)
        .await
        .unwrap();
    // Both polls outlast the test: only a notification starts the job soon.
    let config = WorkerConfig::new(2)
        .poll_interval(Duration::from_secs(60))
        .notified_poll_interval(Duration::from_secs(60));
    let pool = worker_side.start(config).unwrap();
    // Another handle with its own store: no in-process wake-up reaches the pool.
    let dispatcher = counting(&Tally::default()).connect(&url).await.unwrap();
    listener_pid(&db).await;
    // Let the pool's first claim and the one the listener's start asks for
    // pass (both find nothing), so it waits on its 60 s poll.
    let mut activity = pool.activity();
    activity.wait_for(|&n| n >= 2).await.unwrap();

    let dispatched = Instant::now();
    let id = dispatcher.dispatch::<Count>(1).await.unwrap();
    tally.wait_for(1, Duration::from_secs(10)).await;
    let took = dispatched.elapsed();
    assert!(took < Duration::from_secs(2), "woken after {took:?}");
    common::wait_state(&dispatcher, id, JobState::Finished).await;
    // The waiter on the result is told by notification too.
    let outcome = dispatcher
        .wait_for(id, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        matches!(outcome, hopper::JobOutcome::Finished { .. }),
        "{outcome:?}"
    );
    // The statements went through PgBouncer.
    assert!(pgbouncer_clients(&db.name).await > 0);
    pool.stop().await.unwrap();
}

/// The warnings logged on this thread while it is kept.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

/// An event's message.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0.lock().unwrap().push(message.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_direct_url_workers_poll_through_pgbouncer_and_say_so_once() {
    no_listen_url_in_the_environment();
    let db = database().await;
    let url = through_pgbouncer(&db).await;
    let warnings = Warnings::default();
    // The pool asks its store to listen as it starts, on this thread.
    let _logging = tracing::subscriber::set_default(warnings.clone());
    let tally = Tally::default();
    let worker_side = counting(&tally).connect(&url).await.unwrap();
    let pool = worker_side
        .start(WorkerConfig::new(2).poll_interval(Duration::from_millis(200)))
        .unwrap();
    let dispatcher = counting(&Tally::default()).connect(&url).await.unwrap();

    let id = dispatcher.dispatch::<Count>(7).await.unwrap();
    tally.wait_for(1, Duration::from_secs(10)).await;
    // Waiting on a result polls too, and says nothing more.
    let outcome = worker_side
        .wait_for(id, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        matches!(outcome, hopper::JobOutcome::Finished { .. }),
        "{outcome:?}"
    );
    assert_eq!(listener(&db).await, None, "nothing listens");
    let told: Vec<String> = warnings
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|message| message.contains("notifications are off"))
        .cloned()
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains(LISTEN_URL_VAR), "{}", told[0]);
    assert!(told[0].contains("poll"), "{}", told[0]);
    assert!(pgbouncer_clients(&db.name).await > 0);
    pool.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_through_pgbouncer_run_every_job_once() {
    let db = database().await;
    let url = through_pgbouncer(&db).await;
    let tally = Tally::default();
    let mut pools = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..2 {
        let hopper = counting(&tally)
            .listen_url(&db.url)
            .connect(&url)
            .await
            .unwrap();
        pools.push(hopper.start(WorkerConfig::new(4)).unwrap());
        handles.push(hopper);
    }
    // Bulk, single and unique dispatches, from both handles at once.
    let bulk = handles[0].dispatch_many::<Count>(0..300, DispatchOptions::new());
    let singles = async {
        let mut ids = Vec::new();
        for n in 300..340 {
            ids.push(handles[1].dispatch::<Count>(n).await.unwrap());
        }
        // Due in a while, so it is still waiting when dispatched again.
        let unique = DispatchOptions::new()
            .unique_key("once")
            .delay(Duration::from_millis(500));
        let first = handles[1]
            .dispatch_with::<Count>(340, unique.clone())
            .await
            .unwrap();
        let again = handles[1]
            .dispatch_with::<Count>(340, unique)
            .await
            .unwrap();
        assert_eq!(first, again);
        ids
    };
    let (bulk, singles) = tokio::join!(bulk, singles);
    assert_eq!(bulk.unwrap().len(), 300);
    assert_eq!(singles.len(), 40);
    tally.wait_for(341, Duration::from_secs(60)).await;
    for pool in pools {
        pool.stop().await.unwrap();
    }
    let runs = tally.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 341);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
    let counts = handles[0].counts().await.unwrap();
    let finished: u64 = counts
        .iter()
        .filter(|c| c.state == JobState::Finished)
        .map(|c| c.count)
        .sum();
    assert_eq!(finished, 341);
}
