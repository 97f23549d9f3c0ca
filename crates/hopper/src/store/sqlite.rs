//! The SQLite store: the embedded default, one file and no server.
//!
//! Every connection is opened with WAL, `synchronous = NORMAL` and a busy
//! timeout. Writes go through one held connection behind an async mutex, so
//! writers in one process queue in Rust instead of in SQLite's sleeping busy
//! handler, and a statement costs no pool checkout; other processes on the
//! same file wait for the busy timeout. Reads use a pool of read-only
//! connections, except in memory, where the one connection does everything.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row, Sqlite};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use super::rows::{
    from_count, from_micros, micros, open_key, opened, optional_time, push_filter, to_u32,
};
use super::{
    AlertId, AlertRecord, AttemptError, ClaimRequest, ClaimedJob, Completion, JobFilter, JobRecord,
    MinuteCount, NewAlert, NewJob, Outcome, QueueStats, ScheduleState, StateCount, Store,
    StoreError, Tick, TypeOutcomes,
};
use crate::job::{JobId, JobState};

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `open` (a connection or a pool), trying again for up to
/// [`BUSY_TIMEOUT`] while SQLite answers "database is locked": a new file's
/// switch to WAL takes a lock the busy timeout does not wait for, so
/// processes opening one file at once meet it.
async fn connect<T, F, Fut>(mut open: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let deadline = tokio::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match open().await {
            Err(sqlx::Error::Database(e))
                if is_busy(e.code().as_deref()) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

/// Whether an SQLite result code is SQLITE_BUSY or one of its extended codes.
fn is_busy(code: Option<&str>) -> bool {
    code.and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}
/// Jobs per statement in a bulk insert without unique keys: 7 bound values each, under SQLite's
/// limit of 32,766 variables per statement.
const INSERT_CHUNK: usize = 4_000;

/// A Hopper store in one SQLite file (or in memory).
///
/// Clones share one writing connection and one read pool.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::store::{Store, sqlite::SqliteStore};
/// let store = SqliteStore::open("sqlite::memory:").await.unwrap();
/// store.migrate().await.unwrap();
/// assert!(store.counts().await.unwrap().is_empty());
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// The one connection that writes (and, in memory, reads); `None` once closed.
    writer: Arc<Mutex<Option<SqliteConnection>>>,
    /// Read-only connections on the file; `None` in memory.
    reader: Option<SqlitePool>,
    /// The database file.
    path: Arc<Path>,
}

/// The store's writing connection, locked: every other write through the
/// store (and, in memory, every read) waits until it is dropped.
///
/// It derefs to [`SqliteConnection`], so it runs statements and begins
/// transactions. A transaction dropped without a commit is rolled back
/// before the connection's next statement runs.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use sqlx::Connection;
/// let store = hopper::store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
/// let mut conn = store.writer().await.unwrap();
/// let mut tx = conn.begin().await.unwrap();
/// sqlx::query("CREATE TABLE notes (body TEXT)").execute(&mut *tx).await.unwrap();
/// tx.commit().await.unwrap();
/// # });
/// ```
#[derive(Debug)]
pub struct Writer<'a>(MappedMutexGuard<'a, SqliteConnection>);

impl Deref for Writer<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.0
    }
}

impl DerefMut for Writer<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.0
    }
}

/// A connection to read with: one of the read-only pool's for a file, the
/// locked writing connection in memory (where it is the only one).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = hopper::store::sqlite::SqliteStore::open("sqlite::memory:").await.unwrap();
/// let mut conn = store.reader().await.unwrap();
/// let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut *conn).await.unwrap();
/// assert_eq!(one, 1);
/// # });
/// ```
#[derive(Debug)]
pub struct Reader<'a>(ReadFrom<'a>);

/// Where a [`Reader`]'s connection comes from.
#[derive(Debug)]
enum ReadFrom<'a> {
    Pool(PoolConnection<Sqlite>),
    Writer(Writer<'a>),
}

impl Deref for Reader<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        match &self.0 {
            ReadFrom::Pool(conn) => conn,
            ReadFrom::Writer(conn) => conn,
        }
    }
}

impl DerefMut for Reader<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        match &mut self.0 {
            ReadFrom::Pool(conn) => conn,
            ReadFrom::Writer(conn) => conn,
        }
    }
}

