//! The PostgreSQL store's statements, in the order of the [`Store`](crate::store::Store)
//! operations that run them.
//!
//! Each statement is a constant, or a builder next to its constant where
//! the text is put together at run time (the wrappers that send wake-ups on
//! commit, the columns of a job record). Parameters are numbered (`$1`, …)
//! as each doc line lists them. sqlx caches prepared statements by their
//! text, so a statement's text is the same on every call.
//!
//! A statement given an array of rows to apply or of ids to look up
//! reads it through a sub-select: `UNNEST((SELECT $1::bigint[]))`,
//! `id = ANY((SELECT $1::bigint[])::bigint[])`. Given the parameter
//! itself, the planner counts its elements, and for a few hundred of them
//! in a table of some thousands (or in one whose statistics predate a
//! burst of jobs) it hashes a scan of the whole table instead of looking
//! each row up by its key: 500 completions took 14 ms instead of 7 in a
//! table of 20,000 jobs, and 50 ms instead of 7 in one of 100,000. Behind
//! a sub-select it plans for a few rows, and looks each one up.
//!
//! Not here: the `worker_concurrency` statements, in `store/concurrency.rs`
//! beside the other databases'; the shared `next_due` statement and the
//! filters and batches of `list` and `retry_failed`, in `store/rows.rs`; and
//! the schema, in `migrations/postgres`.

use super::{CANCEL_CHANNEL, CHANNEL, RESULT_CHANNEL};

// --- wake-ups: wrappers that notify the queues a statement changed, on commit

/// Wraps a statement `RETURNING …, queue, <wake> AS due` so that it also
/// notifies each queue with a row to wake for (once per queue: PostgreSQL folds equal
/// notifications of one transaction), delivered on commit.
fn notifying(statement: &str, columns: &str) -> String {
    format!(
        "WITH changed AS ({statement}) \
         SELECT {columns}, (CASE WHEN due THEN pg_notify('{CHANNEL}', queue) END) IS NULL AS quiet \
         FROM changed"
    )
}

/// Wraps a bulk `INSERT … RETURNING id, queue, <due> AS due` so that it
/// answers with one row: the new ids as one array in row order (ids are drawn
/// in row order; RETURNING's order is unspecified), after notifying each
/// queue with a row to wake for once.
fn inserting_ids(statement: &str) -> String {
    format!(
        "WITH changed AS ({statement}) \
         SELECT COALESCE(array_agg(id ORDER BY id), '{{}}') AS ids, \
             (SELECT count(pg_notify('{CHANNEL}', queue)) \
              FROM (SELECT DISTINCT queue FROM changed WHERE due) AS woken) AS woken \
         FROM changed"
    )
}

// --- migrate (and PostgresStore::migration_status)

/// Whether sqlx's migrations table exists; no parameters.
pub(super) const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

/// The version and time of every migration applied successfully; no parameters.
pub(super) const APPLIED_MIGRATIONS: &str =
    "SELECT version, installed_on FROM _sqlx_migrations WHERE success";

// --- insert

/// Inserts one job unless a live job holds its unique key: $1 type, $2 queue, $3 payload, $4 priority, $5 max attempts, $6 available at, $7 created at, $8 unique key (or NULL), $9 partition key (or NULL), $10 trace context (or NULL).
pub(super) const INSERT_JOB: &str = "INSERT INTO jobs \
        (type, queue, payload, priority, max_attempts, available_at, created_at, unique_key, partition_key, \
         trace_context) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('pending', 'started') \
     DO NOTHING \
     RETURNING id, queue, TRUE AS due";

/// [`INSERT_JOB`], waking its queue on commit; answers the new job's `id`, or no row when the key is held.
/// Built once: single dispatches run it one after another.
pub(super) fn insert_job() -> &'static str {
    static WAKING: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| notifying(INSERT_JOB, "id"));
    &WAKING
}

/// Wakes the queues $2 (text[]) on channel $1, once each, on commit.
pub(super) const NOTIFY_QUEUES: &str =
    "SELECT count(pg_notify($1, q)) FROM UNNEST($2::text[]) AS q";

/// The id of the pending or started job holding unique key $1.
pub(super) const FIND_KEY_HOLDER: &str = "SELECT id FROM jobs \
     WHERE unique_key = $1 AND state IN ('pending', 'started')";

/// Inserts one job per payload, all else shared: $1 type, $2 queue, $3 payloads (text[]), $4 priority, $5 max attempts, $6 available at, $7 created at, $8 trace context (or NULL).
pub(super) const INSERT_JOBS_ALIKE: &str = "INSERT INTO jobs \
        (type, queue, payload, priority, max_attempts, available_at, created_at, trace_context) \
     SELECT $1, $2, payload, $4, $5, $6, $7, $8 FROM UNNEST($3::text[]) AS payload \
     RETURNING id, queue, TRUE AS due";

