//! Every statement the SQLite store runs, in the order of the
//! [`Store`](crate::store::Store) operations that run them.
//!
//! Parameters are `?N` (or bare `?`) placeholders, bound by the code in
//! [`super`]; timestamps are microseconds since the epoch, and the claims a
//! claim-guarded statement applies to are one claim token and the JSON
//! array of its jobs' ids, a group of [`super::by_token`].
//! Statements whose text depends on the call (how many rows, which filters)
//! are built by the functions next to the constants.
//!
//! The migrations' own schema lives in `migrations/sqlite`; the connections'
//! `PRAGMA`s are set where they are opened ([`super::connections`]).

/// The database's now in stored form (microseconds since the epoch), from
/// the server's clock: `unixepoch('subsec')` has millisecond precision.
macro_rules! sqlite_now {
    () => {
        "CAST(unixepoch('subsec') * 1000000 AS INTEGER)"
    };
}

/// The condition every claim-guarded statement ends with: the jobs of the
/// JSON array of ids bound at `?1` that still carry the claim token bound
/// at `?2` (one group of [`by_token`](super::by_token)); the statement's
/// own parameters come after. The unary `+` keeps the planner on
/// primary-key lookups of the ids.
macro_rules! sqlite_held_claims {
    () => {
        " WHERE jobs.id IN (SELECT value FROM json_each(?1)) AND +jobs.lease_token = ?2"
    };
}

/// Whether queue `$queue` has flow settings (a limit, a rate or fair
/// claims): its claims go through [`super::flow`].
macro_rules! sqlite_flow_controlled {
    () => {
        "(concurrency_limit IS NOT NULL OR key_limit IS NOT NULL OR rate_limit IS NOT NULL OR fair = 1)"
    };
}

/// The error a rescue records for a run whose lease ran out.
macro_rules! sqlite_lease_lost {
    () => {
        "'lease expired: worker ' || locked_by || ' stopped without finishing attempt ' || attempts"
    };
}

/// The columns [`super::record`] reads, in its order.
macro_rules! sqlite_record_columns {
    () => {
        "id, type, queue, payload, state, priority, attempts, max_attempts, \
        available_at, created_at, started_at, finished_at, locked_by, locked_until, last_error, errors, \
        unique_key, output, progress, progress_message, batch_id, waiting_on"
    };
}

// --- migrate (and `SqliteStore::migration_status`)

/// Creates the table of applied migrations if it is missing.
pub(super) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Whether the table of applied migrations exists.
pub(super) const HAS_MIGRATIONS_TABLE: &str =
    "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

/// The applied migrations' version, time, success and checksum, oldest first.
pub(super) const APPLIED_MIGRATIONS: &str =
    "SELECT version, installed_on, success, checksum FROM _sqlx_migrations ORDER BY version";

/// Records migration `?1` (description `?2`, checksum `?3`) as applied in `?4` nanoseconds.
pub(super) const RECORD_MIGRATION: &str = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)";

// --- insert

/// Inserts one job (type, queue, payload, priority, max attempts, available at, created at, unique key, partition key, trace context) unless a live job holds its key.
pub(super) const INSERT_JOB: &str = "INSERT INTO jobs \
            (type, queue, payload, priority, max_attempts, available_at, created_at, unique_key, partition_key, \
             trace_context) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('pending', 'started') \
        DO NOTHING";

/// The id of the pending or started job holding unique key `?`.
pub(super) const FIND_LIVE_UNIQUE_KEY: &str = "SELECT id FROM jobs \
        WHERE unique_key = ? AND state IN ('pending', 'started')";

/// Inserts `rows` jobs without unique keys, nine values each (type, queue, payload, priority, max attempts, available at, created at, partition key, trace context), answering their ids.
pub(super) fn insert_jobs(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO jobs (type, queue, payload, priority, max_attempts, available_at, created_at, partition_key, \
         trace_context) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 {
            "(?,?,?,?,?,?,?,?,?)"
        } else {
            ",(?,?,?,?,?,?,?,?,?)"
        });
    }
    sql.push_str(" RETURNING id");
    sql
}

