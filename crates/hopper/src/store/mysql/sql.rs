//! Every statement the MySQL/MariaDB store runs, in the order of the
//! [`Store`](crate::store::Store) operations that run them.
//!
//! Parameters are `?` placeholders, bound in the order each statement's doc
//! lists them. Times are microseconds since the epoch (UTC). Statements with
//! a variable number of placeholders (an `IN` list, a multi-row `VALUES`)
//! are built by the functions next to the constants; sqlx prepares and
//! caches each distinct text once per connection.
//!
//! Not here: the migrations (`migrations/mysql`), the job listing's filter
//! and the failed-job batches of `retry_failed` (built in `store/rows.rs`,
//! shared with PostgreSQL), and the concurrency table's statements (in
//! `store/concurrency.rs`, beside the other databases').

// --- Shared fragments

/// The database's now in stored form (microseconds since the epoch, UTC),
/// from the server's clock whatever the session's time zone.
macro_rules! server_now {
    () => {
        "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
    };
}

/// `server_now!` for the statements built at run time.
const SERVER_NOW: &str = server_now!();

/// The columns of a job's row that `record` in `mysql.rs` reads into a
/// [`JobRecord`](crate::store::JobRecord).
macro_rules! record_columns {
    () => {
        "id, type, queue, payload, state, priority, attempts, max_attempts, \
         available_at, created_at, started_at, finished_at, locked_by, locked_until, last_error, \
         errors, unique_key, output, progress, progress_message, batch_id, waiting_on"
    };
}

/// The name of the lock that instances migrating one database take in turn.
macro_rules! migration_lock {
    () => {
        "CONCAT('hopper_migrate:', DATABASE())"
    };
}

/// The error a rescue records for a run whose worker stopped holding it.
macro_rules! lease_lost {
    () => {
        "CONCAT('lease expired: worker ', locked_by, \
         ' stopped without finishing attempt ', attempts)"
    };
}

/// Whether a rescued run was its job's last attempt.
macro_rules! last_attempt {
    () => {
        "run_started AND attempts >= max_attempts"
    };
}

/// `n` placeholders separated by commas: `?, ?, ?`.
pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The guard of a statement on `n` claims: `id IN (…) AND (id, lease_token)
/// IN ((…), …)`, the first part keeping the plan on primary-key lookups, the
/// pairs the guard. Parameters: the `n` ids, then each claim's id and token.
fn claims_guard(n: usize) -> String {
    format!(
        "id IN ({}) AND (id, lease_token) IN ({})",
        placeholders(n),
        vec!["(?, ?)"; n].join(", ")
    )
}

// --- open: run on every new connection

/// Reads committed data, so a claim's locking read takes no gap locks.
pub(super) const SET_ISOLATION_LEVEL: &str =
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// Makes a value that does not fit its column an error, never silently cut or changed.
pub(super) const SET_SQL_MODE: &str = "SET SESSION sql_mode = \
    'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,\
     NO_ZERO_DATE,NO_ZERO_IN_DATE,NO_ENGINE_SUBSTITUTION'";

// --- migrate

/// Takes the database's migration lock, waiting up to `?` seconds; 1 when taken.
pub(super) const TAKE_MIGRATION_LOCK: &str = concat!("SELECT GET_LOCK(", migration_lock!(), ", ?)");

/// Gives the database's migration lock back.
pub(super) const RELEASE_MIGRATION_LOCK: &str =
    concat!("SELECT RELEASE_LOCK(", migration_lock!(), ")");

// --- migration_status (MysqlStore's own, beside migrate)

/// Counts the tables named `_sqlx_migrations` in the current database (0 or 1).
pub(super) const HAS_MIGRATIONS_TABLE: &str = "SELECT COUNT(*) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_sqlx_migrations'";

/// Every applied migration's version and when it was applied.
pub(super) const APPLIED_MIGRATIONS: &str =
    "SELECT version, installed_on FROM _sqlx_migrations WHERE success";

// --- insert

// On a clash of the live key the row is left as it is and `LAST_INSERT_ID`
// names it, all under the row lock the clash took: no read-then-write race.
/// Inserts one job, or names the live job holding its unique key; `?`: type, queue, payload, priority, max attempts, available at, created at, unique key, partition key, trace context.
pub(super) const INSERT_JOB: &str = "INSERT INTO jobs \
        (type, queue, payload, priority, max_attempts, available_at, created_at, unique_key, partition_key, \
         trace_context) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)";

/// The session's last insert id (after [`INSERT_JOB`], the holder of a clashing key).
pub(super) const LAST_INSERT_ID: &str = "SELECT LAST_INSERT_ID()";

