//! The PostgreSQL store: many workers on many hosts sharing one database.
//!
//! Claims take due jobs with `FOR UPDATE SKIP LOCKED`, so concurrent
//! claimers never wait on each other nor take the same job. Every statement
//! that adds pending jobs, due now or later, also sends `NOTIFY hopper_jobs`
//! with the queue's name, delivered when its transaction commits;
//! [`Store::listen`] turns those into wake-ups for idle workers in every
//! process, which then claim what is due and sleep until the next job is.
//! Asking a running job to stop sends `NOTIFY hopper_cancels` with its id,
//! which the pools running jobs answer by looking for such requests at once.
//!
//! Behind a transaction pooler (PgBouncer's `pool_mode = transaction`), add
//! `pooler=transaction` to the URL: statements then run without a session
//! to lean on, and the store's session-bound work (LISTEN, the migrations'
//! lock) goes to a direct URL given in [`LISTEN_URL_VAR`] or to
//! [`PostgresStore::open_with_listen_url`]; without one, workers poll
//! instead of listening, and migrations lock in their transaction.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::migrate::Migrator;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow, Postgres,
};
use sqlx::{QueryBuilder, Row};
use tokio::sync::mpsc;

use super::rows::{from_count, open_key, opened, push_conditions, push_filter, state_of, to_u32};
use super::{
    AlertId, AlertRecord, AttemptError, BatchAdd, BatchId, BatchRecord, Claim, ClaimRequest,
    ClaimToken, ClaimedJob, CompleteRequest, Completion, ConcurrencyReport, FlowRequest, JobFilter,
    JobPage, JobRecord, LeaseHolder, LeaseRequest, MinuteCount, NewAlert, NewBatch, NewJob,
    Outcome, PauseRequest, Progress, ProgressRequest, PruneRequest, QueueFlow, QueueStats,
    RenewRequest, RetryRequest, ScheduleRun, ScheduleState, StateCount, Store, StoreError, Tick,
    TickRequest, TypeCount, TypeOutcomes, Wakeup,
};
use super::{
    Dependency, FailedJob, NewWorkflow, Released, RetriedFailed, RetryFailed, batch_keys,
    plan_retry,
};
use crate::job::{JobId, JobState};

mod announce;
mod batches;
mod copy;
mod flow;
mod pooled;
mod sequences;
mod sql;
mod workflows;

use pooled::Db;

/// The channel every wake-up for due jobs is sent on; the payload is the queue's name.
pub const CHANNEL: &str = "hopper_jobs";
/// The channel [`Store::request_cancel`] notifies; the payload is the job's
/// id. A channel of its own, so no queue name can be mistaken for it.
///
/// ```
/// use hopper::store::postgres::{CANCEL_CHANNEL, CHANNEL};
/// assert_ne!(CANCEL_CHANNEL, CHANNEL);
/// ```
pub const CANCEL_CHANNEL: &str = "hopper_cancels";
/// The channel a completion notifies for each job it ends (finished,
/// failed or cancelled); the payload is the job's id. Only those waiting on
/// results ([`Store::listen_results`]) listen on it, not the worker pools.
///
/// ```
/// assert_eq!(hopper::store::postgres::RESULT_CHANNEL, "hopper_results");
/// ```
pub const RESULT_CHANNEL: &str = "hopper_results";

/// The environment variable [`PostgresStore::open`] reads a direct URL from:
/// the database's own server, or a pooler in session mode, where the store
/// listens for notifications and migrates when its URL goes through a
/// transaction pooler (`pooler=transaction`). Without that parameter the
/// store does not use it.
///
/// ```
/// assert_eq!(hopper::store::postgres::LISTEN_URL_VAR, "HOPPER_LISTEN_URL");
/// ```
pub const LISTEN_URL_VAR: &str = "HOPPER_LISTEN_URL";
/// The URL parameter that says what pools connections between the store
/// and the server; Hopper's own, taken off before sqlx reads the URL.
const POOLER_PARAM: &str = "pooler";

/// The `application_name` of the store's connections, unless the URL sets one.
const APPLICATION_NAME: &str = "hopper";
/// The `application_name` of the connection that listens for wake-ups.
pub const LISTENER_NAME: &str = "hopper-listener";

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 10;
/// How long a statement waits for a connection before failing: while the
/// server is down, a dispatch returns an error after this long.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Jobs per bulk insert statement (each column is one array parameter).
const INSERT_CHUNK: usize = 5_000;
/// Tries at inserting a job with a unique key whose holder keeps changing.
const UNIQUE_TRIES: usize = 100;
/// Wake-ups buffered for a slow receiver; past that, the listener waits
/// for room and sends [`Wakeup::All`] in place of what it could not send.
const WAKEUP_BUFFER: usize = 256;

/// The schema migrations this build carries. A database a newer build has
/// already migrated further (a rolling deploy) is no error: migrations only add.
fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator
}

/// A Hopper store in a PostgreSQL database.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use hopper::store::{Store, postgres::PostgresStore};
/// # use sqlx::Connection;
/// # let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/test").await.unwrap();
/// # sqlx::query("DROP DATABASE IF EXISTS hopper_doc_1 WITH (FORCE)").execute(&mut admin).await.unwrap();
/// # sqlx::query("CREATE DATABASE hopper_doc_1").execute(&mut admin).await.unwrap();
/// let store = PostgresStore::open("postgres://postgres@127.0.0.1:5432/hopper_doc_1").await.unwrap();
/// store.migrate().await.unwrap();
/// assert!(store.get(-1).await.unwrap().is_none());
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: Db,
    options: PgConnectOptions,
    /// Where the listener and the migrations connect, when not through
    /// `options`: the direct URL given beside a transaction pooler's.
    direct: Option<PgConnectOptions>,
    /// Whether the warning that notifications are off was logged.
    polling_told: Arc<AtomicBool>,
    flow_queues: super::FlowQueues,
    /// Wakes the queues of the store's own single dispatches after they commit.
    announcer: announce::Announcer,
}

