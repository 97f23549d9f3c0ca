//! The SQLite store: the embedded default, one file and no server.
//!
//! SQLite runs in this process, so a statement costs what SQLite spends on
//! it and nothing more: statements run on the calling task's thread, each
//! prepared once per connection, with no hand-off to another thread and
//! back. Work that may take long (bulk inserts, scans for the dashboard,
//! rescues and pruning) moves off the async runtime's worker for its length
//! ([`tokio::task::block_in_place`], on a multi-threaded runtime).
//!
//! Every connection uses WAL and `synchronous = NORMAL`. Writes go through
//! one held connection behind an async mutex, so writers in one process
//! queue in Rust. While another process holds the file's write lock, a
//! write waits by sleeping asynchronously and trying again, for up to
//! [`BUSY_TIMEOUT`], instead of in SQLite's busy handler, which would stall
//! the thread. Reads use read-only connections, except in memory, where the
//! one connection does everything.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params, params_from_iter};
use tokio::sync::Mutex;

use super::rows::{
    FilterTerms, FilterValue, conditions, filter_terms, from_count, from_micros, json_list, micros,
    open_key, opened, optional_time, rows_to_read, state_of, to_u32,
};
use super::{
    AlertId, AlertRecord, AttemptError, BatchAdd, BatchId, BatchRecord, Claim, ClaimRequest,
    ClaimToken, ClaimedJob, CompleteRequest, Completion, ConcurrencyReport, FailedJob, FlowRequest,
    JobFilter, JobPage, JobRecord, LeaseHolder, LeaseRequest, MigrationStatus, MinuteCount,
    NewAlert, NewBatch, NewJob, Outcome, PauseRequest, Progress, ProgressRequest, PruneRequest,
    QueueFlow, QueueStats, RETRY_FAILED_BATCH, RenewRequest, RetriedFailed, RetryFailed,
    RetryRequest, ScheduleRun, ScheduleState, StateCount, Store, StoreError, Tick, TickRequest,
    TypeCount, TypeOutcomes, batch_keys, plan_retry,
};
use super::{Dependency, NewWorkflow, Released};
use crate::job::{JobId, JobState};

mod batches;
mod connections;
mod flow;
mod migrations;
mod sequences;
pub(super) mod sql;
mod wakeups;
mod workflows;

pub use connections::{BUSY_TIMEOUT, Reader, Writer};
use connections::{Readers, long};

/// Jobs in one insert above which it runs off the async worker.
const LONG_INSERT: usize = 64;

/// A Hopper store in one SQLite file (or in memory).
///
/// Clones share one writing connection and one set of read connections.
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
    writer: Arc<Mutex<Option<Connection>>>,
    /// Read-only connections on the file; `None` in memory.
    readers: Option<Arc<Readers>>,
    /// The database file (empty in memory).
    path: Arc<Path>,
    /// The queues last found with flow settings.
    flow_queues: super::FlowQueues,
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
    pub async fn migration_status(&self) -> Result<Vec<MigrationStatus>, StoreError> {
        let applied: Vec<(i64, DateTime<Utc>)> = self
            .read(migrations::applied)
            .await?
            .into_iter()
            .filter(|done| done.success)
            .filter_map(|done| {
                let at =
                    chrono::NaiveDateTime::parse_from_str(&done.installed_on, "%Y-%m-%d %H:%M:%S");
                Some((done.version, at.ok()?.and_utc()))
            })
            .collect();
        Ok(MigrationStatus::of_carried(
            migrations::MIGRATIONS
                .iter()
                .map(|m| (m.version, m.description)),
            &applied,
        ))
    }
}

/// Claims grouped by their token, each group as its token and the JSON
/// array of its jobs' ids, in token order: a claim-guarded statement (one
/// ending in `sqlite_held_claims!`) runs once per group. A list mostly
/// holds the jobs of one or two claims, and ids read with `json_each` and
/// looked up by primary key cost about a fifth less per job than a join on
/// `[id, token]` pairs, whose every element is taken apart twice.
fn by_token(claims: &[Claim]) -> Result<Vec<(ClaimToken, String)>, StoreError> {
    let mut groups: BTreeMap<ClaimToken, Vec<JobId>> = BTreeMap::new();
    for claim in claims {
        groups.entry(claim.token).or_default().push(claim.id);
    }
    groups
        .into_iter()
        .map(|(token, ids)| Ok((token, json_list(&ids)?)))
        .collect()
}

/// The parameters of a claim-guarded statement for one group of
/// [`by_token`]: its ids and token, then the statement's own `rest`.
fn group_params<'p>(
    (token, ids): &'p (ClaimToken, String),
    rest: &[&'p dyn ToSql],
) -> Vec<&'p dyn ToSql> {
    let mut params: Vec<&dyn ToSql> = vec![ids, token];
    params.extend_from_slice(rest);
    params
}

/// Runs the claim-guarded `statement` (see `sqlite_held_claims!`) once per
/// group of `groups` on `conn`, with its own parameters `rest` after each
/// group's; answers how many rows it changed in all.
fn apply_per_token(
    conn: &Connection,
    statement: &str,
    groups: &[(ClaimToken, String)],
    rest: &[&dyn ToSql],
) -> Result<u64, StoreError> {
    let mut statement = conn.prepare_cached(statement)?;
    let mut applied = 0;
    for group in groups {
        applied += changed(statement.execute(&*group_params(group, rest))?);
    }
    Ok(applied)
}

/// Runs the claim-guarded `statement`, which answers a job's id and token
/// per row, once per group of `groups` on `conn`, with its own parameters
/// `rest` after each group's; answers the claims of every group, in order.
fn claims_per_token(
    conn: &Connection,
    statement: &str,
    groups: &[(ClaimToken, String)],
    rest: &[&dyn ToSql],
) -> Result<Vec<Claim>, StoreError> {
    let mut claims = Vec::new();
    for group in groups {
        claims.extend(all(conn, statement, &*group_params(group, rest), |row| {
            Ok(Claim {
                id: row.get(0)?,
                token: row.get(1)?,
            })
        })?);
    }
    claims.sort_unstable();
    Ok(claims)
}

