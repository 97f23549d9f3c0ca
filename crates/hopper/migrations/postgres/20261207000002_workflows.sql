-- Workflows: a batch whose jobs depend on one another. A job with
-- dependencies waits `pending` and not due (its `available_at` far in the
-- future) while `waiting_on` counts the dependencies not yet satisfied;
-- `job_deps` holds the edges. When a job that others depend on ends, a
-- trigger records it in `dep_events`, in the same transaction; a release
-- step then satisfies or cancels its dependents and deletes the event, in
-- one transaction, so each ending is applied once.
ALTER TABLE jobs ADD COLUMN waiting_on INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN has_dependents BOOLEAN NOT NULL DEFAULT FALSE;

-- `job_id` waits on `depends_on` (named `step` in its workflow); with
-- `any_outcome` the dependency counts as satisfied however it ends,
-- otherwise only when it finishes (and its failure or cancellation cancels
-- `job_id`).
CREATE TABLE job_deps (
    depends_on  BIGINT  NOT NULL,
    job_id      BIGINT  NOT NULL,
    step        TEXT    NOT NULL,
    any_outcome BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (depends_on, job_id)
);
CREATE INDEX job_deps_job ON job_deps (job_id);

-- Endings of jobs others depend on, waiting for the release step.
CREATE TABLE dep_events (
    id     BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    state  TEXT   NOT NULL
);

-- Planned without nested loops, as `hopper_batch_counted` is: the planner
-- takes each transition table for one row.
CREATE FUNCTION hopper_dependency_ended() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE has_dependents
                       AND state IN ('finished', 'failed', 'cancelled')) THEN
        RETURN NULL;
    END IF;
    INSERT INTO dep_events (job_id, state)
    SELECT n.id, n.state FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
    WHERE n.has_dependents AND n.state <> o.state
      AND n.state IN ('finished', 'failed', 'cancelled');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_dependency_ended AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hopper_dependency_ended();
