-- Batches: jobs dispatched together, counted as they end, so reading a
-- batch's progress is one row's read at any size; callback jobs run once
-- when their condition first holds.
--
-- `awaiting` holds the callbacks not yet fired, one bit each: 1 success
-- (every job finished), 2 complete (every job ended), 4 failure (a job
-- failed for good). `due` says some awaited callback's condition holds;
-- success and complete wait until the batch is sealed (no more jobs
-- expected but those its running jobs add).
CREATE TABLE batches (
    id         BIGINT       NOT NULL AUTO_INCREMENT,
    name       VARCHAR(255) NOT NULL DEFAULT '',
    created_at BIGINT       NOT NULL,
    total      BIGINT       NOT NULL DEFAULT 0,
    finished   BIGINT       NOT NULL DEFAULT 0,
    failed     BIGINT       NOT NULL DEFAULT 0,
    cancelled  BIGINT       NOT NULL DEFAULT 0,
    sealed     BOOLEAN      NOT NULL DEFAULT FALSE,
    awaiting   INT          NOT NULL DEFAULT 0,
    due        BOOLEAN AS (
        ((awaiting & 4) <> 0 AND failed > 0)
        OR (sealed AND (((awaiting & 1) <> 0 AND finished = total)
            OR ((awaiting & 2) <> 0 AND finished + failed + cancelled = total)))
    ) STORED,
    PRIMARY KEY (id),
    KEY batches_due (due, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A batch's callback jobs, as they will be inserted; `job_id` is the job
-- each became once fired.
CREATE TABLE batch_callbacks (
    batch_id      BIGINT       NOT NULL,
    kind          SMALLINT     NOT NULL,
    type          VARCHAR(255) NOT NULL,
    queue         VARCHAR(255) NOT NULL,
    payload       LONGTEXT     NOT NULL,
    priority      INT          NOT NULL,
    max_attempts  INT          NOT NULL,
    unique_key    TEXT         NULL,
    partition_key VARCHAR(255) NULL,
    job_id        BIGINT       NULL,
    PRIMARY KEY (batch_id, kind),
    CONSTRAINT batch_callbacks_batch FOREIGN KEY (batch_id) REFERENCES batches (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The batch a job belongs to (NULL: none).
ALTER TABLE jobs
    ADD COLUMN batch_id BIGINT NULL,
    ADD KEY jobs_batch (batch_id, id);

-- Every way a batch's job ends or comes back (completion, cancel, rescue,
-- a retry asked for by hand) moves its batch's counts.
CREATE TRIGGER jobs_batch_counted AFTER UPDATE ON jobs FOR EACH ROW
BEGIN
    IF NEW.batch_id IS NOT NULL AND NEW.state <> OLD.state
        AND (NEW.state IN ('finished', 'failed', 'cancelled')
            OR OLD.state IN ('finished', 'failed', 'cancelled')) THEN
        UPDATE batches SET
            finished = finished + (NEW.state = 'finished') - (OLD.state = 'finished'),
            failed = failed + (NEW.state = 'failed') - (OLD.state = 'failed'),
            cancelled = cancelled + (NEW.state = 'cancelled') - (OLD.state = 'cancelled')
        WHERE id = NEW.batch_id;
    END IF;
END;

-- A batch's job deleted before it ended leaves the batch: it is no longer
-- waited for.
CREATE TRIGGER jobs_batch_left AFTER DELETE ON jobs FOR EACH ROW
BEGIN
    IF OLD.batch_id IS NOT NULL AND OLD.state NOT IN ('finished', 'failed', 'cancelled') THEN
        UPDATE batches SET total = total - 1 WHERE id = OLD.batch_id;
    END IF;
END;
