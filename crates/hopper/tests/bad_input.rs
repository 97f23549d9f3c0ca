//! Bad input and bad surroundings on SQLite: a database opened read-only
//! and a full disk each give a clear error, and no job is lost.

#![cfg(feature = "sqlite")]

mod common;

use std::sync::Arc;

use common::*;
use hopper::store::sqlite::SqliteStore;
use hopper::{DispatchError, Hopper, JobFilter, JobState, WorkerConfig};

/// Every stored job, oldest first.
async fn all_jobs(hopper: &Hopper) -> Vec<hopper::JobRecord> {
    let mut jobs = hopper::testing::all_jobs(hopper, &JobFilter::default())
        .await
        .unwrap();
    jobs.reverse();
    jobs
}

async fn integrity(url: &str) -> String {
    let store = SqliteStore::open(url).await.unwrap();
    let conn = store.reader().await.unwrap();
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_opened_read_only_refuses_writes_clearly_and_keeps_its_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let writer = builder().connect(&url).await.unwrap();
    let ids = writer
        .dispatch_many::<Noop>([(), (), ()], Default::default())
        .await
        .unwrap();

    // Opening works (the schema is already there); every write is refused.
    let read_only = format!("{url}?mode=ro");
    let hopper = builder().connect(&read_only).await.unwrap();
    let err = hopper.dispatch::<Noop>(()).await.unwrap_err();
    assert!(matches!(err, DispatchError::Store(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "could not store the job: database error: attempt to write a readonly database"
    );
    let err = hopper.cancel(ids[0]).await.unwrap_err();
    assert!(err.to_string().contains("readonly database"), "{err}");
    assert_eq!(all_jobs(&hopper).await.len(), 3, "reads still work");
    drop(hopper);

    drop(writer);
    assert_eq!(integrity(&url).await, "ok");
    let again = builder().connect(&url).await.unwrap();
    let jobs = all_jobs(&again).await;
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), ids);
    assert!(jobs.iter().all(|j| j.state == JobState::Pending));
    again.dispatch::<Noop>(()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_the_dispatch_clearly_and_the_queue_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    hopper::store::Store::migrate(&store).await.unwrap();
    let hopper = builder().build(Arc::new(store.clone()));
    let earlier = hopper
        .dispatch_many::<Slow>(std::iter::repeat_n(0, 20), Default::default())
        .await
        .unwrap();

    // The disk is full: the database may grow by only a few pages. The
    // limit holds on the store's one writing connection.
    {
        let conn = store.writer().await.unwrap();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages + 8)
            .unwrap();
    }
    let mut filled = Vec::new();
    let err = loop {
        match hopper.dispatch::<Doomed>("x".repeat(10_000)).await {
            Ok(id) => filled.push(id),
            Err(err) => break err,
        }
        assert!(filled.len() < 100, "the page limit holds");
    };
    assert!(matches!(err, DispatchError::Store(_)), "{err}");
    assert!(
        err.to_string().contains("database or disk is full"),
        "{err}"
    );
    let err = hopper
        .dispatch_many::<Doomed>(["y".repeat(10_000)], Default::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("database or disk is full"),
        "{err}"
    );
    let stored = all_jobs(&hopper).await;
    assert_eq!(
        stored.len(),
        earlier.len() + filled.len(),
        "nothing half-stored"
    );

    // Space is freed: everything dispatched before runs, and dispatch works.
    store
        .writer()
        .await
        .unwrap()
        .pragma_update(None, "max_page_count", 1_073_741_823)
        .unwrap();
    let pool = hopper.start(WorkerConfig::new(2)).unwrap();
    let id = hopper.dispatch::<Slow>(99).await.unwrap();
    let mut ids = earlier.clone();
    ids.push(id);
    wait_finished(&hopper, &pool, &ids).await;
    pool.stop().await.unwrap();
    assert_eq!(integrity(&url).await, "ok");
}