/// How the finished runs of a completion are written.
enum Finishing {
    /// None set an output: [`sql::COMPLETE_FINISHED`] once per claim token
    /// ([`by_token`]), leaving `output` alone.
    Held(Vec<(ClaimToken, String)>),
    /// Some set one: [`sql::COMPLETE_FINISHED_WITH_OUTPUT`] once, over the
    /// `[id, token, output]` triples of every finished run (output: JSON
    /// text or null).
    WithOutput(String),
}

impl Finishing {
    /// The finished runs of `completions`; `None` when none finished.
    fn of(completions: &[Completion]) -> Result<Option<Self>, StoreError> {
        use serde_json::Value;
        let finished = completions.iter().filter(|c| c.outcome.is_finished());
        if !finished.clone().any(|c| c.outcome.output().is_some()) {
            let claims: Vec<Claim> = finished.map(|c| c.claim).collect();
            return Ok((!claims.is_empty())
                .then(|| by_token(&claims))
                .transpose()?
                .map(Self::Held));
        }
        let triples: Vec<Value> = finished
            .map(|c| {
                Value::Array(vec![
                    c.claim.id.into(),
                    c.claim.token.into(),
                    c.outcome.output().map_or(Value::Null, Value::from),
                ])
            })
            .collect();
        Ok(Some(Self::WithOutput(Value::Array(triples).to_string())))
    }

    /// How many statements write them.
    fn statements(&self) -> usize {
        match self {
            Self::Held(groups) => groups.len(),
            Self::WithOutput(_) => 1,
        }
    }

    /// Writes them at `now` on `conn`; answers how many rows changed.
    fn write(&self, conn: &Connection, now: DateTime<Utc>) -> Result<u64, StoreError> {
        match self {
            Self::Held(groups) => {
                apply_per_token(conn, sql::COMPLETE_FINISHED, groups, &[&micros(now)])
            }
            Self::WithOutput(list) => Ok(changed(
                conn.prepare_cached(sql::COMPLETE_FINISHED_WITH_OUTPUT)?
                    .execute(params![micros(now), list])?,
            )),
        }
    }
}

/// Runs a future that never waits to its end, on the thread that holds the
/// writer: the shared drivers of flow-controlled claims and of batches
/// ([`super::flow`], [`super::batches`]) are async, and SQLite's answers to
/// their steps are synchronous calls on the writer's transaction.
fn run_now<F: std::future::Future>(future: F) -> Result<F::Output, StoreError> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => Err(StoreError::Internal(
            "a synchronous SQLite step waited".to_owned(),
        )),
    }
}

/// The values of a filter's terms, as statements bind them.
fn filter_values(terms: FilterTerms<'_>) -> Vec<Value> {
    terms
        .into_iter()
        .map(|(_, value)| match value {
            FilterValue::Text(text) => Value::Text(text.to_owned()),
            FilterValue::Id(id) => Value::Integer(id),
            FilterValue::Time(at) => Value::Integer(micros(at)),
        })
        .collect()
}

/// One entry of the `errors` JSON array, as text.
fn error_entry(attempt: u32, at: DateTime<Utc>, error: &str) -> String {
    serde_json::json!({ "attempt": attempt, "at": at, "error": error }).to_string()
}

/// Runs `sql`, prepared once per connection, with `params`, and reads each
/// row it answers with `read`.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    mut read: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next()? {
        all.push(read(row)?);
    }
    Ok(all)
}

/// Claims up to `limit` of the request's queue's due jobs with `statement`
/// ([`sql::CLAIM`] or [`sql::CLAIM_IN_ORDER`]), leased from `now` (`None`:
/// the database's), best first; the first `start_now` start at once,
/// recorded as [`Store::mark_started`] records a later start.
fn claim_in(
    conn: &Connection,
    statement: &str,
    request: &ClaimRequest<'_>,
    limit: u32,
    now: Option<DateTime<Utc>>,
) -> Result<Vec<ClaimedJob>, StoreError> {
    let params = params![
        micros(request.due_by),
        request.worker,
        super::rows::lease_micros(request.lease),
        request.queue,
        limit,
        request.token,
        now.map(micros),
    ];
    let mut jobs = all(conn, statement, params, |row| claimed(row, false))?;
    // RETURNING's order is unspecified.
    jobs.sort_by_key(|job| (std::cmp::Reverse(job.priority), job.id));
    let start_now = usize::try_from(request.start_now).unwrap_or(usize::MAX);
    let starting: Vec<JobId> = jobs.iter().take(start_now).map(|job| job.id).collect();
    if !starting.is_empty() {
        conn.prepare_cached(sql::MARK_STARTED)?
            .execute(params![json_list(&starting)?, request.token])?;
        for job in jobs.iter_mut().take(start_now) {
            job.run_started = true;
        }
    }
    Ok(jobs)
}

/// The job a claim's `RETURNING id, lease_token, type, queue, payload,
/// priority, attempts, max_attempts, batch_id, has_dependents, trace_context` row took,
/// its run started or not.
fn claimed(row: &Row<'_>, run_started: bool) -> Result<ClaimedJob, StoreError> {
    let id = row.get(0)?;
    Ok(ClaimedJob {
        id,
        token: row.get(1)?,
        job_type: row.get(2)?,
        queue: row.get(3)?,
        payload: row.get(4)?,
        priority: row.get(5)?,
        attempt: to_u32(id, "attempts", row.get::<_, i64>(6)?)?,
        max_attempts: to_u32(id, "max_attempts", row.get::<_, i64>(7)?)?,
        batch: row.get(8)?,
        has_dependents: row.get(9)?,
        run_started,
        trace_context: row.get(10)?,
    })
}

/// The job a row of [`sql::GET_JOB`] or [`sql::list_jobs`] stores, or why it
/// cannot be read.
fn record(row: &Row<'_>) -> Result<JobRecord, StoreError> {
    let id: JobId = row.get(0)?;
    let corrupt = |reason: String| StoreError::Corrupt { id, reason };
    let state: String = row.get(4)?;
    let errors: String = row.get(15)?;
    Ok(JobRecord {
        id,
        job_type: row.get(1)?,
        queue: row.get(2)?,
        payload: row.get(3)?,
        state: state_of(id, &state)?,
        priority: row.get(5)?,
        attempts: to_u32(id, "attempts", row.get::<_, i64>(6)?)?,
        max_attempts: to_u32(id, "max_attempts", row.get::<_, i64>(7)?)?,
        available_at: from_micros(id, row.get(8)?)?,
        created_at: from_micros(id, row.get(9)?)?,
        started_at: optional_time(id, row.get(10)?)?,
        finished_at: optional_time(id, row.get(11)?)?,
        locked_by: row.get(12)?,
        locked_until: optional_time(id, row.get(13)?)?,
        last_error: row.get(14)?,
        errors: serde_json::from_str::<Vec<AttemptError>>(&errors)
            .map_err(|e| corrupt(format!("error history: {e}")))?,
        unique_key: row.get(16)?,
        output: row.get(17)?,
        progress: Progress::from_columns(id, row.get(18)?, row.get(19)?)?,
        batch_id: row.get(20)?,
        waiting_on: to_u32(id, "waiting_on", row.get::<_, i64>(21)?)?,
    })
}

