-- Flow control: per-key concurrency limits, rate limits and fair claims.

-- The job's partition key (NULL: none). Per-key limits and fair claims
-- treat the jobs of one key as one partition.
ALTER TABLE jobs ADD COLUMN partition_key TEXT;

-- Serves the claim of one key's due jobs; holds only pending keyed jobs.
CREATE INDEX jobs_keyed ON jobs (queue, partition_key, priority DESC, available_at, id)
    WHERE state = 'pending' AND partition_key IS NOT NULL;

-- A queue's flow settings beside `concurrency_limit` (NULL or 0: unset).
ALTER TABLE queues ADD COLUMN key_limit INTEGER;
ALTER TABLE queues ADD COLUMN rate_limit INTEGER;
ALTER TABLE queues ADD COLUMN rate_period_ms INTEGER;
ALTER TABLE queues ADD COLUMN rate_per_key INTEGER NOT NULL DEFAULT 0 CHECK (rate_per_key IN (0, 1));
ALTER TABLE queues ADD COLUMN fair INTEGER NOT NULL DEFAULT 0 CHECK (fair IN (0, 1));
-- The last turn a claim gave out to one of the queue's keys.
ALTER TABLE queues ADD COLUMN key_turn INTEGER NOT NULL DEFAULT 0;

-- The keys of each queue that may have pending jobs, in the order claims
-- serve them (lowest `turn` first). `version` grows whenever a job of the
-- key becomes pending, so a claim that found none clears `ready` only if
-- no job became pending since it looked.
CREATE TABLE queue_keys (
    queue         TEXT    NOT NULL,
    partition_key TEXT    NOT NULL,
    ready         INTEGER NOT NULL DEFAULT 1 CHECK (ready IN (0, 1)),
    version       INTEGER NOT NULL DEFAULT 0,
    turn          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, partition_key)
) WITHOUT ROWID;
CREATE INDEX queue_keys_ready ON queue_keys (queue, turn) WHERE ready = 1;

-- Every way a keyed job becomes pending (dispatch, retry, snooze, release,
-- rescue, a retry asked for by hand) marks its key ready.
CREATE TRIGGER jobs_key_inserted AFTER INSERT ON jobs
WHEN NEW.partition_key IS NOT NULL AND NEW.state = 'pending'
BEGIN
    INSERT OR IGNORE INTO queue_keys (queue, partition_key) VALUES (NEW.queue, NEW.partition_key);
    UPDATE queue_keys SET ready = 1, version = version + 1
        WHERE queue = NEW.queue AND partition_key = NEW.partition_key;
END;
CREATE TRIGGER jobs_key_pending AFTER UPDATE OF state ON jobs
WHEN NEW.partition_key IS NOT NULL AND NEW.state = 'pending' AND OLD.state <> 'pending'
BEGIN
    INSERT OR IGNORE INTO queue_keys (queue, partition_key) VALUES (NEW.queue, NEW.partition_key);
    UPDATE queue_keys SET ready = 1, version = version + 1
        WHERE queue = NEW.queue AND partition_key = NEW.partition_key;
END;

-- Job starts of rate-limited queues, kept for one period: `partition_key`
-- is the job's key where the rate is per key, NULL where it is per queue.
CREATE TABLE queue_starts (
    queue         TEXT    NOT NULL,
    partition_key TEXT,
    at            INTEGER NOT NULL
);
CREATE INDEX queue_starts_window ON queue_starts (queue, partition_key, at);