/// Inserts `n` jobs without unique keys; `?` per job: type, queue, payload, priority, max attempts, available at, created at, partition key, trace context.
pub(super) fn insert_jobs(n: usize) -> String {
    format!(
        "INSERT INTO jobs (type, queue, payload, priority, max_attempts, available_at, created_at, \
         partition_key, trace_context) VALUES {}",
        vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?)"; n].join(", ")
    )
}

// Before a bulk insert of keyed jobs, in key order (see `flow::keys_to_mark`).
/// Marks `n` keys ready, locking their rows in the order given; `?` per key: queue, key.
pub(super) fn mark_keys(n: usize) -> String {
    format!(
        "INSERT INTO queue_keys (queue, partition_key) VALUES {} \
         ON DUPLICATE KEY UPDATE ready = TRUE, version = version + 1",
        vec!["(?, ?)"; n].join(", ")
    )
}

/// The step between consecutive auto-increment ids.
pub(super) const AUTO_INCREMENT_STEP: &str = "SELECT CAST(@@auto_increment_increment AS SIGNED)";

// --- claim

// The claim's locking read, with `$guard` added to the conditions a due job meets.
macro_rules! claim_select {
    ($guard:literal) => {
        concat!(
            "SELECT id, type, queue, payload, priority, attempts, max_attempts, batch_id, has_dependents, \
                trace_context \
            FROM jobs \
            WHERE state = 'pending' AND queue = ? AND available_at <= ? ",
            $guard,
            " ORDER BY priority DESC, available_at, id LIMIT ? \
            FOR UPDATE SKIP LOCKED"
        )
    };
}

/// Whether a queue row has flow settings (a limit, a rate or fair claims).
macro_rules! mysql_flow_controlled {
    () => {
        "(concurrency_limit IS NOT NULL OR key_limit IS NOT NULL OR rate_limit IS NOT NULL OR fair)"
    };
}

/// Locks the due pending jobs of a queue neither paused nor with flow settings, best first, skipping locked ones; `?`: queue, due by, queue, limit.
pub(super) const CLAIM_SELECT: &str = claim_select!(
    "AND NOT EXISTS (SELECT 1 FROM queues WHERE name = ? \
        AND (paused OR concurrency_limit IS NOT NULL OR key_limit IS NOT NULL \
            OR rate_limit IS NOT NULL OR fair))"
);

// --- claim, of a queue with flow settings (`super::flow`)

/// Locks a queue's row and answers its flow settings (as [`FLOW`]), the last key its round passed and the claim's now, if it has any and is not paused; `?`: now or NULL, queue.
pub(super) const LOCK_FLOW: &str = concat!(
    "SELECT concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair, key_cursor, \
        COALESCE(?, ",
    server_now!(),
    ") AS now FROM queues WHERE name = ? AND NOT paused AND ",
    mysql_flow_controlled!(),
    " FOR UPDATE"
);

/// A queue's started jobs per partition key; `?`: queue.
pub(super) const RUNNING_BY_KEY: &str = "SELECT partition_key, COUNT(*) AS n FROM jobs \
    WHERE state = 'started' AND queue = ? GROUP BY partition_key";

/// Forgets a queue's starts up to a time; `?`: queue, time.
pub(super) const FORGET_STARTS: &str = "DELETE FROM queue_starts WHERE queue = ? AND at <= ?";

/// A queue's starts after a time per partition key, of every key or (with `keys`) of `keys` keys and the keyless ones; `?`: queue, time, the keys.
pub(super) fn starts_since(keys: Option<usize>) -> String {
    let filter = match keys {
        None => String::new(),
        Some(n) => format!(
            " AND (partition_key IS NULL OR partition_key IN ({}))",
            placeholders(n)
        ),
    };
    format!(
        "SELECT partition_key, COUNT(*) AS n FROM queue_starts WHERE queue = ? AND at > ?{filter} \
         GROUP BY partition_key"
    )
}

/// How many of a queue's keys are ready, counting at most a number; `?`: the queue, the number.
pub(super) const READY_KEY_COUNT: &str = "SELECT count(*) FROM (SELECT 1 FROM queue_keys WHERE queue = ? AND ready = TRUE LIMIT ?) AS ready";