impl PostgresStore {
    /// A listener on its own connection, subscribed to `channels`, whose
    /// wake-ups come on the receiver for as long as it is kept; `None`
    /// behind a transaction pooler without a direct URL, where LISTEN
    /// cannot work (said once, in a warning).
    fn listen_on(&self, channels: &'static [&'static str]) -> Option<mpsc::Receiver<Wakeup>> {
        let options = match &self.direct {
            Some(direct) => direct,
            None if self.pool.pooled() => {
                if !self.polling_told.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "job notifications are off: the PostgreSQL URL goes through a transaction \
                         pooler (pooler=transaction), where LISTEN cannot hold a session, and no \
                         direct URL was given for it ({LISTEN_URL_VAR} or Builder::listen_url); \
                         workers poll for due jobs instead"
                    );
                }
                return None;
            }
            None => &self.options,
        };
        let (sender, receiver) = mpsc::channel(WAKEUP_BUFFER);
        let name = match options.get_application_name() {
            Some(name) if name != APPLICATION_NAME => name.to_owned(),
            _ => LISTENER_NAME.to_owned(),
        };
        let options = options.clone().application_name(&name);
        tokio::spawn(listen_loop(options, channels, sender));
        Some(receiver)
    }

    /// Connects to the database at `url`, e.g. `postgres://user@host:5432/app`.
    /// The database must exist; [`Store::migrate`] creates the tables.
    ///
    /// Through a transaction pooler (PgBouncer's `pool_mode = transaction`),
    /// add `pooler=transaction` to the URL's parameters, and give the
    /// database's direct URL in the environment variable
    /// [`LISTEN_URL_VAR`] (`HOPPER_LISTEN_URL`) for what needs a session
    /// of its own: listening for notifications, and migrating. Without it,
    /// workers poll for due jobs (a warning says so when they start), and
    /// migrations take a lock that ends with their transaction. See
    /// [`PostgresStore::open_with_listen_url`] to give it in code.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = hopper::store::postgres::PostgresStore::open("postgres://postgres@127.0.0.1:5432/test").await;
    /// assert!(store.is_ok());
    /// assert!(hopper::store::postgres::PostgresStore::open("postgres://postgres@127.0.0.1:1/x").await.is_err());
    /// # });
    /// ```
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let direct = std::env::var(LISTEN_URL_VAR)
            .ok()
            .filter(|url| !url.trim().is_empty());
        Self::connect(url, direct.as_deref()).await
    }

    /// Connects like [`PostgresStore::open`], with `listen_url` (not the
    /// environment's [`LISTEN_URL_VAR`]) as the direct URL where the store
    /// listens for notifications and migrates: the database's own server,
    /// or a pooler in session mode, beside a `url` that goes through a
    /// transaction pooler (`pooler=transaction`).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::postgres::PostgresStore;
    /// let store = PostgresStore::open_with_listen_url(
    ///     "postgres://postgres@127.0.0.1:5432/test?pooler=transaction",
    ///     "postgres://postgres@127.0.0.1:5432/test",
    /// )
    /// .await;
    /// assert!(store.is_ok());
    /// let refused = PostgresStore::open("postgres://postgres@127.0.0.1:5432/test?pooler=statement").await;
    /// assert!(refused.unwrap_err().to_string().contains("pooler=transaction"));
    /// # });
    /// ```
    pub async fn open_with_listen_url(url: &str, listen_url: &str) -> Result<Self, StoreError> {
        Self::connect(url, Some(listen_url)).await
    }

    /// Connects to `url`, with `direct` for the listener and the migrations.
    async fn connect(url: &str, direct: Option<&str>) -> Result<Self, StoreError> {
        let open_error =
            |url: &str, source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
                url: url.to_owned(),
                source,
            };
        let (sqlx_url, pooler) = take_param(url, POOLER_PARAM);
        let pooled = match pooler.as_deref() {
            None | Some("none") => false,
            Some("transaction") => true,
            Some(other) => {
                let reason = format!(
                    "unknown {POOLER_PARAM}={other}: pooler=transaction is for a pooler in \
                     transaction mode; leave it out for a direct connection or a pooler in \
                     session mode"
                );
                return Err(open_error(url, reason.into()));
            }
        };
        let mut options =
            PgConnectOptions::from_str(&sqlx_url).map_err(|e| open_error(url, e.into()))?;
        if options.get_application_name().is_none() {
            options = options.application_name(APPLICATION_NAME);
        }
        if pooled {
            // No statement outlives its transaction there (see `pooled`).
            options = options.statement_cache_capacity(0);
        }
        let direct = match direct {
            Some(_) if !pooled => {
                tracing::warn!(
                    "a direct URL for notifications was given ({LISTEN_URL_VAR} or \
                     Builder::listen_url), but the PostgreSQL URL has no pooler=transaction: \
                     the store connects through that URL for everything and leaves the direct \
                     one unused"
                );
                None
            }
            Some(direct) => {
                let (direct_url, _) = take_param(direct, POOLER_PARAM);
                let mut direct_options = PgConnectOptions::from_str(&direct_url)
                    .map_err(|e| open_error(direct, e.into()))?;
                if direct_options.get_application_name().is_none() {
                    direct_options = direct_options.application_name(APPLICATION_NAME);
                }
                if direct_options.get_database() != options.get_database() {
                    tracing::warn!(
                        database = options.get_database(),
                        listen_database = direct_options.get_database(),
                        "the direct URL for notifications names another database than the \
                         store's: workers are woken only by notifications sent there"
                    );
                }
                Some(direct_options)
            }
            None => None,
        };
        let pool = super::pool::options::<Postgres>()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_error(url, e.into()))?;
        let pool = Db::new(pool, pooled);
        Ok(Self {
            announcer: announce::Announcer::start(pool.clone(), CHANNEL),
            pool,
            options,
            direct,
            polling_told: Arc::default(),
            flow_queues: super::FlowQueues::default(),
        })
    }

    /// The connection pool, for the application's own queries and
    /// transactions (see [`Hopper::transaction`](crate::Hopper::transaction)).
    ///
    /// Through a transaction pooler (`pooler=transaction`) its connections
    /// cache no statements, but sqlx still prepares each one under a name,
    /// in an exchange of its own: run statements in transactions, begun
    /// with `pool.begin_with("BEGIN; DEALLOCATE ALL")` so that no name left
    /// on the server connection collides with theirs.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let store = hopper::store::postgres::PostgresStore::open("postgres://postgres@127.0.0.1:5432/test").await.unwrap();
    /// let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(store.pool()).await.unwrap();
    /// assert_eq!(one, 1);
    /// # });
    /// ```
    pub fn pool(&self) -> &PgPool {
        self.pool.raw()
    }

    /// Claims from a queue with flow settings ([`super::flow`]) in a
    /// transaction holding the queue's row, so the queue's
    /// flow-controlled claims run one at a time; `None` if the queue has
    /// no flow settings (or is paused).
    async fn claim_flow(
        &self,
        request: &ClaimRequest<'_>,
    ) -> Result<Option<Vec<ClaimedJob>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let claimed = super::flow::claim(&mut flow::PgFlow(&mut tx), request).await?;
        tx.commit().await?;
        self.flow_queues.set(request.queue, claimed.is_some());
        Ok(claimed)
    }
}

