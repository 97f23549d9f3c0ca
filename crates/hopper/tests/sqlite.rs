//! SQLite specifics, and checks that need no database of a particular kind.

mod common;

use common::*;
use hopper::testing::TestQueue;
use hopper::{Hopper, RegistryError, WorkerConfig};
#[tokio::test]
async fn every_pooled_connection_uses_wal_and_a_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("wal.db").display());
    let store = hopper::store::sqlite::SqliteStore::open(&url)
        .await
        .unwrap();
    for pool in [store.writer(), store.reader()] {
        let mut conn = pool.acquire().await.unwrap();
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