/// A queue's ready keys in the round from a key: those after it in key order, then from the first round to it; with their versions; `?`: queue, key, how many, queue, key, how many, how many.
pub(super) const READY_KEYS: &str = "SELECT partition_key, version FROM ( \
        (SELECT 0 AS lap, partition_key, version FROM queue_keys \
            WHERE queue = ? AND ready = TRUE AND partition_key > ? ORDER BY partition_key LIMIT ?) \
        UNION ALL \
        (SELECT 1 AS lap, partition_key, version FROM queue_keys \
            WHERE queue = ? AND ready = TRUE AND partition_key <= ? ORDER BY partition_key LIMIT ?)) AS round \
    ORDER BY lap, partition_key LIMIT ?";

// Each key's first job found by a look-up of its own in the keyed index,
// in one statement of one text whatever the number of keys: a third of the
// time of the same look-ups as branches of a union, which MariaDB parses
// and plans one by one.
/// The first due pending job of each key of a queue, for keys a claim takes one job of: id, key, priority; `?`: the keys (a JSON array of strings), the queue, due by.
pub(super) const KEY_FIRSTS: &str = "SELECT j.id, j.partition_key, j.priority \
    FROM JSON_TABLE(?, '$[*]' COLUMNS (k VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PATH '$')) AS t \
    JOIN jobs AS j ON j.id = (SELECT h.id FROM jobs AS h \
        WHERE h.keyed_queue = ? AND h.partition_key = t.k AND h.available_at <= ? \
        ORDER BY h.priority DESC, h.available_at, h.id LIMIT 1)";

/// The due pending jobs at the head of `n` keys of a queue, best first: id, key, priority; `?` per key: queue, key, due by, how many.
pub(super) fn key_heads(n: usize) -> String {
    vec![
        "(SELECT id, partition_key, priority FROM jobs \
         WHERE keyed_queue = ? AND partition_key = ? AND available_at <= ? \
         ORDER BY priority DESC, available_at, id LIMIT ?)";
        n
    ]
    .join(" UNION ALL ")
}

/// A queue's first due pending jobs, best first: id, key, priority; `?`: queue, due by, how many.
pub(super) const QUEUE_HEADS: &str = "SELECT id, partition_key, priority FROM jobs \
    WHERE state = 'pending' AND queue = ? AND available_at <= ? \
    ORDER BY priority DESC, available_at, id LIMIT ?";

/// Which of `n` keys of a queue have a pending job, due or not; `?`: queue, the keys.
pub(super) fn keys_pending(n: usize) -> String {
    format!(
        "SELECT partition_key FROM queue_keys AS q WHERE queue = ? AND partition_key IN ({}) \
         AND EXISTS (SELECT 1 FROM jobs WHERE keyed_queue = q.queue AND partition_key = q.partition_key)",
        placeholders(n)
    )
}

/// Locks those of `n` jobs still pending, skipping locked ones; `?`: the ids.
pub(super) fn lock_pending(n: usize) -> String {
    format!(
        "SELECT id, type, queue, payload, priority, attempts, max_attempts, batch_id, has_dependents, \
         trace_context FROM jobs \
         WHERE id IN ({}) AND state = 'pending' FOR UPDATE SKIP LOCKED",
        placeholders(n)
    )
}

// Key rows a dispatch is marking ready are skipped, not waited for: a
// claim holding its queue's row never waits on an application's
// transaction, and a key left ready is only looked at again.
/// Locks those of `n` keys of a queue no one else holds; `?`: queue, the keys.
pub(super) fn lock_keys(n: usize) -> String {
    format!(
        "SELECT partition_key FROM queue_keys WHERE queue = ? AND partition_key IN ({}) \
         FOR UPDATE SKIP LOCKED",
        placeholders(n)
    )
}

/// Makes `n` keys of a queue not ready where their versions are still the ones given; `?`: queue, then per key the key and its version.
pub(super) fn keys_idle(n: usize) -> String {
    format!(
        "UPDATE queue_keys SET ready = FALSE WHERE queue = ? AND ({})",
        vec!["(partition_key = ? AND version = ?)"; n].join(" OR ")
    )
}

/// Up to `?` keys marked not ready that no one else holds, locked.
pub(super) const LOCK_IDLE_KEYS: &str = "SELECT queue, partition_key FROM queue_keys \
     WHERE ready = FALSE LIMIT ? FOR UPDATE SKIP LOCKED";

/// Deletes `n` keys if still not ready; `?`: per key its queue and key.
pub(super) fn delete_idle_keys(n: usize) -> String {
    format!(
        "DELETE FROM queue_keys WHERE ready = FALSE AND ({})",
        vec!["(queue = ? AND partition_key = ?)"; n].join(" OR ")
    )
}

/// Records the last key a queue's round passed; `?`: key, queue.
pub(super) const SET_KEY_CURSOR: &str = "UPDATE queues SET key_cursor = ? WHERE name = ?";

