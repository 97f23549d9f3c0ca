-- Sequences: jobs sharing a key run one at a time in dispatch order. Each
-- key's row names its last job; a new job waits on it through `job_deps`,
-- as a workflow's step waits on the steps before it. A sequence's edge
-- `holds` on a failure (the waiting job stays waiting) unless the failed
-- job lets the sequence go on, instead of cancelling as a workflow's does.
CREATE TABLE sequences (
    name                TEXT    PRIMARY KEY,
    last_job            INTEGER NOT NULL,
    continue_on_failure INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

ALTER TABLE job_deps ADD COLUMN holds INTEGER NOT NULL DEFAULT 0;

-- Deleting a pending job others wait on ends it as a cancel would, so
-- what waits on it is released, cancelled or held instead of waiting for
-- an ending that cannot come.
CREATE TRIGGER jobs_dependency_deleted AFTER DELETE ON jobs
WHEN OLD.has_dependents <> 0 AND (OLD.state = 'pending' OR OLD.state = 'started')
BEGIN
    INSERT INTO dep_events (job_id, state) VALUES (OLD.id, 'cancelled');
END;
