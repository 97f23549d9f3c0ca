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
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    total      INTEGER NOT NULL DEFAULT 0,
    finished   INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    cancelled  INTEGER NOT NULL DEFAULT 0,
    sealed     INTEGER NOT NULL DEFAULT 0,
    awaiting   INTEGER NOT NULL DEFAULT 0,
    due        INTEGER GENERATED ALWAYS AS (
        ((awaiting & 4) <> 0 AND failed > 0)
        OR (sealed <> 0 AND (((awaiting & 1) <> 0 AND finished = total)
            OR ((awaiting & 2) <> 0 AND finished + failed + cancelled = total)))
    ) STORED
);
CREATE INDEX batches_due ON batches (id) WHERE due;

-- A batch's callback jobs, as they will be inserted; `job_id` is the job
-- each became once fired.
CREATE TABLE batch_callbacks (
    batch_id      INTEGER NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    kind          INTEGER NOT NULL,
    type          TEXT    NOT NULL,
    queue         TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    priority      INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL,
    unique_key    TEXT,
    partition_key TEXT,
    job_id        INTEGER,
    PRIMARY KEY (batch_id, kind)
);

-- The batch a job belongs to (NULL: none).
ALTER TABLE jobs ADD COLUMN batch_id INTEGER;
CREATE INDEX jobs_batch ON jobs (batch_id, id) WHERE batch_id IS NOT NULL;

-- Every way a batch's job ends or comes back (completion, cancel, rescue,
-- a retry asked for by hand) moves its batch's counts. The conditions are
-- spelled as comparisons: an IN list here opens a temporary table for
-- every row the statement changes, claims included.
CREATE TRIGGER jobs_batch_counted AFTER UPDATE OF state ON jobs
WHEN NEW.batch_id IS NOT NULL AND NEW.state <> OLD.state
    AND (NEW.state = 'finished' OR NEW.state = 'failed' OR NEW.state = 'cancelled'
        OR OLD.state = 'finished' OR OLD.state = 'failed' OR OLD.state = 'cancelled')
BEGIN
    UPDATE batches SET
        finished = finished + (NEW.state = 'finished') - (OLD.state = 'finished'),
        failed = failed + (NEW.state = 'failed') - (OLD.state = 'failed'),
        cancelled = cancelled + (NEW.state = 'cancelled') - (OLD.state = 'cancelled')
    WHERE id = NEW.batch_id;
END;

-- A batch's job deleted before it ended leaves the batch: it is no longer
-- waited for.
CREATE TRIGGER jobs_batch_left AFTER DELETE ON jobs
WHEN OLD.batch_id IS NOT NULL AND (OLD.state = 'pending' OR OLD.state = 'started')
BEGIN
    UPDATE batches SET total = total - 1 WHERE id = OLD.batch_id;
END;