/// Records `n` starts of a queue; `?` per start: queue, key or NULL, time.
pub(super) fn record_starts(n: usize) -> String {
    format!(
        "INSERT INTO queue_starts (queue, partition_key, at) VALUES {}",
        vec!["(?, ?, ?)"; n].join(", ")
    )
}

/// Starts `claimed` locked jobs, `starting` of them run-started; `?`: started at, the `starting` ids, token, worker, now or NULL, lease µs, the `claimed` ids.
pub(super) fn claim_update(claimed: usize, starting: usize) -> String {
    let run_started = if starting == 0 {
        "FALSE".to_owned()
    } else {
        format!("id IN ({})", placeholders(starting))
    };
    format!(
        "UPDATE jobs SET state = 'started', started_at = ?, attempts = attempts + 1, \
         run_started = {run_started}, cancel_requested = FALSE, lease_token = ?, locked_by = ?, \
         locked_until = COALESCE(?, {SERVER_NOW}) + ? WHERE id IN ({})",
        placeholders(claimed)
    )
}

/// A queue's most recent per-queue start after skipping some; `?`: queue, how many to skip.
pub(super) const NTH_LATEST_START: &str = "SELECT at FROM queue_starts \
    WHERE queue = ? AND partition_key IS NULL ORDER BY at DESC LIMIT 1 OFFSET ?";

// --- flow_usage

/// Makes the session's next transaction read one snapshot throughout.
pub(super) const NEXT_TRANSACTION_SNAPSHOT: &str =
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";

// --- next_due

/// A queue's best pending job below a priority, by priority then due time; `?`: queue, priority bound.
pub(super) const NEXT_DUE: &str = "SELECT priority, available_at FROM jobs \
    WHERE state = 'pending' AND queue = ? AND priority < ? \
    ORDER BY priority DESC, available_at LIMIT 1";

// --- mark_started

/// Records that the runs of `n` held claims started; `?`: the claims' guard (see `claims_guard`).
pub(super) fn mark_started(n: usize) -> String {
    format!(
        "UPDATE jobs SET run_started = TRUE WHERE {} ORDER BY id",
        claims_guard(n)
    )
}

// --- complete

/// Finishes the jobs of `n` held claims, `outputs` of them storing an output; `?`: ended at, then each of those jobs' id and output, then the claims' guard (see `claims_guard`).
pub(super) fn complete_finished(n: usize, outputs: usize) -> String {
    let output = if outputs == 0 {
        String::new()
    } else {
        format!(
            ", output = CASE id {} END",
            vec!["WHEN ? THEN ?"; outputs].join(" ")
        )
    };
    format!(
        "UPDATE jobs SET state = 'finished', finished_at = ?, \
         locked_by = NULL, locked_until = NULL, lease_token = NULL{output} WHERE {} ORDER BY id",
        claims_guard(n)
    )
}

// No assignment reads a column another one sets (see `rescue_update`).
/// Puts a held job back to pending with its error recorded; `?`: due at, error, ended at as JSON text, error, id, token.
pub(super) const COMPLETE_RETRY: &str = "UPDATE jobs SET state = 'pending', available_at = ?, \
        last_error = ?, errors = JSON_ARRAY_APPEND(errors, '$', \
            JSON_OBJECT('attempt', attempts, 'at', ?, 'error', ?)), \
        locked_by = NULL, locked_until = NULL, lease_token = NULL \
    WHERE id = ? AND lease_token = ?";

/// Fails a held job with its error recorded; `?`: ended at, error, ended at as JSON text, error, id, token.
pub(super) const COMPLETE_FAILED: &str = "UPDATE jobs SET state = 'failed', finished_at = ?, \
        last_error = ?, errors = JSON_ARRAY_APPEND(errors, '$', \
            JSON_OBJECT('attempt', attempts, 'at', ?, 'error', ?)), \
        locked_by = NULL, locked_until = NULL, lease_token = NULL \
    WHERE id = ? AND lease_token = ?";

/// Puts a held job back to pending without counting the attempt (a snooze); `?`: due at, id, token.
pub(super) const COMPLETE_SNOOZED: &str = "UPDATE jobs SET state = 'pending', available_at = ?, \
        attempts = attempts - 1, locked_by = NULL, locked_until = NULL, lease_token = NULL \
    WHERE id = ? AND lease_token = ?";

/// Ends a held job cancelled (its run was stopped on request); `?`: ended at, id, token.
pub(super) const COMPLETE_CANCELLED: &str = "UPDATE jobs SET state = 'cancelled', finished_at = ?, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL \
    WHERE id = ? AND lease_token = ?";

