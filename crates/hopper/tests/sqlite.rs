//! SQLite specifics, and checks that need no database of a particular kind.

#![cfg(feature = "sqlite")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use futures::FutureExt;
use hopper::store::sqlite::SqliteStore;
use hopper::store::{ClaimRequest, StateCount, Store, new_claim_token};
use hopper::testing::TestQueue;
use hopper::{DEFAULT_QUEUE, DispatchOptions, Hopper, JobState, RegistryError, WorkerConfig};

#[tokio::test]
async fn the_store_uses_wal_and_writes_with_synchronous_normal() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("wal.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let writer = store.writer().await.unwrap();
    let reader = store.reader().await.unwrap();
    for conn in [&*writer, &*reader] {
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    // Only writes sync, so only the writer's setting matters.
    let synchronous: i64 = writer
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 1, "synchronous = NORMAL");
    // The writer never sleeps in SQLite's busy handler, which would stall
    // the async runtime's thread; the store waits for the lock itself.
    let busy: i64 = writer
        .query_row("PRAGMA busy_timeout", [], |row| row.get(0))
        .unwrap();
    assert_eq!(busy, 0);
}

#[tokio::test]
async fn synchronous_full_in_the_url_flushes_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?synchronous=full",
        dir.path().join("full.db").display()
    );
    let store = SqliteStore::open(&url).await.unwrap();
    let writer = store.writer().await.unwrap();
    let synchronous: i64 = writer
        .query_row("PRAGMA synchronous", [], |row| row.get(0))
        .unwrap();
    assert_eq!(synchronous, 2, "synchronous = FULL");
}