impl SqliteStore {
    /// Opens (creating it and its folder if missing) the database at `url`,
    /// e.g. `sqlite://storage/hopper.db` or `sqlite::memory:`.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}/nested/jobs.db", dir.path().display());
    /// hopper::store::sqlite::SqliteStore::open(&url).await.unwrap();
    /// assert!(dir.path().join("nested/jobs.db").exists());
    /// # });
    /// ```
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| open_error(e.into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            if let Some(folder) = options.get_filename().parent() {
                if !folder.as_os_str().is_empty() && !folder.exists() {
                    std::fs::create_dir_all(folder).map_err(|e| open_error(e.into()))?;
                }
            }
        }
        let writer = connect(|| options.connect())
            .await
            .map_err(|e| open_error(e.into()))?;
        let reader = if in_memory {
            None
        } else {
            // A local file's connection does not go stale: skip the ping sqlx
            // otherwise makes before every acquire (a round trip per statement).
            let pool = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(4);
            let read_only = options.clone().read_only(true);
            Some(
                connect(|| pool.clone().connect_with(read_only.clone()))
                    .await
                    .map_err(|e| open_error(e.into()))?,
            )
        };
        Ok(Self {
            writer: Arc::new(Mutex::new(Some(writer))),
            reader,
            path: options.get_filename().into(),
        })
    }

    /// Locks the writing connection, waiting for the store's writes (and
    /// other holders) before it. Pass it, or a transaction begun on it, to
    /// [`insert_in`] to dispatch in the application's own transaction.
    ///
    /// Drop it soon: until then every write through the store waits, and in
    /// memory every read too.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::{sqlite::{insert_in, SqliteStore}, NewJob, Store};
    /// use sqlx::Connection;
    /// let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    /// store.migrate().await.unwrap();
    /// let now = chrono::Utc::now();
    /// let job = NewJob {
    ///     job_type: "ping".into(), queue: "default".into(), payload: "null".into(),
    ///     priority: 0, max_attempts: 3, available_at: now, created_at: now, unique_key: None,
    /// };
    /// let mut conn = store.writer().await.unwrap();
    /// let mut tx = conn.begin().await.unwrap();
    /// sqlx::query("CREATE TABLE signups (email TEXT)").execute(&mut *tx).await.unwrap();
    /// let ids = insert_in(&mut tx, &[job]).await.unwrap();
    /// tx.commit().await.unwrap();
    /// drop(conn);
    /// assert!(store.get(ids[0]).await.unwrap().is_some());
    /// # });
    /// ```
    pub async fn writer(&self) -> Result<Writer<'_>, StoreError> {
        MutexGuard::try_map(self.writer.lock().await, Option::as_mut)
            .map(Writer)
            .map_err(|_| StoreError::Closed)
    }

    /// A connection to read with (for checks and ad-hoc queries): one of
    /// the read-only pool's, or in memory the locked writing connection.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    /// let store = hopper::store::sqlite::SqliteStore::open(&url).await.unwrap();
    /// let mut conn = store.reader().await.unwrap();
    /// let writes = sqlx::query("CREATE TABLE notes (body TEXT)").execute(&mut *conn).await;
    /// assert!(writes.unwrap_err().to_string().contains("readonly"));
    /// # });
    /// ```
    pub async fn reader(&self) -> Result<Reader<'_>, StoreError> {
        Ok(Reader(match &self.reader {
            Some(pool) => ReadFrom::Pool(pool.acquire().await.map_err(|e| match e {
                sqlx::Error::PoolClosed => StoreError::Closed,
                e => StoreError::Database(e),
            })?),
            None => ReadFrom::Writer(self.writer().await?),
        }))
    }

    /// Closes the writing connection (after the writes queued before it)
    /// and the read pool; every later use of the store, or of a clone,
    /// fails with [`StoreError::Closed`].
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::{Store, StoreError, sqlite::SqliteStore};
    /// let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    /// store.close().await;
    /// assert!(matches!(store.migrate().await, Err(StoreError::Closed)));
    /// # });
    /// ```
    pub async fn close(&self) {
        if let Some(conn) = self.writer.lock().await.take() {
            // Closing fails only if the connection is broken, which leaves
            // nothing to close.
            let _ = conn.close().await;
        }
        if let Some(pool) = &self.reader {
            pool.close().await;
        }
    }

    /// The file behind this store, unless it is in memory.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let file = dir.path().join("jobs.db");
    /// let url = format!("sqlite://{}", file.display());
    /// let store = hopper::store::sqlite::SqliteStore::open(&url).await.unwrap();
    /// assert_eq!(store.path(), file);
    /// # });
    /// ```
    pub fn path(&self) -> PathBuf {
        self.path.to_path_buf()
    }
}