// --- extend_leases

/// Extends the leases of `n` held claims; `?`: now or NULL, lease µs, then the claims' guard (see `claims_guard`).
pub(super) fn extend_leases(n: usize) -> String {
    format!(
        "UPDATE jobs SET locked_until = COALESCE(?, {SERVER_NOW}) + ? WHERE {} ORDER BY id",
        claims_guard(n)
    )
}

/// Which of `n` claims still hold their jobs, as (id, token); `?`: the claims' guard (see `claims_guard`).
pub(super) fn extend_leases_held(n: usize) -> String {
    format!(
        "SELECT id, lease_token FROM jobs WHERE {} ORDER BY id",
        claims_guard(n)
    )
}

// --- record_progress

/// Records a run's progress while its claim holds the job; `?`: percent, message, id, token.
pub(super) const RECORD_PROGRESS: &str = "UPDATE jobs SET progress = ?, progress_message = ? \
    WHERE id = ? AND lease_token = ?";

// --- release

// `cancel_requested` is not set here, so every assignment reading it reads the row as it was.
/// Hands the jobs of `n` held claims back to pending, attempt uncounted (or ends them cancelled, if asked to stop); `?`: the claims' guard (see `claims_guard`).
pub(super) fn release(n: usize) -> String {
    format!(
        "UPDATE jobs SET finished_at = IF(cancel_requested, {SERVER_NOW}, finished_at), \
         attempts = IF(cancel_requested, attempts, attempts - 1), \
         state = IF(cancel_requested, 'cancelled', 'pending'), \
         locked_by = NULL, locked_until = NULL, lease_token = NULL WHERE {} ORDER BY id",
        claims_guard(n)
    )
}

// --- rescue

/// The rescue's now; `?`: now or NULL (the server's now).
pub(super) const RESCUE_NOW: &str = concat!("SELECT COALESCE(?, ", server_now!(), ")");

/// Locks the started jobs whose lease ran out, skipping locked ones; `?`: now.
pub(super) const RESCUE_SELECT: &str = "SELECT id FROM jobs WHERE state = 'started' AND locked_until < ? \
     ORDER BY id FOR UPDATE SKIP LOCKED";

// No assignment reads a column an earlier one sets, so the statement means
// the same whether the server assigns left to right (the default) or all at
// once (MariaDB's SIMULTANEOUS_ASSIGNMENT): `attempts` and `locked_by` are
// read by the assignments before and set last. A run whose handler had
// started counts its attempt and records it lost; a claim whose handler never
// started gives its attempt back.
/// `rescue_update` up to its list of ids.
const RESCUE_UPDATE: &str = concat!(
    "UPDATE jobs SET last_error = IF(run_started, ",
    lease_lost!(),
    ", last_error), \
     errors = IF(run_started, JSON_ARRAY_APPEND(errors, '$', \
         JSON_OBJECT('attempt', attempts, 'at', ?, 'error', ",
    lease_lost!(),
    ")), errors), finished_at = IF(",
    last_attempt!(),
    ", ?, NULL), state = IF(",
    last_attempt!(),
    ", 'failed', 'pending'), available_at = ?, \
     attempts = IF(run_started, attempts, attempts - 1), \
     locked_by = NULL, locked_until = NULL, lease_token = NULL \
     WHERE state = 'started' AND id IN ("
);

/// Ends cancelled those of `n` locked expired jobs whose cancel was requested; `?`: ended at, the `n` ids.
pub(super) fn rescue_cancelled(n: usize) -> String {
    format!(
        "UPDATE jobs SET state = 'cancelled', finished_at = ?, \
         locked_by = NULL, locked_until = NULL, lease_token = NULL \
         WHERE state = 'started' AND cancel_requested AND id IN ({})",
        placeholders(n)
    )
}

/// Rescues `n` locked started jobs; `?`: now as JSON text, now, now, the `n` ids.
pub(super) fn rescue_update(n: usize) -> String {
    format!("{RESCUE_UPDATE}{})", placeholders(n))
}

// --- get

/// One job's row; `?`: id.
pub(super) const GET_JOB: &str = concat!("SELECT ", record_columns!(), " FROM jobs WHERE id = ?");

// --- list

/// Every job's row; `rows::push_filter` appends the filter's conditions, order and limit (the page size plus one).
pub(super) const LIST_JOBS: &str = concat!("SELECT ", record_columns!(), " FROM jobs");

// --- queue_stats

