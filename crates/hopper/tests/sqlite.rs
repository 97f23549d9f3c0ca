//! SQLite specifics, and checks that need no database of a particular kind.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use futures::FutureExt;
use hopper::store::sqlite::{SqliteStore, insert_in};
use hopper::store::{ClaimRequest, StateCount, Store};
use hopper::testing::TestQueue;
use hopper::{DEFAULT_QUEUE, DispatchOptions, Hopper, JobState, RegistryError, WorkerConfig};
use sqlx::Connection;

#[tokio::test]
async fn the_writer_and_the_readers_use_wal_and_a_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("wal.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    let mut writer = store.writer().await.unwrap();
    let mut reader = store.reader().await.unwrap();
    for conn in [&mut *writer, &mut *reader] {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert!(busy >= 1000, "busy_timeout {busy}");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(synchronous, 1, "synchronous = NORMAL");
    }
}

/// Counts to two million on SQLite's thread: a statement that takes a while.
const SLOW_STATEMENT: &str = "WITH RECURSIVE c(x) AS \
    (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT COUNT(*) FROM c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_dropped_midway_are_rolled_back_before_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let hopper = builder().build(Arc::new(store.clone()));
    let job = || hopper.prepare::<Noop>((), DispatchOptions::new()).unwrap();

    // A transaction dropped after its insert, without commit or rollback.
    {
        let mut conn = store.writer().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        insert_in(&mut tx, &[job()]).await.unwrap();
    }

    // A future dropped while its transaction's statement runs.
    let (written, on_written) = tokio::sync::oneshot::channel();
    let midway = async {
        let mut conn = store.writer().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        insert_in(&mut tx, &[job(), job()]).await.unwrap();
        written.send(()).unwrap();
        let _: i64 = sqlx::query_scalar(SLOW_STATEMENT)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    tokio::select! {
        () = midway => panic!("the slow statement finished before the future was dropped"),
        _ = on_written.then(|_| tokio::time::sleep(Duration::from_millis(50))) => {}
    }

    // The store's own bulk insert, dropped at its first wait.
    let jobs: Vec<_> = (0..1_000).map(|_| job()).collect();
    assert!(store.insert(&jobs).now_or_never().is_none());

    let id = hopper.dispatch::<Noop>(()).await.unwrap();
    let now = Utc::now();
    let claimed = store
        .claim(ClaimRequest {
            queue: DEFAULT_QUEUE,
            worker: "w1",
            limit: 10,
            now,
            lease_until: now + Duration::from_secs(60),
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
