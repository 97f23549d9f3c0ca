//! The database's own limits: the same inserts, claims and completions as
//! Hopper makes, as raw SQL on the same driver, settings and schema (opened
//! through Hopper's own store for the database), with nothing around them.

use std::ops::Range;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use rusqlite::params;
use sqlx::{Connection, MySql, QueryBuilder};

use crate::db::{Bench, FreshDb};
use crate::workloads::{NoopJob, rate};

/// The head of every raw INSERT, as a literal for `concat!`.
macro_rules! columns {
    () => {
        "INSERT INTO jobs \
        (type, queue, payload, priority, max_attempts, available_at, created_at, state, finished_at) "
    };
}

/// The head of every raw INSERT: the columns a job's row is given.
const COLUMNS: &str = columns!();

/// Rows per multi-row INSERT on SQLite: 9 bound values each, under its
/// limit of 32,766 variables per statement.
const SQLITE_ROWS_PER_INSERT: usize = 32_766 / 9;
/// Rows per multi-row INSERT on MySQL: the fastest of the sizes tried on
/// MariaDB 10.11 (1,000 rows: 118k rows/s; 2,000: 113k; 7,281, the most its
/// limit of 65,535 placeholders allows: 76k).
const MYSQL_ROWS_PER_INSERT: usize = 1_000;
/// Rows per UNNEST insert when filling a table (the bulk limit itself is one statement).
const FILL_CHUNK: usize = 50_000;

/// A claimed row: id, type, queue, payload, priority, attempts, max_attempts.
type Claimed<Text> = (i64, Text, Text, Text, i32, i32, i32);

/// Who holds the raw loop's claims.
const HOLDER: &str = "raw";

fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

fn job_type() -> &'static str {
    <NoopJob as hopper::Job>::TYPE
}

/// (a) `jobs` single-row INSERTs, each committed on its own. Returns jobs/s.
///
/// On SQLite, one prepared INSERT run again and again on the store's
/// writing connection, in this process: the least a commit costs there.
pub async fn insert_one(db: &FreshDb, jobs: u32) -> Result<f64> {
    let bench = db.open().await?;
    let start = Instant::now();
    match &bench {
        Bench::Sqlite(store) => {
            let conn = store.writer().await?;
            let mut insert = conn.prepare_cached(INSERT_ONE)?;
            for index in 0..jobs {
                insert_one_sqlite(&mut insert, index)?;
            }
        }
        Bench::Postgres(_) | Bench::Mysql(_) => {
            for index in 0..jobs {
                insert_single(&bench, index).await?;
            }
        }
    }
    let elapsed = start.elapsed();
    bench.close().await;
    Ok(rate(jobs, elapsed))
}

/// One job's INSERT on SQLite and MySQL.
const INSERT_ONE: &str = concat!(columns!(), "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', NULL)");
/// One job's INSERT on PostgreSQL, answering its id as Hopper's does.
const POSTGRES_INSERT_ONE: &str = concat!(
    columns!(),
    "VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', NULL) RETURNING id"
);

/// Runs SQLite's prepared single INSERT ([`INSERT_ONE`]) for job
/// `index`, committed on its own.
fn insert_one_sqlite(insert: &mut rusqlite::CachedStatement<'_>, index: u32) -> Result<()> {
    let now = micros(Utc::now());
    insert.execute(params![
        job_type(),
        hopper::DEFAULT_QUEUE,
        index.to_string(),
        0,
        3,
        now,
        now
    ])?;
    Ok(())
}

/// One single-row INSERT of job `index`, committed on its own: W1's raw
/// statement, on a connection of the store's pool (on SQLite, its writing
/// connection, locked for this one insert).
pub async fn insert_single(bench: &Bench, index: u32) -> Result<()> {
    match bench {
        Bench::Sqlite(store) => {
            let conn = store.writer().await?;
            insert_one_sqlite(&mut conn.prepare_cached(INSERT_ONE)?, index)?;
        }
        Bench::Postgres(store) => {
            let now = Utc::now();
            let _id: i64 = sqlx::query_scalar(POSTGRES_INSERT_ONE)
                .bind(job_type())
                .bind(hopper::DEFAULT_QUEUE)
                .bind(index.to_string())
                .bind(0)
                .bind(3)
                .bind(now)
                .bind(now)
                .fetch_one(store.pool())
                .await?;
        }
        Bench::Mysql(store) => {
            let now = micros(Utc::now());
            sqlx::query(INSERT_ONE)
                .bind(job_type())
                .bind(hopper::DEFAULT_QUEUE)
                .bind(index.to_string())
                .bind(0)
                .bind(3)
                .bind(now)
                .bind(now)
                .execute(store.pool())
                .await?;
        }
    }
    Ok(())
}