/// Due jobs, oldest due time and pause per queue with due jobs or a pause row; `?`: now, now.
pub(super) const QUEUE_STATS: &str = "SELECT q.queue AS queue, CAST(COALESCE(d.n, 0) AS SIGNED) AS n, \
        d.oldest AS oldest, CAST(COALESCE(p.paused, 0) AS SIGNED) AS paused \
    FROM (SELECT DISTINCT queue FROM jobs WHERE state = 'pending' AND available_at <= ? \
          UNION SELECT name FROM queues) AS q \
    LEFT JOIN (SELECT queue, COUNT(*) AS n, MIN(available_at) AS oldest FROM jobs \
               WHERE state = 'pending' AND available_at <= ? GROUP BY queue) AS d \
           ON d.queue = q.queue \
    LEFT JOIN queues AS p ON p.name = q.queue \
    ORDER BY q.queue";

// --- throughput

/// Jobs finished and failed per minute; `?`: since.
pub(super) const THROUGHPUT: &str = "SELECT finished_at DIV 60000000 AS minute, \
        CAST(SUM(state = 'finished') AS SIGNED) AS finished, \
        CAST(SUM(state = 'failed') AS SIGNED) AS failed \
    FROM jobs WHERE state IN ('finished', 'failed') AND finished_at >= ? \
    GROUP BY minute ORDER BY minute";

// --- set_paused

/// Pauses or resumes a queue; `?`: queue, paused, now.
pub(super) const SET_PAUSED: &str = "INSERT INTO queues (name, paused, updated_at) VALUES (?, ?, ?) \
    ON DUPLICATE KEY UPDATE paused = VALUES(paused), updated_at = VALUES(updated_at)";

// --- set_flow and flow

/// Sets a queue's flow settings; `?`: queue, concurrency limit, per-key limit, rate starts, rate period (ms), per key, fair, now.
pub(super) const SET_FLOW: &str = "INSERT INTO queues \
        (name, concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair, updated_at) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
    ON DUPLICATE KEY UPDATE concurrency_limit = VALUES(concurrency_limit), \
        key_limit = VALUES(key_limit), rate_limit = VALUES(rate_limit), \
        rate_period_ms = VALUES(rate_period_ms), rate_per_key = VALUES(rate_per_key), \
        fair = VALUES(fair), updated_at = VALUES(updated_at)";

/// A queue's flow settings: concurrency limit, per-key limit, rate starts, rate period (ms), per key, fair; `?`: queue.
pub(super) const FLOW: &str = "SELECT concurrency_limit, key_limit, rate_limit, rate_period_ms, \
    rate_per_key, fair FROM queues WHERE name = ?";

// --- flow_usage

/// Every queue with flow settings: its name and its settings (as [`FLOW`] reads them); no `?`.
pub(super) const FLOW_QUEUES: &str = concat!(
    "SELECT name, concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair \
        FROM queues WHERE ",
    mysql_flow_controlled!()
);

/// Started jobs per flow-controlled queue and partition key; no `?`.
pub(super) const FLOW_RUNNING: &str = concat!(
    "SELECT queue, partition_key, COUNT(*) AS n FROM jobs \
        WHERE state = 'started' AND queue IN (SELECT name FROM queues WHERE ",
    mysql_flow_controlled!(),
    ") GROUP BY queue, partition_key"
);

/// Starts per rate-limited queue and partition key in the window of the queue's period that ends at a time; `?`: the time.
pub(super) const FLOW_STARTS: &str = "SELECT s.queue AS queue, s.partition_key AS partition_key, COUNT(*) AS n \
    FROM queues AS q \
        JOIN queue_starts AS s ON s.queue = q.name AND s.at > ? - q.rate_period_ms * 1000 \
    WHERE q.rate_limit IS NOT NULL GROUP BY s.queue, s.partition_key";

/// Due pending jobs per flow-controlled queue: all of them, and those without a key; `?`: due by.
pub(super) const FLOW_DUE: &str = concat!(
    "SELECT queue, COUNT(*) AS n, CAST(SUM(partition_key IS NULL) AS SIGNED) AS unkeyed FROM jobs \
        WHERE state = 'pending' AND available_at <= ? AND queue IN (SELECT name FROM queues WHERE ",
    mysql_flow_controlled!(),
    ") GROUP BY queue"
);

/// Due pending jobs of a queue whose key is one of `keys` keys; `?`: queue, the keys, due by.
pub(super) fn flow_keys_due(keys: usize) -> String {
    format!(
        "SELECT COUNT(*) FROM jobs WHERE keyed_queue = ? AND partition_key IN ({}) \
            AND available_at <= ?",
        placeholders(keys)
    )
}

// --- delete

/// Deletes a job that is not started; `?`: id.
pub(super) const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = ? AND state <> 'started'";

