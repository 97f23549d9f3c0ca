//! The database a chaos run works on: a fresh one per run (a temporary
//! SQLite file, or a new PostgreSQL / MySQL database dropped afterwards),
//! the `chaos_runs` table the jobs record their executions in, and the
//! raw queries the run needs besides Hopper's own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hopper::store::Store;
use hopper::store::mysql::MysqlStore;
use hopper::store::postgres::PostgresStore;
use hopper::store::sqlite::SqliteStore;
use hopper::{DispatchOptions, Hopper, Job};
use sqlx::{Connection, MySqlConnection, MySqlPool, PgConnection, PgPool, Row};

/// The application name the controller's PostgreSQL connections carry, so
/// connection kills spare them.
pub const CONTROL_APPLICATION: &str = "hopper-chaos-control";

/// Which kind of database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
    /// A MySQL or MariaDB server.
    Mysql,
}

impl Backend {
    /// The backend `url` names.
    pub fn of(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Self::Mysql)
        } else {
            bail!("unsupported database URL {url:?}: use sqlite:, postgres:// or mysql://")
        }
    }

    /// `name` quoted as an identifier on this server.
    fn quote(self, name: &str) -> String {
        match self {
            Self::Mysql => format!("`{name}`"),
            Self::Sqlite | Self::Postgres => format!("\"{name}\""),
        }
    }
}

/// Runs `sql` on a connection of its own to the server at `url`.
async fn on_server(backend: Backend, url: &str, sql: &str) -> Result<()> {
    let unreachable = || format!("{backend:?} at {url} is not reachable");
    match backend {
        Backend::Postgres => {
            let mut admin = PgConnection::connect(url).await.with_context(unreachable)?;
            sqlx::query(sql).execute(&mut admin).await?;
        }
        Backend::Mysql => {
            let mut admin = MySqlConnection::connect(url)
                .await
                .with_context(unreachable)?;
            sqlx::query(sql).execute(&mut admin).await?;
        }
        Backend::Sqlite => bail!("SQLite has no server to run {sql:?} on"),
    }
    Ok(())
}

/// The fresh database of one run; removed (file) or dropped (server
/// database) by [`Fresh::remove`].
#[derive(Debug)]
pub struct Fresh {
    /// Its kind.
    pub backend: Backend,
    /// The URL workers connect with.
    pub url: String,
    /// The URL given on the command line, for dropping a server database.
    admin_url: String,
    /// The server database's name.
    name: Option<String>,
    /// Keeps a temporary folder alive for the run.
    _temp: Option<tempfile::TempDir>,
    /// The SQLite file, if one was named.
    file: Option<PathBuf>,
}