// --- claim

// Whether the queue may be claimed from here is the claim's LIMIT (none
// while it is paused or flow-controlled), not a condition beside the due
// jobs: SQLite tests such a condition, constant though it is, on every row
// it reads, so a paused queue's claim walked its whole backlog to take
// nothing, holding the write lock meanwhile.
// The claim statement, with `$limit` (an expression) for the most jobs it takes.
macro_rules! sqlite_claim {
    ($($limit:expr),+) => {
        concat!(
            "UPDATE jobs SET state = 'started', attempts = attempts + 1, \
                started_at = ?1, locked_by = ?2, lease_token = ?6, run_started = 0, cancel_requested = 0, \
                locked_until = COALESCE(?7, ",
            sqlite_now!(),
            ") + ?3 \
            WHERE id IN (SELECT id FROM jobs \
                WHERE state = 'pending' AND queue = ?4 AND available_at <= ?1 \
                ORDER BY priority DESC, available_at, id \
                LIMIT ",
            $($limit,)+
            ") \
            RETURNING id, lease_token, type, queue, payload, priority, attempts, max_attempts, batch_id, has_dependents, \
                trace_context"
        )
    };
}

/// Claims up to `?5` jobs of queue `?4` due by `?1` (none while it is paused or has flow settings: see [`super::flow`]) for worker `?2` under token `?6`, leased `?3` µs past `?7` (or the database's now); answers them.
pub(super) const CLAIM: &str = sqlite_claim!(
    "(SELECT CASE WHEN EXISTS (SELECT 1 FROM queues WHERE name = ?4 AND (paused = 1 OR ",
    sqlite_flow_controlled!(),
    ")) THEN 0 ELSE ?5 END)"
);

/// [`CLAIM`] for a flow-controlled queue whose claim holds the write lock; `?5` is the room its limits leave.
pub(super) const CLAIM_IN_ORDER: &str = sqlite_claim!("?5");

// --- claim, of a queue with flow settings (`super::flow`)

/// Answers 1 if queue `?1` has flow settings and is not paused.
pub(super) const QUEUE_HAS_FLOW: &str = concat!(
    "SELECT 1 FROM queues WHERE name = ?1 AND paused = 0 AND ",
    sqlite_flow_controlled!()
);

/// Queue `?1`'s flow settings (as [`FLOW`]), the last key its round passed and the claim's now (`?2`, or the database's), if it has any and is not paused.
pub(super) const LOCK_FLOW: &str = concat!(
    "SELECT concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair, key_cursor, \
        COALESCE(?2, ",
    sqlite_now!(),
    ") FROM queues WHERE name = ?1 AND paused = 0 AND ",
    sqlite_flow_controlled!()
);

/// Queue `?1`'s started jobs per partition key.
pub(super) const RUNNING_BY_KEY: &str = "SELECT partition_key, count(*) FROM jobs \
    WHERE state = 'started' AND queue = ?1 GROUP BY partition_key";

/// Forgets queue `?1`'s starts at or before `?2`.
pub(super) const FORGET_STARTS: &str = "DELETE FROM queue_starts WHERE queue = ?1 AND at <= ?2";

/// Queue `?1`'s starts after `?2` per partition key: every key's, or with `?3` a JSON array, those keys' and the keyless ones.
pub(super) const STARTS_SINCE: &str = "SELECT partition_key, count(*) FROM queue_starts \
    WHERE queue = ?1 AND at > ?2 \
        AND (?3 IS NULL OR partition_key IS NULL OR partition_key IN (SELECT value FROM json_each(?3))) \
    GROUP BY partition_key";

/// How many of queue `?1`'s keys are ready, counting at most `?2`.
pub(super) const READY_KEY_COUNT: &str =
    "SELECT count(*) FROM (SELECT 1 FROM queue_keys WHERE queue = ?1 AND ready = 1 LIMIT ?2)";