// --- try_lease

/// Takes or renews an existing lease that is expired or the holder's; `?`: holder, now or NULL, ttl µs, name, holder, now or NULL.
pub(super) const TRY_LEASE: &str = concat!(
    "UPDATE leases SET holder = ?, held_until = COALESCE(?, ",
    server_now!(),
    ") + ? \
     WHERE name = ? AND (holder = ? OR held_until < COALESCE(?, ",
    server_now!(),
    "))"
);

/// Creates a lease no one has held; `?`: name, holder, now or NULL, ttl µs.
pub(super) const TRY_LEASE_INSERT: &str = concat!(
    "INSERT INTO leases (name, holder, held_until) VALUES (?, ?, COALESCE(?, ",
    server_now!(),
    ") + ?)"
);

// --- drop_lease

/// Gives up a lease if the holder holds it; `?`: name, holder.
pub(super) const DROP_LEASE: &str = "DELETE FROM leases WHERE name = ? AND holder = ?";

// --- take_tick

/// Moves a schedule's last tick forward to a later one; `?`: fire at, name, fire at.
pub(super) const TAKE_TICK: &str =
    "UPDATE schedules SET last_fire_at = ? WHERE name = ? AND last_fire_at < ?";

/// Creates a schedule's row at its first tick unless it exists; `?`: name, fire at, name.
pub(super) const TAKE_TICK_INSERT: &str = "INSERT INTO schedules (name, last_fire_at) SELECT ?, ? FROM DUAL \
     WHERE NOT EXISTS (SELECT 1 FROM schedules WHERE name = ?)";

/// Records the job a schedule's tick dispatched; `?`: job id, name.
pub(super) const TAKE_TICK_JOB: &str = "UPDATE schedules SET last_job_id = ? WHERE name = ?";

/// Records a job as a run of a schedule (once: a tick whose job was still
/// running dispatches nothing new); `?`: name, job id, fire at (µs).
pub(super) const RECORD_RUN: &str =
    "INSERT IGNORE INTO schedule_runs (name, job_id, fire_at) VALUES (?, ?, ?)";

// --- schedule_runs

/// A schedule's latest runs, newest first: fire time, job, its state (NULL once gone); `?`: name, limit.
pub(super) const SCHEDULE_RUNS: &str = "SELECT r.fire_at, r.job_id, j.state FROM schedule_runs AS r \
     LEFT JOIN jobs AS j ON j.id = r.job_id WHERE r.name = ? ORDER BY r.fire_at DESC LIMIT ?";

/// Up to `?` schedule runs whose job is gone, locked, skipping rows another transaction holds.
pub(super) const LOCK_GONE_RUNS: &str = "SELECT name, job_id FROM schedule_runs AS r \
     WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = r.job_id) LIMIT ? FOR UPDATE SKIP LOCKED";

/// Forgets `n` schedule runs; `?` per run: name, job id.
pub(super) fn forget_runs(n: usize) -> String {
    format!(
        "DELETE FROM schedule_runs WHERE {}",
        vec!["(name = ? AND job_id = ?)"; n].join(" OR ")
    )
}

// --- publish_concurrency, worker_concurrency: in store/concurrency.rs (`mysql`)

// --- schedule_states

/// Every schedule's latest tick and job.
pub(super) const SCHEDULE_STATES: &str =
    "SELECT name, last_fire_at, last_job_id FROM schedules ORDER BY name";

// --- counts

/// Job counts per queue and state.
pub(super) const COUNTS: &str =
    "SELECT queue, state, COUNT(*) AS n FROM jobs GROUP BY queue, state ORDER BY queue, state";

// --- counts_by_type

/// Job counts per type and state.
pub(super) const COUNTS_BY_TYPE: &str =
    "SELECT type, state, COUNT(*) AS n FROM jobs GROUP BY type, state ORDER BY type, state";

// --- cancel

/// Cancels a pending job; `?`: now, id.
pub(super) const CANCEL: &str =
    "UPDATE jobs SET state = 'cancelled', finished_at = ? WHERE id = ? AND state = 'pending'";

// --- request_cancel

/// Asks the run of a started job to stop; `?`: id.
pub(super) const REQUEST_CANCEL: &str =
    "UPDATE jobs SET cancel_requested = TRUE WHERE id = ? AND state = 'started'";

// --- cancels_requested

/// Those of `n` held claims whose job was asked to stop, by id; `?`: the claims' guard (see `claims_guard`).
pub(super) fn cancels_requested(n: usize) -> String {
    format!(
        "SELECT id, lease_token FROM jobs WHERE {} AND cancel_requested ORDER BY id",
        claims_guard(n)
    )
}