/// [`INSERT_JOBS_ALIKE`], waking the queue on commit; answers one row, `ids`: the new ids in row order.
pub(super) fn insert_jobs_alike() -> String {
    inserting_ids(INSERT_JOBS_ALIKE)
}

/// Inserts one job per array element (UNNEST): $1 types, $2 queues, $3 payloads, $4 priorities, $5 max attempts, $6 available at, $7 created at, $8 partition keys, $9 trace contexts.
pub(super) const INSERT_JOBS: &str = "INSERT INTO jobs \
        (type, queue, payload, priority, max_attempts, available_at, created_at, partition_key, trace_context) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], \
         $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[]) \
     RETURNING id, queue, TRUE AS due";

/// [`INSERT_JOBS`], waking their queues on commit; answers one row, `ids`: the new ids in row order.
pub(super) fn insert_jobs() -> String {
    inserting_ids(INSERT_JOBS)
}

// Before a bulk insert of keyed jobs, in key order (see `flow::keys_to_mark`).
/// Marks ready the keys $2 (text[]) of queues $1 (text[]), locking their rows in the order given.
pub(super) const MARK_KEYS: &str = "INSERT INTO queue_keys (queue, partition_key) \
     SELECT queue, key FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS t(queue, key, place) \
     ORDER BY place \
     ON CONFLICT (queue, partition_key) DO UPDATE SET ready = TRUE, version = queue_keys.version + 1";

// --- claim

// The claim statement, with `$guard` added to the conditions a due job meets.
macro_rules! pg_claim {
    ($guard:literal) => {
        concat!(
            "UPDATE jobs SET state = 'started', attempts = jobs.attempts + 1, \
                 started_at = $1, locked_by = $2, lease_token = $3, run_started = due.n <= $8, \
                 cancel_requested = FALSE, \
                 locked_until = COALESCE($7::timestamptz, now()) + $6::bigint * interval '1 microsecond' \
             FROM (SELECT id, row_number() OVER () AS n FROM (SELECT id FROM jobs \
                 WHERE state = 'pending' AND queue = $4 AND available_at <= $1 ",
            $guard,
            " ORDER BY priority DESC, available_at, id LIMIT $5 \
                 FOR UPDATE SKIP LOCKED) AS locked) AS due, \
                 (SELECT set_config('synchronous_commit', 'off', true) AS setting) AS relaxed \
             WHERE jobs.id = due.id AND relaxed.setting = 'off' \
             RETURNING jobs.id, jobs.lease_token, jobs.type, jobs.queue, jobs.payload, jobs.priority, \
                 jobs.attempts, jobs.max_attempts, jobs.batch_id, jobs.has_dependents, jobs.run_started, \
                 jobs.trace_context"
        )
    };
}

// The claim commits without waiting for its WAL to reach the disk
// (`synchronous_commit = off` for this transaction only, set by the
// one-row `relaxed` join). Safe for at-least-once delivery: a claim lost
// to a server crash only puts its jobs back to pending, to run again,
// as a dead worker's would; and the WAL is flushed in order, so any
// outcome written for a claimed job (a synchronous commit) makes its
// claim durable too. It spares every claim an fsync: a worker starts
// jobs one disk flush sooner.
// The first `start_now` rows, in claim order, start at once; a
// window cannot sit beside FOR UPDATE, so it numbers the locked rows.
/// Claims up to $5 due jobs of queue $4 (none while it is paused or has flow settings: see [`super::flow`]), skipping locked rows: $1 due by, $2 worker, $3 claim token, $6 lease in microseconds, $7 now (NULL: the server's), $8 how many start at once.
pub(super) const CLAIM: &str = pg_claim!(
    "AND NOT EXISTS (SELECT 1 FROM queues WHERE name = $4 AND (paused OR (concurrency_limit IS NOT NULL \
         OR key_limit IS NOT NULL OR rate_limit IS NOT NULL OR fair)))"
);

/// [`CLAIM`] for a flow-controlled queue whose row the claim's transaction holds; $5 is the room its limits leave.
pub(super) const CLAIM_IN_ORDER: &str = pg_claim!("");

// --- claim, of a queue with flow settings (`super::flow`)

/// Whether a queue row has flow settings (a limit, a rate or fair claims).
macro_rules! pg_flow_controlled {
    () => {
        "(concurrency_limit IS NOT NULL OR key_limit IS NOT NULL OR rate_limit IS NOT NULL OR fair)"
    };
}

/// Answers 1 if queue $1 has flow settings and is not paused (no lock taken).
pub(super) const QUEUE_HAS_FLOW: &str = concat!(
    "SELECT 1 FROM queues WHERE name = $1 AND NOT paused AND ",
    pg_flow_controlled!()
);

