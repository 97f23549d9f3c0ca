//! The database's own limits: the same inserts, claims and completions as
//! Hopper makes, as raw SQL on the same driver, pragmas and schema (opened
//! through Hopper's `SqliteStore` and its single writer connection), with
//! nothing around them.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::db::{close, FreshDb};
use crate::workloads::{rate, NoopJob};

const INSERT: &str =
    "INSERT INTO jobs (type, queue, payload, priority, max_attempts, available_at, created_at) ";

/// Rows per multi-row INSERT: 7 bound values each, under SQLite's default
/// limit of 32,766 variables per statement.
const ROWS_PER_INSERT: usize = 32_766 / 7;

/// Hopper's claim, word for word: due pending jobs of a queue, highest
/// priority first, leased to one worker.
const CLAIM: &str = "UPDATE jobs SET state = 'started', attempts = attempts + 1, \
        started_at = ?1, locked_by = ?2, locked_until = ?3 \
    WHERE id IN (SELECT id FROM jobs \
        WHERE state = 'pending' AND queue = ?4 AND available_at <= ?1 \
        ORDER BY priority DESC, available_at, id LIMIT ?5) \
    RETURNING id, type, queue, payload, priority, attempts, max_attempts";

/// Finishes a batch of claimed jobs, guarded by state and holder.
const FINISH: &str = "UPDATE jobs SET state = 'finished', finished_at = ?1, \
        locked_by = NULL, locked_until = NULL \
    WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'started' AND locked_by = ?3";

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// (a) `jobs` single-row INSERTs, each committed on its own. Returns jobs/s.
///
/// `RETURNING id` read with `fetch_one` is the fastest single insert sqlx
/// offers on SQLite (~30% above a plain `execute`, which streams every step
/// result back from the connection's thread), so that is the limit here.
pub async fn insert_one(db: &FreshDb, jobs: u32) -> Result<f64> {
    let store = db.open().await?;
    let sql = format!("{INSERT} VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id");
    let start = Instant::now();
    for index in 0..jobs {
        let now = now_micros();
        let _id: i64 = sqlx::query_scalar(&sql)
            .bind(<NoopJob as hopper::Job>::TYPE)
            .bind(hopper::DEFAULT_QUEUE)
            .bind(index.to_string())
            .bind(0)
            .bind(3)
            .bind(now)
            .bind(now)
            .fetch_one(store.writer())
            .await?;
    }
    let elapsed = start.elapsed();
    close(&store).await;
    Ok(rate(jobs, elapsed))
}

/// Inserts `jobs` rows with multi-row INSERTs in one transaction.
async fn insert_all(writer: &SqlitePool, jobs: u32) -> Result<()> {
    let now = now_micros();
    let indexes: Vec<u32> = (0..jobs).collect();
    let mut tx = writer.begin().await?;
    for chunk in indexes.chunks(ROWS_PER_INSERT) {
        let mut query = QueryBuilder::<Sqlite>::new(INSERT);
        query.push_values(chunk, |mut row, index| {
            row.push_bind(<NoopJob as hopper::Job>::TYPE)
                .push_bind(hopper::DEFAULT_QUEUE)
                .push_bind(index.to_string())
                .push_bind(0)
                .push_bind(3)
                .push_bind(now)
                .push_bind(now);
        });
        query.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// (b) `jobs` rows in one transaction of multi-row INSERTs. Returns jobs/s.
pub async fn insert_bulk(db: &FreshDb, jobs: u32) -> Result<f64> {
    let store = db.open().await?;
    let start = Instant::now();
    insert_all(store.writer(), jobs).await?;
    let elapsed = start.elapsed();
    close(&store).await;
    Ok(rate(jobs, elapsed))
}

/// (c) `jobs` queued rows drained by one loop: claim up to `batch` with
/// Hopper's claim statement, finish them with one UPDATE, until none are
/// left. Returns jobs/s.
pub async fn drain(db: &FreshDb, jobs: u32, batch: u32) -> Result<f64> {
    let store = db.open().await?;
    let writer = store.writer();
    insert_all(writer, jobs).await?;
    let start = Instant::now();
    let mut finished = 0u64;
    loop {
        let now = now_micros();
        let lease_until = now + Duration::from_secs(30).as_micros() as i64;
        let claimed: Vec<(i64, String, String, String, i32, i64, i64)> = sqlx::query_as(CLAIM)
            .bind(now)
            .bind("raw")
            .bind(lease_until)
            .bind(hopper::DEFAULT_QUEUE)
            .bind(batch)
            .fetch_all(writer)
            .await?;
        if claimed.is_empty() {
            break;
        }
        let ids: Vec<i64> = claimed.iter().map(|row| row.0).collect();
        finished += sqlx::query(FINISH)
            .bind(now_micros())
            .bind(serde_json::to_string(&ids)?)
            .bind("raw")
            .execute(writer)
            .await?
            .rows_affected();
    }
    let elapsed = start.elapsed();
    close(&store).await;
    if finished != u64::from(jobs) {
        bail!("raw drain finished {finished} of {jobs} jobs");
    }
    Ok(rate(jobs, elapsed))
}