/// Replaces the database name in a server URL (`scheme://auth@host:port/db?query`).
fn with_database(url: &str, name: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base
        .find("://")
        .map(|i| i + 3)
        .with_context(|| format!("database URL {url:?} has no scheme"))?;
    let host_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// `url` with one more query parameter.
pub fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

impl Fresh {
    /// Makes the run's database from the URL given: `sqlite:` (or
    /// `sqlite://` with no path) is a new temporary file, `sqlite://file` a
    /// file that must not exist yet, and a server URL the server whose named
    /// database is used to create `hopper_chaos_<random>`.
    pub async fn create(url: &str) -> Result<Self> {
        let backend = Backend::of(url)?;
        let name = format!("hopper_chaos_{:016x}", fastrand::u64(..));
        match backend {
            Backend::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite:")
                    .trim_start_matches("//")
                    .split('?')
                    .next()
                    .unwrap_or_default();
                if path.is_empty() {
                    let temp = tempfile::Builder::new()
                        .prefix("hopper-chaos-")
                        .tempdir()
                        .context("cannot create a temporary folder")?;
                    let file = temp.path().join("chaos.db");
                    return Ok(Self {
                        backend,
                        url: format!("sqlite://{}", file.display()),
                        admin_url: url.to_owned(),
                        name: None,
                        _temp: Some(temp),
                        file: None,
                    });
                }
                if path.contains(":memory:") {
                    bail!("a chaos run needs a file several processes can open, not {url:?}");
                }
                let file = PathBuf::from(path);
                if file.exists() {
                    bail!(
                        "{} exists: a chaos run needs a fresh file (remove it, or give none for a temporary one)",
                        file.display()
                    );
                }
                Ok(Self {
                    backend,
                    url: url.to_owned(),
                    admin_url: url.to_owned(),
                    name: None,
                    _temp: None,
                    file: Some(file),
                })
            }
            Backend::Postgres | Backend::Mysql => {
                on_server(
                    backend,
                    url,
                    &format!("CREATE DATABASE {}", backend.quote(&name)),
                )
                .await
                .with_context(|| format!("cannot create database {name}"))?;
                Ok(Self {
                    backend,
                    url: with_database(url, &name)?,
                    admin_url: url.to_owned(),
                    name: Some(name),
                    _temp: None,
                    file: None,
                })
            }
        }
    }

    /// The server database's name (`None` for SQLite).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Drops the server database, or removes the named SQLite file and its
    /// WAL files (a temporary folder goes with `self`).
    pub async fn remove(self) -> Result<()> {
        match (&self.name, self.backend) {
            (Some(name), Backend::Postgres | Backend::Mysql) => {
                let force = if self.backend == Backend::Postgres {
                    " WITH (FORCE)"
                } else {
                    ""
                };
                let sql = format!(
                    "DROP DATABASE IF EXISTS {}{force}",
                    self.backend.quote(name)
                );
                on_server(self.backend, &self.admin_url, &sql).await?;
            }
            _ => {
                if let Some(file) = &self.file {
                    for suffix in ["", "-wal", "-shm"] {
                        let mut path = file.clone().into_os_string();
                        path.push(suffix);
                        let _ = std::fs::remove_file(path);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A pool on the run's database, for the queries Hopper has no API for.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite: the store, whose one writing connection runs the queries.
    Sqlite(SqliteStore),
    /// PostgreSQL: the store's pool.
    Postgres(PgPool),
    /// MySQL / MariaDB: the store's pool.
    Mysql(MySqlPool),
}

/// One recorded execution of a job's handler.
#[derive(Clone, Debug)]
pub struct Run {
    /// The job.
    pub job_id: i64,
    /// The attempt it ran as.
    pub attempt: u32,
    /// The worker process that ran it.
    pub worker: String,
    /// When the handler started, in microseconds since the Unix epoch.
    pub at_us: i64,
    /// When its work ended, likewise (`None`: never recorded, e.g. its
    /// process was killed first).
    pub end_us: Option<i64>,
}

/// One batch as stored: its id, name and counts.
#[derive(Clone, Debug)]
pub struct BatchRow {
    /// Its name (`chaos <first> <end>` in a batched run).
    pub name: String,
    /// Jobs in it.
    pub total: i64,
    /// Jobs of it finished.
    pub finished: i64,
    /// Jobs of it failed or cancelled.
    pub not_finished: i64,
}

/// Opens Hopper's store at `url` (without migrating) and a [`Db`] on the same pool.
pub async fn open(url: &str) -> Result<(Arc<dyn Store>, Db)> {
    Ok(match Backend::of(url)? {
        Backend::Sqlite => {
            let store = SqliteStore::open(url).await?;
            let db = Db::Sqlite(store.clone());
            (Arc::new(store), db)
        }
        Backend::Postgres => {
            let store = PostgresStore::open(url).await?;
            let db = Db::Postgres(store.pool().clone());
            (Arc::new(store), db)
        }
        Backend::Mysql => {
            let store = MysqlStore::open(url).await?;
            let db = Db::Mysql(store.pool().clone());
            (Arc::new(store), db)
        }
    })
}

/// Evaluates `$sqlite` with `$store` bound to the SQLite store, or
/// `$server` with `$pool` bound to whichever server pool `$db` holds. The
/// server body is compiled once per server, so the same code serves both.
macro_rules! on_db {
    ($db:expr, sqlite $store:ident => $sqlite:expr, server $pool:ident => $server:expr) => {
        match $db {
            Db::Sqlite($store) => $sqlite,
            Db::Postgres($pool) => $server,
            Db::Mysql($pool) => $server,
        }
    };
}

impl Db {
    /// The statement for this database: `sqlite`, `postgres` or `mysql`.
    fn sql(
        &self,
        sqlite: &'static str,
        postgres: &'static str,
        mysql: &'static str,
    ) -> &'static str {
        match self {
            Db::Sqlite(_) => sqlite,
            Db::Postgres(_) => postgres,
            Db::Mysql(_) => mysql,
        }
    }

    /// Creates the `chaos_runs` table.
    pub async fn create_runs_table(&self) -> Result<()> {
        let sql = self.sql(
            "CREATE TABLE IF NOT EXISTS chaos_runs (job_id INTEGER NOT NULL, \
             attempt INTEGER NOT NULL, worker TEXT NOT NULL, pid INTEGER NOT NULL, \
             at_us INTEGER NOT NULL, end_us INTEGER NULL)",
            "CREATE TABLE IF NOT EXISTS chaos_runs (job_id BIGINT NOT NULL, \
             attempt INTEGER NOT NULL, worker TEXT NOT NULL, pid INTEGER NOT NULL, \
             at_us BIGINT NOT NULL, end_us BIGINT NULL)",
            "CREATE TABLE IF NOT EXISTS chaos_runs (job_id BIGINT NOT NULL, \
             attempt INT NOT NULL, worker VARCHAR(64) NOT NULL, pid INT NOT NULL, \
             at_us BIGINT NOT NULL, end_us BIGINT NULL) ENGINE = InnoDB",
        );
        on_db!(self,
            sqlite store => store.transaction(|tx| Ok(tx.execute_batch(sql)?)).await?,
            server pool => sqlx::query(sql).execute(pool).await.map(drop)?
        );
        Ok(())
    }

    /// Records that `worker` (process `pid`) started attempt `attempt` of job `job_id`.
    pub async fn record_run(
        &self,
        job_id: i64,
        attempt: u32,
        worker: &str,
        pid: u32,
        at_us: i64,
    ) -> Result<()> {
        let attempt = i64::from(attempt);
        let pid = i64::from(pid);
        let sql = self.sql(
            "INSERT INTO chaos_runs (job_id, attempt, worker, pid, at_us) VALUES (?, ?, ?, ?, ?)",
            "INSERT INTO chaos_runs (job_id, attempt, worker, pid, at_us) \
             VALUES ($1, $2::int, $3, $4::int, $5)",
            "INSERT INTO chaos_runs (job_id, attempt, worker, pid, at_us) VALUES (?, ?, ?, ?, ?)",
        );
        on_db!(self,
            sqlite store => {
                store
                    .transaction(|tx| {
                        Ok(tx.execute(sql, rusqlite::params![job_id, attempt, worker, pid, at_us])?)
                    })
                    .await?;
            },
            server pool => {
                sqlx::query(sql)
                    .bind(job_id)
                    .bind(attempt)
                    .bind(worker)
                    .bind(pid)
                    .bind(at_us)
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    /// Records that the execution of attempt `attempt` of job `job_id` that
    /// `worker` started at `at_us` ended at `end_us` (nothing, if that
    /// execution's row was never stored).
    pub async fn record_end(
        &self,
        job_id: i64,
        attempt: u32,
        worker: &str,
        at_us: i64,
        end_us: i64,
    ) -> Result<()> {
        let attempt = i64::from(attempt);
        let sql = self.sql(
            "UPDATE chaos_runs SET end_us = ? \
             WHERE job_id = ? AND attempt = ? AND worker = ? AND at_us = ?",
            "UPDATE chaos_runs SET end_us = $1 \
             WHERE job_id = $2 AND attempt = $3::int AND worker = $4 AND at_us = $5",
            "UPDATE chaos_runs SET end_us = ? \
             WHERE job_id = ? AND attempt = ? AND worker = ? AND at_us = ?",
        );
        on_db!(self,
            sqlite store => {
                store
                    .transaction(|tx| {
                        Ok(tx.execute(sql, rusqlite::params![end_us, job_id, attempt, worker, at_us])?)
                    })
                    .await?;
            },
            server pool => {
                sqlx::query(sql)
                    .bind(end_us)
                    .bind(job_id)
                    .bind(attempt)
                    .bind(worker)
                    .bind(at_us)
                    .execute(pool)
                    .await?;
            }
        );
        Ok(())
    }

    /// Every recorded execution, by job and attempt.
    pub async fn runs(&self) -> Result<Vec<Run>> {
        const SQL: &str = "SELECT job_id, CAST(attempt AS BIGINT) AS attempt, worker, at_us, \
                           end_us FROM chaos_runs ORDER BY job_id, attempt, at_us";
        let sql = self.sql(
            SQL,
            SQL,
            "SELECT job_id, CAST(attempt AS SIGNED) AS attempt, worker, at_us, end_us \
             FROM chaos_runs ORDER BY job_id, attempt, at_us",
        );
        type Row = (i64, i64, String, i64, Option<i64>);
        let rows: Vec<Row> = on_db!(self,
            sqlite store => {
                let conn = store.reader().await?;
                let mut select = conn.prepare(sql)?;
                let rows = select.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            },
            server pool => {
                sqlx::query(sql)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?))
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        );
        Ok(rows
            .into_iter()
            .map(|(job_id, attempt, worker, at_us, end_us)| Run {
                job_id,
                attempt: u32::try_from(attempt).unwrap_or(0),
                worker,
                at_us,
                end_us,
            })
            .collect())
    }

    /// How many jobs of `job_type` are stored without a partition key.
    pub async fn unkeyed_jobs(&self, job_type: &str) -> Result<i64> {
        let sql = self.sql(
            "SELECT COUNT(*) FROM jobs WHERE type = ? AND partition_key IS NULL",
            "SELECT COUNT(*) FROM jobs WHERE type = $1 AND partition_key IS NULL",
            "SELECT COUNT(*) FROM jobs WHERE type = ? AND partition_key IS NULL",
        );
        let count = on_db!(self,
            sqlite store => store
                .reader()
                .await?
                .query_row(sql, [job_type], |row| row.get(0))?,
            server pool => sqlx::query_scalar(sql).bind(job_type).fetch_one(pool).await?
        );
        Ok(count)
    }

    /// Every batch, with its counts.
    pub async fn batches(&self) -> Result<Vec<BatchRow>> {
        let sql = self.sql(
            "SELECT name, total, finished, failed + cancelled FROM batches ORDER BY id",
            "SELECT name, total, finished, failed + cancelled FROM batches ORDER BY id",
            "SELECT CONVERT(name USING utf8mb4), total, finished, \
             CAST(failed + cancelled AS SIGNED) FROM batches ORDER BY id",
        );
        type Row = (String, i64, i64, i64);
        let rows: Vec<Row> = on_db!(self,
            sqlite store => {
                let conn = store.reader().await?;
                let mut select = conn.prepare(sql)?;
                let rows = select.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                rows.collect::<Result<Vec<_>, _>>()?
            },
            server pool => {
                sqlx::query(sql)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        );
        Ok(rows
            .into_iter()
            .map(|(name, total, finished, not_finished)| BatchRow {
                name,
                total,
                finished,
                not_finished,
            })
            .collect())
    }

    /// Every batch callback: its batch, its kind, and the job it became
    /// (`None`: not fired).
    pub async fn batch_callbacks(&self) -> Result<Vec<(i64, i64, Option<i64>)>> {
        let sql = self.sql(
            "SELECT batch_id, kind, job_id FROM batch_callbacks",
            "SELECT batch_id, CAST(kind AS BIGINT), job_id FROM batch_callbacks",
            "SELECT batch_id, CAST(kind AS SIGNED), job_id FROM batch_callbacks",
        );
        let rows = on_db!(self,
            sqlite store => {
                let conn = store.reader().await?;
                let mut select = conn.prepare(sql)?;
                let rows = select.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<Result<Vec<_>, _>>()?
            },
            server pool => {
                sqlx::query(sql)
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                    .collect::<Result<Vec<_>, sqlx::Error>>()?
            }
        );
        Ok(rows)
    }

    /// How many chaos jobs are stored, and the highest sequence number among them.
    pub async fn dispatched_prefix(&self, job_type: &str) -> Result<(i64, Option<i64>)> {
        let sql = self.sql(
            "SELECT COUNT(*), MAX(CAST(payload AS INTEGER)) FROM jobs WHERE type = ?",
            "SELECT COUNT(*), MAX(payload::bigint) FROM jobs WHERE type = $1",
            "SELECT COUNT(*), MAX(CAST(payload AS SIGNED)) FROM jobs WHERE type = ?",
        );
        let row = on_db!(self,
            sqlite store => store
                .reader()
                .await?
                .query_row(sql, [job_type], |row| Ok((row.get(0)?, row.get(1)?)))?,
            server pool => {
                let row = sqlx::query(sql).bind(job_type).fetch_one(pool).await?;
                (row.try_get(0)?, row.try_get(1)?)
            }
        );
        Ok(row)
    }

    /// Dispatches a job of type `J` per payload through `hopper`, in one
    /// transaction that stays open for `hold` after the rows are written;
    /// `written` is called at that moment. Each group of `groups` is one
    /// `dispatch_many` call with its options (a partition key, say).
    pub async fn dispatch_held<J: Job>(
        &self,
        hopper: &Hopper,
        groups: Vec<(DispatchOptions, Vec<J::Payload>)>,
        hold: Duration,
        written: impl FnOnce(),
    ) -> Result<()> {
        match self {
            Db::Sqlite(_) => {
                // SQLite's transactions run on the calling thread: holding
                // one open is holding the thread, as a slow write would.
                hopper
                    .sqlite_transaction(|tx| {
                        for (options, payloads) in groups {
                            tx.dispatch_many::<J>(payloads, options)?;
                        }
                        written();
                        std::thread::sleep(hold);
                        Ok(())
                    })
                    .await?;
            }
            Db::Postgres(pool) => {
                let mut tx = hopper.transaction(pool.begin().await?);
                for (options, payloads) in groups {
                    tx.dispatch_many::<J>(payloads, options).await?;
                }
                written();
                tokio::time::sleep(hold).await;
                tx.commit().await?;
            }
            Db::Mysql(pool) => {
                let mut tx = hopper.transaction(pool.begin().await?);
                for (options, payloads) in groups {
                    tx.dispatch_many::<J>(payloads, options).await?;
                }
                written();
                tokio::time::sleep(hold).await;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Closes every connection of the run's database but the caller's own
    /// (PostgreSQL: and the controller's); returns how many.
    pub async fn kill_connections(&self, database: &str) -> Result<u64> {
        match self {
            Db::Sqlite(_) => Ok(0),
            Db::Postgres(pool) => {
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name <> $2",
                )
                .bind(database)
                .bind(CONTROL_APPLICATION)
                .fetch_all(pool)
                .await?;
                Ok(killed.into_iter().filter(|k| *k).count() as u64)
            }
            Db::Mysql(pool) => {
                let mut conn = pool.acquire().await?;
                let ids: Vec<u64> = sqlx::query_scalar(
                    "SELECT CAST(id AS UNSIGNED) FROM information_schema.processlist \
                     WHERE db = ? AND id <> CONNECTION_ID()",
                )
                .bind(database)
                .fetch_all(&mut *conn)
                .await?;
                let mut killed = 0;
                for id in ids {
                    if sqlx::query(&format!("KILL CONNECTION {id}"))
                        .execute(&mut *conn)
                        .await
                        .is_ok()
                    {
                        killed += 1;
                    }
                }
                Ok(killed)
            }
        }
    }

    /// Closes the pool (SQLite: the store).
    pub async fn close(&self) {
        match self {
            Db::Sqlite(store) => store.close().await,
            Db::Postgres(pool) => pool.close().await,
            Db::Mysql(pool) => pool.close().await,
        }
    }

    /// SQLite's own check of the file (`ok` when sound); `None` elsewhere.
    pub async fn integrity(&self) -> Result<Option<String>> {
        match self {
            Db::Sqlite(store) => {
                let conn = store.reader().await?;
                let mut check = conn.prepare("PRAGMA integrity_check")?;
                let rows = check
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                Ok(Some(rows.join("; ")))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_the_query_kept() {
        assert_eq!(
            with_database("postgres://u@h:5432/test?sslmode=disable", "x").unwrap(),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            with_database("mysql://root@127.0.0.1:3306", "x").unwrap(),
            "mysql://root@127.0.0.1:3306/x"
        );
        assert!(with_database("nothing", "x").is_err());
    }

    #[test]
    fn a_parameter_is_appended() {
        assert_eq!(with_param("postgres://h/d", "a", "b"), "postgres://h/d?a=b");
        assert_eq!(
            with_param("postgres://h/d?x=1", "a", "b"),
            "postgres://h/d?x=1&a=b"
        );
    }
}