// The transaction commits without waiting for its WAL to reach the disk,
// as the usual claim does (see `CLAIM`): a server crash can forget the
// last claims, whose jobs then run again, and with them the starts they
// recorded.
/// Locks queue $1's row and answers its flow settings (as [`FLOW`]), the last key its round passed and the claim's now ($2, or the server's), if it has any and is not paused.
pub(super) const LOCK_FLOW: &str = concat!(
    "SELECT concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair, key_cursor, \
         COALESCE($2::timestamptz, now()) AS now \
     FROM queues, (SELECT set_config('synchronous_commit', 'off', true) AS setting) AS relaxed \
     WHERE name = $1 AND NOT paused AND relaxed.setting = 'off' AND ",
    pg_flow_controlled!(),
    " FOR UPDATE OF queues"
);

/// Queue $1's started jobs per partition key.
pub(super) const RUNNING_BY_KEY: &str = "SELECT partition_key, count(*) FROM jobs \
     WHERE state = 'started' AND queue = $1 GROUP BY partition_key";

/// Forgets queue $1's starts at or before $2.
pub(super) const FORGET_STARTS: &str = "DELETE FROM queue_starts WHERE queue = $1 AND at <= $2";

/// Queue $1's starts after $2 per partition key: every key's, or with $3 (text[]) those keys' and the keyless ones.
pub(super) const STARTS_SINCE: &str = "SELECT partition_key, count(*) FROM queue_starts \
     WHERE queue = $1 AND at > $2 \
         AND ($3::text[] IS NULL OR partition_key IS NULL OR partition_key = ANY($3)) \
     GROUP BY partition_key";

/// How many of queue $1's keys are ready, counting at most $2.
pub(super) const READY_KEY_COUNT: &str =
    "SELECT count(*) FROM (SELECT 1 FROM queue_keys WHERE queue = $1 AND ready LIMIT $2) AS ready";

/// Up to $3 of queue $1's ready keys, in the round from key $2: those after it in key order, then from the first round to it; with their versions.
pub(super) const READY_KEYS: &str = "SELECT partition_key, version FROM ( \
         (SELECT 0 AS lap, partition_key, version FROM queue_keys \
             WHERE queue = $1 AND ready AND partition_key > $2 ORDER BY partition_key LIMIT $3) \
         UNION ALL \
         (SELECT 1 AS lap, partition_key, version FROM queue_keys \
             WHERE queue = $1 AND ready AND partition_key <= $2 ORDER BY partition_key LIMIT $3)) AS round \
     ORDER BY lap, partition_key LIMIT $3";

/// The due (by $4) pending jobs of queue $1 at the head of each key of $2 (text[]), up to $3 (int[]) each, best first: id, key, priority. Read without locks: the claim's start ([`START_JOBS`]) locks the jobs it takes, skipping those no longer pending or held elsewhere.
pub(super) const KEY_HEADS: &str = "SELECT h.id, k.key, h.priority \
     FROM UNNEST($2::text[], $3::int[]) WITH ORDINALITY AS k(key, n, place) \
     CROSS JOIN LATERAL (SELECT id, priority, available_at FROM jobs \
         WHERE state = 'pending' AND queue = $1 AND partition_key = k.key AND available_at <= $4 \
         ORDER BY priority DESC, available_at, id LIMIT k.n) AS h \
     ORDER BY k.place, h.priority DESC, h.available_at, h.id";

/// Up to $3 due (by $2) pending jobs of queue $1, best first, read without locks as [`KEY_HEADS`] is: id, partition key, priority.
pub(super) const QUEUE_HEADS: &str = "SELECT id, partition_key, priority FROM jobs \
     WHERE state = 'pending' AND queue = $1 AND available_at <= $2 \
     ORDER BY priority DESC, available_at, id LIMIT $3";

/// Which keys of $2 (text[]) in queue $1 have a pending job, due or not.
pub(super) const KEYS_PENDING: &str = "SELECT k FROM UNNEST((SELECT $2::text[])) AS k \
     WHERE EXISTS (SELECT 1 FROM jobs WHERE state = 'pending' AND queue = $1 AND partition_key = k)";

/// Claims the still-pending jobs $5 (bigint[]) at $1 for worker $2 under token $3, leased $4 microseconds from $1, those of $6 (bigint[]) starting at once; answers them. Each job is looked up by its id and locked, skipping one another transaction holds (an application's transaction dispatching into a sequence holds its key's last job): the claim, which holds its queue's row, never waits on it.
pub(super) const START_JOBS: &str = "UPDATE jobs SET state = 'started', attempts = jobs.attempts + 1, \
         started_at = $1, locked_by = $2, lease_token = $3, run_started = jobs.id = ANY($6), \
         cancel_requested = FALSE, \
         locked_until = $1 + $4::bigint * interval '1 microsecond' \
     FROM UNNEST((SELECT $5::bigint[])) AS c(id) \
     CROSS JOIN LATERAL (SELECT id FROM jobs AS p WHERE p.id = c.id AND p.state = 'pending' \
         FOR UPDATE SKIP LOCKED) AS l \
     WHERE jobs.id = l.id \
     RETURNING jobs.id, jobs.lease_token, jobs.type, jobs.queue, jobs.payload, jobs.priority, \
         jobs.attempts, jobs.max_attempts, jobs.batch_id, jobs.has_dependents, jobs.run_started, \
         jobs.trace_context";

