-- The jobs table. Timestamps are integer microseconds since the Unix epoch (UTC);
-- `errors` is a JSON array of {attempt, at, error}, oldest first.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    type         TEXT    NOT NULL,
    queue        TEXT    NOT NULL DEFAULT 'default',
    payload      TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'started', 'finished', 'failed', 'cancelled')),
    priority     INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    available_at INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    locked_by    TEXT,
    locked_until INTEGER,
    last_error   TEXT,
    errors       TEXT    NOT NULL DEFAULT '[]'
);

-- Every index below is either partial on a state or over columns that never
-- change, so a job moving between states touches as few of them as possible.

-- Serves the claim: due pending jobs of a queue, highest priority first, oldest due first.
CREATE INDEX jobs_claim ON jobs (queue, priority DESC, available_at, id) WHERE state = 'pending';
-- Serves lease renewal and release by worker, and the rescuer (it scans only started jobs).
CREATE INDEX jobs_started ON jobs (locked_by) WHERE state = 'started';
-- Serves pruning of ended jobs by age.
CREATE INDEX jobs_ended ON jobs (state, finished_at) WHERE state IN ('finished', 'failed', 'cancelled');
-- Serves listings by type.
CREATE INDEX jobs_type ON jobs (type);