impl PostgresStore {
    /// The migrations this build carries, oldest first, each with when this
    /// database applied it (`None`: pending). Applies nothing.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use hopper::store::{Store, postgres::PostgresStore};
    /// # use sqlx::Connection;
    /// # let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/test").await.unwrap();
    /// # sqlx::query("DROP DATABASE IF EXISTS hopper_doc_2 WITH (FORCE)").execute(&mut admin).await.unwrap();
    /// # sqlx::query("CREATE DATABASE hopper_doc_2").execute(&mut admin).await.unwrap();
    /// let store = PostgresStore::open("postgres://postgres@127.0.0.1:5432/hopper_doc_2").await.unwrap();
    /// store.migrate().await.unwrap();
    /// assert!(store.migration_status().await.unwrap().iter().all(|m| m.applied_at.is_some()));
    /// # });
    /// ```
    pub async fn migration_status(&self) -> Result<Vec<super::MigrationStatus>, StoreError> {
        let has_table: bool = sqlx::query_scalar(sql::MIGRATIONS_TABLE_EXISTS)
            .fetch_one(&self.pool)
            .await?;
        let applied: Vec<(i64, DateTime<Utc>)> = if has_table {
            sqlx::query_as(sql::APPLIED_MIGRATIONS)
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        Ok(super::MigrationStatus::of(&migrator(), &applied))
    }
}

/// `url` without its parameter `name`, and that parameter's value, if it has it.
fn take_param(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, params)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = params
        .split('&')
        .filter(|param| match param.split_once('=') {
            Some((key, found)) if key == name => {
                value = Some(found.to_owned());
                false
            }
            _ => *param != name,
        })
        .collect();
    if kept.is_empty() {
        (base.to_owned(), value)
    } else {
        (format!("{base}?{}", kept.join("&")), value)
    }
}

/// A count as stored: counts past `i32::MAX` are held at it.
pub(super) fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// A time as the `at` of an error entry: the same text serde gives it.
fn entry_time(at: DateTime<Utc>) -> String {
    serde_json::to_value(at)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn record(row: &PgRow) -> Result<JobRecord, StoreError> {
    let id: JobId = row.try_get("id")?;
    let state: String = row.try_get("state")?;
    let errors: String = row.try_get("errors")?;
    Ok(JobRecord {
        id,
        job_type: row.try_get("type")?,
        queue: row.try_get("queue")?,
        payload: row.try_get("payload")?,
        state: state_of(id, &state)?,
        priority: row.try_get("priority")?,
        attempts: to_u32(id, "attempts", row.try_get::<i32, _>("attempts")?)?,
        max_attempts: to_u32(id, "max_attempts", row.try_get::<i32, _>("max_attempts")?)?,
        available_at: row.try_get("available_at")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        locked_by: row.try_get("locked_by")?,
        locked_until: row.try_get("locked_until")?,
        last_error: row.try_get("last_error")?,
        errors: serde_json::from_str::<Vec<AttemptError>>(&errors).map_err(|e| {
            StoreError::Corrupt {
                id,
                reason: format!("error history: {e}"),
            }
        })?,
        unique_key: row.try_get("unique_key")?,
        output: row.try_get("output")?,
        progress: Progress::from_columns(
            id,
            row.try_get::<Option<i16>, _>("progress")?.map(i64::from),
            row.try_get("progress_message")?,
        )?,
        batch_id: row.try_get("batch_id")?,
        waiting_on: to_u32(id, "waiting_on", row.try_get::<i32, _>("waiting_on")?)?,
    })
}

fn claimed(row: &PgRow) -> Result<ClaimedJob, StoreError> {
    let id: JobId = row.try_get("id")?;
    Ok(ClaimedJob {
        id,
        token: row.try_get("lease_token")?,
        job_type: row.try_get("type")?,
        queue: row.try_get("queue")?,
        payload: row.try_get("payload")?,
        priority: row.try_get("priority")?,
        attempt: to_u32(id, "attempts", row.try_get::<i32, _>("attempts")?)?,
        max_attempts: to_u32(id, "max_attempts", row.try_get::<i32, _>("max_attempts")?)?,
        batch: row.try_get("batch_id")?,
        has_dependents: row.try_get("has_dependents")?,
        run_started: row.try_get("run_started")?,
        trace_context: row.try_get("trace_context")?,
    })
}

/// Claims as the two arrays statements unnest: ids, and their tokens.
fn columns(claims: &[Claim]) -> (Vec<JobId>, Vec<ClaimToken>) {
    claims.iter().map(|claim| (claim.id, claim.token)).unzip()
}

/// `statement` (a claim) bound for `request`, taking at most `limit` jobs.
fn claim_query<'q>(
    statement: &'q str,
    request: &ClaimRequest<'q>,
    limit: u32,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(statement)
        .bind(request.due_by)
        .bind(request.worker)
        .bind(request.token)
        .bind(request.queue)
        .bind(i64::from(limit))
        .bind(super::rows::lease_micros(request.lease))
        .bind(request.now)
        .bind(i64::from(request.start_now))
}