/// Up to `?3` of queue `?1`'s ready keys, in the round from key `?2`: those after it in key order, then from the first round to it; with their versions.
pub(super) const READY_KEYS: &str = "SELECT partition_key, version FROM ( \
        SELECT * FROM (SELECT 0 AS lap, partition_key, version FROM queue_keys \
            WHERE queue = ?1 AND ready = 1 AND partition_key > ?2 ORDER BY partition_key LIMIT ?3) \
        UNION ALL \
        SELECT * FROM (SELECT 1 AS lap, partition_key, version FROM queue_keys \
            WHERE queue = ?1 AND ready = 1 AND partition_key <= ?2 ORDER BY partition_key LIMIT ?3)) \
    ORDER BY lap, partition_key LIMIT ?3";

/// Up to `?4` due (by `?3`) pending jobs of key `?2` in queue `?1`, best first: id, priority.
pub(super) const KEY_HEADS: &str = "SELECT id, priority FROM jobs \
    WHERE state = 'pending' AND queue = ?1 AND partition_key = ?2 AND available_at <= ?3 \
    ORDER BY priority DESC, available_at, id LIMIT ?4";

/// Up to `?3` due (by `?2`) pending jobs of queue `?1`, best first: id, partition key, priority.
pub(super) const QUEUE_HEADS: &str = "SELECT id, partition_key, priority FROM jobs \
    WHERE state = 'pending' AND queue = ?1 AND available_at <= ?2 \
    ORDER BY priority DESC, available_at, id LIMIT ?3";

/// Whether key `?2` of queue `?1` has a pending job, due or not.
pub(super) const KEY_PENDING: &str = "SELECT EXISTS (SELECT 1 FROM jobs \
    WHERE state = 'pending' AND queue = ?1 AND partition_key = ?2)";

/// Claims the still-pending jobs of JSON array `?6` at `?1` for worker `?2` under token `?3`, leased `?5` µs past `?4`, those of JSON array `?7` starting at once; answers them.
pub(super) const START_JOBS: &str = "UPDATE jobs SET state = 'started', attempts = attempts + 1, \
        started_at = ?1, locked_by = ?2, lease_token = ?3, cancel_requested = 0, \
        run_started = id IN (SELECT value FROM json_each(?7)), \
        locked_until = ?4 + ?5 \
    WHERE id IN (SELECT value FROM json_each(?6)) AND state = 'pending' \
    RETURNING id, lease_token, type, queue, payload, priority, attempts, max_attempts, batch_id, has_dependents, \
        trace_context, run_started";

/// Makes key `?2` of queue `?1` not ready if its version is still `?3`.
pub(super) const KEY_IDLE: &str =
    "UPDATE queue_keys SET ready = 0 WHERE queue = ?1 AND partition_key = ?2 AND version = ?3";

/// Deletes up to `?1` keys marked not ready.
pub(super) const PRUNE_IDLE_KEYS: &str = "DELETE FROM queue_keys \
    WHERE (queue, partition_key) IN (SELECT queue, partition_key FROM queue_keys WHERE ready = 0 LIMIT ?1)";

/// Records key `?2` as the last one queue `?1`'s round passed.
pub(super) const SET_KEY_CURSOR: &str = "UPDATE queues SET key_cursor = ?2 WHERE name = ?1";

/// Records a start of queue `?1` (key `?2`, or NULL) at `?3`.
pub(super) const RECORD_START: &str =
    "INSERT INTO queue_starts (queue, partition_key, at) VALUES (?1, ?2, ?3)";

/// The most recent per-queue start of queue `?1` after skipping `?2`.
pub(super) const NTH_LATEST_START: &str = "SELECT at FROM queue_starts \
    WHERE queue = ?1 AND partition_key IS NULL ORDER BY at DESC LIMIT 1 OFFSET ?2";

// --- next_due

