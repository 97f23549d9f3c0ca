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
    id         BIGSERIAL   PRIMARY KEY,
    name       TEXT        NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    total      BIGINT      NOT NULL DEFAULT 0,
    finished   BIGINT      NOT NULL DEFAULT 0,
    failed     BIGINT      NOT NULL DEFAULT 0,
    cancelled  BIGINT      NOT NULL DEFAULT 0,
    sealed     BOOLEAN     NOT NULL DEFAULT FALSE,
    awaiting   INTEGER     NOT NULL DEFAULT 0,
    due        BOOLEAN GENERATED ALWAYS AS (
        ((awaiting & 4) <> 0 AND failed > 0)
        OR (sealed AND (((awaiting & 1) <> 0 AND finished = total)
            OR ((awaiting & 2) <> 0 AND finished + failed + cancelled = total)))
    ) STORED
);
CREATE INDEX batches_due ON batches (id) WHERE due;

-- A batch's callback jobs, as they will be inserted; `job_id` is the job
-- each became once fired.
CREATE TABLE batch_callbacks (
    batch_id      BIGINT   NOT NULL REFERENCES batches (id) ON DELETE CASCADE,
    kind          SMALLINT NOT NULL,
    type          TEXT     NOT NULL,
    queue         TEXT     NOT NULL,
    payload       TEXT     NOT NULL,
    priority      INTEGER  NOT NULL,
    max_attempts  INTEGER  NOT NULL,
    unique_key    TEXT,
    partition_key TEXT,
    job_id        BIGINT,
    PRIMARY KEY (batch_id, kind)
);

-- The batch a job belongs to (NULL: none).
ALTER TABLE jobs ADD COLUMN batch_id BIGINT;
CREATE INDEX jobs_batch ON jobs (batch_id, id) WHERE batch_id IS NOT NULL;

-- Every way a batch's job ends or comes back (completion, cancel, rescue,
-- a retry asked for by hand) moves its batch's counts: once per statement,
-- each batch's row updated once, batches locked in id order. A statement
-- where no batch's job enters or leaves an ended state (a claim, a lease
-- renewal) returns after two scans of its rows. Transition tables carry no
-- statistics: the planner takes them for one row each and joins them in a
-- nested loop, quadratic in the statement's rows (57 ms for a completion of
-- a few hundred jobs), so the function plans without nested loops.
CREATE FUNCTION hopper_batch_counted() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE batch_id IS NOT NULL
                       AND state IN ('finished', 'failed', 'cancelled'))
       AND NOT EXISTS (SELECT 1 FROM old_rows WHERE batch_id IS NOT NULL
                       AND state IN ('finished', 'failed', 'cancelled')) THEN
        RETURN NULL;
    END IF;
    WITH moved AS MATERIALIZED (
        SELECT n.batch_id,
            count(*) FILTER (WHERE n.state = 'finished') - count(*) FILTER (WHERE o.state = 'finished') AS finished,
            count(*) FILTER (WHERE n.state = 'failed') - count(*) FILTER (WHERE o.state = 'failed') AS failed,
            count(*) FILTER (WHERE n.state = 'cancelled') - count(*) FILTER (WHERE o.state = 'cancelled') AS cancelled
        FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.batch_id IS NOT NULL AND n.state <> o.state
        GROUP BY n.batch_id
    ), locked AS MATERIALIZED (
        SELECT b.id FROM batches AS b JOIN moved AS m ON m.batch_id = b.id
        WHERE m.finished <> 0 OR m.failed <> 0 OR m.cancelled <> 0
        ORDER BY b.id FOR UPDATE OF b
    )
    UPDATE batches AS b SET finished = b.finished + m.finished, failed = b.failed + m.failed,
        cancelled = b.cancelled + m.cancelled
    FROM moved AS m JOIN locked AS l ON l.id = m.batch_id
    WHERE b.id = m.batch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_batch_counted AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hopper_batch_counted();

-- A batch's job deleted before it ended leaves the batch: it is no longer
-- waited for.
CREATE FUNCTION hopper_batch_left() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    WITH left_batch AS MATERIALIZED (
        SELECT batch_id, count(*) AS n FROM old_rows
        WHERE batch_id IS NOT NULL AND state NOT IN ('finished', 'failed', 'cancelled')
        GROUP BY batch_id
    ), locked AS MATERIALIZED (
        SELECT b.id FROM batches AS b JOIN left_batch AS g ON g.batch_id = b.id
        ORDER BY b.id FOR UPDATE OF b
    )
    UPDATE batches AS b SET total = b.total - g.n
    FROM left_batch AS g JOIN locked AS l ON l.id = g.batch_id
    WHERE b.id = g.batch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_batch_left AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hopper_batch_left();