/// Inserts `jobs` on `conn`, inside whatever transaction it is in: pass the
/// application's own transaction and the jobs exist, and workers everywhere
/// are woken, if and only if it commits.
///
/// [`Hopper::transaction`](crate::Hopper::transaction) is the way in for
/// applications: it also records the dispatch and wakes workers on commit.
pub(crate) async fn insert_in(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> Result<Vec<JobId>, StoreError> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let keys = super::flow::keys_to_mark(jobs);
    if !keys.is_empty() {
        let (queues, keys): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
        sqlx::query(sql::MARK_KEYS)
            .bind(queues)
            .bind(keys)
            .execute(&mut *conn)
            .await?;
    }
    if jobs.iter().any(|job| job.sequence.is_some()) {
        return super::sequences::insert(&mut sequences::PgSequence(conn), jobs).await;
    }
    let mut ids = Vec::with_capacity(jobs.len());
    if jobs.len() == 1 || jobs.iter().any(|job| job.unique_key.is_some()) {
        for job in jobs {
            ids.push(insert_one(conn, job, sql::insert_job()).await?);
        }
        return Ok(ids);
    }
    if jobs.len() >= copy::COPY_FROM {
        return copy::insert(conn, jobs, CHANNEL).await;
    }
    // A bulk dispatch usually gives every job the same type, queue, options
    // and times: then only the payloads travel as an array.
    let first = &jobs[0];
    if jobs.iter().all(|job| {
        job.job_type == first.job_type
            && job.queue == first.queue
            && job.priority == first.priority
            && job.max_attempts == first.max_attempts
            && job.available_at == first.available_at
            && job.created_at == first.created_at
            && job.partition_key.is_none()
            && job.trace_context == first.trace_context
    }) {
        let insert = sql::insert_jobs_alike();
        for chunk in jobs.chunks(INSERT_CHUNK) {
            let chunk_ids: Vec<JobId> = sqlx::query_scalar(&insert)
                .bind(&first.job_type)
                .bind(&first.queue)
                .bind(
                    chunk
                        .iter()
                        .map(|job| job.payload.as_str())
                        .collect::<Vec<_>>(),
                )
                .bind(first.priority)
                .bind(to_i32(first.max_attempts))
                .bind(first.available_at)
                .bind(first.created_at)
                .bind(&first.trace_context)
                .fetch_one(&mut *conn)
                .await?;
            ids.extend(chunk_ids);
        }
        return Ok(ids);
    }
    let insert = sql::insert_jobs();
    for chunk in jobs.chunks(INSERT_CHUNK) {
        let column = |f: fn(&NewJob) -> &str| chunk.iter().map(f).collect::<Vec<_>>();
        let chunk_ids: Vec<JobId> = sqlx::query_scalar(&insert)
            .bind(column(|job| &job.job_type))
            .bind(column(|job| &job.queue))
            .bind(column(|job| &job.payload))
            .bind(chunk.iter().map(|job| job.priority).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|job| to_i32(job.max_attempts))
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|job| job.available_at).collect::<Vec<_>>())
            .bind(chunk.iter().map(|job| job.created_at).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|job| job.partition_key.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|job| job.trace_context.as_deref())
                    .collect::<Vec<_>>(),
            )
            .fetch_one(&mut *conn)
            .await?;
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

/// Inserts one job by `insert` ([`sql::INSERT_JOB`], or it wrapped to wake
/// the queue on commit); with a unique key held by a live job, returns that
/// job's id instead.
async fn insert_one(
    conn: &mut PgConnection,
    job: &NewJob,
    insert: &str,
) -> Result<JobId, StoreError> {
    for _ in 0..UNIQUE_TRIES {
        let inserted: Option<PgRow> = sqlx::query(insert)
            .bind(&job.job_type)
            .bind(&job.queue)
            .bind(&job.payload)
            .bind(job.priority)
            .bind(to_i32(job.max_attempts))
            .bind(job.available_at)
            .bind(job.created_at)
            .bind(&job.unique_key)
            .bind(&job.partition_key)
            .bind(&job.trace_context)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = inserted {
            return Ok(row.try_get("id")?);
        }
        // The key is held by a committed live job, which this statement's
        // fresh snapshot sees, unless that job ended in between: then try again.
        let existing: Option<JobId> = sqlx::query_scalar(sql::FIND_KEY_HOLDER)
            .bind(&job.unique_key)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(id) = existing {
            return Ok(id);
        }
    }
    Err(StoreError::Contended(
        job.unique_key.clone().unwrap_or_default(),
    ))
}

