-- Workflows: a batch whose jobs depend on one another. A job with
-- dependencies waits `pending` and not due (its `available_at` far in the
-- future) while `waiting_on` counts the dependencies not yet satisfied;
-- `job_deps` holds the edges. When a job that others depend on ends, a
-- trigger records it in `dep_events`, in the same transaction (a MariaDB
-- trigger cannot change `jobs` itself); a release step then satisfies or
-- cancels its dependents and deletes the event, in one transaction, so
-- each ending is applied once.
ALTER TABLE jobs
    ADD COLUMN waiting_on INT NOT NULL DEFAULT 0,
    ADD COLUMN has_dependents BOOLEAN NOT NULL DEFAULT FALSE;

-- `job_id` waits on `depends_on` (named `step` in its workflow); with
-- `any_outcome` the dependency counts as satisfied however it ends,
-- otherwise only when it finishes (and its failure or cancellation cancels
-- `job_id`).
CREATE TABLE job_deps (
    depends_on  BIGINT       NOT NULL,
    job_id      BIGINT       NOT NULL,
    step        VARCHAR(255) NOT NULL,
    any_outcome BOOLEAN      NOT NULL DEFAULT FALSE,
    PRIMARY KEY (depends_on, job_id),
    KEY job_deps_job (job_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Endings of jobs others depend on, waiting for the release step.
CREATE TABLE dep_events (
    id     BIGINT      NOT NULL AUTO_INCREMENT,
    job_id BIGINT      NOT NULL,
    state  VARCHAR(16) NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TRIGGER jobs_dependency_ended AFTER UPDATE ON jobs FOR EACH ROW
BEGIN
    IF NEW.has_dependents AND NEW.state <> OLD.state
        AND NEW.state IN ('finished', 'failed', 'cancelled') THEN
        INSERT INTO dep_events (job_id, state) VALUES (NEW.id, NEW.state);
    END IF;
END;