/// A migrated store on `jobs.db` in a new temporary folder, and a handle on it.
async fn migrated_file() -> (tempfile::TempDir, SqliteStore, Hopper) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let hopper = builder().build(Arc::new(store.clone()));
    (dir, store, hopper)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_while_another_process_holds_the_write_lock() {
    let (dir, store, hopper) = migrated_file().await;
    let path = dir.path().join("jobs.db");

    // Another connection, as another process would, takes the write lock.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let dispatch = tokio::spawn({
        let hopper = hopper.clone();
        async move { hopper.dispatch::<Noop>(()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!dispatch.is_finished(), "the dispatch waits for the lock");
    assert!(store.get(1).await.unwrap().is_none());
    other.execute_batch("COMMIT").unwrap();

    let id = dispatch.await.unwrap().unwrap();
    assert_eq!(
        store.get(id).await.unwrap().map(|job| job.state),
        Some(JobState::Pending)
    );
}

/// A claim writes twice (it claims, then records which runs start at
/// once). Another process may take the write lock between the two: the
/// claim must still answer every job it took, or those jobs sit `started`
/// with no run until their leases run out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_meets_another_process_between_its_writes_answers_every_job_it_took() {
    let (dir, store, hopper) = migrated_file().await;
    let path = dir.path().join("jobs.db");
    let jobs = 600;
    hopper
        .dispatch_many::<Noop>((0..jobs).map(|_| ()), DispatchOptions::new())
        .await
        .unwrap();

    // Another process that writes all the time, taking the write lock
    // whenever it finds it free.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let contender = std::thread::spawn({
        let stop = stop.clone();
        let path = path.clone();
        move || {
            let other = rusqlite::Connection::open(&path).unwrap();
            let mut held = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if other.execute_batch("BEGIN IMMEDIATE").is_ok() {
                    std::thread::sleep(Duration::from_micros(50));
                    other.execute_batch("COMMIT").unwrap();
                    held += 1;
                    // Free for a moment, as between another process's writes.
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            held
        }
    });

    let mut answered = std::collections::BTreeSet::new();
    let mut claims = 0;
    while answered.len() < jobs && claims < 10 * jobs {
        claims += 1;
        let claimed = store
            .claim(ClaimRequest {
                queue: DEFAULT_QUEUE,
                worker: "w1",
                limit: 2,
                start_now: 1,
                token: new_claim_token(),
                due_by: Utc::now(),
                lease: Duration::from_secs(60),
                now: None,
            })
            .await
            .unwrap();
        answered.extend(claimed.iter().map(|job| job.id));
        let pending: u64 = store
            .counts()
            .await
            .unwrap()
            .into_iter()
            .filter(|count| count.state == JobState::Pending)
            .map(|count| count.count)
            .sum();
        if pending == 0 {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let held = contender.join().unwrap();
    assert!(held > 0, "the other process never took the lock");
    // Every job left pending through one of the claims, and each claim
    // answered the jobs it took.
    let started: Vec<i64> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT id FROM jobs WHERE state = 'started' ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let lost: Vec<&i64> = started.iter().filter(|id| !answered.contains(id)).collect();
    assert_eq!(started.len(), jobs, "every job was claimed");
    assert!(lost.is_empty(), "claimed but never answered: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_pool_sleeps_until_the_next_job_another_process_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let worker_side = builder().connect(&url).await.unwrap();
    // Both polls outlast the test: only the file's change and the next due
    // time can start the job on time.
    let config = WorkerConfig::new(2)
        .poll_interval(Duration::from_secs(60))
        .notified_poll_interval(Duration::from_secs(60));
    let pool = worker_side.start(config).unwrap();
    let mut activity = pool.activity();
    activity.wait_for(|&n| n >= 2).await.unwrap();
    // Another store on the file, as another process opens it: nothing in
    // this process tells the pool of its dispatches.
    let dispatcher = builder().connect(&url).await.unwrap();

    // One job for much later, then one for soon: the pool, asleep until the
    // first, learns of the second and runs it when it falls due.
    let later = DispatchOptions::new().delay(Duration::from_secs(300));
    let later = dispatcher.dispatch_with::<Noop>((), later).await.unwrap();
    let soon = Duration::from_millis(1500);
    let dispatched = std::time::Instant::now();
    let id = dispatcher
        .dispatch_with::<Noop>((), DispatchOptions::new().delay(soon))
        .await
        .unwrap();
    wait_finished(&worker_side, &pool, &[id]).await;
    let took = dispatched.elapsed();
    assert!(took >= soon, "ran early, after {took:?}");
    assert!(
        took < soon + Duration::from_secs(2),
        "ran late, after {took:?}"
    );
    let later = worker_side.job(later).await.unwrap().unwrap();
    assert_eq!(later.state, JobState::Pending, "only the job due soon ran");
    pool.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_left_unfinished_are_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let hopper = builder().build(Arc::new(store.clone()));
    let job = || hopper.prepare::<Noop>((), DispatchOptions::new()).unwrap();

    // A transaction whose work panics after its dispatch.
    let panicked = std::panic::AssertUnwindSafe(hopper.sqlite_transaction(|tx| {
        tx.dispatch::<Noop>(())?;
        panic!("the application's work panics mid-transaction");
        #[allow(unreachable_code)]
        Ok(())
    }))
    .catch_unwind()
    .await;
    assert!(panicked.is_err());

    // A transaction whose work fails after its dispatch.
    let failed = hopper
        .sqlite_transaction(|tx| {
            tx.dispatch_many::<Noop>([(), ()], DispatchOptions::new())?;
            tx.execute_batch("SELECT no_such_function()")?;
            Ok(())
        })
        .await;
    assert!(failed.unwrap_err().to_string().contains("no_such_function"));

    // The store's own bulk insert, dropped while it waits for the writer.
    let held = store.writer().await.unwrap();
    let jobs: Vec<_> = (0..1_000).map(|_| job()).collect();
    assert!(store.insert(&jobs).now_or_never().is_none());
    drop(held);

    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let now = Utc::now();
    let claimed = store
        .claim(ClaimRequest {
            queue: DEFAULT_QUEUE,
            worker: "w1",
            limit: 10,
            start_now: 0,
            token: new_claim_token(),
            due_by: now,
            lease: Duration::from_secs(60),
            now: None,
        })
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|job| job.id).collect::<Vec<_>>(), [id]);
    // Committed, not left inside a transaction: a read-only connection sees it.
    assert_eq!(
        store.counts().await.unwrap(),
        [StateCount {
            queue: DEFAULT_QUEUE.into(),
            state: JobState::Started,
            count: 1,
        }]
    );
}