/// Listens on `channels` (of [`CHANNEL`], [`CANCEL_CHANNEL`] and
/// [`RESULT_CHANNEL`]) and forwards each notification to `wakeups` (as
/// [`Wakeup::Queue`], [`Wakeup::Cancels`] or [`Wakeup::Ended`]), until
/// the receiver is dropped. A lost connection is logged and made again,
/// backing off while the server is unreachable; after each (re)connection
/// every queue is woken, for notifications sent while no one listened.
async fn listen_loop(
    options: PgConnectOptions,
    channels: &'static [&'static str],
    wakeups: mpsc::Sender<Wakeup>,
) {
    let mut failures = 0u32;
    loop {
        if failures > 0 {
            let wait = Duration::from_millis(50u64 << failures.min(7)).min(Duration::from_secs(5));
            tokio::select! {
                _ = wakeups.closed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let subscribed = tokio::select! {
            _ = wakeups.closed() => return,
            subscribed = subscribe(&options, channels) => subscribed,
        };
        let mut listener = match subscribed {
            Ok(listener) => listener,
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, failures, "listening for job wake-ups failed; trying again");
                continue;
            }
        };
        if failures > 0 {
            tracing::info!("listening for job wake-ups again");
        }
        failures = 0;
        if wakeups.send(Wakeup::All).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                _ = wakeups.closed() => return,
                next = listener.try_recv() => next,
            };
            let wakeup = match next {
                Ok(Some(notification)) if notification.channel() == CANCEL_CHANNEL => {
                    Wakeup::Cancels
                }
                Ok(Some(notification)) if notification.channel() == RESULT_CHANNEL => {
                    // One id, or several comma-separated (a completion batch).
                    match notification.payload().split(',').map(str::parse).collect() {
                        Ok(ids) => Wakeup::Ended(ids),
                        Err(_) => Wakeup::All,
                    }
                }
                Ok(Some(notification)) => Wakeup::Queue(notification.payload().to_owned()),
                Ok(None) => {
                    tracing::warn!("the job wake-up connection was lost; reconnecting");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "the job wake-up connection failed; reconnecting");
                    failures = 1;
                    break;
                }
            };
            match wakeups.try_send(wakeup) {
                Ok(()) => {}
                // The receiver is behind: what could not be sent is told
                // as `All` once there is room, which every receiver answers
                // by looking again at everything (a pool claims in every
                // queue, a waiter reads its job). Meanwhile the server
                // holds the notifications.
                Err(mpsc::error::TrySendError::Full(_)) => {
                    if wakeups.send(Wakeup::All).await.is_err() {
                        return;
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// A listener on its own one-connection pool, subscribed to `channels`.
async fn subscribe(
    options: &PgConnectOptions,
    channels: &[&str],
) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // Reconnect here, not inside the listener: the loop above logs and backs off.
    listener.eager_reconnect(false);
    listener.listen_all(channels.iter().copied()).await?;
    Ok(listener)
}

impl PostgresStore {
    /// Puts the failed jobs `ids` back to `pending`, due at `now`, with
    /// `extra` more attempts, in one statement that wakes their queues;
    /// returns the queue of each job it changed.
    async fn retry_ids(
        &self,
        ids: &[JobId],
        now: DateTime<Utc>,
        extra: u32,
    ) -> Result<Vec<String>, StoreError> {
        let retry = sql::retry_failed();
        let rows = sqlx::query(&retry)
            .bind(now)
            .bind(to_i32(extra))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.try_get("queue"))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// The rows of `sql`, a count of jobs grouped by the column `name` (a
    /// queue or a type) and by state: each its name, state and count (`n`).
    async fn state_counts(
        &self,
        sql: &'static str,
        name: &str,
    ) -> Result<Vec<(String, JobState, u64)>, StoreError> {
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                let count: i64 = row.try_get("n")?;
                Ok((row.try_get(name)?, state_of(0, &state)?, from_count(count)))
            })
            .collect()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let options = match &self.direct {
            Some(direct) => direct,
            // A session lock cannot be held through the pooler.
            None if self.pool.pooled() => return pooled::migrate(&self.pool, migrator()).await,
            None => &self.options,
        };
        // The migrator holds a session advisory lock while it runs, so
        // instances starting together apply each migration once. Its own
        // connection, closed after, cannot leave that lock held in the pool.
        let single = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        let result = migrator().run(&single).await;
        single.close().await;
        Ok(result?)
    }

    async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        if let [job] = jobs {
            // Through a transaction pooler, every statement needs the
            // transaction below (see `pooled`). Beside other dispatches, its
            // queue is woken after the commit, not in it (see `announce`).
            if job.unique_key.is_none() && job.sequence.is_none() && !self.pool.pooled() {
                let dispatch = self.announcer.dispatch();
                let insert = if dispatch.alone() {
                    sql::insert_job()
                } else {
                    sql::INSERT_JOB
                };
                let mut conn = self.pool.raw().acquire().await?;
                let id = insert_one(&mut conn, job, insert).await?;
                drop(conn);
                dispatch.committed(&job.queue);
                return Ok(vec![id]);
            }
        }
        let mut tx = self.pool.begin().await?;
        let ids = insert_in(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(ids)
    }

    fn halve_claims_ahead(&self, queue: &str) -> bool {
        self.flow_queues.contains(queue)
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, StoreError> {
        if self.flow_queues.contains(request.queue) {
            if let Some(jobs) = self.claim_flow(&request).await? {
                return Ok(jobs);
            }
        }
        let rows = claim_query(sql::CLAIM, &request, request.limit)
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            // Nothing due, paused, or a queue with flow settings (which
            // the usual claim skips). Most empty claims are of queues
            // without: one plain read tells them apart before any
            // transaction begins.
            let has_flow: Option<i32> = sqlx::query_scalar(sql::QUEUE_HAS_FLOW)
                .bind(request.queue)
                .fetch_optional(&self.pool)
                .await?;
            if has_flow.is_none() {
                return Ok(Vec::new());
            }
            return Ok(self.claim_flow(&request).await?.unwrap_or_default());
        }
        let mut jobs = rows.iter().map(claimed).collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|job| (std::cmp::Reverse(job.priority), job.id));
        Ok(jobs)
    }

    async fn set_flow(&self, request: FlowRequest<'_>) -> Result<(), StoreError> {
        let flow = request.flow;
        let rate = flow.rate;
        sqlx::query(sql::SET_FLOW)
            .bind(request.queue)
            .bind(flow.concurrency.map(i64::from))
            .bind(flow.key_concurrency.map(i64::from))
            .bind(rate.map(|rate| i64::from(rate.starts)))
            .bind(rate.map(|rate| rate.period_ms()))
            .bind(rate.is_some_and(|rate| rate.per_key))
            .bind(flow.fair)
            .bind(request.now)
            .execute(&self.pool)
            .await?;
        self.flow_queues.set(request.queue, flow.is_controlled());
        Ok(())
    }

    async fn flow(&self, queue: &str) -> Result<QueueFlow, StoreError> {
        let row = sqlx::query(sql::FLOW)
            .bind(queue)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .as_ref()
            .map(flow::flow_of)
            .transpose()?
            .unwrap_or_default())
    }

    async fn nth_latest_start(
        &self,
        queue: &str,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(sqlx::query_scalar(sql::NTH_LATEST_START)
            .bind(queue)
            .bind(i64::from(n.saturating_sub(1)))
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn flow_usage(&self, now: DateTime<Utc>) -> Result<Vec<super::FlowUsage>, StoreError> {
        // One snapshot for every read, so a claim between them cannot show
        // its jobs gone from the due ones before their starts count.
        let mut conn = self.pool.begin_snapshot().await?;
        let settings = sqlx::query(sql::FLOW_QUEUES)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("name")?, flow::flow_of(row)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let rows = super::UsageRows {
            settings,
            running: sqlx::query_as(sql::FLOW_RUNNING)
                .fetch_all(&mut *conn)
                .await?,
            starts: sqlx::query_as(sql::FLOW_STARTS)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?,
            due: sqlx::query_as(sql::FLOW_DUE)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?,
        };
        let mut usage = Vec::new();
        for draft in super::draft(rows) {
            let due: i64 = if draft.full_keys().is_empty() {
                0
            } else {
                sqlx::query_scalar(sql::FLOW_KEYS_DUE)
                    .bind(draft.queue())
                    .bind(now)
                    .bind(draft.full_keys())
                    .fetch_one(&mut *conn)
                    .await?
            };
            usage.push(draft.finish(due));
        }
        conn.commit().await?;
        Ok(usage)
    }

    async fn next_due(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        static NEXT_DUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(sql::next_due);
        Ok(sqlx::query_scalar(&NEXT_DUE)
            .bind(queue)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn mark_started(&self, claims: &[Claim]) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let (ids, tokens) = columns(claims);
        let done = sqlx::query(sql::MARK_STARTED)
            .bind(ids)
            .bind(tokens)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn complete(&self, request: CompleteRequest<'_>) -> Result<u64, StoreError> {
        let CompleteRequest {
            completions,
            ended_at: now,
        } = request;
        if completions.is_empty() {
            return Ok(0);
        }
        static UPDATE: std::sync::LazyLock<String> = std::sync::LazyLock::new(sql::complete);
        // Rows are locked in id order, the same order in every batch.
        let mut sorted: Vec<&Completion> = completions.iter().collect();
        sorted.sort_by_key(|c| c.claim.id);
        let mut ids = Vec::with_capacity(sorted.len());
        let mut tokens = Vec::with_capacity(sorted.len());
        let mut attempts = Vec::with_capacity(sorted.len());
        let mut states = Vec::with_capacity(sorted.len());
        let mut retry_at = Vec::with_capacity(sorted.len());
        let mut errors = Vec::with_capacity(sorted.len());
        let mut outputs = Vec::with_capacity(sorted.len());
        for completion in sorted {
            ids.push(completion.claim.id);
            tokens.push(completion.claim.token);
            attempts.push(to_i32(completion.attempt));
            let (state, at, error) = match &completion.outcome {
                Outcome::Finished | Outcome::FinishedWith { .. } => ("finished", None, None),
                Outcome::Retry { at, error } => ("pending", Some(*at), Some(error.as_str())),
                Outcome::Failed { error } => ("failed", None, Some(error.as_str())),
                Outcome::Snoozed { at } => ("snoozed", Some(*at), None),
                Outcome::Cancelled => ("cancelled", None, None),
            };
            states.push(state);
            retry_at.push(at);
            errors.push(error);
            outputs.push(completion.outcome.output());
        }
        let rows = sqlx::query(&UPDATE)
            .bind(now)
            .bind(entry_time(now))
            .bind(ids)
            .bind(tokens)
            .bind(attempts)
            .bind(states)
            .bind(retry_at)
            .bind(errors)
            .bind(outputs)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.len() as u64)
    }

    async fn record_progress(&self, request: ProgressRequest<'_>) -> Result<bool, StoreError> {
        let ProgressRequest { claim, progress } = request;
        let done = sqlx::query(sql::RECORD_PROGRESS)
            .bind(claim.id)
            .bind(claim.token)
            .bind(i16::from(progress.percent))
            .bind(&progress.message)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn extend_leases(&self, request: RenewRequest<'_>) -> Result<Vec<Claim>, StoreError> {
        if request.claims.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, tokens) = columns(request.claims);
        let rows = sqlx::query(sql::EXTEND_LEASES)
            .bind(ids)
            .bind(tokens)
            .bind(request.now)
            .bind(super::rows::lease_micros(request.lease))
            .fetch_all(&self.pool)
            .await?;
        let mut held = rows
            .iter()
            .map(|row| {
                Ok(Claim {
                    id: row.try_get("id")?,
                    token: row.try_get("lease_token")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        held.sort_unstable();
        Ok(held)
    }

    async fn release(&self, claims: &[Claim]) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let release = sql::release();
        let (ids, tokens) = columns(claims);
        let rows = sqlx::query(&release)
            .bind(ids)
            .bind(tokens)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.len() as u64)
    }

    async fn rescue(&self, now: Option<DateTime<Utc>>) -> Result<Vec<JobId>, StoreError> {
        // A job someone cancelled while it ran ends cancelled instead.
        let mut ids: Vec<JobId> = sqlx::query_scalar(sql::RESCUE_CANCELLED)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let rescue = sql::rescue();
        let rows = sqlx::query(&rescue).bind(now).fetch_all(&self.pool).await?;
        for row in &rows {
            ids.push(row.try_get::<JobId, _>("id")?);
        }
        ids.sort_unstable();
        Ok(ids)
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(&sql::get_job())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let mut query: QueryBuilder<Postgres> = QueryBuilder::new(sql::list_jobs());
        let size = push_filter(&mut query, filter, |at| at)?;
        let rows = query.build().fetch_all(&self.pool).await?;
        let jobs = rows.iter().map(record).collect::<Result<_, _>>()?;
        Ok(JobPage::from_rows(jobs, size))
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, StoreError> {
        let rows = sqlx::query(sql::QUEUE_STATS)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n")?;
                Ok(QueueStats {
                    queue: row.try_get("queue")?,
                    due: from_count(n),
                    oldest_due_at: row.try_get("oldest")?,
                    paused: row.try_get("paused")?,
                })
            })
            .collect()
    }

    async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>, StoreError> {
        let rows = sqlx::query(sql::THROUGHPUT)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let minute: i64 = row.try_get("minute")?;
                let finished: i64 = row.try_get("finished")?;
                let failed: i64 = row.try_get("failed")?;
                let start =
                    DateTime::from_timestamp(minute.saturating_mul(60), 0).ok_or_else(|| {
                        StoreError::Corrupt {
                            id: 0,
                            reason: format!("minute {minute} out of range"),
                        }
                    })?;
                Ok(MinuteCount {
                    minute: start,
                    finished: from_count(finished),
                    failed: from_count(failed),
                })
            })
            .collect()
    }

    async fn set_paused(&self, request: PauseRequest<'_>) -> Result<(), StoreError> {
        let upsert = sql::set_paused();
        sqlx::query(&upsert)
            .bind(request.queue)
            .bind(request.paused)
            .bind(request.now)
            .fetch_all(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete(&self, id: JobId) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_JOB)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn try_lease(&self, request: LeaseRequest<'_>) -> Result<bool, StoreError> {
        let held: Option<String> = sqlx::query_scalar(sql::TRY_LEASE)
            .bind(request.lease.name)
            .bind(request.lease.holder)
            .bind(request.now)
            .bind(super::rows::lease_micros(request.ttl))
            .fetch_optional(&self.pool)
            .await?;
        Ok(held.is_some())
    }

    async fn publish_concurrency(&self, report: ConcurrencyReport<'_>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        super::concurrency::postgres::publish(&mut tx, report).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn worker_concurrency(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<super::WorkerConcurrency>, StoreError> {
        super::concurrency::postgres::live(&self.pool, now).await
    }

    async fn drop_lease(&self, lease: LeaseHolder<'_>) -> Result<(), StoreError> {
        sqlx::query(sql::DROP_LEASE)
            .bind(lease.name)
            .bind(lease.holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_tick(&self, request: TickRequest<'_>) -> Result<Tick, StoreError> {
        let TickRequest {
            schedule: name,
            fire_at,
            job,
        } = request;
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(sql::TAKE_TICK)
            .bind(name)
            .bind(fire_at)
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
        let id = insert_one(&mut tx, job, sql::insert_job()).await?;
        sqlx::query(sql::SET_TICK_JOB)
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::RECORD_RUN)
            .bind(name)
            .bind(id)
            .bind(fire_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Tick::Dispatched(id))
    }

    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        let rows = sqlx::query(sql::SCHEDULE_STATES)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ScheduleState {
                    name: row.try_get("name")?,
                    last_fire_at: row.try_get("last_fire_at")?,
                    last_job_id: row.try_get("last_job_id")?,
                })
            })
            .collect()
    }

    async fn schedule_runs(&self, name: &str, limit: u32) -> Result<Vec<ScheduleRun>, StoreError> {
        let rows: Vec<(DateTime<Utc>, JobId, Option<String>)> = sqlx::query_as(sql::SCHEDULE_RUNS)
            .bind(name)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter()
            .map(|(fire_at, job_id, state)| {
                Ok(ScheduleRun {
                    fire_at,
                    job_id,
                    state: state.map(|s| state_of(job_id, &s)).transpose()?,
                })
            })
            .collect()
    }

    async fn prune_schedule_runs(&self, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PRUNE_SCHEDULE_RUNS)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> Result<(BatchId, Vec<JobId>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let created = super::batches::create(&mut batches::PgBatch(&mut tx), batch, jobs).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn add_to_batch(&self, add: BatchAdd<'_>) -> Result<Vec<JobId>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let ids = super::batches::add(&mut batches::PgBatch(&mut tx), add).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn prune_batches(&self, request: PruneRequest) -> Result<u64, StoreError> {
        let done = sqlx::query(batches::PRUNE)
            .bind(request.before)
            .bind(i64::from(request.limit))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_workflow(
        &self,
        workflow: &NewWorkflow,
    ) -> Result<(BatchId, Vec<JobId>), StoreError> {
        let mut tx = self.pool.begin().await?;
        let created = super::workflows::create(&mut batches::PgBatch(&mut tx), workflow).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn release_dependents(&self, now: DateTime<Utc>) -> Result<Released, StoreError> {
        // Most looks find nothing to release: one read says so, without a transaction.
        let any: bool = sqlx::query_scalar(super::workflows::ANY_EVENT)
            .fetch_one(&self.pool)
            .await?;
        if !any {
            return Ok(Released::default());
        }
        let mut tx = self.pool.begin().await?;
        let released = super::workflows::release(&mut batches::PgBatch(&mut tx), now).await?;
        for queue in &released.queues {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(queue)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(released)
    }

    async fn dependencies(&self, ids: &[JobId]) -> Result<Vec<Dependency>, StoreError> {
        workflows::dependencies(&self.pool, ids).await
    }

    async fn skip_wait(&self, id: JobId, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let skipped = sequences::skip_wait(&mut tx, id, now).await?;
        tx.commit().await?;
        Ok(skipped)
    }

    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64, StoreError> {
        let mut query: QueryBuilder<Postgres> = QueryBuilder::new("SELECT COUNT(*) FROM jobs");
        push_conditions(&mut query, filter, |at| at);
        let count: i64 = query.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(from_count(count))
    }

    async fn batch(&self, id: BatchId) -> Result<Option<BatchRecord>, StoreError> {
        batches::read(&self.pool, id).await
    }

    async fn fire_batch_callbacks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(JobId, NewJob)>, StoreError> {
        // Most looks find nothing due: one read says so, without a transaction.
        let any_due: bool = sqlx::query_scalar(super::batches::ANY_DUE)
            .fetch_one(&self.pool)
            .await?;
        if !any_due {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let fired = super::batches::fire(&mut batches::PgBatch(&mut tx), now, limit).await?;
        tx.commit().await?;
        Ok(fired)
    }

    async fn outcomes(&self, since: DateTime<Utc>) -> Result<Vec<TypeOutcomes>, StoreError> {
        let rows = sqlx::query(sql::OUTCOMES)
            .bind(since)
            .fetch_all(&self.pool)
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
        let id: Option<AlertId> = sqlx::query_scalar(sql::OPEN_ALERT)
            .bind(&alert.rule)
            .bind(&alert.subject)
            .bind(&alert.summary)
            .bind(alert.fired_at)
            .bind(open_key(alert))
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.map(|id| opened(id, alert)))
    }

    async fn resolve_alert(&self, id: AlertId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RESOLVE_ALERT)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn alerts(&self, resolved: u32) -> Result<Vec<AlertRecord>, StoreError> {
        let mut rows = sqlx::query(&sql::firing_alerts())
            .fetch_all(&self.pool)
            .await?;
        rows.extend(
            sqlx::query(&sql::resolved_alerts())
                .bind(i64::from(resolved))
                .fetch_all(&self.pool)
                .await?,
        );
        rows.iter()
            .map(|row| {
                Ok(AlertRecord {
                    id: row.try_get("id")?,
                    rule: row.try_get("rule")?,
                    subject: row.try_get("subject")?,
                    summary: row.try_get("summary")?,
                    fired_at: row.try_get("fired_at")?,
                    resolved_at: row.try_get("resolved_at")?,
                })
            })
            .collect()
    }

    async fn counts(&self) -> Result<Vec<StateCount>, StoreError> {
        let rows = self.state_counts(sql::COUNTS, "queue").await?;
        Ok(rows
            .into_iter()
            .map(|(queue, state, count)| StateCount {
                queue,
                state,
                count,
            })
            .collect())
    }

    async fn counts_by_type(&self) -> Result<Vec<TypeCount>, StoreError> {
        let rows = self.state_counts(sql::COUNTS_BY_TYPE, "type").await?;
        Ok(rows
            .into_iter()
            .map(|(job_type, state, count)| TypeCount {
                job_type,
                state,
                count,
            })
            .collect())
    }

    async fn request_cancel(&self, id: JobId) -> Result<bool, StoreError> {
        let asked: i64 = sqlx::query_scalar(&sql::request_cancel())
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(asked == 1)
    }

    async fn cancels_requested(&self, claims: &[Claim]) -> Result<Vec<Claim>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, tokens) = columns(claims);
        let rows = sqlx::query(sql::CANCELS_REQUESTED)
            .bind(ids)
            .bind(tokens)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Claim {
                    id: row.try_get("id")?,
                    token: row.try_get("lease_token")?,
                })
            })
            .collect()
    }

    async fn cancel(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let cancelled: i64 = sqlx::query_scalar(&sql::cancel())
            .bind(now)
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(cancelled == 1)
    }

    async fn retry(&self, request: RetryRequest) -> Result<bool, StoreError> {
        let retry = sql::retry();
        let rows = sqlx::query(&retry)
            .bind(request.now)
            .bind(to_i32(request.extra_attempts.max(1)))
            .bind(request.id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.len() == 1)
    }

    async fn retry_failed(&self, request: &RetryFailed) -> Result<RetriedFailed, StoreError> {
        let mut done = RetriedFailed::default();
        let mut after: JobId = 0;
        loop {
            let batch = super::rows::failed_batch(request, after)
                .build()
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(FailedJob {
                        id: row.try_get("id")?,
                        job_type: row.try_get("type")?,
                        queue: row.try_get("queue")?,
                        unique_key: row.try_get("unique_key")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let Some(last) = batch.last().map(|job| job.id) else {
                return Ok(done);
            };
            after = last;
            let keys = batch_keys(&batch);
            let held: Vec<String> = if keys.is_empty() {
                Vec::new()
            } else {
                sqlx::query_scalar(sql::HELD_KEYS)
                    .bind(&keys)
                    .fetch_all(&self.pool)
                    .await?
            };
            let (groups, skipped) = plan_retry(request, &batch, &held);
            done.add(0, skipped, []);
            for (extra, jobs) in groups {
                let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
                match self.retry_ids(&ids, request.now, extra).await {
                    Ok(queues) => {
                        done.add(queues.len() as u64, 0, queues.iter().map(String::as_str))
                    }
                    // A key taken meanwhile: the statement changed nothing, so
                    // go one job at a time and skip the jobs whose key is held.
                    Err(error) if error.is_unique_violation() => {
                        for id in ids {
                            match self.retry_ids(&[id], request.now, extra).await {
                                Ok(queues) => {
                                    done.add(
                                        queues.len() as u64,
                                        0,
                                        queues.iter().map(String::as_str),
                                    );
                                }
                                Err(error) if error.is_unique_violation() => done.add(0, 1, []),
                                Err(error) => return Err(error),
                            }
                        }
                    }
                    Err(error) => return Err(error),
                }
            }
        }
    }

    async fn prune(&self, state: JobState, request: PruneRequest) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PRUNE)
            .bind(state.as_str())
            .bind(request.before)
            .bind(i64::from(request.limit))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune_alerts(&self, request: PruneRequest) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PRUNE_ALERTS)
            .bind(request.before)
            .bind(i64::from(request.limit))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune_idle_keys(&self, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PRUNE_IDLE_KEYS)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune_sequences(&self, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(sequences::PRUNE)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    fn listen(&self) -> Option<mpsc::Receiver<Wakeup>> {
        self.listen_on(&[CHANNEL, CANCEL_CHANNEL])
    }

    fn listen_results(&self) -> Option<mpsc::Receiver<Wakeup>> {
        self.listen_on(&[RESULT_CHANNEL])
    }
}
