-- The jobs table. `payload` is the JSON text exactly as dispatched; `errors`
-- is a JSON array of {attempt, at, error}, oldest first.
CREATE TABLE jobs (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type         TEXT        NOT NULL,
    queue        TEXT        NOT NULL DEFAULT 'default',
    payload      TEXT        NOT NULL,
    state        TEXT        NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'started', 'finished', 'failed', 'cancelled')),
    priority     INTEGER     NOT NULL DEFAULT 0,
    attempts     INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts INTEGER     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    available_at TIMESTAMPTZ NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    locked_by    TEXT,
    locked_until TIMESTAMPTZ,
    last_error   TEXT,
    errors       JSONB       NOT NULL DEFAULT '[]',
    unique_key   TEXT,
    -- A job is leased exactly while it is started: a guard on `locked_by`
    -- alone then also says the job is still started.
    CHECK ((state = 'started') = (locked_by IS NOT NULL))
);

-- Rows churn through states: vacuum and analyze after a few percent change,
-- not the default fifth of the table.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02
);

-- Every index below is either partial on a state or over columns that never
-- change, so a job moving between states touches as few of them as possible.

-- Serves the claim: due pending jobs of a queue, highest priority first, oldest due first.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, available_at, id) WHERE state = 'pending';
-- Serves lease renewal and release by worker, and the rescuer (it scans only started jobs).
CREATE INDEX jobs_started ON jobs (locked_by) WHERE state = 'started';
-- Serves pruning of ended jobs by age, and throughput per minute.
CREATE INDEX jobs_ended ON jobs (state, finished_at) WHERE state IN ('finished', 'failed', 'cancelled');
-- Serves listings by type.
CREATE INDEX jobs_type ON jobs (type);
-- Unique jobs: while a job with a key is pending or started, no other job with that key is stored.
CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'started');

-- Paused queues: workers claim nothing from a queue whose row says paused.
CREATE TABLE queues (
    name       TEXT        PRIMARY KEY,
    paused     BOOLEAN     NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Named leases: maintenance work runs where the live lease is held.
CREATE TABLE leases (
    name   TEXT        PRIMARY KEY,
    holder TEXT        NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);