/// When queue `?1`'s next pending job is due (NULL: none pending).
pub(super) fn next_due() -> String {
    crate::store::rows::next_due_sql("?1")
}

// --- mark_started

/// Records the runs of the jobs `?1` (JSON ids) held under claim token `?2` as started.
pub(super) const MARK_STARTED: &str =
    concat!("UPDATE jobs SET run_started = 1", sqlite_held_claims!());

// --- complete

/// Finishes at `?3` the jobs `?1` (JSON ids) held under claim token `?2`.
pub(super) const COMPLETE_FINISHED: &str = concat!(
    "UPDATE jobs SET state = 'finished', finished_at = ?3, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL",
    sqlite_held_claims!()
);

/// Finishes the jobs of the JSON array `?2` of `[id, token, output]` triples at `?1`, each storing its output (JSON text, or NULL).
pub(super) const COMPLETE_FINISHED_WITH_OUTPUT: &str = "UPDATE jobs SET state = 'finished', finished_at = ?1, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL, output = c.coutput \
    FROM (SELECT value ->> 0 AS cid, value ->> 1 AS ctoken, value ->> 2 AS coutput FROM json_each(?2)) AS c \
    WHERE jobs.id = c.cid AND +jobs.lease_token = c.ctoken";

/// Puts job `?4`, claimed under token `?5`, back to run at `?1`, recording error `?2` and history entry `?3` (JSON).
pub(super) const COMPLETE_RETRY: &str = "UPDATE jobs SET state = 'pending', available_at = ?1, \
                locked_by = NULL, locked_until = NULL, lease_token = NULL, last_error = ?2, \
                errors = json_insert(errors, '$[#]', json(?3)) \
            WHERE id = ?4 AND lease_token = ?5";

/// Fails job `?4`, claimed under token `?5`, at `?1`, recording error `?2` and history entry `?3` (JSON).
pub(super) const COMPLETE_FAILED: &str = "UPDATE jobs SET state = 'failed', finished_at = ?1, \
                locked_by = NULL, locked_until = NULL, lease_token = NULL, last_error = ?2, \
                errors = json_insert(errors, '$[#]', json(?3)) \
            WHERE id = ?4 AND lease_token = ?5";

/// Puts job `?2`, claimed under token `?3`, back to run at `?1` without counting the attempt (a snooze).
pub(super) const COMPLETE_SNOOZED: &str = "UPDATE jobs SET state = 'pending', available_at = ?1, \
                attempts = attempts - 1, locked_by = NULL, locked_until = NULL, lease_token = NULL \
            WHERE id = ?2 AND lease_token = ?3";

/// Ends job `?2`, claimed under token `?3`, cancelled at `?1` (its run was stopped on request).
pub(super) const COMPLETE_CANCELLED: &str = "UPDATE jobs SET state = 'cancelled', finished_at = ?1, \
                locked_by = NULL, locked_until = NULL, lease_token = NULL \
            WHERE id = ?2 AND lease_token = ?3";

// --- record_progress

/// Records progress `?3` (percent) and `?4` (message) for job `?1`, if claim token `?2` still holds it.
pub(super) const RECORD_PROGRESS: &str = "UPDATE jobs SET progress = ?3, progress_message = ?4 \
            WHERE id = ?1 AND lease_token = ?2";

// --- extend_leases

/// Extends the leases of the jobs `?1` (JSON ids) held under claim token `?2` to `?4` µs past `?3` (or the database's now); answers the claims still held.
pub(super) const EXTEND_LEASES: &str = concat!(
    "UPDATE jobs SET locked_until = COALESCE(?3, ",
    sqlite_now!(),
    ") + ?4",
    sqlite_held_claims!(),
    " RETURNING id, lease_token"
);

// --- release

/// Hands the jobs `?1` (JSON ids) held under claim token `?2` back to pending, their attempt not counted (or ends them cancelled, if asked to stop).
pub(super) const RELEASE: &str = concat!(
    "UPDATE jobs SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
        finished_at = CASE WHEN cancel_requested THEN ",
    sqlite_now!(),
    " ELSE finished_at END, \
        attempts = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL",
    sqlite_held_claims!()
);