// --- retry

/// Puts a failed or cancelled job back to pending with more attempts; `?`: now, extra attempts, id.
pub(super) const RETRY: &str = "UPDATE jobs SET state = 'pending', available_at = ?, finished_at = NULL, \
        max_attempts = attempts + ? \
    WHERE id = ? AND state IN ('failed', 'cancelled')";

// --- retry_failed (its batches of failed jobs: `rows::failed_batch`)

/// Which of `n` unique keys live jobs hold, found by the live-key index (each key's SHA-256); `?`: the `n` keys.
pub(super) fn retry_failed_held_keys(n: usize) -> String {
    format!(
        "SELECT unique_key FROM jobs WHERE live_key IN ({})",
        vec!["UNHEX(SHA2(?, 256))"; n].join(", ")
    )
}

/// Puts `n` failed jobs back to pending with more attempts; `?`: now, extra attempts, the `n` ids.
pub(super) fn retry_failed_update(n: usize) -> String {
    format!(
        "UPDATE jobs SET state = 'pending', finished_at = NULL, available_at = ?, \
         max_attempts = attempts + ? WHERE state = 'failed' AND id IN ({})",
        placeholders(n)
    )
}

// --- prune

/// Deletes jobs in a state that ended before a time; `?`: state, before, limit.
pub(super) const PRUNE: &str = "DELETE FROM jobs WHERE state = ? AND finished_at < ? LIMIT ?";

// --- prune_alerts

/// Deletes alert incidents resolved before a time; `?`: before, limit.
pub(super) const PRUNE_ALERTS: &str = "DELETE FROM alerts WHERE resolved_at < ? LIMIT ?";

// --- outcomes

/// Jobs finished and failed per type; `?`: since.
pub(super) const OUTCOMES: &str = "SELECT type, CAST(SUM(state = 'finished') AS SIGNED) AS finished, \
        CAST(SUM(state = 'failed') AS SIGNED) AS failed \
    FROM jobs WHERE state IN ('finished', 'failed') AND finished_at >= ? \
    GROUP BY type ORDER BY type";

// --- open_alert

/// Records a firing incident, unless its open key is taken; `?`: rule, subject, summary, fired at, open key.
pub(super) const OPEN_ALERT: &str =
    "INSERT INTO alerts (rule, subject, summary, fired_at, open_key) VALUES (?, ?, ?, ?, ?)";

// --- resolve_alert

/// Resolves a firing incident; `?`: at, id.
pub(super) const RESOLVE_ALERT: &str =
    "UPDATE alerts SET resolved_at = ?, open_key = NULL WHERE id = ? AND resolved_at IS NULL";

// --- alerts

/// Reads alert incidents (the statements below add which and their order).
macro_rules! alerts_select {
    () => {
        "SELECT id, rule, subject, summary, fired_at, resolved_at FROM alerts"
    };
}

/// Every firing incident, oldest first.
pub(super) const ALERTS_FIRING: &str =
    concat!(alerts_select!(), " WHERE resolved_at IS NULL ORDER BY id");

/// The latest resolved incidents, latest first; `?`: limit.
pub(super) const ALERTS_RESOLVED: &str = concat!(
    alerts_select!(),
    " WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT ?"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_statements_have_one_placeholder_per_value() {
        assert_eq!(
            claims_guard(2),
            "id IN (?, ?) AND (id, lease_token) IN ((?, ?), (?, ?))"
        );
        assert_eq!(
            insert_jobs(2),
            "INSERT INTO jobs (type, queue, payload, priority, max_attempts, available_at, \
             created_at, partition_key, trace_context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?), \
             (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        assert_eq!(
            claim_update(3, 1),
            format!(
                "UPDATE jobs SET state = 'started', started_at = ?, attempts = attempts + 1, \
                 run_started = id IN (?), cancel_requested = FALSE, lease_token = ?, locked_by = ?, \
                 locked_until = COALESCE(?, {SERVER_NOW}) + ? WHERE id IN (?, ?, ?)"
            )
        );
        assert!(claim_update(1, 0).contains(" run_started = FALSE, "));
        assert!(cancels_requested(1).contains("id IN (?) AND (id, lease_token) IN ((?, ?))"));
        assert!(rescue_update(2).ends_with("WHERE state = 'started' AND id IN (?, ?)"));
        assert_eq!(
            retry_failed_held_keys(2),
            "SELECT unique_key FROM jobs WHERE live_key IN (UNHEX(SHA2(?, 256)), UNHEX(SHA2(?, 256)))"
        );
    }
}