/// Deletes up to `$1` keys marked not ready, skipping rows another
/// transaction holds (a dispatch marking one ready again, say).
pub(super) const PRUNE_IDLE_KEYS: &str = "DELETE FROM queue_keys \
     WHERE (queue, partition_key) IN (SELECT queue, partition_key FROM queue_keys \
         WHERE NOT ready LIMIT $1 FOR UPDATE SKIP LOCKED) \
       AND NOT ready";

// Key rows a dispatch is marking ready are skipped, not waited for: a
// claim holding its queue's row never waits on an application's
// transaction, and a key left ready is only looked at again.
/// Makes the keys $2 (text[]) of queue $1 not ready where their versions are still $3 (bigint[]), skipping locked rows.
pub(super) const KEYS_IDLE: &str = "UPDATE queue_keys SET ready = FALSE \
     FROM (SELECT q.partition_key FROM UNNEST((SELECT $2::text[]), (SELECT $3::bigint[])) AS t(key, version) \
         JOIN queue_keys AS q ON q.queue = $1 AND q.partition_key = t.key AND q.version = t.version \
         FOR UPDATE OF q SKIP LOCKED) AS t \
     WHERE queue_keys.queue = $1 AND queue_keys.partition_key = t.partition_key";

/// Records key $2 as the last one queue $1's round passed.
pub(super) const SET_KEY_CURSOR: &str = "UPDATE queues SET key_cursor = $2 WHERE name = $1";

/// Records a start of queue $1 at $3 per key of $2 (text[], NULL elements: per queue).
pub(super) const RECORD_STARTS: &str = "INSERT INTO queue_starts (queue, partition_key, at) \
     SELECT $1, k, $3 FROM UNNEST($2::text[]) AS k";

/// The most recent per-queue start of queue $1 after skipping $2.
pub(super) const NTH_LATEST_START: &str = "SELECT at FROM queue_starts \
     WHERE queue = $1 AND partition_key IS NULL ORDER BY at DESC LIMIT 1 OFFSET $2";

// --- flow_usage

/// Makes the transaction read one snapshot throughout, and nothing else.
pub(super) const SNAPSHOT: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY";

// --- next_due

/// When the next pending job of queue $1 is due (the statement shared with SQLite, in `rows`).
pub(super) fn next_due() -> String {
    crate::store::rows::next_due_sql("$1")
}

// --- mark_started

/// Records that the runs of the claims still held started: $1 job ids, $2 their claim tokens.
pub(super) const MARK_STARTED: &str = "UPDATE jobs SET run_started = TRUE \
     FROM UNNEST((SELECT $1::bigint[]), (SELECT $2::bigint[])) AS c(id, token) \
     WHERE jobs.id = c.id AND jobs.lease_token = c.token";

// --- complete

// One statement for the whole batch; each row applies only under its
// claim's token, which a job carries exactly while it is started.
/// Applies completions under their claims: $1 ended at, $2 it as error-entry text, $3 ids, $4 tokens, $5 attempts, $6 new states ('snoozed': pending, the attempt given back), $7 retry times, $8 errors, $9 outputs (arrays; an output only for a finished job).
pub(super) const COMPLETE: &str = "UPDATE jobs SET \
        state = CASE c.state WHEN 'snoozed' THEN 'pending' ELSE c.state END, \
        finished_at = CASE WHEN c.state IN ('pending', 'snoozed') THEN jobs.finished_at ELSE $1 END, \
        available_at = COALESCE(c.retry_at, jobs.available_at), \
        attempts = CASE WHEN c.state = 'snoozed' THEN jobs.attempts - 1 ELSE jobs.attempts END, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL, \
        last_error = COALESCE(c.error, jobs.last_error), \
        errors = CASE WHEN c.error IS NULL THEN jobs.errors ELSE jobs.errors || \
            jsonb_build_array(jsonb_build_object('attempt', c.attempt, 'at', $2::text, 'error', c.error)) END, \
        output = c.output \
     FROM UNNEST((SELECT $3::bigint[]), (SELECT $4::bigint[]), (SELECT $5::int[]), \
         (SELECT $6::text[]), (SELECT $7::timestamptz[]), (SELECT $8::text[]), (SELECT $9::text[])) \
        AS c(id, token, attempt, state, retry_at, error, output) \
     WHERE jobs.id = c.id AND jobs.lease_token = c.token \
     RETURNING jobs.id, jobs.queue, jobs.state = 'pending' AS due, jobs.state <> 'pending' AS ended";