/// Inserts `jobs` on `conn`, inside whatever transaction it is in: pass the
/// application's own transaction and the jobs exist if and only if it
/// commits. Returns their ids in order; a job whose unique key a live job
/// holds is not stored, and that job's id stands in for it.
///
/// [`Hopper::sqlite_transaction`](crate::Hopper::sqlite_transaction) is the
/// way in for applications: it also records the dispatch and wakes workers
/// on commit.
pub(crate) fn insert_in(conn: &Connection, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
    if jobs.iter().any(|job| job.sequence.is_some()) {
        let mut sequence = sequences::SqliteSequence(conn);
        return run_now(super::sequences::insert(&mut sequence, jobs))?;
    }
    insert_plain(conn, jobs)
}

/// Inserts `jobs` on `conn` as [`insert_in`] does, their sequences aside.
fn insert_plain(conn: &Connection, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
    if jobs.len() > 1 && jobs.iter().all(|job| job.unique_key.is_none()) {
        return insert_rows(conn, jobs);
    }
    let mut insert = conn.prepare_cached(sql::INSERT_JOB)?;
    let mut ids = Vec::with_capacity(jobs.len());
    for job in jobs {
        let inserted = insert.execute(params![
            job.job_type,
            job.queue,
            job.payload,
            job.priority,
            job.max_attempts,
            micros(job.available_at),
            micros(job.created_at),
            job.unique_key,
            job.partition_key,
            job.trace_context,
        ])?;
        ids.push(if inserted == 1 {
            conn.last_insert_rowid()
        } else {
            // SQLite has one writer, so the conflicting row cannot change in between.
            conn.prepare_cached(sql::FIND_LIVE_UNIQUE_KEY)?
                .query_row([&job.unique_key], |row| row.get(0))?
        });
    }
    Ok(ids)
}

/// Jobs per statement in a bulk insert: 9 bound values each, well under
/// SQLite's limit of 32,766 per statement.
const INSERT_CHUNK: usize = 1_000;

/// Inserts jobs without unique keys, [`INSERT_CHUNK`] to a statement: many
/// rows to a statement cost SQLite far less than a statement per row.
fn insert_rows(conn: &Connection, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
    static FULL_CHUNK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let mut ids = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(INSERT_CHUNK) {
        let times: Vec<[i64; 2]> = chunk
            .iter()
            .map(|job| [micros(job.available_at), micros(job.created_at)])
            .collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(chunk.len() * 9);
        for (job, [available_at, created_at]) in chunk.iter().zip(&times) {
            values.extend([
                &job.job_type as &dyn rusqlite::ToSql,
                &job.queue,
                &job.payload,
                &job.priority,
                &job.max_attempts,
                available_at,
                created_at,
                &job.partition_key,
                &job.trace_context,
            ]);
        }
        let start = ids.len();
        // Full chunks share one prepared statement; the last, shorter one
        // is prepared for its one use.
        let (mut cached, mut once);
        let insert: &mut rusqlite::Statement<'_> = if chunk.len() == INSERT_CHUNK {
            cached =
                conn.prepare_cached(FULL_CHUNK.get_or_init(|| sql::insert_jobs(INSERT_CHUNK)))?;
            &mut cached
        } else {
            once = conn.prepare(&sql::insert_jobs(chunk.len()))?;
            &mut once
        };
        let mut rows = insert.query(values.as_slice())?;
        while let Some(row) = rows.next()? {
            ids.push(row.get(0)?);
        }
        // Rows are inserted in order with increasing ids; RETURNING's order is unspecified.
        ids[start..].sort_unstable();
    }
    Ok(ids)
}

