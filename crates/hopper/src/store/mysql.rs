//! The MySQL 8 / MariaDB 10.6+ store: one database shared by workers on
//! many hosts.
//!
//! Every pooled connection reads committed data (`READ COMMITTED`), so the
//! claim's locking read takes no gap locks that would hold up dispatchers.
//! A claim is one short transaction: `SELECT … FOR UPDATE SKIP LOCKED`, then
//! `UPDATE`; concurrent claimers skip each other's rows instead of waiting.
//! Unique keys are held by a generated column that is the key while the job
//! is pending or started and NULL otherwise, under a unique index.
//!
//! The statements' text is in the `sql` submodule, in the order of the
//! [`Store`] operations; this file binds their parameters, runs them in
//! transactions (again after a deadlock), and decodes the rows.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlConnection, MySqlPool, MySqlRow};
use sqlx::query::Query;
use sqlx::{Executor, MySql, QueryBuilder, Row};

use super::rows::{
    from_count, from_micros, micros, open_key, opened, optional_time, push_conditions, push_filter,
    state_of, to_u32,
};
use super::{
    AlertId, AlertRecord, AttemptError, BatchAdd, BatchId, BatchRecord, Claim, ClaimRequest,
    ClaimToken, ClaimedJob, CompleteRequest, ConcurrencyReport, FlowRequest, JobFilter, JobPage,
    JobRecord, LeaseHolder, LeaseRequest, MigrationStatus, MinuteCount, NewAlert, NewBatch, NewJob,
    Outcome, PauseRequest, Progress, ProgressRequest, PruneRequest, QueueFlow, QueueStats,
    RenewRequest, RetryRequest, ScheduleRun, ScheduleState, StateCount, Store, StoreError, Tick,
    TickRequest, TypeCount, TypeOutcomes,
};
use super::{
    Dependency, FailedJob, NewWorkflow, Released, RetriedFailed, RetryFailed, batch_keys,
    plan_retry,
};
use crate::job::{JobId, JobState};

mod batches;
mod flow;
mod sequences;
mod sql;
mod workflows;

/// Jobs per statement in a bulk insert: 9 bound values each, well under the
/// 65,535 placeholders a prepared statement may hold.
const INSERT_CHUNK: usize = 2_000;
/// How long an instance waits for another one's migrations to finish.
const MIGRATION_LOCK_WAIT_SECS: i64 = 300;
/// How often a transaction the store owns is run again after the server
/// picked it as a deadlock victim.
const DEADLOCK_RETRIES: usize = 5;

/// A Hopper store in a MySQL or MariaDB database.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # use sqlx::Connection;
/// # let mut admin = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306").await.unwrap();
/// # sqlx::query("DROP DATABASE IF EXISTS hopper_doc_1").execute(&mut admin).await.unwrap();
/// # sqlx::query("CREATE DATABASE hopper_doc_1").execute(&mut admin).await.unwrap();
/// use hopper::store::{Store, mysql::MysqlStore};
/// let store = MysqlStore::open("mysql://root@127.0.0.1:3306/hopper_doc_1").await.unwrap();
/// store.migrate().await.unwrap();
/// assert!(store.get(0).await.unwrap().is_none());
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct MysqlStore {
    pool: MySqlPool,
    flow_queues: super::FlowQueues,
}

impl MysqlStore {
    /// Connects to the database at `url` (`mysql://user:password@host:3306/db`;
    /// `mariadb://` is accepted as the same). The database must exist.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use sqlx::Connection;
    /// # let mut admin = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306").await.unwrap();
    /// # sqlx::query("DROP DATABASE IF EXISTS hopper_doc_2").execute(&mut admin).await.unwrap();
    /// # sqlx::query("CREATE DATABASE hopper_doc_2").execute(&mut admin).await.unwrap();
    /// let store = hopper::store::mysql::MysqlStore::open("mariadb://root@127.0.0.1:3306/hopper_doc_2").await.unwrap();
    /// # let _ = store;
    /// # });
    /// ```
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let mysql_url = match url.strip_prefix("mariadb:") {
            Some(rest) => format!("mysql:{rest}"),
            None => url.to_owned(),
        };
        let options = MySqlConnectOptions::from_str(&mysql_url)
            .map_err(|e| open_error(e.into()))?
            .charset("utf8mb4");
        let pool = super::pool::options::<sqlx::MySql>()
            .max_connections(10)
            // While the server is down, a dispatch fails after this long.
            .acquire_timeout(std::time::Duration::from_secs(5))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(sql::SET_ISOLATION_LEVEL).await?;
                    // Whatever the server's default: a value that does not fit
                    // its column is an error, never silently cut or changed.
                    conn.execute(sql::SET_SQL_MODE).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.into()))?;
        Ok(Self {
            pool,
            flow_queues: super::FlowQueues::default(),
        })
    }

    /// The connection pool: begin the application's own transactions on it
    /// (see [`Hopper::transaction`](crate::Hopper::transaction)) or run ad-hoc
    /// queries.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use sqlx::Connection;
    /// # let mut admin = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306").await.unwrap();
    /// # sqlx::query("DROP DATABASE IF EXISTS hopper_doc_3").execute(&mut admin).await.unwrap();
    /// # sqlx::query("CREATE DATABASE hopper_doc_3").execute(&mut admin).await.unwrap();
    /// let store = hopper::store::mysql::MysqlStore::open("mysql://root@127.0.0.1:3306/hopper_doc_3").await.unwrap();
    /// let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(store.pool()).await.unwrap();
    /// assert_eq!(one, 1);
    /// # });
    /// ```
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// The migrations this build carries, each with when this database
    /// applied it (see [`super::migration_status`]). Applies nothing.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use sqlx::Connection;
    /// # let mut admin = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306").await.unwrap();
    /// # sqlx::query("DROP DATABASE IF EXISTS hopper_doc_4").execute(&mut admin).await.unwrap();
    /// # sqlx::query("CREATE DATABASE hopper_doc_4").execute(&mut admin).await.unwrap();
    /// use hopper::store::{mysql::MysqlStore, Store};
    /// let store = MysqlStore::open("mysql://root@127.0.0.1:3306/hopper_doc_4").await.unwrap();
    /// store.migrate().await.unwrap();
    /// assert!(store.migration_status().await.unwrap().iter().all(|m| m.applied_at.is_some()));
    /// # });
    /// ```
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let migrator = sqlx::migrate!("./migrations/mysql");
        let has_table: i64 = sqlx::query_scalar(sql::HAS_MIGRATIONS_TABLE)
            .fetch_one(&self.pool)
            .await?;
        let applied: Vec<(i64, DateTime<Utc>)> = if has_table > 0 {
            sqlx::query_as(sql::APPLIED_MIGRATIONS)
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        Ok(super::MigrationStatus::of(&migrator, &applied))
    }
}