/// One entry of the `errors` JSON array, as text.
fn error_entry(attempt: u32, at: DateTime<Utc>, error: &str) -> String {
    serde_json::json!({ "attempt": attempt, "at": at, "error": error }).to_string()
}

const RECORD_COLUMNS: &str = "id, type, queue, payload, state, priority, attempts, max_attempts, \
    available_at, created_at, started_at, finished_at, locked_by, locked_until, last_error, errors, \
    unique_key";

fn record(row: &SqliteRow) -> Result<JobRecord, StoreError> {
    let id: JobId = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let errors: String = row.try_get("errors")?;
    Ok(JobRecord {
        id,
        job_type: row.try_get("type")?,
        queue: row.try_get("queue")?,
        payload: row.try_get("payload")?,
        state: state
            .parse()
            .map_err(|e: crate::job::UnknownState| StoreError::Corrupt {
                id,
                reason: e.to_string(),
            })?,
        priority: row.try_get("priority")?,
        attempts: to_u32(id, "attempts", row.try_get::<i64, _>("attempts")?)?,
        max_attempts: to_u32(id, "max_attempts", row.try_get::<i64, _>("max_attempts")?)?,
        available_at: from_micros(id, row.try_get("available_at")?)?,
        created_at: from_micros(id, row.try_get("created_at")?)?,
        started_at: optional_time(id, row.try_get("started_at")?)?,
        finished_at: optional_time(id, row.try_get("finished_at")?)?,
        locked_by: row.try_get("locked_by")?,
        locked_until: optional_time(id, row.try_get("locked_until")?)?,
        last_error: row.try_get("last_error")?,
        errors: serde_json::from_str::<Vec<AttemptError>>(&errors).map_err(|e| {
            StoreError::Corrupt {
                id,
                reason: format!("error history: {e}"),
            }
        })?,
        unique_key: row.try_get("unique_key")?,
    })
}

fn claimed(row: &SqliteRow) -> Result<ClaimedJob, StoreError> {
    let id: JobId = row.try_get("id")?;
    Ok(ClaimedJob {
        id,
        job_type: row.try_get("type")?,
        queue: row.try_get("queue")?,
        payload: row.try_get("payload")?,
        priority: row.try_get("priority")?,
        attempt: to_u32(id, "attempts", row.try_get::<i64, _>("attempts")?)?,
        max_attempts: to_u32(id, "max_attempts", row.try_get::<i64, _>("max_attempts")?)?,
    })
}

