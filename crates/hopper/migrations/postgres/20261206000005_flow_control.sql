-- Flow control: per-key concurrency limits, rate limits and fair claims.

-- The job's partition key (NULL: none). Per-key limits and fair claims
-- treat the jobs of one key as one partition.
ALTER TABLE jobs ADD COLUMN partition_key TEXT NULL;

-- Serves the claim of one key's due jobs; holds only pending keyed jobs.
CREATE INDEX jobs_keyed ON jobs (queue, partition_key, priority DESC, available_at, id)
    WHERE state = 'pending' AND partition_key IS NOT NULL;

-- A queue's flow settings beside `concurrency_limit` (NULL: unset).
ALTER TABLE queues
    ADD COLUMN key_limit INTEGER NULL,
    ADD COLUMN rate_limit INTEGER NULL,
    ADD COLUMN rate_period_ms BIGINT NULL,
    ADD COLUMN rate_per_key BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN fair BOOLEAN NOT NULL DEFAULT FALSE,
    -- The last turn a claim gave out to one of the queue's keys.
    ADD COLUMN key_turn BIGINT NOT NULL DEFAULT 0;

-- The keys of each queue that may have pending jobs, in the order claims
-- serve them (lowest `turn` first). `version` grows whenever a job of the
-- key becomes pending, so a claim that found none clears `ready` only if
-- no job became pending since it looked.
CREATE TABLE queue_keys (
    queue         TEXT    NOT NULL,
    partition_key TEXT    NOT NULL,
    ready         BOOLEAN NOT NULL DEFAULT TRUE,
    version       BIGINT  NOT NULL DEFAULT 0,
    turn          BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, partition_key)
);
CREATE INDEX queue_keys_ready ON queue_keys (queue, turn) WHERE ready;

-- Every way a keyed job becomes pending (dispatch, retry, snooze, release,
-- rescue, a retry asked for by hand) marks its key ready.
CREATE FUNCTION hopper_key_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_keys (queue, partition_key) VALUES (NEW.queue, NEW.partition_key)
    ON CONFLICT (queue, partition_key)
    DO UPDATE SET ready = TRUE, version = queue_keys.version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_key_inserted AFTER INSERT ON jobs FOR EACH ROW
    WHEN (NEW.partition_key IS NOT NULL AND NEW.state = 'pending')
    EXECUTE FUNCTION hopper_key_pending();
CREATE TRIGGER jobs_key_pending AFTER UPDATE OF state ON jobs FOR EACH ROW
    WHEN (NEW.partition_key IS NOT NULL AND NEW.state = 'pending' AND OLD.state <> 'pending')
    EXECUTE FUNCTION hopper_key_pending();

-- Job starts of rate-limited queues, kept for one period: `partition_key`
-- is the job's key where the rate is per key, NULL where it is per queue.
CREATE TABLE queue_starts (
    queue         TEXT        NOT NULL,
    partition_key TEXT        NULL,
    at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX queue_starts_window ON queue_starts (queue, partition_key, at);
