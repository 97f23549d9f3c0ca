//! Dispatching in the application's own transaction, on every database.

use std::time::Duration;

use hopper::{DispatchError, Hopper, Job, JobContext, JobId, JobResult, JobState, WorkerConfig};

use crate::backends::TestDb;

struct Welcome;

impl Job for Welcome {
    const TYPE: &'static str = "welcome";
    type Payload = String;
    async fn handle(&self, _: String, _: JobContext) -> JobResult {
        Ok(())
    }
}

/// How a test transaction ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Commit,
    Rollback,
}

/// Records a signup and dispatches its welcome job, of type `job_type`, in
/// one transaction of the application's on `hopper`'s database, ended as
/// `end` says. Returns the job's id.
async fn sign_up(hopper: &Hopper, job_type: &str, end: End) -> Result<JobId, DispatchError> {
    let payload = serde_json::json!("ada@example.com");
    let options = hopper::DispatchOptions::new();
    #[cfg(feature = "sqlite")]
    if hopper
        .store_as::<hopper::store::sqlite::SqliteStore>()
        .is_some()
    {
        return hopper
            .sqlite_transaction(|tx| {
                tx.execute("INSERT INTO signups VALUES ('ada@example.com')", [])?;
                let id = tx.dispatch_json(job_type, &payload, options)?;
                if end == End::Rollback {
                    // The application's statement fails: its error rolls all back.
                    tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
                }
                Ok(id)
            })
            .await;
    }
    #[cfg(feature = "postgres")]
    if let Some(store) = hopper.store_as::<hopper::store::postgres::PostgresStore>() {
        let mut tx = hopper.transaction(store.pool().begin().await.map_err(store_error)?);
        sqlx::query("INSERT INTO signups VALUES ('ada@example.com')")
            .execute(&mut **tx)
            .await
            .map_err(store_error)?;
        let id = tx.dispatch_json(job_type, &payload, options).await?;
        return match end {
            End::Commit => tx.commit().await.map(|_| id).map_err(Into::into),
            End::Rollback => tx.rollback().await.map(|()| 0).map_err(Into::into),
        };
    }
    #[cfg(feature = "mysql")]
    if let Some(store) = hopper.store_as::<hopper::store::mysql::MysqlStore>() {
        let mut tx = hopper.transaction(store.pool().begin().await.map_err(store_error)?);
        sqlx::query("INSERT INTO signups VALUES ('ada@example.com')")
            .execute(&mut **tx)
            .await
            .map_err(store_error)?;
        let id = tx.dispatch_json(job_type, &payload, options).await?;
        return match end {
            End::Commit => tx.commit().await.map(|_| id).map_err(Into::into),
            End::Rollback => tx.rollback().await.map(|()| 0).map_err(Into::into),
        };
    }
    panic!("no transaction for the store behind {hopper:?}")
}

#[cfg(any(feature = "postgres", feature = "mysql"))]
fn store_error(error: sqlx::Error) -> DispatchError {
    DispatchError::Store(error.into())
}

/// Creates the application's own table.
async fn create_signups(hopper: &Hopper) {
    change_schema(hopper, "CREATE TABLE signups (email TEXT)").await;
}

/// Runs the schema change `statement` on `hopper`'s database, outside any
/// transaction (MySQL commits at every schema change).
pub async fn change_schema(hopper: &Hopper, statement: &str) {
    #[cfg(feature = "sqlite")]
    if let Some(store) = hopper.store_as::<hopper::store::sqlite::SqliteStore>() {
        store
            .writer()
            .await
            .unwrap()
            .execute_batch(statement)
            .unwrap();
        return;
    }
    #[cfg(feature = "postgres")]
    if let Some(store) = hopper.store_as::<hopper::store::postgres::PostgresStore>() {
        sqlx::query(statement).execute(store.pool()).await.unwrap();
        return;
    }
    #[cfg(feature = "mysql")]
    if let Some(store) = hopper.store_as::<hopper::store::mysql::MysqlStore>() {
        sqlx::query(statement).execute(store.pool()).await.unwrap();
        return;
    }
    panic!("no writer for the store behind {hopper:?}")
}

/// How many signups the application's own table holds.
async fn signups(hopper: &Hopper) -> i64 {
    let count = "SELECT count(*) FROM signups";
    #[cfg(feature = "sqlite")]
    if let Some(store) = hopper.store_as::<hopper::store::sqlite::SqliteStore>() {
        let reader = store.reader().await.unwrap();
        return reader.query_row(count, [], |row| row.get(0)).unwrap();
    }
    #[cfg(feature = "postgres")]
    if let Some(store) = hopper.store_as::<hopper::store::postgres::PostgresStore>() {
        return sqlx::query_scalar(count)
            .fetch_one(store.pool())
            .await
            .unwrap();
    }
    #[cfg(feature = "mysql")]
    if let Some(store) = hopper.store_as::<hopper::store::mysql::MysqlStore>() {
        return sqlx::query_scalar(count)
            .fetch_one(store.pool())
            .await
            .unwrap();
    }
    panic!("no reader for the store behind {hopper:?}")
}

/// A job dispatched in a transaction exists exactly when the transaction
/// commits, and once it does, this process's idle workers are woken for it:
/// it runs long before their next poll, on a database with no
/// notifications too.
pub async fn a_job_dispatched_in_a_transaction_exists_once_it_commits_and_wakes_the_workers(
    db: &TestDb,
) {
    let hopper = Hopper::builder()
        .register(Welcome)
        .unwrap()
        .connect(db.url())
        .await
        .unwrap();
    create_signups(&hopper).await;
    let idle = Duration::from_secs(120);
    let pool = hopper
        .start(
            WorkerConfig::new(2)
                .poll_interval(idle)
                .notified_poll_interval(idle),
        )
        .unwrap();
    // Let the pool find the queue empty and go idle.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // On SQLite an error in the transaction's work rolls it back; on the
    // servers the application rolls it back itself.
    let _ = sign_up(&hopper, Welcome::TYPE, End::Rollback).await;
    assert!(hopper.counts().await.unwrap().is_empty(), "rolled back");
    assert_eq!(signups(&hopper).await, 0);

    let refused = sign_up(&hopper, "ghost", End::Commit).await.unwrap_err();
    assert_eq!(refused.to_string(), "no job registered for type ghost");
    assert!(hopper.counts().await.unwrap().is_empty(), "refused");
    assert_eq!(
        signups(&hopper).await,
        0,
        "the refusal rolled the signup back"
    );

    let id = sign_up(&hopper, Welcome::TYPE, End::Commit).await.unwrap();
    assert_eq!(signups(&hopper).await, 1);
    let deadline = tokio::time::Instant::now() + idle / 4;
    loop {
        let job = hopper.job(id).await.unwrap().expect("committed");
        if job.state == JobState::Finished {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the committed job was not run before the workers' next poll: {:?}",
            job.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.stop().await.unwrap();
}