/// Rows changed by the last statement, as the contract counts them.
fn changed(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

/// The rows of `sql`, a count of jobs grouped by a name (a queue or a
/// type) and state: each its name, state and count.
fn state_counts(conn: &Connection, sql: &str) -> Result<Vec<(String, JobState, u64)>, StoreError> {
    long(|| {
        all(conn, sql, [], |row| {
            let state: String = row.get(1)?;
            Ok((row.get(0)?, state_of(0, &state)?, from_count(row.get(2)?)))
        })
    })
}

impl SqliteStore {
    /// Claims from `request`'s queue as its flow settings allow (`None`:
    /// it has none), remembering whether it has any.
    async fn claim_flow(
        &self,
        request: &ClaimRequest<'_>,
    ) -> Result<Option<Vec<ClaimedJob>>, StoreError> {
        let claimed = self
            .transaction(|tx| run_now(super::flow::claim(&mut flow::SqliteFlow(tx), request))?)
            .await?;
        self.flow_queues.set(request.queue, claimed.is_some());
        Ok(claimed)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // SQLite has no advisory lock: the transaction holds the write lock
        // for the whole run, so a second instance migrating at once waits,
        // then finds it done.
        self.transaction(|tx| long(|| migrations::apply(tx))).await
    }

    async fn insert(&self, jobs: &[NewJob]) -> Result<Vec<JobId>, StoreError> {
        if let [job] = jobs {
            if job.unique_key.is_none() && job.sequence.is_none() {
                // One statement commits on its own, without BEGIN and COMMIT.
                return self.write(|conn| insert_in(conn, jobs)).await;
            }
        }
        if jobs.len() > LONG_INSERT {
            self.transaction(|tx| long(|| insert_in(tx, jobs))).await
        } else {
            self.transaction(|tx| insert_in(tx, jobs)).await
        }
    }

    async fn claim(&self, request: ClaimRequest<'_>) -> Result<Vec<ClaimedJob>, StoreError> {
        if self.flow_queues.contains(request.queue) {
            if let Some(jobs) = self.claim_flow(&request).await? {
                return Ok(jobs);
            }
        }
        // Every due job taken is claimed ahead by this statement; the next
        // records the first `start_now` of them as started. Two statements
        // cost less than one that numbers the rows it claims (a window or a
        // materialised CTE cost 40% and 15% more per claim). They share one
        // transaction: written on their own, another process could take the
        // write lock between them, and the claim, tried again whole, would
        // find nothing left to take and never answer the jobs it took.
        let jobs = self
            .transaction(|conn| claim_in(conn, sql::CLAIM, &request, request.limit, request.now))
            .await?;
        if !jobs.is_empty() {
            return Ok(jobs);
        }
        // Nothing due, paused, or a queue with flow settings, whose claims
        // run one at a time in a transaction (most empty claims are of
        // queues without: one read tells them apart first).
        let has_flow = self
            .read(|conn| {
                Ok(conn
                    .prepare_cached(sql::QUEUE_HAS_FLOW)?
                    .query_row([request.queue], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .await?;
        if !has_flow {
            return Ok(Vec::new());
        }
        Ok(self.claim_flow(&request).await?.unwrap_or_default())
    }

    async fn nth_latest_start(
        &self,
        queue: &str,
        n: u32,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let skip = n.saturating_sub(1);
        let at: Option<i64> = self
            .read(|conn| {
                Ok(conn
                    .prepare_cached(sql::NTH_LATEST_START)?
                    .query_row(params![queue, skip], |row| row.get(0))
                    .optional()?)
            })
            .await?;
        optional_time(0, at)
    }

    async fn next_due(&self, queue: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        static NEXT_DUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(sql::next_due);
        let at: Option<i64> = self
            .read(|conn| {
                Ok(conn
                    .prepare_cached(&NEXT_DUE)?
                    .query_row([queue], |row| row.get(0))?)
            })
            .await?;
        optional_time(0, at)
    }

    async fn mark_started(&self, claims: &[Claim]) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let groups = by_token(claims)?;
        self.write_all(groups.len(), |conn| {
            apply_per_token(conn, sql::MARK_STARTED, &groups, &[])
        })
        .await
    }

    async fn complete(&self, request: CompleteRequest<'_>) -> Result<u64, StoreError> {
        // Each write applies only under its claim's token, which a job
        // carries exactly while it is started.
        let CompleteRequest {
            completions,
            ended_at: now,
        } = request;
        let finished = Finishing::of(completions)?;
        let ended: Vec<(&Completion, &str, DateTime<Utc>, &String)> = completions
            .iter()
            .filter_map(|completion| match &completion.outcome {
                Outcome::Retry { at, error } => Some((completion, sql::COMPLETE_RETRY, *at, error)),
                Outcome::Failed { error } => Some((completion, sql::COMPLETE_FAILED, now, error)),
                _ => None,
            })
            .collect();
        // Runs that ended without an error to record: snoozed or cancelled.
        let set_back: Vec<(&Completion, &str, DateTime<Utc>)> = completions
            .iter()
            .filter_map(|completion| match &completion.outcome {
                Outcome::Snoozed { at } => Some((completion, sql::COMPLETE_SNOOZED, *at)),
                Outcome::Cancelled => Some((completion, sql::COMPLETE_CANCELLED, now)),
                _ => None,
            })
            .collect();
        let write = |conn: &Connection| -> Result<u64, StoreError> {
            let mut applied = match &finished {
                Some(finishing) => finishing.write(conn, now)?,
                None => 0,
            };
            for (completion, sql, at, error) in &ended {
                applied += changed(conn.prepare_cached(sql)?.execute(params![
                    micros(*at),
                    error,
                    error_entry(completion.attempt, now, error),
                    completion.claim.id,
                    completion.claim.token,
                ])?);
            }
            for (completion, sql, at) in &set_back {
                applied += changed(conn.prepare_cached(sql)?.execute(params![
                    micros(*at),
                    completion.claim.id,
                    completion.claim.token,
                ])?);
            }
            Ok(applied)
        };
        let statements =
            finished.as_ref().map_or(0, Finishing::statements) + ended.len() + set_back.len();
        self.write_all(statements, write).await
    }

    async fn record_progress(&self, request: ProgressRequest<'_>) -> Result<bool, StoreError> {
        let ProgressRequest { claim, progress } = request;
        self.write(|conn| {
            Ok(conn.prepare_cached(sql::RECORD_PROGRESS)?.execute(params![
                claim.id,
                claim.token,
                progress.percent,
                progress.message,
            ])? > 0)
        })
        .await
    }

    async fn extend_leases(&self, request: RenewRequest<'_>) -> Result<Vec<Claim>, StoreError> {
        // The same per-claim guard and plan as finishing a batch in `complete`.
        if request.claims.is_empty() {
            return Ok(Vec::new());
        }
        let groups = by_token(request.claims)?;
        let now = request.now.map(micros);
        let lease = super::rows::lease_micros(request.lease);
        self.write_all(groups.len(), |conn| {
            claims_per_token(conn, sql::EXTEND_LEASES, &groups, &[&now, &lease])
        })
        .await
    }

    async fn release(&self, claims: &[Claim]) -> Result<u64, StoreError> {
        if claims.is_empty() {
            return Ok(0);
        }
        let groups = by_token(claims)?;
        self.write_all(groups.len(), |conn| {
            apply_per_token(conn, sql::RELEASE, &groups, &[])
        })
        .await
    }

    async fn rescue(&self, now: Option<DateTime<Utc>>) -> Result<Vec<JobId>, StoreError> {
        // Every assignment reads the row as it was. A run whose handler had
        // started counts its attempt and records it lost; a claim whose
        // handler never started gives its attempt back, with nothing recorded.
        // A job someone cancelled while it ran ends cancelled instead.
        self.transaction(|tx| {
            long(|| {
                let now = params![now.map(micros)];
                let mut rescued: Vec<JobId> =
                    all(tx, sql::RESCUE_CANCELLED, now, |row| Ok(row.get(0)?))?;
                let returned: Vec<JobId> = all(tx, sql::RESCUE, now, |row| Ok(row.get(0)?))?;
                rescued.extend(returned);
                Ok(rescued)
            })
        })
        .await
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let found = self
            .read(|conn| all(conn, sql::GET_JOB, [id], record))
            .await?;
        Ok(found.into_iter().next())
    }

    async fn list(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let (terms, size) = filter_terms(filter)?;
        let sql = sql::list_jobs(terms.iter().map(|(comparison, _)| *comparison));
        let mut values = filter_values(terms);
        values.push(Value::Integer(rows_to_read(size)));
        let rows = self
            .read(|conn| long(|| all(conn, &sql, params_from_iter(values), record)))
            .await?;
        Ok(JobPage::from_rows(rows, size))
    }

    async fn queue_stats(&self, now: DateTime<Utc>) -> Result<Vec<QueueStats>, StoreError> {
        self.read(|conn| {
            long(|| {
                all(conn, sql::QUEUE_STATS, [micros(now)], |row| {
                    Ok(QueueStats {
                        queue: row.get(0)?,
                        due: from_count(row.get(1)?),
                        oldest_due_at: optional_time(0, row.get(2)?)?,
                        paused: row.get::<_, i64>(3)? == 1,
                    })
                })
            })
        })
        .await
    }

    async fn throughput(&self, since: DateTime<Utc>) -> Result<Vec<MinuteCount>, StoreError> {
        self.read(|conn| {
            long(|| {
                all(conn, sql::THROUGHPUT, [micros(since)], |row| {
                    Ok(MinuteCount {
                        minute: from_micros(0, row.get::<_, i64>(0)?.saturating_mul(60_000_000))?,
                        finished: from_count(row.get(1)?),
                        failed: from_count(row.get(2)?),
                    })
                })
            })
        })
        .await
    }

    async fn set_paused(&self, request: PauseRequest<'_>) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(
                sql::SET_PAUSED,
                params![request.queue, request.paused, micros(request.now)],
            )?;
            Ok(())
        })
        .await
    }

    async fn set_flow(&self, request: FlowRequest<'_>) -> Result<(), StoreError> {
        let flow = request.flow;
        let rate = flow.rate;
        self.write(|conn| {
            conn.execute(
                sql::SET_FLOW,
                params![
                    request.queue,
                    flow.concurrency,
                    flow.key_concurrency,
                    rate.map(|rate| rate.starts),
                    rate.map(|rate| rate.period_ms()),
                    rate.is_some_and(|rate| rate.per_key),
                    flow.fair,
                    micros(request.now),
                ],
            )?;
            Ok(())
        })
        .await?;
        self.flow_queues.set(request.queue, flow.is_controlled());
        Ok(())
    }

    async fn flow(&self, queue: &str) -> Result<QueueFlow, StoreError> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached(sql::FLOW)?
                .query_row([queue], flow::flow_of)
                .optional()?
                .unwrap_or_default())
        })
        .await
    }

    async fn flow_usage(&self, now: DateTime<Utc>) -> Result<Vec<super::FlowUsage>, StoreError> {
        self.read(|conn| {
            // One snapshot for every read, so a claim between them cannot
            // show its jobs gone from the due ones before their starts count.
            let snapshot = conn.unchecked_transaction()?;
            let conn: &rusqlite::Connection = &snapshot;
            long(|| {
                let key_counts = |row: &Row<'_>| Ok((row.get(0)?, row.get(1)?, row.get(2)?));
                let rows = super::UsageRows {
                    settings: all(conn, sql::FLOW_QUEUES, [], |row| {
                        Ok((row.get(6)?, flow::flow_of(row)?))
                    })?,
                    running: all(conn, sql::FLOW_RUNNING, [], key_counts)?,
                    starts: all(conn, sql::FLOW_STARTS, [micros(now)], key_counts)?,
                    due: all(conn, sql::FLOW_DUE, [micros(now)], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?,
                };
                let mut keys_due = conn.prepare_cached(sql::FLOW_KEYS_DUE)?;
                super::draft(rows)
                    .into_iter()
                    .map(|draft| {
                        let due = if draft.full_keys().is_empty() {
                            0
                        } else {
                            let keys = serde_json::to_string(draft.full_keys())
                                .map_err(|error| StoreError::InvalidFlow(error.to_string()))?;
                            keys_due
                                .query_row(params![draft.queue(), micros(now), keys], |row| {
                                    row.get(0)
                                })?
                        };
                        Ok(draft.finish(due))
                    })
                    .collect()
            })
        })
        .await
    }

    async fn delete(&self, id: JobId) -> Result<bool, StoreError> {
        self.write(|conn| Ok(conn.execute(sql::DELETE_JOB, [id])? == 1))
            .await
    }

    async fn try_lease(&self, request: LeaseRequest<'_>) -> Result<bool, StoreError> {
        self.write(|conn| {
            let held: Option<String> = conn
                .prepare_cached(sql::TRY_LEASE)?
                .query_row(
                    params![
                        request.lease.name,
                        request.lease.holder,
                        request.now.map(micros),
                        super::rows::lease_micros(request.ttl)
                    ],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(held.is_some())
        })
        .await
    }

    async fn publish_concurrency(&self, report: ConcurrencyReport<'_>) -> Result<(), StoreError> {
        self.transaction(|tx| super::concurrency::sqlite::publish(tx, report))
            .await
    }

    async fn worker_concurrency(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<super::WorkerConcurrency>, StoreError> {
        self.read(|conn| super::concurrency::sqlite::live(conn, now))
            .await
    }

    async fn drop_lease(&self, lease: LeaseHolder<'_>) -> Result<(), StoreError> {
        self.write(|conn| {
            conn.execute(sql::DROP_LEASE, [lease.name, lease.holder])?;
            Ok(())
        })
        .await
    }

    async fn take_tick(&self, request: TickRequest<'_>) -> Result<Tick, StoreError> {
        let TickRequest {
            schedule: name,
            fire_at,
            job,
        } = request;
        self.transaction(|tx| {
            let taken = tx.execute(sql::TAKE_TICK, params![name, micros(fire_at)])?;
            if taken == 0 {
                return Ok(Tick::Lost);
            }
            let Some(job) = job else {
                return Ok(Tick::Passed);
            };
            let ids = insert_in(tx, std::slice::from_ref(job))?;
            let id = ids.first().copied().unwrap_or_default();
            tx.execute(sql::RECORD_TICK_JOB, params![id, name])?;
            tx.execute(sql::RECORD_RUN, params![name, id, micros(fire_at)])?;
            Ok(Tick::Dispatched(id))
        })
        .await
    }

    async fn schedule_states(&self) -> Result<Vec<ScheduleState>, StoreError> {
        self.read(|conn| {
            all(conn, sql::SCHEDULE_STATES, [], |row| {
                Ok(ScheduleState {
                    name: row.get(0)?,
                    last_fire_at: from_micros(0, row.get(1)?)?,
                    last_job_id: row.get(2)?,
                })
            })
        })
        .await
    }

    async fn schedule_runs(&self, name: &str, limit: u32) -> Result<Vec<ScheduleRun>, StoreError> {
        self.read(|conn| {
            all(conn, sql::SCHEDULE_RUNS, params![name, limit], |row| {
                let job_id: JobId = row.get(1)?;
                let state: Option<String> = row.get(2)?;
                Ok(ScheduleRun {
                    fire_at: from_micros(job_id, row.get(0)?)?,
                    job_id,
                    state: state.map(|s| state_of(job_id, &s)).transpose()?,
                })
            })
        })
        .await
    }

    async fn prune_schedule_runs(&self, limit: u32) -> Result<u64, StoreError> {
        self.write(|conn| Ok(changed(conn.execute(sql::PRUNE_SCHEDULE_RUNS, [limit])?)))
            .await
    }

    async fn create_batch(
        &self,
        batch: &NewBatch,
        jobs: &[NewJob],
    ) -> Result<(BatchId, Vec<JobId>), StoreError> {
        self.transaction(|tx| {
            run_now(super::batches::create(
                &mut batches::SqliteBatch(tx),
                batch,
                jobs,
            ))?
        })
        .await
    }

    async fn add_to_batch(&self, add: BatchAdd<'_>) -> Result<Vec<JobId>, StoreError> {
        self.transaction(|tx| run_now(super::batches::add(&mut batches::SqliteBatch(tx), add))?)
            .await
    }

    async fn prune_batches(&self, request: PruneRequest) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let deleted = conn
                .prepare_cached(batches::PRUNE)?
                .execute(params![micros(request.before), request.limit])?;
            Ok(changed(deleted))
        })
        .await
    }

    async fn create_workflow(
        &self,
        workflow: &NewWorkflow,
    ) -> Result<(BatchId, Vec<JobId>), StoreError> {
        self.transaction(|tx| {
            run_now(super::workflows::create(
                &mut batches::SqliteBatch(tx),
                workflow,
            ))?
        })
        .await
    }

    async fn release_dependents(&self, now: DateTime<Utc>) -> Result<Released, StoreError> {
        // Most looks find nothing to release: a read says so without the writer.
        let any = self
            .read(|conn| {
                Ok(conn.query_row(super::workflows::ANY_EVENT, [], |row| row.get::<_, bool>(0))?)
            })
            .await?;
        if !any {
            return Ok(Released::default());
        }
        self.transaction(|tx| {
            run_now(super::workflows::release(
                &mut batches::SqliteBatch(tx),
                now,
            ))?
        })
        .await
    }

    async fn dependencies(&self, ids: &[JobId]) -> Result<Vec<Dependency>, StoreError> {
        self.read(|conn| workflows::dependencies(conn, ids)).await
    }

    async fn skip_wait(&self, id: JobId, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        self.transaction(|tx| sequences::skip_wait(tx, id, now))
            .await
    }

    async fn count_jobs(&self, filter: &JobFilter) -> Result<u64, StoreError> {
        let terms = conditions(filter);
        let sql = sql::count_jobs(terms.iter().map(|(comparison, _)| *comparison));
        let values = filter_values(terms);
        let count = self
            .read(|conn| {
                long(|| {
                    Ok(conn.query_row(&sql, params_from_iter(values), |row| row.get::<_, i64>(0))?)
                })
            })
            .await?;
        Ok(from_count(count))
    }

    async fn batch(&self, id: BatchId) -> Result<Option<BatchRecord>, StoreError> {
        self.read(|conn| batches::read(conn, id)).await
    }

    async fn fire_batch_callbacks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(JobId, NewJob)>, StoreError> {
        // Most looks find nothing due: a read says so without the writer.
        let any_due = self
            .read(|conn| {
                Ok(conn.query_row(super::batches::ANY_DUE, [], |row| row.get::<_, bool>(0))?)
            })
            .await?;
        if !any_due {
            return Ok(Vec::new());
        }
        self.transaction(|tx| {
            run_now(super::batches::fire(
                &mut batches::SqliteBatch(tx),
                now,
                limit,
            ))?
        })
        .await
    }

    async fn outcomes(&self, since: DateTime<Utc>) -> Result<Vec<TypeOutcomes>, StoreError> {
        self.read(|conn| {
            long(|| {
                all(conn, sql::OUTCOMES, [micros(since)], |row| {
                    Ok(TypeOutcomes {
                        job_type: row.get(0)?,
                        finished: from_count(row.get(1)?),
                        failed: from_count(row.get(2)?),
                    })
                })
            })
        })
        .await
    }

    async fn open_alert(&self, alert: &NewAlert) -> Result<Option<AlertRecord>, StoreError> {
        let key = open_key(alert);
        let id: Option<AlertId> = self
            .write(|conn| {
                Ok(conn
                    .prepare_cached(sql::OPEN_ALERT)?
                    .query_row(
                        params![
                            alert.rule,
                            alert.subject,
                            alert.summary,
                            micros(alert.fired_at),
                            key
                        ],
                        |row| row.get(0),
                    )
                    .optional()?)
            })
            .await?;
        Ok(id.map(|id| opened(id, alert)))
    }

    async fn resolve_alert(&self, id: AlertId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|conn| Ok(conn.execute(sql::RESOLVE_ALERT, params![micros(at), id])? == 1))
            .await
    }

    async fn alerts(&self, resolved: u32) -> Result<Vec<AlertRecord>, StoreError> {
        let alert = |row: &Row<'_>| {
            let id = row.get(0)?;
            Ok(AlertRecord {
                id,
                rule: row.get(1)?,
                subject: row.get(2)?,
                summary: row.get(3)?,
                fired_at: from_micros(id, row.get(4)?)?,
                resolved_at: optional_time(id, row.get(5)?)?,
            })
        };
        self.read(|conn| {
            let mut alerts = all(conn, sql::ALERTS_OPEN, [], alert)?;
            alerts.extend(all(conn, sql::ALERTS_RESOLVED, [resolved], alert)?);
            Ok(alerts)
        })
        .await
    }

    async fn counts(&self) -> Result<Vec<StateCount>, StoreError> {
        let rows = self.read(|conn| state_counts(conn, sql::COUNTS)).await?;
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
        let rows = self
            .read(|conn| state_counts(conn, sql::COUNTS_BY_TYPE))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(job_type, state, count)| TypeCount {
                job_type,
                state,
                count,
            })
            .collect())
    }

    async fn cancel(&self, id: JobId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.write(|conn| Ok(conn.execute(sql::CANCEL, params![micros(now), id])? == 1))
            .await
    }

    async fn request_cancel(&self, id: JobId) -> Result<bool, StoreError> {
        self.write(|conn| Ok(conn.execute(sql::REQUEST_CANCEL, [id])? == 1))
            .await
    }

    async fn cancels_requested(&self, claims: &[Claim]) -> Result<Vec<Claim>, StoreError> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let groups = by_token(claims)?;
        self.read(|conn| claims_per_token(conn, sql::CANCELS_REQUESTED, &groups, &[]))
            .await
    }

    async fn retry(&self, request: RetryRequest) -> Result<bool, StoreError> {
        let RetryRequest {
            id,
            now,
            extra_attempts,
        } = request;
        self.write(|conn| {
            Ok(conn.execute(sql::RETRY, params![micros(now), extra_attempts.max(1), id])? == 1)
        })
        .await
    }

    async fn prune_alerts(&self, request: PruneRequest) -> Result<u64, StoreError> {
        self.write(|conn| {
            Ok(changed(conn.execute(
                sql::PRUNE_ALERTS,
                params![micros(request.before), request.limit],
            )?))
        })
        .await
    }

    async fn prune_idle_keys(&self, limit: u32) -> Result<u64, StoreError> {
        self.write(|conn| Ok(changed(conn.execute(sql::PRUNE_IDLE_KEYS, [limit])?)))
            .await
    }

    async fn prune_sequences(&self, limit: u32) -> Result<u64, StoreError> {
        self.write(|conn| Ok(changed(conn.execute(sequences::PRUNE, [limit])?)))
            .await
    }

    async fn retry_failed(&self, request: &RetryFailed) -> Result<RetriedFailed, StoreError> {
        let mut done = RetriedFailed::default();
        let mut after: JobId = 0;
        loop {
            let step = self
                .transaction(|tx| long(|| retry_failed_batch(tx, request, after)))
                .await?;
            let Some((last, batch)) = step else {
                return Ok(done);
            };
            after = last;
            done.add(
                batch.retried,
                batch.skipped,
                batch.queues.iter().map(String::as_str),
            );
        }
    }

    fn listen(&self) -> Option<tokio::sync::mpsc::Receiver<super::Wakeup>> {
        // In memory, every writer is in this process, which wakes its own.
        self.readers.as_ref()?;
        wakeups::watch(&self.path)
    }

    async fn prune(&self, state: JobState, request: PruneRequest) -> Result<u64, StoreError> {
        self.write(|conn| {
            long(|| {
                Ok(changed(conn.execute(
                    sql::PRUNE,
                    params![state.as_str(), micros(request.before), request.limit],
                )?))
            })
        })
        .await
    }
}

