//! SQLite specifics, and checks that need no database of a particular kind.

mod common;

use std::sync::Arc;

use common::*;
use hopper::store::Store;
use hopper::store::sqlite::SqliteStore;
use hopper::testing::TestQueue;
use hopper::{Hopper, RegistryError, WorkerConfig};

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