/// Inserts rows with payloads `indexes` (each index as JSON) in `state`
/// (`pending`, due now, or `finished`), in one transaction per `chunk` rows:
/// one UNNEST statement per chunk on PostgreSQL, multi-row INSERTs elsewhere.
pub async fn insert_rows(
    bench: &Bench,
    indexes: Range<u32>,
    state: &str,
    chunk: usize,
) -> Result<()> {
    let now = Utc::now();
    let finished_at = (state != "pending").then_some(now);
    let all: Vec<u32> = indexes.collect();
    for part in all.chunks(chunk.max(1)) {
        match bench {
            Bench::Sqlite(store) => {
                let mut conn = store.writer().await?;
                let tx = conn.transaction()?;
                let (payloads, times) = (
                    part.iter().map(u32::to_string).collect::<Vec<_>>(),
                    [micros(now), 0, 3],
                );
                let (finished_at, job_type) = (finished_at.map(micros), job_type());
                for rows in payloads.chunks(SQLITE_ROWS_PER_INSERT) {
                    let mut sql = String::from(COLUMNS);
                    sql.push_str("VALUES ");
                    let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(rows.len() * 9);
                    for (index, payload) in rows.iter().enumerate() {
                        sql.push_str(if index == 0 {
                            "(?,?,?,?,?,?,?,?,?)"
                        } else {
                            ",(?,?,?,?,?,?,?,?,?)"
                        });
                        values.extend([
                            &job_type as &dyn rusqlite::ToSql,
                            &hopper::DEFAULT_QUEUE,
                            payload,
                            &times[1],
                            &times[2],
                            &times[0],
                            &times[0],
                            &state,
                            &finished_at,
                        ]);
                    }
                    tx.execute(&sql, values.as_slice())?;
                }
                tx.commit()?;
            }
            Bench::Postgres(store) => {
                let sql = format!(
                    "{COLUMNS} SELECT $1, $2, p, 0, 3, $3, $3, $4, $5 FROM UNNEST($6::text[]) AS p"
                );
                let payloads: Vec<String> = part.iter().map(u32::to_string).collect();
                sqlx::query(&sql)
                    .bind(job_type())
                    .bind(hopper::DEFAULT_QUEUE)
                    .bind(now)
                    .bind(state)
                    .bind(finished_at)
                    .bind(payloads)
                    .execute(store.pool())
                    .await?;
            }
            Bench::Mysql(store) => {
                let mut tx = store.pool().begin().await?;
                for rows in part.chunks(MYSQL_ROWS_PER_INSERT) {
                    let mut query = QueryBuilder::<MySql>::new(COLUMNS);
                    query.push_values(rows, |mut row, index| {
                        row.push_bind(job_type())
                            .push_bind(hopper::DEFAULT_QUEUE)
                            .push_bind(index.to_string())
                            .push_bind(0)
                            .push_bind(3)
                            .push_bind(micros(now))
                            .push_bind(micros(now))
                            .push_bind(state)
                            .push_bind(finished_at.map(micros));
                    });
                    query.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
    }
    Ok(())
}

/// Fills a table with `jobs` rows in `state`, in large transactions.
pub async fn fill(bench: &Bench, indexes: Range<u32>, state: &str) -> Result<()> {
    insert_rows(bench, indexes, state, FILL_CHUNK).await
}

/// (b) `jobs` rows in one transaction: one UNNEST INSERT on PostgreSQL,
/// multi-row INSERTs (as few as the placeholder limit allows) elsewhere.
/// Returns jobs/s.
pub async fn insert_bulk(db: &FreshDb, jobs: u32) -> Result<f64> {
    let bench = db.open().await?;
    let start = Instant::now();
    insert_rows(&bench, 0..jobs, "pending", jobs as usize).await?;
    let elapsed = start.elapsed();
    bench.close().await;
    Ok(rate(jobs, elapsed))
}

/// (b') On PostgreSQL, `jobs` rows in one transaction by one text-format
/// `COPY … FROM STDIN`, the fastest way in a client has; `None` elsewhere.
/// Returns jobs/s.
pub async fn insert_copy(db: &FreshDb, jobs: u32) -> Result<Option<f64>> {
    let bench = db.open().await?;
    let Bench::Postgres(store) = &bench else {
        bench.close().await;
        return Ok(None);
    };
    let start = Instant::now();
    let now = Utc::now().to_rfc3339();
    let mut rows = String::with_capacity(jobs as usize * 96);
    for index in 0..jobs {
        rows.push_str(&format!(
            "{}\t{}\t{index}\t0\t3\t{now}\t{now}\tpending\t\\N\n",
            job_type(),
            hopper::DEFAULT_QUEUE
        ));
    }
    let mut conn = store.pool().acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY jobs (type, queue, payload, priority, max_attempts, available_at, created_at, \
             state, finished_at) FROM STDIN",
        )
        .await?;
    copy.send(rows.into_bytes()).await?;
    let copied = copy.finish().await?;
    let elapsed = start.elapsed();
    drop(conn);
    bench.close().await;
    if copied != u64::from(jobs) {
        bail!("raw COPY stored {copied} of {jobs} jobs");
    }
    Ok(Some(rate(jobs, elapsed)))
}

/// (c) `jobs` queued rows drained by `loops` loops at once, each on its own
/// connection: claim up to `batch` with Hopper's claim statement, finish
/// them with one UPDATE, until none are left. Returns jobs/s.
///
/// SQLite has one writing connection: the first loop holds it to the end,
/// and the others find nothing left.
pub async fn drain(db: &FreshDb, jobs: u32, batch: u32, loops: u32) -> Result<f64> {
    let bench = db.open().await?;
    insert_rows(&bench, 0..jobs, "pending", jobs as usize).await?;
    let start = Instant::now();
    let finished: Vec<u64> = futures::future::try_join_all((0..loops.max(1)).map(|_| async {
        match &bench {
            Bench::Sqlite(store) => drain_sqlite(&*store.writer().await?, batch),
            Bench::Postgres(store) => {
                let mut conn = store.pool().acquire().await?;
                drain_postgres(&mut conn, batch).await
            }
            Bench::Mysql(store) => {
                let mut conn = store.pool().acquire().await?;
                drain_mysql(&mut conn, batch).await
            }
        }
    }))
    .await?;
    let elapsed = start.elapsed();
    bench.close().await;
    let finished: u64 = finished.iter().sum();
    if finished != u64::from(jobs) {
        bail!("raw drain finished {finished} of {jobs} jobs");
    }
    Ok(rate(jobs, elapsed))
}

fn lease_until(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::from_secs(30)
}

fn drain_sqlite(conn: &rusqlite::Connection, batch: u32) -> Result<u64> {
    // Hopper's claim, word for word: due pending jobs of a queue, highest
    // priority first, leased to one worker.
    const CLAIM: &str = "UPDATE jobs SET state = 'started', attempts = attempts + 1, \
            started_at = ?1, locked_by = ?2, locked_until = ?3 \
        WHERE id IN (SELECT id FROM jobs \
            WHERE state = 'pending' AND queue = ?4 AND available_at <= ?1 \
            ORDER BY priority DESC, available_at, id LIMIT ?5) \
        RETURNING id, type, queue, payload, priority, attempts, max_attempts";
    const FINISH: &str = "UPDATE jobs SET state = 'finished', finished_at = ?1, \
            locked_by = NULL, locked_until = NULL \
        WHERE id IN (SELECT value FROM json_each(?2)) AND state = 'started' AND locked_by = ?3";
    let mut finished = 0;
    let mut claim = conn.prepare_cached(CLAIM)?;
    let mut finish = conn.prepare_cached(FINISH)?;
    loop {
        let now = Utc::now();
        let claimed = claim.query_map(
            params![
                micros(now),
                HOLDER,
                micros(lease_until(now)),
                hopper::DEFAULT_QUEUE,
                batch
            ],
            |row| -> rusqlite::Result<Claimed<String>> {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            },
        )?;
        let ids = claimed
            .map(|row| row.map(|row| row.0))
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        if ids.is_empty() {
            return Ok(finished);
        }
        let done = finish.execute(params![
            micros(Utc::now()),
            serde_json::to_string(&ids)?,
            HOLDER
        ])?;
        finished += u64::try_from(done)?;
    }
}

async fn drain_postgres(conn: &mut sqlx::PgConnection, batch: u32) -> Result<u64> {
    const CLAIM: &str = "UPDATE jobs SET state = 'started', attempts = jobs.attempts + 1, \
            started_at = $1, locked_by = $2, locked_until = $3 \
        FROM (SELECT id FROM jobs \
            WHERE state = 'pending' AND queue = $4 AND available_at <= $1 \
            ORDER BY priority DESC, available_at, id LIMIT $5 \
            FOR UPDATE SKIP LOCKED) AS due \
        WHERE jobs.id = due.id \
        RETURNING jobs.id, jobs.type, jobs.queue, jobs.payload, jobs.priority, \
            jobs.attempts, jobs.max_attempts";
    const FINISH: &str = "UPDATE jobs SET state = 'finished', finished_at = $1, \
            locked_by = NULL, locked_until = NULL \
        WHERE id = ANY($2) AND locked_by = $3";
    let mut finished = 0;
    loop {
        let now = Utc::now();
        let claimed: Vec<Claimed<String>> = sqlx::query_as(CLAIM)
            .bind(now)
            .bind(HOLDER)
            .bind(lease_until(now))
            .bind(hopper::DEFAULT_QUEUE)
            .bind(i64::from(batch))
            .fetch_all(&mut *conn)
            .await?;
        if claimed.is_empty() {
            return Ok(finished);
        }
        let ids: Vec<i64> = claimed.iter().map(|row| row.0).collect();
        finished += sqlx::query(FINISH)
            .bind(Utc::now())
            .bind(ids)
            .bind(HOLDER)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
}

async fn drain_mysql(conn: &mut sqlx::MySqlConnection, batch: u32) -> Result<u64> {
    const PICK: &str = "SELECT id, type, queue, payload, priority, attempts, max_attempts \
        FROM jobs WHERE state = 'pending' AND queue = ? AND available_at <= ? \
        ORDER BY priority DESC, available_at, id LIMIT ? FOR UPDATE SKIP LOCKED";
    let mut finished = 0;
    loop {
        let now = Utc::now();
        let mut tx = conn.begin().await?;
        // Text columns are binary-collated: they arrive as bytes.
        let claimed: Vec<Claimed<Vec<u8>>> = sqlx::query_as(PICK)
            .bind(hopper::DEFAULT_QUEUE)
            .bind(micros(now))
            .bind(batch)
            .fetch_all(&mut *tx)
            .await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(finished);
        }
        let mut claim = QueryBuilder::<MySql>::new(
            "UPDATE jobs SET state = 'started', attempts = attempts + 1, started_at = ",
        );
        claim
            .push_bind(micros(now))
            .push(", locked_by = ")
            .push_bind(HOLDER)
            .push(", locked_until = ")
            .push_bind(micros(lease_until(now)))
            .push(" WHERE id IN (");
        let mut ids = claim.separated(", ");
        for row in &claimed {
            ids.push_bind(row.0);
        }
        claim.push(")");
        claim.build().execute(&mut *tx).await?;
        tx.commit().await?;

        let mut finish =
            QueryBuilder::<MySql>::new("UPDATE jobs SET state = 'finished', finished_at = ");
        finish
            .push_bind(micros(Utc::now()))
            .push(
                ", locked_by = NULL, locked_until = NULL WHERE state = 'started' AND locked_by = ",
            )
            .push_bind(HOLDER)
            .push(" AND id IN (");
        let mut ids = finish.separated(", ");
        for row in &claimed {
            ids.push_bind(row.0);
        }
        finish.push(")");
        finished += finish.build().execute(&mut *conn).await?.rows_affected();
    }
}