/// The most job ids one notification on the results channel lists: each
/// at most 19 digits and a comma, under the 8,000 bytes PostgreSQL allows
/// a payload.
const IDS_PER_NOTICE: usize = 390;

/// [`COMPLETE`], waking the queues of retried jobs and, on the results
/// channel, those waiting on the jobs that ended, on commit: one
/// notification lists up to [`IDS_PER_NOTICE`] ids, comma-separated, so a
/// batch of hundreds of endings queues one or two notifications, not one
/// each. Answers a row (`queue`) per completion applied.
pub(super) fn complete() -> String {
    format!(
        "WITH changed AS ({COMPLETE}), \
         ended AS (SELECT string_agg(id::text, ',') AS ids FROM \
             (SELECT id, (row_number() OVER ()) / {IDS_PER_NOTICE} AS notice FROM changed WHERE ended) AS e \
             GROUP BY notice) \
         SELECT queue, (CASE WHEN due THEN pg_notify('{CHANNEL}', queue) END) IS NULL AS quiet, \
             (SELECT count(pg_notify('{RESULT_CHANNEL}', ids)) FROM ended) AS notices \
         FROM changed"
    )
}

// --- record_progress

/// Records progress $3 (percent) and $4 (message) for job $1, if claim token $2 still holds it.
pub(super) const RECORD_PROGRESS: &str = "UPDATE jobs SET progress = $3, progress_message = $4 \
     WHERE id = $1 AND lease_token = $2";

// --- extend_leases

// Rows are locked in id order, as completions lock them.
/// Extends the leases of the claims still held: $1 ids, $2 tokens, $3 now (NULL: the server's), $4 lease in microseconds; answers `id`, `lease_token`.
pub(super) const EXTEND_LEASES: &str = "UPDATE jobs SET locked_until = COALESCE($3::timestamptz, now()) + $4::bigint * interval '1 microsecond' \
     FROM (SELECT * FROM UNNEST((SELECT $1::bigint[]), (SELECT $2::bigint[])) AS c(id, token) ORDER BY id) AS c \
     WHERE jobs.id = c.id AND jobs.lease_token = c.token \
     RETURNING jobs.id, jobs.lease_token";

// --- release

/// Hands the jobs of the claims still held back to pending, attempt not counted (or ends them cancelled, if asked to stop): $1 ids, $2 tokens.
pub(super) const RELEASE: &str = "UPDATE jobs SET \
        state = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'pending' END, \
        finished_at = CASE WHEN cancel_requested THEN now() ELSE finished_at END, \
        attempts = CASE WHEN cancel_requested THEN attempts ELSE attempts - 1 END, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL \
     FROM UNNEST((SELECT $1::bigint[]), (SELECT $2::bigint[])) AS c(id, token) \
     WHERE jobs.id = c.id AND jobs.lease_token = c.token \
     RETURNING queue, TRUE AS due";

/// [`RELEASE`], waking their queues on commit; answers a row (`queue`) per job released.
pub(super) fn release() -> String {
    notifying(RELEASE, "queue")
}

// --- rescue

/// Ends cancelled the started jobs whose lease ran out before $1 (NULL: the server's now) and whose cancel was requested; answers their ids.
pub(super) const RESCUE_CANCELLED: &str = "UPDATE jobs SET state = 'cancelled', finished_at = clock.now, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL \
     FROM (SELECT COALESCE($1::timestamptz, now()) AS now) AS clock \
     WHERE state = 'started' AND cancel_requested AND locked_until < clock.now \
     RETURNING id";