/// A time as the JSON text an [`AttemptError`] holds.
fn json_time(at: DateTime<Utc>) -> String {
    serde_json::to_value(at)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Runs `attempt` again each time the server rolls it back to break a
/// deadlock (the whole transaction undone, so running it again is safe), up
/// to [`DEADLOCK_RETRIES`] times.
async fn retry_deadlocks<T, E, F, Fut>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<StoreError>,
{
    let mut tries = 0;
    loop {
        match attempt().await.map_err(Into::into) {
            Err(error) if error.is_deadlock() && tries < DEADLOCK_RETRIES => {
                tries += 1;
            }
            done => return done,
        }
    }
}

/// Applies `statement`, a completion with no error to record (a snooze or
/// a cancellation), to the job of `completion` under its claim, at `at`.
async fn set_back(
    tx: &mut sqlx::Transaction<'_, sqlx::MySql>,
    statement: &str,
    at: DateTime<Utc>,
    completion: &super::Completion,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(statement)
        .bind(micros(at))
        .bind(completion.claim.id)
        .bind(completion.claim.token)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// Binds the guard of a statement on `claims` (see `sql::claims_guard`):
/// their ids, then each one's id and token.
fn bind_claims<'q>(
    mut query: Query<'q, MySql, MySqlArguments>,
    claims: &[Claim],
) -> Query<'q, MySql, MySqlArguments> {
    for claim in claims {
        query = query.bind(claim.id);
    }
    for claim in claims {
        query = query.bind(claim.id).bind(claim.token);
    }
    query
}

/// Claims in id order: every statement that locks several jobs locks them in
/// the same order, so two of them never wait on each other.
fn in_id_order(claims: &[Claim]) -> Vec<Claim> {
    let mut sorted = claims.to_vec();
    sorted.sort_unstable();
    sorted
}

/// A text column as a string. Columns compare byte for byte (`utf8mb4_bin`),
/// which the driver reports as binary, so text is read as bytes.
pub(super) fn text(row: &MySqlRow, column: &str) -> Result<String, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(column)?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(e),
    })
}

/// The job a claim's locking read found (`id`, `type`, `queue`, `payload`,
/// `priority`, `attempts`, `max_attempts`), as the claim under `token` is
/// about to take it: the attempt it counts is this run's.
pub(super) fn locked_job(
    row: &MySqlRow,
    token: ClaimToken,
    run_started: bool,
) -> Result<ClaimedJob, sqlx::Error> {
    let attempts: i32 = row.try_get("attempts")?;
    let max_attempts: i32 = row.try_get("max_attempts")?;
    Ok(ClaimedJob {
        id: row.try_get("id")?,
        job_type: text(row, "type")?,
        queue: text(row, "queue")?,
        payload: text(row, "payload")?,
        priority: row.try_get("priority")?,
        token,
        attempt: u32::try_from(attempts.saturating_add(1)).unwrap_or(0),
        max_attempts: u32::try_from(max_attempts).unwrap_or(0),
        batch: row.try_get("batch_id")?,
        has_dependents: row.try_get("has_dependents")?,
        run_started,
        trace_context: optional_text(row, "trace_context")?,
    })
}

/// A nullable text column as a string (see [`text`]).
pub(super) fn optional_text(row: &MySqlRow, column: &str) -> Result<Option<String>, sqlx::Error> {
    let bytes: Option<Vec<u8>> = row.try_get(column)?;
    bytes
        .map(|bytes| {
            String::from_utf8(bytes).map_err(|e| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: Box::new(e),
            })
        })
        .transpose()
}