// --- rescue

/// Ends cancelled the started jobs whose lease ran out before `?1` (or the database's now) and whose cancel was requested; answers their ids.
pub(super) const RESCUE_CANCELLED: &str = concat!(
    "UPDATE jobs SET state = 'cancelled', finished_at = clock.t, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL \
    FROM (SELECT COALESCE(?1, ",
    sqlite_now!(),
    ") AS t) AS clock \
    WHERE state = 'started' AND cancel_requested = 1 AND locked_until < clock.t \
    RETURNING id"
);

/// Rescues the started jobs whose lease ran out before `?1` (or the database's now); answers their ids.
pub(super) const RESCUE: &str = concat!(
    "UPDATE jobs SET \
        state = CASE WHEN run_started AND attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
        finished_at = CASE WHEN run_started AND attempts >= max_attempts THEN clock.t ELSE NULL END, \
        available_at = clock.t, \
        attempts = CASE WHEN run_started THEN attempts ELSE attempts - 1 END, \
        last_error = CASE WHEN run_started THEN ",
    sqlite_lease_lost!(),
    " ELSE last_error END, \
        errors = CASE WHEN run_started THEN json_insert(errors, '$[#]', json_object( \
            'attempt', attempts, \
            'at', strftime('%Y-%m-%dT%H:%M:%fZ', clock.t / 1000000.0, 'unixepoch'), \
            'error', ",
    sqlite_lease_lost!(),
    ")) ELSE errors END, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL \
    FROM (SELECT COALESCE(?1, ",
    sqlite_now!(),
    ") AS t) AS clock \
    WHERE state = 'started' AND locked_until < clock.t \
    RETURNING id"
);

// --- get

/// Job `?`'s row.
pub(super) const GET_JOB: &str = concat!(
    "SELECT ",
    sqlite_record_columns!(),
    " FROM jobs WHERE id = ?"
);

// --- list

/// Jobs newest first, each of `comparisons` (a column and operator, `"queue = "`) followed by its `?`, then the row limit `?` (the page size plus one).
pub(super) fn list_jobs<'a>(comparisons: impl IntoIterator<Item = &'a str>) -> String {
    let mut sql = matching(
        concat!("SELECT ", sqlite_record_columns!(), " FROM jobs"),
        comparisons,
    );
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    sql
}

/// How many jobs meet each of `comparisons` (as [`list_jobs`] takes them).
pub(super) fn count_jobs<'a>(comparisons: impl IntoIterator<Item = &'a str>) -> String {
    matching("SELECT COUNT(*) FROM jobs", comparisons)
}

/// `select` on `jobs` with each of `comparisons` followed by its `?`.
fn matching<'a>(select: &str, comparisons: impl IntoIterator<Item = &'a str>) -> String {
    let mut sql = format!("{select} WHERE 1 = 1");
    for comparison in comparisons {
        sql.push_str(" AND ");
        sql.push_str(comparison);
        sql.push('?');
    }
    sql
}

// --- queue_stats

/// Each queue with due jobs at `?1` or a row in `queues`: how many are due, the oldest due time, and whether it is paused.
pub(super) const QUEUE_STATS: &str = "SELECT q.queue, COALESCE(d.n, 0), d.oldest, COALESCE(p.paused, 0) \
             FROM (SELECT DISTINCT queue FROM jobs WHERE state = 'pending' AND available_at <= ?1 \
                   UNION SELECT name FROM queues) AS q \
             LEFT JOIN (SELECT queue, COUNT(*) AS n, MIN(available_at) AS oldest FROM jobs \
                        WHERE state = 'pending' AND available_at <= ?1 GROUP BY queue) AS d \
                    ON d.queue = q.queue \
             LEFT JOIN queues AS p ON p.name = q.queue \
             ORDER BY q.queue";