// Every assignment reads the row as it was. A run whose handler had
// started counts its attempt and records it lost; a claim whose
// handler never started gives its attempt back, with nothing recorded.
/// Returns started jobs whose lease ran out to pending (or failed, on their last attempt): $1 now (NULL: the server's).
pub(super) const RESCUE: &str = "UPDATE jobs SET \
        state = CASE WHEN run_started AND attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
        finished_at = CASE WHEN run_started AND attempts >= max_attempts THEN clock.now ELSE NULL END, \
        available_at = clock.now, \
        attempts = CASE WHEN run_started THEN attempts ELSE attempts - 1 END, \
        last_error = CASE WHEN run_started THEN 'lease expired: worker ' || locked_by \
            || ' stopped without finishing attempt ' || attempts ELSE last_error END, \
        errors = CASE WHEN run_started THEN errors || jsonb_build_array(jsonb_build_object( \
            'attempt', attempts, \
            'at', to_char(clock.now AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
            'error', 'lease expired: worker ' || locked_by || ' stopped without finishing attempt ' || attempts)) \
            ELSE errors END, \
        locked_by = NULL, locked_until = NULL, lease_token = NULL \
     FROM (SELECT COALESCE($1::timestamptz, now()) AS now) AS clock \
     WHERE state = 'started' AND locked_until < clock.now \
     RETURNING id, queue, state = 'pending' AS due";

/// [`RESCUE`], waking the queues of jobs back to pending on commit; answers a row (`id`) per job rescued.
pub(super) fn rescue() -> String {
    notifying(RESCUE, "id")
}

// --- get, list: a job record's columns

/// The columns of a job record, as `record` decodes them.
const RECORD_COLUMNS: &str = "id, type, queue, payload, state, priority, attempts, max_attempts, \
     available_at, created_at, started_at, finished_at, locked_by, locked_until, last_error, \
     errors::text AS errors, unique_key, output, progress, progress_message, batch_id, waiting_on";

/// Job $1's record.
pub(super) fn get_job() -> String {
    format!("SELECT {RECORD_COLUMNS} FROM jobs WHERE id = $1")
}

/// Every job's record, before `rows::push_filter` appends the listing's conditions, order and limit (the page size plus one).
pub(super) fn list_jobs() -> String {
    format!("SELECT {RECORD_COLUMNS} FROM jobs")
}

// --- queue_stats

/// Due jobs per queue at $1 (count, oldest due time) with its paused flag, for every queue with due jobs or a pause row.
pub(super) const QUEUE_STATS: &str = "SELECT COALESCE(d.queue, p.name) AS queue, COALESCE(d.n, 0) AS n, d.oldest, \
            COALESCE(p.paused, FALSE) AS paused \
     FROM (SELECT queue, COUNT(*) AS n, MIN(available_at) AS oldest FROM jobs \
           WHERE state = 'pending' AND available_at <= $1 GROUP BY queue) AS d \
     FULL JOIN queues AS p ON p.name = d.queue \
     ORDER BY COALESCE(d.queue, p.name) COLLATE \"C\"";

// --- throughput

/// Jobs finished and failed per minute (epoch minute number) since $1, oldest first.
pub(super) const THROUGHPUT: &str = "SELECT floor(extract(epoch FROM finished_at) / 60)::bigint AS minute, \
            COUNT(*) FILTER (WHERE state = 'finished') AS finished, \
            COUNT(*) FILTER (WHERE state = 'failed') AS failed \
     FROM jobs WHERE state IN ('finished', 'failed') AND finished_at >= $1 \
     GROUP BY minute ORDER BY minute";

// --- set_paused

/// Sets queue $1's paused flag to $2, updated at $3; a resumed queue is due to wake.
pub(super) const SET_PAUSED: &str = "INSERT INTO queues (name, paused, updated_at) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at \
     RETURNING name AS queue, NOT paused AS due";

/// [`SET_PAUSED`], waking the queue's workers everywhere on commit when it resumes; answers `queue`.
pub(super) fn set_paused() -> String {
    notifying(SET_PAUSED, "queue")
}

// --- set_flow and flow

/// Sets queue $1's flow settings at $8: concurrency limit $2, per-key limit $3, rate $4 starts per $5 ms (per key: $6), fair $7.
pub(super) const SET_FLOW: &str = "INSERT INTO queues \
         (name, concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (name) DO UPDATE SET concurrency_limit = excluded.concurrency_limit, \
         key_limit = excluded.key_limit, rate_limit = excluded.rate_limit, \
         rate_period_ms = excluded.rate_period_ms, rate_per_key = excluded.rate_per_key, \
         fair = excluded.fair, updated_at = excluded.updated_at";

/// Queue $1's flow settings: concurrency limit, per-key limit, rate starts, rate period (ms), per key, fair.
pub(super) const FLOW: &str = "SELECT concurrency_limit, key_limit, rate_limit, rate_period_ms, \
     rate_per_key, fair FROM queues WHERE name = $1";

// --- flow_usage

/// Every queue with flow settings: its name and its settings (as [`FLOW`] reads them).
pub(super) const FLOW_QUEUES: &str = concat!(
    "SELECT name, concurrency_limit, key_limit, rate_limit, rate_period_ms, rate_per_key, fair \
     FROM queues WHERE ",
    pg_flow_controlled!()
);

/// Started jobs per flow-controlled queue and partition key.
pub(super) const FLOW_RUNNING: &str = concat!(
    "SELECT queue, partition_key, count(*) FROM jobs \
     WHERE state = 'started' AND queue IN (SELECT name FROM queues WHERE ",
    pg_flow_controlled!(),
    ") GROUP BY queue, partition_key"
);

/// Starts per rate-limited queue and partition key in the window of the queue's period that ends at $1.
pub(super) const FLOW_STARTS: &str = "SELECT s.queue, s.partition_key, count(*) FROM queues AS q \
     JOIN queue_starts AS s ON s.queue = q.name \
         AND s.at > $1::timestamptz - q.rate_period_ms * interval '1 millisecond' \
     WHERE q.rate_limit IS NOT NULL GROUP BY s.queue, s.partition_key";

/// Due (by $1) pending jobs per flow-controlled queue: all of them, and those without a key.
pub(super) const FLOW_DUE: &str = concat!(
    "SELECT queue, count(*), count(*) FILTER (WHERE partition_key IS NULL) FROM jobs \
     WHERE state = 'pending' AND available_at <= $1 AND queue IN (SELECT name FROM queues WHERE ",
    pg_flow_controlled!(),
    ") GROUP BY queue"
);

/// Due (by $2) pending jobs of queue $1 whose key is one of $3 (text[]).
pub(super) const FLOW_KEYS_DUE: &str = "SELECT count(*) FROM jobs \
     WHERE state = 'pending' AND partition_key IS NOT NULL AND queue = $1 \
         AND partition_key = ANY($3::text[]) AND available_at <= $2";

// --- delete

/// Deletes job $1 unless it is started.
pub(super) const DELETE_JOB: &str = "DELETE FROM jobs WHERE id = $1 AND state <> 'started'";

// --- try_lease

/// Takes or renews lease $1 for holder $2 until $3 (NULL: the server's now) plus $4 microseconds, if free, expired or already $2's; answers `holder` when taken.
pub(super) const TRY_LEASE: &str = "INSERT INTO leases (name, holder, until) \
        VALUES ($1, $2, COALESCE($3::timestamptz, now()) + $4::bigint * interval '1 microsecond') \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
        WHERE leases.holder = excluded.holder OR leases.until < COALESCE($3::timestamptz, now()) \
     RETURNING holder";

// --- drop_lease

/// Drops lease $1 if holder $2 holds it.
pub(super) const DROP_LEASE: &str = "DELETE FROM leases WHERE name = $1 AND holder = $2";

// --- take_tick

// A concurrent taker of the same tick waits on the row, then sees it moved.
/// Takes schedule $1's tick at $2 unless it took that one or a later one; one row affected when taken.
pub(super) const TAKE_TICK: &str = "INSERT INTO schedules (name, last_fire_at) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET last_fire_at = excluded.last_fire_at \
        WHERE schedules.last_fire_at < excluded.last_fire_at";

/// Records job $1 as the one schedule $2's tick dispatched.
pub(super) const SET_TICK_JOB: &str = "UPDATE schedules SET last_job_id = $1 WHERE name = $2";

/// Records job $2 as a run of schedule $1 fired at $3 (once: a tick whose
/// job was still running dispatches nothing new).
pub(super) const RECORD_RUN: &str =
    "INSERT INTO schedule_runs (name, job_id, fire_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

// --- schedule_runs

/// Schedule $1's latest $2 runs, newest first: fire time, job, its state (NULL once gone).
pub(super) const SCHEDULE_RUNS: &str = "SELECT r.fire_at, r.job_id, j.state FROM schedule_runs AS r \
     LEFT JOIN jobs AS j ON j.id = r.job_id WHERE r.name = $1 ORDER BY r.fire_at DESC LIMIT $2";

/// Forgets up to $1 schedule runs whose job is gone, skipping rows another transaction holds.
pub(super) const PRUNE_SCHEDULE_RUNS: &str = "DELETE FROM schedule_runs WHERE (name, job_id) IN \
     (SELECT name, job_id FROM schedule_runs AS r WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE id = r.job_id) \
      LIMIT $1 FOR UPDATE SKIP LOCKED)";

// --- publish_concurrency, worker_concurrency: in store/concurrency.rs (`postgres`)

// --- schedule_states

/// Every schedule's latest tick and the job it dispatched, by name; no parameters.
pub(super) const SCHEDULE_STATES: &str =
    "SELECT name, last_fire_at, last_job_id FROM schedules ORDER BY name COLLATE \"C\"";

// --- counts

/// Job counts per queue and state; no parameters.
pub(super) const COUNTS: &str = "SELECT queue, state, COUNT(*) AS n FROM jobs GROUP BY queue, state \
     ORDER BY queue COLLATE \"C\", state COLLATE \"C\"";

// --- counts_by_type

/// Job counts per type and state, in byte order; no parameters.
pub(super) const COUNTS_BY_TYPE: &str = "SELECT type, state, COUNT(*) AS n FROM jobs GROUP BY type, state \
     ORDER BY type COLLATE \"C\", state COLLATE \"C\"";

// --- cancel

/// Cancels job $2, finished at $1, if it is pending.
pub(super) const CANCEL: &str = "UPDATE jobs SET state = 'cancelled', finished_at = $1 WHERE id = $2 AND state = 'pending' \
     RETURNING id";

/// [`CANCEL`], telling those waiting on the job on commit; answers how many
/// jobs were cancelled (0 or 1).
pub(super) fn cancel() -> String {
    format!(
        "WITH changed AS ({CANCEL}) \
         SELECT count(pg_notify('{RESULT_CHANNEL}', id::text)) FROM changed"
    )
}

// --- request_cancel

/// Asks the run of job $1 to stop, if it is started, and notifies the pools
/// running jobs on commit; answers how many jobs were asked (0 or 1).
pub(super) fn request_cancel() -> String {
    format!(
        "WITH asked AS (\
            UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND state = 'started' \
            RETURNING id) \
         SELECT count(pg_notify('{CANCEL_CHANNEL}', id::text)) FROM asked"
    )
}

// --- cancels_requested

/// The claims still held whose job was asked to stop: $1 ids, $2 tokens; answers `id`, `lease_token`.
pub(super) const CANCELS_REQUESTED: &str = "SELECT jobs.id, jobs.lease_token \
     FROM jobs JOIN UNNEST((SELECT $1::bigint[]), (SELECT $2::bigint[])) AS c(id, token) \
        ON jobs.id = c.id AND jobs.lease_token = c.token \
     WHERE jobs.cancel_requested ORDER BY jobs.id";

// --- retry

/// Puts failed or cancelled job $3 back to pending, due at $1, with $2 more attempts.
pub(super) const RETRY: &str = "UPDATE jobs SET state = 'pending', available_at = $1, finished_at = NULL, \
        max_attempts = attempts + $2 \
     WHERE id = $3 AND state IN ('failed', 'cancelled') \
     RETURNING queue, TRUE AS due";

/// [`RETRY`], waking its queue on commit; answers `queue` when retried.
pub(super) fn retry() -> String {
    notifying(RETRY, "queue")
}

// --- retry_failed (its batches of failed jobs: `rows::failed_batch`)

/// The unique keys among $1 (text[]) that pending or started jobs hold.
pub(super) const HELD_KEYS: &str = "SELECT unique_key FROM jobs \
     WHERE unique_key = ANY($1) AND state IN ('pending', 'started')";

/// Puts the failed jobs among ids $3 (bigint[]) back to pending, due at $1, with $2 more attempts.
pub(super) const RETRY_FAILED: &str = "UPDATE jobs SET state = 'pending', available_at = $1, finished_at = NULL, \
        max_attempts = attempts + $2 \
     WHERE id = ANY($3) AND state = 'failed' \
     RETURNING queue, TRUE AS due";

/// [`RETRY_FAILED`], waking their queues on commit; answers a row (`queue`) per job retried.
pub(super) fn retry_failed() -> String {
    notifying(RETRY_FAILED, "queue")
}

// --- prune

// The conditions again on the deleted row: a job the subquery
// picked may have been retried (back to pending) before its lock
// came free, and PostgreSQL does not re-check a subquery.
/// Deletes up to $3 jobs in state $1 that ended before $2.
pub(super) const PRUNE: &str = "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
        WHERE state = $1 AND finished_at < $2 LIMIT $3) \
     AND state = $1 AND finished_at < $2";