#[tokio::test]
async fn migrating_refuses_an_applied_migration_that_was_changed_failed_or_is_unknown() {
    use hopper::store::{MigrateError, StoreError};
    // Each case: a migrated database, its history then altered by `sql`.
    let altered = |sql: String| async move {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        store
            .transaction(|tx| Ok(tx.execute_batch(&sql)?))
            .await
            .unwrap();
        store.migrate().await.unwrap_err()
    };
    let first = "(SELECT MIN(version) FROM _sqlx_migrations)";
    let changed = altered(format!(
        "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = {first}"
    ))
    .await;
    assert!(
        matches!(
            changed,
            StoreError::Migrate(MigrateError::VersionMismatch(_))
        ),
        "{changed}"
    );
    let failed = altered(format!(
        "UPDATE _sqlx_migrations SET success = FALSE WHERE version = {first}"
    ))
    .await;
    assert!(
        matches!(failed, StoreError::Migrate(MigrateError::Dirty(_))),
        "{failed}"
    );
    let unknown = altered(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999999999999, 'from a newer build', TRUE, x'00', 0)"
            .into(),
    )
    .await;
    assert!(
        matches!(
            unknown,
            StoreError::Migrate(MigrateError::VersionMissing(99999999999999))
        ),
        "{unknown}"
    );
}

/// A database migrated by the builds that ran sqlx's migrator on SQLite
/// (`tests/fixtures/sqlite-migrated-by-sqlx-0.8.db`, six migrations applied
/// by such a build) opens with this one: its history is read as applied and
/// kept row for row, only newer migrations are added, and it works. A
/// database this build migrates records the same rows.
#[tokio::test]
async fn a_database_migrated_by_sqlxs_migrator_opens_unchanged() {
    type Row = (i64, String, bool, String, i64, String);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sqlite-migrated-by-sqlx-0.8.db"
        ),
        &path,
    )
    .unwrap();
    let url = format!("sqlite://{}", path.display());
    let history = |url: String| async move {
        let store = SqliteStore::open(&url).await.unwrap();
        let reader = store.reader().await.unwrap();
        let mut statement = reader
            .prepare(
                "SELECT version, description, success, hex(checksum), execution_time, installed_on \
                 FROM _sqlx_migrations ORDER BY version",
            )
            .unwrap();
        statement
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                ))
            })
            .unwrap()
            .collect::<Result<Vec<Row>, _>>()
            .unwrap()
    };
    let before = history(url.clone()).await;
    assert_eq!(before.len(), 6, "the fixture holds six applied migrations");

    let status = hopper::store::migration_status(&url).await.unwrap();
    assert!(status.len() >= before.len());
    for (m, row) in status.iter().zip(&before) {
        assert_eq!((m.version, &m.description), (row.0, &row.1));
        assert!(m.applied_at.is_some(), "{m:?}");
    }
    assert!(
        status[before.len()..]
            .iter()
            .all(|m| m.applied_at.is_none())
    );

    let hopper = builder().connect(&url).await.unwrap();
    let after = history(url.clone()).await;
    assert_eq!(after[..before.len()], before[..], "nothing re-applied");
    assert_eq!(after.len(), status.len());
    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    assert!(hopper.store().get(id).await.unwrap().is_some());

    let fresh = format!("sqlite://{}", dir.path().join("fresh.db").display());
    builder().connect(&fresh).await.unwrap();
    let recorded = |rows: Vec<Row>| {
        rows.into_iter()
            .map(|(version, description, success, checksum, _, _)| {
                (version, description, success, checksum)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        recorded(history(fresh).await),
        recorded(after),
        "times aside"
    );
}

#[tokio::test]
async fn a_closed_store_refuses_every_use() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let clone = store.clone();
    store.close().await;
    let hopper = builder().build(Arc::new(clone));
    let err = hopper.dispatch::<Noop>(()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not store the job: the database store is closed"
    );
    assert!(matches!(
        store.counts().await,
        Err(hopper::store::StoreError::Closed)
    ));
}

#[tokio::test]
async fn the_default_database_file_is_created_with_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/storage/hopper.db", dir.path().display());
    Hopper::builder().connect(&url).await.unwrap();
    assert!(dir.path().join("storage/hopper.db").is_file());
    assert_eq!(hopper::DEFAULT_DATABASE_URL, "sqlite://storage/hopper.db");
}

#[tokio::test]
async fn a_duplicate_type_name_is_refused() {
    let err = Hopper::builder()
        .register(Noop)
        .unwrap()
        .register(Noop)
        .unwrap_err();
    assert!(matches!(err, RegistryError::Duplicate(ref name) if name == "noop"));
    assert_eq!(
        err.to_string(),
        "job type \"noop\" is registered twice; every job type needs a unique name"
    );
}

#[tokio::test]
async fn a_bad_worker_configuration_is_refused() {
    let queue = TestQueue::start(builder()).await.unwrap();
    let err = queue.hopper().start(WorkerConfig::new(0)).unwrap_err();
    assert!(err.to_string().contains("has 0 workers"));
    queue.stop().await.unwrap();
}