/// Inserts `jobs` on `conn`, inside whatever transaction it is in: pass the
/// application's own transaction and the jobs exist if and only if it commits.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::store::{sqlite::{insert_in, SqliteStore}, NewJob, Store};
/// use sqlx::Connection;
/// let store = SqliteStore::open("sqlite::memory:").await.unwrap();
/// store.migrate().await.unwrap();
/// let now = chrono::Utc::now();
/// let job = NewJob {
///     job_type: "ping".into(), queue: "default".into(), payload: "null".into(),
///     priority: 0, max_attempts: 3, available_at: now, created_at: now, unique_key: None,
/// };
/// let mut conn = store.writer().await.unwrap();
/// let mut tx = conn.begin().await.unwrap();
/// let ids = insert_in(&mut tx, &[job]).await.unwrap();
/// tx.rollback().await.unwrap();
/// drop(conn);
/// assert!(store.get(ids[0]).await.unwrap().is_none());
/// # });
/// ```
pub async fn insert_in(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
) -> Result<Vec<JobId>, StoreError> {
    let mut ids = Vec::with_capacity(jobs.len());
    if jobs.len() == 1 || jobs.iter().any(|job| job.unique_key.is_some()) {
        for job in jobs {
            ids.push(insert_one(conn, job).await?);
        }
        return Ok(ids);
    }
    for chunk in jobs.chunks(INSERT_CHUNK) {
        let mut query = QueryBuilder::new(
            "INSERT INTO jobs (type, queue, payload, priority, max_attempts, available_at, created_at) ",
        );
        query.push_values(chunk, |mut row, job| {
            row.push_bind(&job.job_type)
                .push_bind(&job.queue)
                .push_bind(&job.payload)
                .push_bind(job.priority)
                .push_bind(job.max_attempts)
                .push_bind(micros(job.available_at))
                .push_bind(micros(job.created_at));
        });
        query.push(" RETURNING id");
        let mut chunk_ids: Vec<JobId> = query.build_query_scalar().fetch_all(&mut *conn).await?;
        // Rows are inserted in order with increasing ids; RETURNING's order is unspecified.
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

/// Inserts one job; with a unique key held by a live job, returns that job's id instead.
async fn insert_one(conn: &mut SqliteConnection, job: &NewJob) -> Result<JobId, StoreError> {
    const INSERT: &str = "INSERT INTO jobs \
            (type, queue, payload, priority, max_attempts, available_at, created_at, unique_key) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('pending', 'started') \
        DO NOTHING RETURNING id";
    const EXISTING: &str = "SELECT id FROM jobs \
        WHERE unique_key = ? AND state IN ('pending', 'started')";
    let inserted = sqlx::query_scalar(INSERT)
        .bind(&job.job_type)
        .bind(&job.queue)
        .bind(&job.payload)
        .bind(job.priority)
        .bind(job.max_attempts)
        .bind(micros(job.available_at))
        .bind(micros(job.created_at))
        .bind(&job.unique_key)
        .fetch_optional(&mut *conn)
        .await?;
    match inserted {
        Some(id) => Ok(id),
        // SQLite has one writer, so the conflicting row cannot change in between.
        None => Ok(sqlx::query_scalar(EXISTING)
            .bind(&job.unique_key)
            .fetch_one(&mut *conn)
            .await?),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // SQLite has no advisory lock: hold the write lock for the whole run,
        // so a second instance migrating at once waits, then finds it done.
        let mut conn = self.writer().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::migrate!("./migrations/sqlite")
            .run_direct(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.writer().await?;
        if let [job] = jobs {
            if job.unique_key.is_none() {
                return Ok(vec![insert_one(&mut conn, job).await?]);
            }
        }
        let mut tx = conn.begin().await?;
        let ids = insert_in(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, StoreError> {
        const CLAIM: &str = "UPDATE jobs SET state = 'started', attempts = attempts + 1, \
                started_at = ?1, locked_by = ?2, locked_until = ?3 \
            WHERE id IN (SELECT id FROM jobs \
                WHERE state = 'pending' AND queue = ?4 AND available_at <= ?1 \
                    AND NOT EXISTS (SELECT 1 FROM queues WHERE name = ?4 AND paused = 1) \
                ORDER BY priority DESC, available_at, id LIMIT ?5) \
            RETURNING id, type, queue, payload, priority, attempts, max_attempts";
        let rows = sqlx::query(CLAIM)
            .bind(micros(request.now))
            .bind(request.worker)
            .bind(micros(request.lease_until))
            .bind(request.queue)
            .bind(request.limit)
            .fetch_all(&mut *self.writer().await?)
            .await?;
        let mut jobs = rows.iter().map(claimed).collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|job| (std::cmp::Reverse(job.priority), job.id));
        Ok(jobs)
    }

    async fn next_due(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(available_at) FROM jobs WHERE state = 'pending' AND queue = ?",
        )
        .bind(queue)
        .fetch_one(&mut *self.reader().await?)
        .await?;
        optional_time(0, at)
    }

    async fn complete(
        &self,
        worker: &str,
        completions: &[Completion],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // The unary `+` keeps the planner on primary-key lookups per completion
        // instead of walking every job the worker holds.
        const FINISH: &str = "UPDATE jobs SET state = 'finished', finished_at = ?1, \
                locked_by = NULL, locked_until = NULL \
            FROM (SELECT value ->> 0 AS cid, value ->> 1 AS cattempt FROM json_each(?2)) AS c \
            WHERE jobs.id = c.cid AND +jobs.attempts = c.cattempt \
                AND +jobs.state = 'started' AND +jobs.locked_by = ?3";
        const RETRY: &str = "UPDATE jobs SET state = 'pending', available_at = ?1, \
                locked_by = NULL, locked_until = NULL, last_error = ?2, \
                errors = json_insert(errors, '$[#]', json(?3)) \
            WHERE id = ?4 AND attempts = ?5 AND state = 'started' AND locked_by = ?6";
        const FAIL: &str = "UPDATE jobs SET state = 'failed', finished_at = ?1, \
                locked_by = NULL, locked_until = NULL, last_error = ?2, \
                errors = json_insert(errors, '$[#]', json(?3)) \
            WHERE id = ?4 AND attempts = ?5 AND state = 'started' AND locked_by = ?6";

        let finished: Vec<(JobId, u32)> = completions
            .iter()
            .filter(|c| c.outcome == Outcome::Finished)
            .map(|c| (c.id, c.attempt))
            .collect();
        let mut applied = 0;
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        if !finished.is_empty() {
            let ids = serde_json::to_string(&finished).unwrap_or_else(|_| "[]".into());
            applied += sqlx::query(FINISH)
                .bind(micros(now))
                .bind(ids)
                .bind(worker)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for completion in completions {
            let (sql, at, error) = match &completion.outcome {
                Outcome::Finished => continue,
                Outcome::Retry { at, error } => (RETRY, *at, error),
                Outcome::Failed { error } => (FAIL, now, error),
            };
            applied += sqlx::query(sql)
                .bind(micros(at))
                .bind(error)
                .bind(error_entry(completion.attempt, now, error))
                .bind(completion.id)
                .bind(completion.attempt)
                .bind(worker)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn extend_leases(
        &self,
        worker: &str,
        claims: &[(JobId, u32)],
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // The same per-claim guard and plan as finishing a batch in `complete`.
        let done = sqlx::query(
            "UPDATE jobs SET locked_until = ?1 \
             FROM (SELECT value ->> 0 AS cid, value ->> 1 AS cattempt FROM json_each(?2)) AS c \
             WHERE jobs.id = c.cid AND +jobs.attempts = c.cattempt \
                AND +jobs.state = 'started' AND +jobs.locked_by = ?3",
        )
        .bind(micros(until))
        .bind(serde_json::to_string(claims).unwrap_or_else(|_| "[]".into()))
        .bind(worker)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    async fn release(&self, worker: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'pending', attempts = attempts - 1, \
                locked_by = NULL, locked_until = NULL \
             WHERE state = 'started' AND locked_by = ?1",
        )
        .bind(worker)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }

    async fn rescue(&self, now: DateTime<Utc>) -> Result<Vec<JobId>, StoreError> {
        const RESCUE: &str = "UPDATE jobs SET \
                state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
                finished_at = CASE WHEN attempts >= max_attempts THEN ?1 ELSE NULL END, \
                available_at = ?1, \
                last_error = 'lease expired: worker ' || locked_by || ' stopped without finishing attempt ' || attempts, \
                errors = json_insert(errors, '$[#]', json_object('attempt', attempts, 'at', ?2, \
                    'error', 'lease expired: worker ' || locked_by || ' stopped without finishing attempt ' || attempts)), \
                locked_by = NULL, locked_until = NULL \
            WHERE state = 'started' AND locked_until < ?1 \
            RETURNING id";
        let at = serde_json::to_value(now)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let ids = sqlx::query_scalar(RESCUE)
            .bind(micros(now))
            .bind(at)
            .fetch_all(&mut *self.writer().await?)
            .await?;
        Ok(ids)
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *self.reader().await?)
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, filter: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
        let mut query = QueryBuilder::new(format!("SELECT {RECORD_COLUMNS} FROM jobs"));
        push_filter(&mut query, filter);
        let rows = query.build().fetch_all(&mut *self.reader().await?).await?;
        rows.iter().map(record).collect()
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT q.queue AS queue, COALESCE(d.n, 0) AS n, d.oldest AS oldest, \
                    COALESCE(p.paused, 0) AS paused \
             FROM (SELECT DISTINCT queue FROM jobs WHERE state = 'pending' AND available_at <= ?1 \
                   UNION SELECT name FROM queues) AS q \
             LEFT JOIN (SELECT queue, COUNT(*) AS n, MIN(available_at) AS oldest FROM jobs \
                        WHERE state = 'pending' AND available_at <= ?1 GROUP BY queue) AS d \
                    ON d.queue = q.queue \
             LEFT JOIN queues AS p ON p.name = q.queue \
             ORDER BY q.queue",
        )
        .bind(micros(now))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n")?;
                Ok(QueueStats {
                    queue: row.try_get("queue")?,
                    due: from_count(n),
                    oldest_due_at: optional_time(0, row.try_get("oldest")?)?,
                    paused: row.try_get::<i64, _>("paused")? == 1,
                })
            })
            .collect()
    }

    async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT finished_at / 60000000 AS minute, \
                    SUM(state = 'finished') AS finished, SUM(state = 'failed') AS failed \
             FROM jobs WHERE state IN ('finished', 'failed') AND finished_at >= ?1 \
             GROUP BY minute ORDER BY minute",
        )
        .bind(micros(since))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let minute: i64 = row.try_get("minute")?;
                let finished: i64 = row.try_get("finished")?;
                let failed: i64 = row.try_get("failed")?;
                Ok(MinuteCount {
                    minute: from_micros(0, minute.saturating_mul(60_000_000))?,
                    finished: from_count(finished),
                    failed: from_count(failed),
                })
            })
            .collect()
    }

    async fn set_paused(
        &self,
        queue: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO queues (name, paused, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at",
        )
        .bind(queue)
        .bind(paused)
        .bind(micros(now))
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }

    async fn delete(&self, id: JobId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM jobs WHERE id = ?1 AND state <> 'started'")
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
                WHERE leases.holder = excluded.holder OR leases.until < ?4 \
             RETURNING holder",
        )
        .bind(name)
        .bind(holder)
        .bind(micros(until))
        .bind(micros(now))
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        Ok(held.is_some())
    }

    async fn publish_concurrency(
        &self,
        worker: &str,
        rows: &[super::WorkerConcurrency],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        super::concurrency::sqlite::publish(&mut *self.writer().await?, worker, rows, now).await
    }

    async fn worker_concurrency(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<super::WorkerConcurrency>, StoreError> {
        super::concurrency::sqlite::live(&mut *self.reader().await?, now).await
    }

    async fn drop_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = ?1 AND holder = ?2")
            .bind(name)
            .bind(holder)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    async fn take_tick(
        &self,
        name: &str,
        fire_at: DateTime<Utc>,
        job: Option<&NewJob>,
    ) -> Result<Tick, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let taken = sqlx::query(
            "INSERT INTO schedules (name, last_fire_at) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET last_fire_at = excluded.last_fire_at \
                WHERE schedules.last_fire_at < excluded.last_fire_at",
        )
        .bind(name)
        .bind(micros(fire_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            return Ok(Tick::Lost);
        }
        let Some(job) = job else {
            tx.commit().await?;
            return Ok(Tick::Passed);
        };
        let id = insert_one(&mut tx, job).await?;
        sqlx::query("UPDATE schedules SET last_job_id = ?1 WHERE name = ?2")
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Tick::Dispatched(id))
    }

    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        let rows =
            sqlx::query("SELECT name, last_fire_at, last_job_id FROM schedules ORDER BY name")
                .fetch_all(&mut *self.reader().await?)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(ScheduleState {
                    name: row.try_get("name")?,
                    last_fire_at: from_micros(0, row.try_get("last_fire_at")?)?,
                    last_job_id: row.try_get("last_job_id")?,
                })
            })
            .collect()
    }

    async fn outcomes(&self, since: DateTime<Utc>) -> Result<Vec<TypeOutcomes>, StoreError> {
        let rows = sqlx::query(
            "SELECT type, SUM(state = 'finished') AS finished, SUM(state = 'failed') AS failed \
             FROM jobs WHERE state IN ('finished', 'failed') AND finished_at >= ?1 \
             GROUP BY type ORDER BY type",
        )
        .bind(micros(since))
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let finished: i64 = row.try_get("finished")?;
                let failed: i64 = row.try_get("failed")?;
                Ok(TypeOutcomes {
                    job_type: row.try_get("type")?,
                    finished: from_count(finished),
                    failed: from_count(failed),
                })
            })
            .collect()
    }

    async fn open_alert(&self, alert: &NewAlert) -> Result<Option<AlertRecord>, StoreError> {
        let id: Option<AlertId> = sqlx::query_scalar(
            "INSERT INTO alerts (rule, subject, summary, fired_at, open_key) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (open_key) DO NOTHING RETURNING id",
        )
        .bind(&alert.rule)
        .bind(&alert.subject)
        .bind(&alert.summary)
        .bind(micros(alert.fired_at))
        .bind(open_key(alert))
        .fetch_optional(&mut *self.writer().await?)
        .await?;
        Ok(id.map(|id| opened(id, alert)))
    }

    async fn resolve_alert(&self, id: AlertId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE alerts SET resolved_at = ?1, open_key = NULL \
             WHERE id = ?2 AND resolved_at IS NULL",
        )
        .bind(micros(at))
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn alerts(&self, resolved: u32) -> Result<Vec<AlertRecord>, StoreError> {
        const COLUMNS: &str =
            "SELECT id, rule, subject, summary, fired_at, resolved_at FROM alerts";
        let mut conn = self.reader().await?;
        let mut rows = sqlx::query(&format!("{COLUMNS} WHERE resolved_at IS NULL ORDER BY id"))
            .fetch_all(&mut *conn)
            .await?;
        rows.extend(
            sqlx::query(&format!(
                "{COLUMNS} WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT ?1"
            ))
            .bind(resolved)
            .fetch_all(&mut *conn)
            .await?,
        );
        rows.iter()
            .map(|row| {
                let id: AlertId = row.try_get("id")?;
                Ok(AlertRecord {
                    id,
                    rule: row.try_get("rule")?,
                    subject: row.try_get("subject")?,
                    summary: row.try_get("summary")?,
                    fired_at: from_micros(id, row.try_get("fired_at")?)?,
                    resolved_at: optional_time(id, row.try_get("resolved_at")?)?,
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<Vec<StateCount>, StoreError> {
        let rows = sqlx::query(
            "SELECT queue, state, COUNT(*) AS n FROM jobs GROUP BY queue, state ORDER BY queue, state",
        )
        .fetch_all(&mut *self.reader().await?)
        .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                let count: i64 = row.try_get("n")?;
                Ok(StateCount {
                    queue: row.try_get("queue")?,
                    state: state.parse().map_err(|e: crate::job::UnknownState| {
                        StoreError::Corrupt {
                            id: 0,
                            reason: e.to_string(),
                        }
                    })?,
                    count: from_count(count),
                })
            })
            .collect()
    }

    async fn cancel(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', finished_at = ?1 WHERE id = ?2 AND state = 'pending'",
        )
        .bind(micros(now))
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry(
        &self,
        id: JobId,
        now: DateTime<Utc>,
        extra_attempts: u32,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'pending', available_at = ?1, finished_at = NULL, \
                max_attempts = attempts + ?2 \
             WHERE id = ?3 AND state IN ('failed', 'cancelled')",
        )
        .bind(micros(now))
        .bind(extra_attempts.max(1))
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune(
        &self,
        state: JobState,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
                WHERE state = ?1 AND finished_at < ?2 LIMIT ?3)",
        )
        .bind(state.as_str())
        .bind(micros(before))
        .bind(limit)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(done.rows_affected())
    }
}