fn record(row: &MySqlRow) -> Result<JobRecord, StoreError> {
    let id: JobId = row.try_get("id")?;
    let state: String = text(row, "state")?;
    let errors: String = text(row, "errors")?;
    Ok(JobRecord {
        id,
        job_type: text(row, "type")?,
        queue: text(row, "queue")?,
        payload: text(row, "payload")?,
        state: state_of(id, &state)?,
        priority: row.try_get("priority")?,
        attempts: to_u32(id, "attempts", row.try_get::<i32, _>("attempts")?)?,
        max_attempts: to_u32(id, "max_attempts", row.try_get::<i32, _>("max_attempts")?)?,
        available_at: from_micros(id, row.try_get("available_at")?)?,
        created_at: from_micros(id, row.try_get("created_at")?)?,
        started_at: optional_time(id, row.try_get("started_at")?)?,
        finished_at: optional_time(id, row.try_get("finished_at")?)?,
        locked_by: optional_text(row, "locked_by")?,
        locked_until: optional_time(id, row.try_get("locked_until")?)?,
        last_error: optional_text(row, "last_error")?,
        errors: serde_json::from_str::<Vec<AttemptError>>(&errors).map_err(|e| {
            StoreError::Corrupt {
                id,
                reason: format!("error history: {e}"),
            }
        })?,
        unique_key: optional_text(row, "unique_key")?,
        output: optional_text(row, "output")?,
        progress: Progress::from_columns(
            id,
            row.try_get::<Option<i16>, _>("progress")?.map(i64::from),
            optional_text(row, "progress_message")?,
        )?,
        batch_id: row.try_get("batch_id")?,
        waiting_on: to_u32(id, "waiting_on", row.try_get::<i32, _>("waiting_on")?)?,
    })
}

/// Inserts `jobs` on `conn`, inside whatever transaction it is in: pass the
/// application's own transaction and the jobs exist if and only if it commits.
/// Returns their ids in order; a job whose unique key is held by a pending or
/// started job is not inserted and gets that job's id.
///
/// [`Hopper::transaction`](crate::Hopper::transaction) is the way in for
/// applications: it also records the dispatch and wakes workers on commit.
pub(crate) async fn insert_in(
    conn: &mut MySqlConnection,
    jobs: &[NewJob],
) -> Result<Vec<JobId>, StoreError> {
    let keys = super::flow::keys_to_mark(jobs);
    for chunk in keys.chunks(INSERT_CHUNK) {
        let statement = sql::mark_keys(chunk.len());
        let mut mark = sqlx::query(&statement);
        for (queue, key) in chunk {
            mark = mark.bind(*queue).bind(*key);
        }
        mark.execute(&mut *conn).await?;
    }
    if jobs.iter().any(|job| job.sequence.is_some()) {
        return super::sequences::insert(&mut sequences::MySqlSequence(conn), jobs).await;
    }
    let mut ids = Vec::with_capacity(jobs.len());
    if jobs.len() == 1 || jobs.iter().any(|job| job.unique_key.is_some()) {
        for job in jobs {
            ids.push(insert_one(conn, job).await?);
        }
        return Ok(ids);
    }
    for chunk in jobs.chunks(INSERT_CHUNK) {
        let statement = sql::insert_jobs(chunk.len());
        let mut query = sqlx::query(&statement);
        for job in chunk {
            query = query
                .bind(&job.job_type)
                .bind(&job.queue)
                .bind(&job.payload)
                .bind(job.priority)
                .bind(job.max_attempts)
                .bind(micros(job.available_at))
                .bind(micros(job.created_at))
                .bind(&job.partition_key)
                .bind(&job.trace_context);
        }
        let done = query.execute(&mut *conn).await?;
        // A multi-row INSERT … VALUES is a "simple insert": InnoDB hands it a
        // consecutive run of ids in every lock mode, and reports the first.
        let step: i64 = sqlx::query_scalar(sql::AUTO_INCREMENT_STEP)
            .fetch_one(&mut *conn)
            .await?;
        let first = JobId::try_from(done.last_insert_id()).map_err(|_| StoreError::Corrupt {
            id: 0,
            reason: format!("inserted id {} out of range", done.last_insert_id()),
        })?;
        ids.extend((0..chunk.len() as i64).map(|i| first + i * step));
    }
    Ok(ids)
}

/// Inserts one job; with a unique key held by a live job, returns that job's id instead.
async fn insert_one(conn: &mut MySqlConnection, job: &NewJob) -> Result<JobId, StoreError> {
    let done = sqlx::query(sql::INSERT_JOB)
        .bind(&job.job_type)
        .bind(&job.queue)
        .bind(&job.payload)
        .bind(job.priority)
        .bind(job.max_attempts)
        .bind(micros(job.available_at))
        .bind(micros(job.created_at))
        .bind(&job.unique_key)
        .bind(&job.partition_key)
        .bind(&job.trace_context)
        .execute(&mut *conn)
        .await?;
    // On a clash MariaDB reports no insert id in its reply when the table
    // has triggers; the session's LAST_INSERT_ID still names the holder.
    let id = match done.last_insert_id() {
        0 => {
            sqlx::query_scalar::<_, u64>(sql::LAST_INSERT_ID)
                .fetch_one(&mut *conn)
                .await?
        }
        id => id,
    };
    JobId::try_from(id).map_err(|_| StoreError::Corrupt {
        id: 0,
        reason: format!("inserted id {} out of range", id),
    })
}