// --- prune_alerts

/// Deletes up to $2 alert incidents resolved before $1.
pub(super) const PRUNE_ALERTS: &str = "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts \
        WHERE resolved_at < $1 LIMIT $2) \
     AND resolved_at < $1";

// --- outcomes

/// Jobs finished and failed per type since $1, by type.
pub(super) const OUTCOMES: &str = "SELECT type, COUNT(*) FILTER (WHERE state = 'finished') AS finished, \
            COUNT(*) FILTER (WHERE state = 'failed') AS failed \
     FROM jobs WHERE state IN ('finished', 'failed') AND finished_at >= $1 \
     GROUP BY type ORDER BY type";

// --- open_alert

/// Opens an incident unless one with open key $5 fires: $1 rule, $2 subject, $3 summary, $4 fired at; answers `id` when opened.
pub(super) const OPEN_ALERT: &str = "INSERT INTO alerts (rule, subject, summary, fired_at, open_key) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (open_key) DO NOTHING RETURNING id";

// --- resolve_alert

/// Resolves incident $2 at $1 if it is still firing.
pub(super) const RESOLVE_ALERT: &str = "UPDATE alerts SET resolved_at = $1, open_key = NULL \
     WHERE id = $2 AND resolved_at IS NULL";

// --- alerts

/// The start of both incident listings: an incident's columns, as `alerts` decodes them.
const ALERT_COLUMNS: &str = "SELECT id, rule, subject, summary, fired_at, resolved_at FROM alerts";

/// Every firing incident, oldest first; no parameters.
pub(super) fn firing_alerts() -> String {
    format!("{ALERT_COLUMNS} WHERE resolved_at IS NULL ORDER BY id")
}

/// Up to $1 resolved incidents, latest resolved first.
pub(super) fn resolved_alerts() -> String {
    format!(
        "{ALERT_COLUMNS} WHERE resolved_at IS NOT NULL ORDER BY resolved_at DESC, id DESC LIMIT $1"
    )
}