// --- throughput

/// Jobs finished and failed per minute since `?1`, by minute.
pub(super) const THROUGHPUT: &str = "SELECT finished_at / 60000000 AS minute, \
                SUM(state = 'finished'), SUM(state = 'failed') \
             FROM jobs WHERE state IN ('finished', 'failed') AND finished_at >= ?1 \
             GROUP BY minute ORDER BY minute";

// --- set_paused

/// Sets queue `?1` paused (`?2`: 1) or not (0), at `?3`.
pub(super) const SET_PAUSED: &str = "INSERT INTO queues (name, paused, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at";

// --- set_flow and flow

/// Sets queue `?1`'s flow settings at `?8`: concurrency limit `?2`, per-key limit `?3`, rate `?4` starts per `?5` ms (per key: `?6`), fair `?7`.
pub(super) const SET_FLOW: &str = "INSERT INTO queues \
        (name, concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair, updated_at) \
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
    ON CONFLICT (name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit, \
        key_limit = excluded.key_limit, rate_limit = excluded.rate_limit, \
        rate_period_ms = excluded.rate_period_ms, rate_per_key = excluded.rate_per_key, \
        fair = excluded.fair, updated_at = excluded.updated_at";

/// Queue `?1`'s flow settings: concurrency limit, per-key limit, rate starts, rate period (ms), per key, fair.
pub(super) const FLOW: &str = "SELECT concurrency_limit, key_limit, rate_limit, rate_period_ms, \
        rate_per_key, fair FROM queues WHERE name = ?1";

// --- flow_usage

/// Every queue with flow settings: its settings (as [`FLOW`] reads them), then its name.
pub(super) const FLOW_QUEUES: &str = concat!(
    "SELECT concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair, name \
        FROM queues WHERE ",
    sqlite_flow_controlled!()
);

/// Started jobs per flow-controlled queue and partition key.
pub(super) const FLOW_RUNNING: &str = concat!(
    "SELECT queue, partition_key, count(*) FROM jobs \
        WHERE state = 'started' AND queue IN (SELECT name FROM queues WHERE ",
    sqlite_flow_controlled!(),
    ") GROUP BY queue, partition_key"
);

/// Starts per rate-limited queue and partition key in the window of the queue's period that ends at `?1`.
pub(super) const FLOW_STARTS: &str = "SELECT s.queue, s.partition_key, count(*) FROM queues AS q \
        JOIN queue_starts AS s ON s.queue = q.name AND s.at > ?1 - q.rate_period_ms * 1000 \
    WHERE q.rate_limit IS NOT NULL GROUP BY s.queue, s.partition_key";

/// Due (by `?1`) pending jobs per flow-controlled queue: all of them, and those without a key.
pub(super) const FLOW_DUE: &str = concat!(
    "SELECT queue, count(*), sum(partition_key IS NULL) FROM jobs \
        WHERE state = 'pending' AND available_at <= ?1 AND queue IN (SELECT name FROM queues WHERE ",
    sqlite_flow_controlled!(),
    ") GROUP BY queue"
);

/// Due (by `?2`) pending jobs of queue `?1` whose key is in JSON array `?3`.
pub(super) const FLOW_KEYS_DUE: &str = "SELECT count(*) FROM jobs \
    WHERE state = 'pending' AND partition_key IS NOT NULL AND queue = ?1 \
        AND partition_key IN (SELECT value FROM json_each(?3)) AND available_at <= ?2";

// --- delete

/// Deletes job `?1` unless it is running.
pub(super) const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = ?1 AND state <> 'started'";

// --- try_lease

/// Takes or renews lease `?1` for holder `?2` until `?4` µs past `?3` (or the database's now), if free, expired or already its; answers the holder when taken.
pub(super) const TRY_LEASE: &str = concat!(
    "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, COALESCE(?3, ",
    sqlite_now!(),
    ") + ?4) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
        WHERE leases.holder = excluded.holder OR leases.until < COALESCE(?3, ",
    sqlite_now!(),
    ") RETURNING holder"
);

// --- drop_lease

/// Drops lease `?1` if holder `?2` holds it.
pub(super) const DROP_LEASE: &str = "DELETE FROM leases WHERE name = ?1 AND holder = ?2";

// --- take_tick

/// Moves schedule `?1`'s last tick forward to `?2`; changes no row if it is already there or past it.
pub(super) const TAKE_TICK: &str = "INSERT INTO schedules (name, last_fire_at) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET last_fire_at = excluded.last_fire_at \
                    WHERE schedules.last_fire_at < excluded.last_fire_at";

/// Records job `?1` as the one schedule `?2`'s tick dispatched.
pub(super) const RECORD_TICK_JOB: &str = "UPDATE schedules SET last_job_id = ?1 WHERE name = ?2";

/// Records job `?2` as a run of schedule `?1` fired at `?3` (once: a tick
/// whose job was still running dispatches nothing new).
pub(super) const RECORD_RUN: &str =
    "INSERT INTO schedule_runs (name, job_id, fire_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";

// --- schedule_runs

/// Schedule `?1`'s latest `?2` runs, newest first: fire time, job, its state (NULL once gone).
pub(super) const SCHEDULE_RUNS: &str = "SELECT r.fire_at, r.job_id, j.state FROM schedule_runs AS r \
    LEFT JOIN jobs AS j ON j.id = r.job_id WHERE r.name = ?1 ORDER BY r.fire_at DESC LIMIT ?2";

/// Forgets up to `?1` schedule runs whose job is gone.
pub(super) const PRUNE_SCHEDULE_RUNS: &str = "DELETE FROM schedule_runs WHERE (name, job_id) IN \
    (SELECT name, job_id FROM schedule_runs AS r WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = r.job_id) LIMIT ?1)";

// --- publish_concurrency (run from `store::concurrency`)

/// Deletes worker `?1`'s rows and every row expired before `?2`.
pub(in crate::store) const PUBLISH_CONCURRENCY_DELETE: &str =
    "DELETE FROM worker_concurrency WHERE worker = ?1 OR expires_at < ?2";

/// Inserts worker `?1`'s row for queue `?2`: concurrency `?3`, bounds `?4` and `?5`, running `?6`, expiring at `?7`.
pub(in crate::store) const PUBLISH_CONCURRENCY_INSERT: &str = "INSERT INTO worker_concurrency \
             (worker, queue, concurrency, min_workers, max_workers, running, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

// --- worker_concurrency (run from `store::concurrency`)

/// Every row not expired at `?1`, by queue and worker.
pub(in crate::store) const WORKER_CONCURRENCY: &str = "SELECT worker, queue, concurrency, min_workers, max_workers, running, expires_at \
             FROM worker_concurrency WHERE expires_at >= ?1 ORDER BY queue, worker";

// --- schedule_states

/// Every schedule's last tick and the job it dispatched, by name.
pub(super) const SCHEDULE_STATES: &str =
    "SELECT name, last_fire_at, last_job_id FROM schedules ORDER BY name";

// --- counts

/// How many jobs each queue holds in each state.
pub(super) const COUNTS: &str =
    "SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state ORDER BY queue, state";

// --- counts_by_type

/// How many jobs of each type are in each state.
pub(super) const COUNTS_BY_TYPE: &str =
    "SELECT type, state, COUNT(*) FROM jobs GROUP BY type, state ORDER BY type, state";

// --- cancel

/// Cancels job `?2` at `?1` if it is pending.
pub(super) const CANCEL: &str =
    "UPDATE jobs SET state = 'cancelled', finished_at = ?1 WHERE id = ?2 AND state = 'pending'";

// --- request_cancel

/// Asks the run of job `?1` to stop, if it is started.
pub(super) const REQUEST_CANCEL: &str =
    "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND state = 'started'";

// --- cancels_requested

/// The claims of the jobs `?1` (JSON ids) still held under claim token `?2` whose job was asked to stop; answers `id`, `lease_token`.
pub(super) const CANCELS_REQUESTED: &str = concat!(
    "SELECT jobs.id, jobs.lease_token FROM jobs",
    sqlite_held_claims!(),
    " AND jobs.cancel_requested = 1"
);

// --- retry

/// Makes failed or cancelled job `?3` pending again, due at `?1`, with `?2` more attempts.
pub(super) const RETRY: &str = "UPDATE jobs SET state = 'pending', available_at = ?1, finished_at = NULL, \
                    max_attempts = attempts + ?2 \
                 WHERE id = ?3 AND state IN ('failed', 'cancelled')";

// --- retry_failed

/// The next batch of failed jobs after id `?`, of type `?` if `by_type` and queue `?` if `by_queue`, oldest first, at most `?`.
pub(super) fn failed_batch(by_type: bool, by_queue: bool) -> String {
    let mut sql = String::from(
        "SELECT id, type, queue, unique_key FROM jobs WHERE state = 'failed' AND id > ?",
    );
    if by_type {
        sql.push_str(" AND type = ?");
    }
    if by_queue {
        sql.push_str(" AND queue = ?");
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    sql
}

/// Which of the unique keys in the JSON array `?1` a pending or started job holds.
pub(super) const HELD_UNIQUE_KEYS: &str = "SELECT unique_key FROM jobs \
             WHERE unique_key IN (SELECT value FROM json_each(?1)) AND state IN ('pending', 'started')";

/// Makes the failed jobs whose ids are in the JSON array `?3` pending again, due at `?1`, with `?2` more attempts; answers their queues.
pub(super) const RETRY_FAILED: &str = "UPDATE jobs SET state = 'pending', available_at = ?1, finished_at = NULL, \
            max_attempts = attempts + ?2 \
         WHERE id IN (SELECT value FROM json_each(?3)) AND state = 'failed' RETURNING queue";

// --- prune

/// Deletes up to `?3` jobs in state `?1` that ended before `?2`.
pub(super) const PRUNE: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
                        WHERE state = ?1 AND finished_at < ?2 LIMIT ?3) \
                     AND state = ?1 AND finished_at < ?2";

// --- prune_alerts

/// Deletes up to `?2` alerts resolved before `?1`.
pub(super) const PRUNE_ALERTS: &str = "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts \
                    WHERE resolved_at < ?1 LIMIT ?2)";

// --- outcomes

/// Jobs finished and failed since `?1`, per type.
pub(super) const OUTCOMES: &str = "SELECT type, SUM(state = 'finished'), SUM(state = 'failed') \
             FROM jobs WHERE state IN ('finished', 'failed') AND finished_at >= ?1 \
             GROUP BY type ORDER BY type";

// --- open_alert

/// Opens an incident of rule `?1` on subject `?2` (summary `?3`, fired at `?4`) under open key `?5` unless one is open; answers its id.
pub(super) const OPEN_ALERT: &str = "INSERT INTO alerts (rule, subject, summary, fired_at, open_key) \
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (open_key) DO NOTHING RETURNING id";

// --- resolve_alert

/// Resolves incident `?2` at `?1` if it is open.
pub(super) const RESOLVE_ALERT: &str = "UPDATE alerts SET resolved_at = ?1, open_key = NULL \
                 WHERE id = ?2 AND resolved_at IS NULL";

// --- alerts

/// Every open incident, oldest first.
pub(super) const ALERTS_OPEN: &str = "SELECT id, rule, subject, summary, fired_at, resolved_at FROM alerts \
    WHERE resolved_at IS NULL ORDER BY id";

/// The `?1` incidents resolved last, latest first.
pub(super) const ALERTS_RESOLVED: &str = "SELECT id, rule, subject, summary, fired_at, resolved_at FROM alerts \
    WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT ?1";
