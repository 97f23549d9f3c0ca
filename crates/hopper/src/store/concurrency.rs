//! The `worker_concurrency` table: each running pool's chosen concurrency per
//! queue, written by the pool and read by the dashboard. One function pair per
//! database; each store's [`Store`](super::Store) methods call them.

#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
use chrono::{DateTime, Utc};
#[cfg(any(feature = "mysql", feature = "postgres"))]
use sqlx::Row;

#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
use super::{ConcurrencyReport, StoreError, WorkerConcurrency};

/// A count column as a `u32` (the table's checks keep them non-negative).
#[cfg(any(feature = "sqlite", feature = "mysql", feature = "postgres"))]
fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// The timestamp stored as `value` microseconds, clamped into range.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn from_micros(value: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(value).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(feature = "sqlite")]
pub(crate) mod sqlite {
    use super::*;
    use crate::store::rows::micros;
    use crate::store::sqlite::sql;

    use rusqlite::{Connection, params};

    /// Replaces the reporting worker's rows with the report's, and deletes
    /// expired ones; run it in a transaction.
    pub(crate) fn publish(
        conn: &Connection,
        report: ConcurrencyReport<'_>,
    ) -> Result<(), StoreError> {
        let ConcurrencyReport { worker, rows, now } = report;
        conn.prepare_cached(sql::PUBLISH_CONCURRENCY_DELETE)?
            .execute(params![worker, micros(now)])?;
        let mut insert = conn.prepare_cached(sql::PUBLISH_CONCURRENCY_INSERT)?;
        for row in rows {
            insert.execute(params![
                worker,
                row.queue,
                row.concurrency,
                row.min,
                row.max,
                row.running,
                micros(row.expires_at),
            ])?;
        }
        Ok(())
    }

    /// Every row that has not expired.
    pub(crate) fn live(
        conn: &Connection,
        now: DateTime<Utc>,
    ) -> Result<Vec<WorkerConcurrency>, StoreError> {
        crate::store::sqlite::all(conn, sql::WORKER_CONCURRENCY, [micros(now)], |row| {
            Ok(WorkerConcurrency {
                worker: row.get(0)?,
                queue: row.get(1)?,
                concurrency: count(row.get(2)?),
                min: count(row.get(3)?),
                max: count(row.get(4)?),
                running: count(row.get(5)?),
                expires_at: from_micros(row.get(6)?),
            })
        })
    }
}

#[cfg(feature = "mysql")]
pub(crate) mod mysql {
    use super::*;
    use crate::store::mysql::text;
    use crate::store::rows::micros;

    pub(crate) async fn publish(
        pool: &sqlx::MySqlPool,
        report: ConcurrencyReport<'_>,
    ) -> Result<(), StoreError> {
        let ConcurrencyReport { worker, rows, now } = report;
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM worker_concurrency WHERE worker = ? OR expires_at < ?")
            .bind(worker)
            .bind(micros(now))
            .execute(&mut *tx)
            .await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO worker_concurrency \
                 (worker, queue, concurrency, min_workers, max_workers, running, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(worker)
            .bind(&row.queue)
            .bind(row.concurrency)
            .bind(row.min)
            .bind(row.max)
            .bind(row.running)
            .bind(micros(row.expires_at))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn live(
        pool: &sqlx::MySqlPool,
        now: DateTime<Utc>,
    ) -> Result<Vec<WorkerConcurrency>, StoreError> {
        let rows = sqlx::query(
            "SELECT worker, queue, CAST(concurrency AS SIGNED) AS concurrency, \
                    CAST(min_workers AS SIGNED) AS min_workers, CAST(max_workers AS SIGNED) AS max_workers, \
                    CAST(running AS SIGNED) AS running, expires_at \
             FROM worker_concurrency WHERE expires_at >= ? ORDER BY queue, worker",
        )
        .bind(micros(now))
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WorkerConcurrency {
                    worker: text(row, "worker")?,
                    queue: text(row, "queue")?,
                    concurrency: count(row.try_get("concurrency")?),
                    min: count(row.try_get("min_workers")?),
                    max: count(row.try_get("max_workers")?),
                    running: count(row.try_get("running")?),
                    expires_at: from_micros(row.try_get("expires_at")?),
                })
            })
            .collect()
    }
}

#[cfg(feature = "postgres")]
pub(crate) mod postgres {
    use super::*;

    /// Replaces the report's worker's rows (and drops expired ones), on
    /// `tx`, a connection in a transaction the caller commits.
    pub(crate) async fn publish(
        tx: &mut sqlx::PgConnection,
        report: ConcurrencyReport<'_>,
    ) -> Result<(), StoreError> {
        let ConcurrencyReport { worker, rows, now } = report;
        sqlx::query("DELETE FROM worker_concurrency WHERE worker = $1 OR expires_at < $2")
            .bind(worker)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for row in rows {
            sqlx::query(
                "INSERT INTO worker_concurrency \
                 (worker, queue, concurrency, min_workers, max_workers, running, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(worker)
            .bind(&row.queue)
            .bind(crate::store::postgres::to_i32(row.concurrency))
            .bind(crate::store::postgres::to_i32(row.min))
            .bind(crate::store::postgres::to_i32(row.max))
            .bind(crate::store::postgres::to_i32(row.running))
            .bind(row.expires_at)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    /// The rows not expired at `now`, read through `executor`.
    pub(crate) async fn live<'e>(
        executor: impl sqlx::PgExecutor<'e>,
        now: DateTime<Utc>,
    ) -> Result<Vec<WorkerConcurrency>, StoreError> {
        let rows = sqlx::query(
            "SELECT worker, queue, concurrency::BIGINT AS concurrency, min_workers::BIGINT AS min_workers, \
                    max_workers::BIGINT AS max_workers, running::BIGINT AS running, expires_at \
             FROM worker_concurrency WHERE expires_at >= $1 ORDER BY queue, worker",
        )
        .bind(now)
        .fetch_all(executor)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WorkerConcurrency {
                    worker: row.try_get("worker")?,
                    queue: row.try_get("queue")?,
                    concurrency: count(row.try_get("concurrency")?),
                    min: count(row.try_get("min_workers")?),
                    max: count(row.try_get("max_workers")?),
                    running: count(row.try_get("running")?),
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }
}
