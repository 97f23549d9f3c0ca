-- Flow control: per-key concurrency limits, rate limits and fair claims.

-- The job's partition key (NULL: none). Per-key limits and fair claims
-- treat the jobs of one key as one partition. `keyed_queue` is the queue
-- of a pending keyed job and NULL otherwise, so the index below changes
-- only for keyed jobs (an unkeyed job's entry never moves).
ALTER TABLE jobs
    ADD COLUMN partition_key VARCHAR(255) NULL,
    ADD COLUMN keyed_queue VARCHAR(255)
        AS (IF(state = 'pending' AND partition_key IS NOT NULL, queue, NULL)) VIRTUAL,
    ADD KEY jobs_keyed (keyed_queue, partition_key, priority DESC, available_at, id);

-- A queue's flow settings beside `concurrency_limit` (NULL: unset).
ALTER TABLE queues
    ADD COLUMN key_limit INT NULL,
    ADD COLUMN rate_limit INT NULL,
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
    queue         VARCHAR(255) NOT NULL,
    partition_key VARCHAR(255) NOT NULL,
    ready         BOOLEAN      NOT NULL DEFAULT TRUE,
    version       BIGINT       NOT NULL DEFAULT 0,
    turn          BIGINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, partition_key),
    KEY queue_keys_ready (queue, ready, turn)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Every way a keyed job becomes pending (dispatch, retry, snooze, release,
-- rescue, a retry asked for by hand) marks its key ready.
CREATE TRIGGER jobs_key_inserted AFTER INSERT ON jobs FOR EACH ROW
BEGIN
    IF NEW.partition_key IS NOT NULL AND NEW.state = 'pending' THEN
        INSERT INTO queue_keys (queue, partition_key) VALUES (NEW.queue, NEW.partition_key)
        ON DUPLICATE KEY UPDATE ready = TRUE, version = version + 1;
    END IF;
END;

CREATE TRIGGER jobs_key_pending AFTER UPDATE ON jobs FOR EACH ROW
BEGIN
    IF NEW.partition_key IS NOT NULL AND NEW.state = 'pending' AND OLD.state <> 'pending' THEN
        INSERT INTO queue_keys (queue, partition_key) VALUES (NEW.queue, NEW.partition_key)
        ON DUPLICATE KEY UPDATE ready = TRUE, version = version + 1;
    END IF;
END;

-- Job starts of rate-limited queues, kept for one period: `partition_key`
-- is the job's key where the rate is per key, NULL where it is per queue.
CREATE TABLE queue_starts (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    queue         VARCHAR(255) NOT NULL,
    partition_key VARCHAR(255) NULL,
    at            BIGINT       NOT NULL,
    PRIMARY KEY (id),
    KEY queue_starts_window (queue, partition_key, at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
