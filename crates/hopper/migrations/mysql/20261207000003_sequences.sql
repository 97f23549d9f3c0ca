-- Sequences: jobs sharing a key run one at a time in dispatch order. Each
-- key's row names its last job; a new job waits on it through `job_deps`,
-- as a workflow's step waits on the steps before it. A sequence's edge
-- `holds` on a failure (the waiting job stays waiting) unless the failed
-- job lets the sequence go on, instead of cancelling as a workflow's does.
CREATE TABLE sequences (
    name                VARCHAR(255) NOT NULL,
    last_job            BIGINT       NOT NULL,
    continue_on_failure BOOLEAN      NOT NULL DEFAULT FALSE,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

ALTER TABLE job_deps ADD COLUMN holds BOOLEAN NOT NULL DEFAULT FALSE;

-- Deleting a pending job others wait on ends it as a cancel would, so
-- what waits on it is released, cancelled or held instead of waiting for
-- an ending that cannot come.
CREATE TRIGGER jobs_dependency_deleted AFTER DELETE ON jobs FOR EACH ROW
BEGIN
    IF OLD.has_dependents AND OLD.state IN ('pending', 'started') THEN
        INSERT INTO dep_events (job_id, state) VALUES (OLD.id, 'cancelled');
    END IF;
END;