impl SqliteStore {
    /// The migrations this build carries, oldest first, each with when this
    /// database applied it (`None`: pending). Applies nothing.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::{Store, sqlite::SqliteStore};
    /// let store = SqliteStore::open("sqlite::memory:").await.unwrap();
    /// assert!(store.migration_status().await.unwrap()[0].applied_at.is_none());
    /// store.migrate().await.unwrap();
    /// assert!(store.migration_status().await.unwrap()[0].applied_at.is_some());
    /// # });
    /// ```
    pub async fn migration_status(&self) -> Result<Vec<super::MigrationStatus>, StoreError> {
        let migrator = sqlx::migrate!("./migrations/sqlite");
        let mut conn = self.reader().await?;
        let has_table: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&mut *conn)
        .await?;
        let applied: Vec<(i64, String)> = if has_table > 0 {
            sqlx::query_as("SELECT version, installed_on FROM _sqlx_migrations WHERE success")
                .fetch_all(&mut *conn)
                .await?
        } else {
            Vec::new()
        };
        Ok(migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| super::MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                applied_at: applied
                    .iter()
                    .find(|(version, _)| *version == m.version)
                    .and_then(|(_, at)| {
                        chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S")
                            .ok()
                            .map(|at| at.and_utc())
                    }),
            })
            .collect())
    }
}