/// Retries one batch of the failed jobs `request` selects with ids above
/// `after`, in the caller's transaction: returns the batch's last id and
/// what it did, or `None` when no such job is left.
fn retry_failed_batch(
    conn: &Connection,
    request: &RetryFailed,
    after: JobId,
) -> Result<Option<(JobId, RetriedFailed)>, StoreError> {
    let sql = sql::failed_batch(request.job_type.is_some(), request.queue.is_some());
    let mut values = vec![Value::Integer(after)];
    for value in [&request.job_type, &request.queue].into_iter().flatten() {
        values.push(Value::Text(value.clone()));
    }
    values.push(Value::Integer(i64::from(RETRY_FAILED_BATCH)));
    let batch = all(conn, &sql, params_from_iter(values), |row| {
        Ok(FailedJob {
            id: row.get(0)?,
            job_type: row.get(1)?,
            queue: row.get(2)?,
            unique_key: row.get(3)?,
        })
    })?;
    let Some(last) = batch.last().map(|job| job.id) else {
        return Ok(None);
    };
    let keys = batch_keys(&batch);
    let held: Vec<String> = if keys.is_empty() {
        Vec::new()
    } else {
        all(
            conn,
            sql::HELD_UNIQUE_KEYS,
            [serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into())],
            |row| Ok(row.get(0)?),
        )?
    };
    let (groups, skipped) = plan_retry(request, &batch, &held);
    let mut done = RetriedFailed::default();
    done.add(0, skipped, []);
    let retry = |ids: Vec<JobId>, extra: u32| -> Result<Vec<String>, StoreError> {
        let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        all(
            conn,
            sql::RETRY_FAILED,
            params![micros(request.now), extra, ids],
            |row| Ok(row.get(0)?),
        )
    };
    for (extra, jobs) in groups {
        let ids: Vec<JobId> = jobs.iter().map(|job| job.id).collect();
        match retry(ids.clone(), extra) {
            Ok(queues) => done.add(changed(queues.len()), 0, queues.iter().map(String::as_str)),
            // A key taken meanwhile: the statement changed nothing, so go
            // one job at a time and skip the jobs whose key is held.
            Err(error) if error.is_unique_violation() => {
                for id in ids {
                    match retry(vec![id], extra) {
                        Ok(queues) => {
                            done.add(changed(queues.len()), 0, queues.iter().map(String::as_str));
                        }
                        Err(error) if error.is_unique_violation() => done.add(0, 1, []),
                        Err(error) => return Err(error),
                    }
                }
            }
            Err(error) => return Err(error),
        }
    }
    Ok(Some((last, done)))
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// A producer's request for up to `limit` jobs of `queue` due by `now`.
    fn claim_from(queue: &str, limit: u32, now: DateTime<Utc>) -> ClaimRequest<'_> {
        ClaimRequest {
            queue,
            worker: "w1",
            limit,
            start_now: 0,
            token: super::super::new_claim_token(),
            due_by: now,
            lease: std::time::Duration::from_secs(30),
            now: None,
        }
    }

    #[tokio::test]
    async fn claim_guarded_writes_apply_to_each_claims_jobs_under_its_own_token() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let now = Utc::now();
        let jobs: Vec<NewJob> = (0..4).map(|_| NewJob::ping("q", now)).collect();
        store.insert(&jobs).await.unwrap();
        // Two claims, so every list below holds two tokens.
        let mut claims: Vec<Claim> = Vec::new();
        for _ in 0..2 {
            let claimed = store.claim(claim_from("q", 2, now)).await.unwrap();
            claims.extend(claimed.iter().map(ClaimedJob::claim));
        }
        claims.sort_unstable();
        assert_eq!(claims.len(), 4);
        assert_ne!(claims[0].token, claims[3].token);
        // A claim on a held job under a token it does not carry.
        let stale = Claim {
            id: claims[0].id,
            token: claims[0].token.wrapping_add(1),
        };
        let mut listed = claims.clone();
        listed.push(stale);
        let renew = RenewRequest {
            claims: &listed,
            lease: std::time::Duration::from_secs(60),
            now: None,
        };
        assert_eq!(store.extend_leases(renew).await.unwrap(), claims);
        assert_eq!(store.mark_started(&listed).await.unwrap(), 4);
        // One job of each claim finishes, and the stale claim's outcome is refused.
        let finished = |claim: Claim| Completion {
            claim,
            attempt: 1,
            outcome: Outcome::Finished,
        };
        let ended = [finished(claims[0]), finished(claims[3]), finished(stale)];
        let request = CompleteRequest {
            completions: &ended,
            ended_at: now,
        };
        assert_eq!(store.complete(request).await.unwrap(), 2);
        for (claim, state) in claims.iter().zip([
            JobState::Finished,
            JobState::Started,
            JobState::Started,
            JobState::Finished,
        ]) {
            let job = store.get(claim.id).await.unwrap().unwrap();
            assert_eq!(job.state, state, "job {}", claim.id);
        }
        assert_eq!(store.release(&listed).await.unwrap(), 2);
    }

    /// Steps SQLite's virtual machine takes for the claim statement of one
    /// claim ([`Store::claim`], as a producer makes it) of a paused queue
    /// holding `backlog` due jobs.
    async fn paused_claim_steps(backlog: usize) -> i32 {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let now = Utc::now();
        let jobs: Vec<NewJob> = (0..backlog).map(|_| NewJob::ping("paused", now)).collect();
        store.insert(&jobs).await.unwrap();
        let pause = PauseRequest {
            queue: "paused",
            paused: true,
            now,
        };
        store.set_paused(pause).await.unwrap();
        let claimed = store.claim(claim_from("paused", 10, now)).await.unwrap();
        assert!(claimed.is_empty(), "a paused queue was claimed from");
        // The claim ran its statement through the writer's cache, which
        // keeps the statement and its counters.
        let conn = store.writer().await.unwrap();
        conn.prepare_cached(sql::CLAIM)
            .unwrap()
            .get_status(StatementStatus::VmStep)
    }

    /// What one claim of up to 100 jobs ([`Store::claim`]) did on a queue
    /// limited to one running job per key, holding two due jobs of each of
    /// 50 keys and `later` more keys whose only job is not yet due.
    struct KeyedClaim {
        /// Jobs it took.
        taken: usize,
        /// Steps SQLite's virtual machine took to read the ready keys (the
        /// round after the window).
        round_steps: i32,
        /// Steps it took to count them.
        count_steps: i32,
    }

    /// Sets up that queue in a fresh database, claims once as a producer
    /// does, and reads the statements' counters from the writer's cache.
    async fn keyed_claim(later: usize) -> KeyedClaim {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let now = Utc::now();
        let flow = QueueFlow::default().per_key(1);
        let request = FlowRequest {
            queue: "keyed",
            flow: &flow,
            now,
        };
        store.set_flow(request).await.unwrap();
        let keyed = |key: String, at| NewJob {
            partition_key: Some(key),
            ..NewJob::ping("keyed", at)
        };
        let mut jobs: Vec<NewJob> = (0..100)
            .map(|n| keyed(format!("k{}", n % 50), now))
            .collect();
        let tomorrow = now + chrono::Duration::days(1);
        jobs.extend((0..later).map(|n| keyed(format!("later{n}"), tomorrow)));
        store.insert(&jobs).await.unwrap();
        let claimed = store.claim(claim_from("keyed", 100, now)).await.unwrap();
        let conn = store.writer().await.unwrap();
        let steps = |statement| {
            conn.prepare_cached(statement)
                .unwrap()
                .get_status(StatementStatus::VmStep)
        };
        KeyedClaim {
            taken: claimed.len(),
            round_steps: steps(sql::READY_KEYS),
            count_steps: steps(sql::READY_KEY_COUNT),
        }
    }

    #[tokio::test]
    async fn a_window_holding_every_ready_key_leaves_the_round_unread() {
        // Every key's jobs are in the window: one job per key, and the
        // ready keys are counted, not read.
        let all_held = keyed_claim(0).await;
        assert_eq!(all_held.taken, 50);
        assert!(all_held.count_steps > 0, "the ready keys were not counted");
        assert_eq!(all_held.round_steps, 0, "the round read the ready keys");
        // A key whose job is not due is ready but not in the window: the
        // round reads the keys, and still finds nothing more to take.
        let one_later = keyed_claim(1).await;
        assert_eq!(one_later.taken, 50);
        assert!(
            one_later.round_steps > 0,
            "the round did not read the ready keys"
        );
    }

    #[tokio::test]
    async fn counting_the_ready_keys_stops_past_the_windows_keys() {
        let few = keyed_claim(10).await.count_steps;
        let many = keyed_claim(2_000).await.count_steps;
        assert!(few > 0, "the ready keys were not counted");
        assert_eq!(few, many, "the count grew with the queue's keys");
    }

    #[tokio::test]
    async fn a_paused_queues_claim_does_not_walk_its_backlog() {
        let few = paused_claim_steps(10).await;
        let many = paused_claim_steps(2_000).await;
        assert!(few > 0, "the claim statement's counters were not read");
        assert_eq!(few, many, "the claim's work grew with the paused backlog");
    }
}