impl MysqlStore {
    async fn try_claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if self.flow_queues.contains(request.queue) {
            let claimed = super::flow::claim(&mut flow::MysqlFlow(&mut tx), request).await?;
            if let Some(jobs) = claimed {
                tx.commit().await?;
                return Ok(jobs);
            }
            self.flow_queues.set(request.queue, false);
        }
        let rows = sqlx::query(sql::CLAIM_SELECT)
            .bind(request.queue)
            .bind(micros(request.due_by))
            .bind(request.queue)
            .bind(request.limit)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            // Nothing due, paused, or a queue with flow settings, whose
            // claims run one at a time holding its row.
            let claimed = super::flow::claim(&mut flow::MysqlFlow(&mut tx), request).await?;
            tx.commit().await?;
            self.flow_queues.set(request.queue, claimed.is_some());
            return Ok(claimed.unwrap_or_default());
        }
        let start_now = usize::try_from(request.start_now).unwrap_or(usize::MAX);
        let mut jobs = Vec::with_capacity(rows.len());
        for (n, row) in rows.iter().enumerate() {
            jobs.push(locked_job(row, request.token, n < start_now)?);
        }
        let starting: Vec<JobId> = jobs
            .iter()
            .filter(|j| j.run_started)
            .map(|j| j.id)
            .collect();
        let statement = sql::claim_update(jobs.len(), starting.len());
        let mut update = sqlx::query(&statement).bind(micros(request.due_by));
        for id in &starting {
            update = update.bind(*id);
        }
        update = update
            .bind(request.token)
            .bind(request.worker)
            .bind(request.now.map(micros))
            .bind(super::rows::lease_micros(request.lease));
        for job in &jobs {
            update = update.bind(job.id);
        }
        update.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(jobs)
    }

    async fn try_complete(&self, request: CompleteRequest<'_>) -> Result<u64, sqlx::Error> {
        let CompleteRequest {
            completions,
            ended_at: now,
        } = request;
        let finished: Vec<Claim> = completions
            .iter()
            .filter(|c| c.outcome.is_finished())
            .map(|c| c.claim)
            .collect();
        let outputs: Vec<(JobId, &str)> = completions
            .iter()
            .filter_map(|c| Some((c.claim.id, c.outcome.output()?)))
            .collect();
        let mut applied = 0;
        let mut tx = self.pool.begin().await?;
        if !finished.is_empty() {
            let statement = sql::complete_finished(finished.len(), outputs.len());
            let mut query = sqlx::query(&statement).bind(micros(now));
            for (id, output) in &outputs {
                query = query.bind(*id).bind(*output);
            }
            applied += bind_claims(query, &finished)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for completion in completions {
            let (statement, at, error) = match &completion.outcome {
                Outcome::Finished | Outcome::FinishedWith { .. } => continue,
                Outcome::Retry { at, error } => (sql::COMPLETE_RETRY, *at, error),
                Outcome::Failed { error } => (sql::COMPLETE_FAILED, now, error),
                Outcome::Snoozed { at } => {
                    applied += set_back(&mut tx, sql::COMPLETE_SNOOZED, *at, completion).await?;
                    continue;
                }
                Outcome::Cancelled => {
                    applied += set_back(&mut tx, sql::COMPLETE_CANCELLED, now, completion).await?;
                    continue;
                }
            };
            applied += sqlx::query(statement)
                .bind(micros(at))
                .bind(error)
                .bind(json_time(now))
                .bind(error)
                .bind(completion.claim.id)
                .bind(completion.claim.token)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn try_take_tick(&self, request: TickRequest<'_>) -> Result<Tick, StoreError> {
        let TickRequest {
            schedule: name,
            fire_at,
            job,
        } = request;
        let mut tx = self.pool.begin().await?;
        // Move the schedule's tick forward, or create it. When another
        // instance creates the row between the two statements, the insert
        // adds nothing or clashes, and the update runs again against that
        // row (waiting on its lock): it decides.
        let mut taken = false;
        for _ in 0..2 {
            let moved = sqlx::query(sql::TAKE_TICK)
                .bind(micros(fire_at))
                .bind(name)
                .bind(micros(fire_at))
                .execute(&mut *tx)
                .await?;
            if moved.rows_affected() == 1 {
                taken = true;
                break;
            }
            let created = sqlx::query(sql::TAKE_TICK_INSERT)
                .bind(name)
                .bind(micros(fire_at))
                .bind(name)
                .execute(&mut *tx)
                .await;
            match created {
                Ok(done) if done.rows_affected() == 1 => {
                    taken = true;
                    break;
                }
                // The row exists now: the update decides, once more.
                Ok(_) => continue,
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !taken {
            tx.rollback().await?;
            return Ok(Tick::Lost);
        }
        let Some(job) = job else {
            tx.commit().await?;
            return Ok(Tick::Passed);
        };
        let id = insert_one(&mut tx, job).await?;
        sqlx::query(sql::TAKE_TICK_JOB)
            .bind(id)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::RECORD_RUN)
            .bind(name)
            .bind(id)
            .bind(micros(fire_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Tick::Dispatched(id))
    }

    async fn try_insert(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        if let [job] = jobs {
            if job.sequence.is_none() {
                let mut conn = self.pool.acquire().await?;
                return insert_one(&mut conn, job).await.map(|id| vec![id]);
            }
        }
        let mut tx = self.pool.begin().await?;
        let ids = insert_in(&mut tx, jobs).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn try_rescue(&self, now: Option<DateTime<Utc>>) -> Result<Vec<JobId>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let now: i64 = sqlx::query_scalar(sql::RESCUE_NOW)
            .bind(now.map(micros))
            .fetch_one(&mut *tx)
            .await?;
        let ids: Vec<JobId> = sqlx::query_scalar(sql::RESCUE_SELECT)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(ids);
        }
        // A job someone cancelled while it ran ends cancelled instead.
        let statement = sql::rescue_cancelled(ids.len());
        let mut cancelled = sqlx::query(&statement).bind(now);
        for id in &ids {
            cancelled = cancelled.bind(*id);
        }
        cancelled.execute(&mut *tx).await?;
        let statement = sql::rescue_update(ids.len());
        let mut update = sqlx::query(&statement)
            .bind(json_time(from_micros(0, now)?))
            .bind(now)
            .bind(now);
        for id in &ids {
            update = update.bind(*id);
        }
        update.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn try_extend_leases(
        &self,
        request: RenewRequest<'_>,
    ) -> Result<Vec<Claim>, sqlx::Error> {
        let RenewRequest { claims, lease, now } = request;
        let mut tx = self.pool.begin().await?;
        let statement = sql::extend_leases(claims.len());
        let update = sqlx::query(&statement)
            .bind(now.map(micros))
            .bind(super::rows::lease_micros(lease));
        bind_claims(update, claims).execute(&mut *tx).await?;
        let statement = sql::extend_leases_held(claims.len());
        let held = bind_claims(sqlx::query(&statement), claims)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        held.iter()
            .map(|row| {
                Ok(Claim {
                    id: row.try_get::<JobId, _>(0)?,
                    token: row.try_get::<ClaimToken, _>(1)?,
                })
            })
            .collect()
    }
}

impl MysqlStore {
    /// Puts the failed jobs `jobs` back to `pending`, due at `now`, with
    /// `extra` more attempts, in one statement; returns how many it changed.
    async fn retry_jobs(
        &self,
        jobs: &[&FailedJob],
        now: DateTime<Utc>,
        extra: u32,
    ) -> Result<u64, StoreError> {
        let statement = sql::retry_failed_update(jobs.len());
        retry_deadlocks(|| async {
            let mut update = sqlx::query(&statement).bind(micros(now)).bind(extra);
            for job in jobs {
                update = update.bind(job.id);
            }
            let done = update.execute(&self.pool).await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        })
        .await
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
                let state: String = text(row, "state")?;
                let count: i64 = row.try_get("n")?;
                Ok((text(row, name)?, state_of(0, &state)?, from_count(count)))
            })
            .collect()
    }
}

#[async_trait]
impl Store for MysqlStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // sqlx's own migration lock asks for `GET_LOCK(name, -1)`, which MariaDB
        // refuses at once (NULL) instead of waiting: take a named lock that
        // waits, on the connection the migrations run on, and hold it throughout.
        let mut conn = self.pool.acquire().await?;
        let locked: Option<i64> = sqlx::query_scalar(sql::TAKE_MIGRATION_LOCK)
            .bind(MIGRATION_LOCK_WAIT_SECS)
            .fetch_one(&mut *conn)
            .await?;
        if locked != Some(1) {
            return Err(
                sqlx::migrate::MigrateError::Execute(sqlx::Error::Protocol(format!(
                    "another instance held the migration lock for over {MIGRATION_LOCK_WAIT_SECS} s"
                )))
                .into(),
            );
        }
        let mut migrator = sqlx::migrate!("./migrations/mysql");
        migrator.set_locking(false);
        // `run_direct` is `run` on one connection, without the pool.
        let migrated = migrator.run_direct(&mut *conn).await;
        let released = sqlx::query(sql::RELEASE_MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        migrated?;
        released?;
        Ok(())
    }

    async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        // Dispatches of one unique key at once can deadlock on its index
        // entry; the loser's statement or transaction is rolled back whole
        // and simply runs again.
        retry_deadlocks(|| self.try_insert(jobs)).await
    }

    fn halve_claims_ahead(&self, queue: &str) -> bool {
        self.flow_queues.contains(queue)
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, StoreError> {
        retry_deadlocks(|| self.try_claim(&request)).await
    }

    async fn nth_latest_start(
        &self,
        queue: &str,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar(sql::NTH_LATEST_START)
            .bind(queue)
            .bind(n.saturating_sub(1))
            .fetch_optional(&self.pool)
            .await?;
        optional_time(0, at)
    }

    async fn next_due(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        // The claim index's first entry below a priority is the next
        // priority's earliest job. MariaDB plans that step poorly inside
        // one recursive statement (it reads the queue's whole index range),
        // so each priority is its own statement: a few index probes in all.
        let mut conn = self.pool.acquire().await?;
        let (mut below, mut earliest) = (i64::MAX, None::<i64>);
        while let Some((priority, at)) = sqlx::query_as::<_, (i32, i64)>(sql::NEXT_DUE)
            .bind(queue)
            .bind(below)
            .fetch_optional(&mut *conn)
            .await?
        {
            earliest = Some(earliest.map_or(at, |earliest| earliest.min(at)));
            below = i64::from(priority);
        }
        optional_time(0, earliest)
    }

    async fn due_queues(
        &self,
        queues: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        // One probe per queue, each stopping at its first due job: a queue
        // with a backlog (paused, or at a limit) costs one index entry.
        let mut query = QueryBuilder::<MySql>::new("");
        for (n, queue) in queues.iter().enumerate() {
            if n > 0 {
                query.push(" UNION ALL ");
            }
            query
                .push("(SELECT CAST(queue AS CHAR) FROM jobs WHERE state = 'pending' AND queue = ")
                .push_bind(*queue)
                .push(" AND available_at <= ")
                .push_bind(micros(now))
                .push(" LIMIT 1)");
        }
        Ok(query.build_query_scalar().fetch_all(&self.pool).await?)
    }

    async fn mark_started(&self, claims: &[Claim]) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let claims = in_id_order(claims);
        let statement = sql::mark_started(claims.len());
        retry_deadlocks(|| async {
            let query = bind_claims(sqlx::query(&statement), &claims);
            Ok::<_, sqlx::Error>(query.execute(&self.pool).await?.rows_affected())
        })
        .await
    }

    async fn complete(&self, request: CompleteRequest<'_>) -> Result<u64, StoreError> {
        if request.completions.is_empty() {
            return Ok(0);
        }
        let mut sorted = request.completions.to_vec();
        sorted.sort_by_key(|c| c.claim);
        let request = CompleteRequest {
            completions: &sorted,
            ..request
        };
        retry_deadlocks(|| self.try_complete(request)).await
    }

    async fn record_progress(&self, request: ProgressRequest<'_>) -> Result<bool, StoreError> {
        let ProgressRequest { claim, progress } = request;
        let done = sqlx::query(sql::RECORD_PROGRESS)
            .bind(i16::from(progress.percent))
            .bind(&progress.message)
            .bind(claim.id)
            .bind(claim.token)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn extend_leases(&self, request: RenewRequest<'_>) -> Result<Vec<Claim>, StoreError> {
        if request.claims.is_empty() {
            return Ok(Vec::new());
        }
        let claims = in_id_order(request.claims);
        let request = RenewRequest {
            claims: &claims,
            ..request
        };
        retry_deadlocks(|| self.try_extend_leases(request)).await
    }

    async fn release(&self, claims: &[Claim]) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let claims = in_id_order(claims);
        let statement = sql::release(claims.len());
        retry_deadlocks(|| async {
            let query = bind_claims(sqlx::query(&statement), &claims);
            Ok::<_, sqlx::Error>(query.execute(&self.pool).await?.rows_affected())
        })
        .await
    }

    async fn rescue(&self, now: Option<DateTime<Utc>>) -> Result<Vec<JobId>, StoreError> {
        retry_deadlocks(|| self.try_rescue(now)).await
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(sql::GET_JOB)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(record).transpose()
    }

    async fn list(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let mut query = QueryBuilder::new(sql::LIST_JOBS);
        let size = push_filter(&mut query, filter, micros)?;
        let rows = query.build().fetch_all(&self.pool).await?;
        let jobs = rows.iter().map(record).collect::<Result<_, _>>()?;
        Ok(JobPage::from_rows(jobs, size))
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, StoreError> {
        let rows = sqlx::query(sql::QUEUE_STATS)
            .bind(micros(now))
            .bind(micros(now))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let n: i64 = row.try_get("n")?;
                Ok(QueueStats {
                    queue: text(row, "queue")?,
                    due: from_count(n),
                    oldest_due_at: optional_time(0, row.try_get("oldest")?)?,
                    paused: row.try_get::<i64, _>("paused")? == 1,
                })
            })
            .collect()
    }

    async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>, StoreError> {
        let rows = sqlx::query(sql::THROUGHPUT)
            .bind(micros(since))
            .fetch_all(&self.pool)
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

    async fn set_paused(&self, request: PauseRequest<'_>) -> Result<(), StoreError> {
        sqlx::query(sql::SET_PAUSED)
            .bind(request.queue)
            .bind(request.paused)
            .bind(micros(request.now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn flow_usage(&self, now: DateTime<Utc>) -> Result<Vec<super::FlowUsage>, StoreError> {
        // One snapshot for every read (the store's sessions read committed
        // data per statement), so a claim between them cannot show its
        // jobs gone from the due ones before their starts count.
        let mut session = self.pool.acquire().await?;
        sqlx::query(sql::NEXT_TRANSACTION_SNAPSHOT)
            .execute(&mut *session)
            .await?;
        let mut conn = sqlx::Connection::begin(&mut *session).await?;
        let key_counts = |rows: Vec<MySqlRow>| {
            rows.iter()
                .map(|row| {
                    Ok((
                        text(row, "queue")?,
                        optional_text(row, "partition_key")?,
                        row.try_get("n")?,
                    ))
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
        };
        let settings = sqlx::query(sql::FLOW_QUEUES)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| Ok((text(row, "name")?, flow::flow_of(row)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let running = key_counts(sqlx::query(sql::FLOW_RUNNING).fetch_all(&mut *conn).await?)?;
        let starts = sqlx::query(sql::FLOW_STARTS)
            .bind(micros(now))
            .fetch_all(&mut *conn)
            .await?;
        let due = sqlx::query(sql::FLOW_DUE)
            .bind(micros(now))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    text(row, "queue")?,
                    row.try_get("n")?,
                    row.try_get("unkeyed")?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        let rows = super::UsageRows {
            settings,
            running,
            starts: key_counts(starts)?,
            due,
        };
        let mut usage = Vec::new();
        for draft in super::draft(rows) {
            let due: i64 = if draft.full_keys().is_empty() {
                0
            } else {
                let statement = sql::flow_keys_due(draft.full_keys().len());
                let mut query = sqlx::query_scalar(&statement).bind(draft.queue());
                for key in draft.full_keys() {
                    query = query.bind(key);
                }
                query.bind(micros(now)).fetch_one(&mut *conn).await?
            };
            usage.push(draft.finish(due));
        }
        conn.commit().await?;
        Ok(usage)
    }

    async fn set_flow(&self, request: FlowRequest<'_>) -> Result<(), StoreError> {
        let flow = request.flow;
        let rate = flow.rate;
        sqlx::query(sql::SET_FLOW)
            .bind(request.queue)
            .bind(flow.concurrency)
            .bind(flow.key_concurrency)
            .bind(rate.map(|rate| rate.starts))
            .bind(rate.map(|rate| rate.period_ms()))
            .bind(rate.is_some_and(|rate| rate.per_key))
            .bind(flow.fair)
            .bind(micros(request.now))
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

    async fn delete(&self, id: JobId) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_JOB)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn try_lease(&self, request: LeaseRequest<'_>) -> Result<bool, StoreError> {
        let LeaseHolder { name, holder } = request.lease;
        let now = request.now.map(micros);
        let ttl = super::rows::lease_micros(request.ttl);
        // The connection counts matched rows, not changed ones: a renewal to
        // the same time still counts as held.
        let taken = sqlx::query(sql::TRY_LEASE)
            .bind(holder)
            .bind(now)
            .bind(ttl)
            .bind(name)
            .bind(holder)
            .bind(now)
            .execute(&self.pool)
            .await?;
        if taken.rows_affected() == 1 {
            return Ok(true);
        }
        let inserted = sqlx::query(sql::TRY_LEASE_INSERT)
            .bind(name)
            .bind(holder)
            .bind(now)
            .bind(ttl)
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(_) => Ok(true),
            // Someone else holds it (or took it a moment ago).
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn publish_concurrency(&self, report: ConcurrencyReport<'_>) -> Result<(), StoreError> {
        super::concurrency::mysql::publish(&self.pool, report).await
    }

    async fn worker_concurrency(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<super::WorkerConcurrency>, StoreError> {
        super::concurrency::mysql::live(&self.pool, now).await
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
        // Instances creating a schedule's row at once can deadlock on it;
        // the loser's transaction is rolled back whole and simply runs again.
        retry_deadlocks(|| self.try_take_tick(request)).await
    }

    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        let rows = sqlx::query(sql::SCHEDULE_STATES)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ScheduleState {
                    name: text(row, "name")?,
                    last_fire_at: from_micros(0, row.try_get("last_fire_at")?)?,
                    last_job_id: row.try_get("last_job_id")?,
                })
            })
            .collect()
    }

    async fn schedule_runs(&self, name: &str, limit: u32) -> Result<Vec<ScheduleRun>, StoreError> {
        let rows = sqlx::query(sql::SCHEDULE_RUNS)
            .bind(name)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let job_id: JobId = row.try_get("job_id")?;
                Ok(ScheduleRun {
                    fire_at: from_micros(job_id, row.try_get("fire_at")?)?,
                    job_id,
                    state: optional_text(row, "state")?
                        .map(|s| state_of(job_id, &s))
                        .transpose()?,
                })
            })
            .collect()
    }

    async fn prune_schedule_runs(&self, limit: u32) -> Result<u64, StoreError> {
        // No DELETE here may read the table it deletes from: the rows are
        // locked first, then deleted in one statement.
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query(sql::LOCK_GONE_RUNS)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        if gone.is_empty() {
            return Ok(0);
        }
        let statement = sql::forget_runs(gone.len());
        let mut delete = sqlx::query(&statement);
        for row in &gone {
            delete = delete
                .bind(text(row, "name")?)
                .bind(row.try_get::<JobId, _>("job_id")?);
        }
        let pruned = delete.execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(pruned)
    }

    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> Result<(BatchId, Vec<JobId>), StoreError> {
        retry_deadlocks(|| async {
            let mut tx = self.pool.begin().await?;
            let created =
                super::batches::create(&mut batches::MySqlBatch(&mut tx), batch, jobs).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(created)
        })
        .await
    }

    async fn add_to_batch(&self, add: BatchAdd<'_>) -> Result<Vec<JobId>, StoreError> {
        retry_deadlocks(|| async {
            let mut tx = self.pool.begin().await?;
            let ids = super::batches::add(&mut batches::MySqlBatch(&mut tx), add).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(ids)
        })
        .await
    }

    async fn prune_batches(&self, request: PruneRequest) -> Result<u64, StoreError> {
        retry_deadlocks(|| async {
            let done = sqlx::query(batches::PRUNE)
                .bind(micros(request.before))
                .bind(request.limit)
                .execute(&self.pool)
                .await?;
            Ok::<_, sqlx::Error>(done.rows_affected())
        })
        .await
    }

    async fn create_workflow(
        &self,
        workflow: &NewWorkflow,
    ) -> Result<(BatchId, Vec<JobId>), StoreError> {
        retry_deadlocks(|| async {
            let mut tx = self.pool.begin().await?;
            let created =
                super::workflows::create(&mut batches::MySqlBatch(&mut tx), workflow).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(created)
        })
        .await
    }

    async fn release_dependents(&self, now: DateTime<Utc>) -> Result<Released, StoreError> {
        // Most looks find nothing to release: one read says so, without a transaction.
        let any: bool = sqlx::query_scalar(super::workflows::ANY_EVENT)
            .fetch_one(&self.pool)
            .await?;
        if !any {
            return Ok(Released::default());
        }
        retry_deadlocks(|| async {
            let mut tx = self.pool.begin().await?;
            let due = super::workflows::release(&mut batches::MySqlBatch(&mut tx), now).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(due)
        })
        .await
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
        let mut query = QueryBuilder::new("SELECT COUNT(*) FROM jobs");
        push_conditions(&mut query, filter, micros);
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
        retry_deadlocks(|| async {
            let mut tx = self.pool.begin().await?;
            let fired = super::batches::fire(&mut batches::MySqlBatch(&mut tx), now, limit).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(fired)
        })
        .await
    }

    async fn outcomes(&self, since: DateTime<Utc>) -> Result<Vec<TypeOutcomes>, StoreError> {
        let rows = sqlx::query(sql::OUTCOMES)
            .bind(micros(since))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let finished: i64 = row.try_get("finished")?;
                let failed: i64 = row.try_get("failed")?;
                Ok(TypeOutcomes {
                    job_type: text(row, "type")?,
                    finished: from_count(finished),
                    failed: from_count(failed),
                })
            })
            .collect()
    }

    async fn open_alert(&self, alert: &NewAlert) -> Result<Option<AlertRecord>, StoreError> {
        let inserted = sqlx::query(sql::OPEN_ALERT)
            .bind(&alert.rule)
            .bind(&alert.subject)
            .bind(&alert.summary)
            .bind(micros(alert.fired_at))
            .bind(open_key(alert))
            .execute(&self.pool)
            .await;
        match inserted {
            Ok(done) => {
                let id =
                    AlertId::try_from(done.last_insert_id()).map_err(|_| StoreError::Corrupt {
                        id: 0,
                        reason: format!("inserted alert id {} out of range", done.last_insert_id()),
                    })?;
                Ok(Some(opened(id, alert)))
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn resolve_alert(&self, id: AlertId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RESOLVE_ALERT)
            .bind(micros(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn alerts(&self, resolved: u32) -> Result<Vec<AlertRecord>, StoreError> {
        let mut rows = sqlx::query(sql::ALERTS_FIRING)
            .fetch_all(&self.pool)
            .await?;
        rows.extend(
            sqlx::query(sql::ALERTS_RESOLVED)
                .bind(resolved)
                .fetch_all(&self.pool)
                .await?,
        );
        rows.iter()
            .map(|row| {
                let id: AlertId = row.try_get("id")?;
                Ok(AlertRecord {
                    id,
                    rule: text(row, "rule")?,
                    subject: text(row, "subject")?,
                    summary: text(row, "summary")?,
                    fired_at: from_micros(id, row.try_get("fired_at")?)?,
                    resolved_at: optional_time(id, row.try_get("resolved_at")?)?,
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
        let done = sqlx::query(sql::REQUEST_CANCEL)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn cancels_requested(&self, claims: &[Claim]) -> Result<Vec<Claim>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let statement = sql::cancels_requested(claims.len());
        let rows = bind_claims(sqlx::query(&statement), claims)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                Ok(Claim {
                    id: row.try_get("id")?,
                    token: row.try_get("lease_token")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?)
    }

    async fn cancel(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::CANCEL)
            .bind(micros(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry(&self, request: RetryRequest) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::RETRY)
            .bind(micros(request.now))
            .bind(request.extra_attempts.max(1))
            .bind(request.id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_sequences(&self, limit: u32) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let pruned = sequences::prune(&mut tx, limit).await?;
        tx.commit().await?;
        Ok(pruned)
    }

    async fn prune_idle_keys(&self, limit: u32) -> Result<u64, StoreError> {
        // No DELETE here may read the table it deletes from: the keys are
        // locked first, skipping those a dispatch holds, then deleted.
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(sql::LOCK_IDLE_KEYS)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let statement = sql::delete_idle_keys(rows.len());
        let mut delete = sqlx::query(&statement);
        for row in &rows {
            delete = delete
                .bind(text(row, "queue")?)
                .bind(text(row, "partition_key")?);
        }
        let done = delete.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn prune_alerts(&self, request: PruneRequest) -> Result<u64, StoreError> {
        let done = sqlx::query(sql::PRUNE_ALERTS)
            .bind(micros(request.before))
            .bind(request.limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
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
                        job_type: text(row, "type")?,
                        queue: text(row, "queue")?,
                        unique_key: optional_text(row, "unique_key")?,
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
                let statement = sql::retry_failed_held_keys(keys.len());
                let mut query = sqlx::query(&statement);
                for key in &keys {
                    query = query.bind(*key);
                }
                query
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|row| text(row, "unique_key"))
                    .collect::<Result<_, sqlx::Error>>()?
            };
            let (groups, skipped) = plan_retry(request, &batch, &held);
            done.add(0, skipped, []);
            for (extra, jobs) in groups {
                match self.retry_jobs(&jobs, request.now, extra).await {
                    Ok(retried) => done.add(retried, 0, jobs.iter().map(|job| job.queue.as_str())),
                    // A key taken meanwhile: the statement changed nothing, so
                    // go one job at a time and skip the jobs whose key is held.
                    Err(error) if error.is_unique_violation() => {
                        for job in jobs {
                            match self.retry_jobs(&[job], request.now, extra).await {
                                Ok(retried) => done.add(retried, 0, [job.queue.as_str()]),
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
            .bind(micros(request.before))
            .bind(request.limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
