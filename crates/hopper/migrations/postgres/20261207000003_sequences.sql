-- Sequences: jobs sharing a key run one at a time in dispatch order. Each
-- key's row names its last job; a new job waits on it through `job_deps`,
-- as a workflow's step waits on the steps before it. A sequence's edge
-- `holds` on a failure (the waiting job stays waiting) unless the failed
-- job lets the sequence go on, instead of cancelling as a workflow's does.
CREATE TABLE sequences (
    name                TEXT    PRIMARY KEY,
    last_job            BIGINT  NOT NULL,
    continue_on_failure BOOLEAN NOT NULL DEFAULT FALSE
);

ALTER TABLE job_deps ADD COLUMN holds BOOLEAN NOT NULL DEFAULT FALSE;

-- Deleting a pending job others wait on ends it as a cancel would, so
-- what waits on it is released, cancelled or held instead of waiting for
-- an ending that cannot come. Planned without nested loops, as the other
-- transition-table triggers are.
CREATE FUNCTION hopper_dependency_deleted() RETURNS trigger LANGUAGE plpgsql
SET enable_nestloop = off AS $$
BEGIN
    INSERT INTO dep_events (job_id, state)
    SELECT id, 'cancelled' FROM old_rows
    WHERE has_dependents AND state IN ('pending', 'started');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_dependency_deleted AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hopper_dependency_deleted();
