-- Workflows: a batch whose jobs depend on one another. A job with
-- dependencies waits `pending` and not due (its `available_at` far in the
-- future) while `waiting_on` counts the dependencies not yet satisfied;
-- `job_deps` holds the edges. When a job that others depend on ends, a
-- trigger records it in `dep_events`, in the same transaction; a release
-- step then satisfies or cancels its dependents and deletes the event, in
-- one transaction, so each ending is applied once.
ALTER TABLE jobs ADD COLUMN waiting_on INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;

-- `job_id` waits on `depends_on` (named `step` in its workflow); with
-- `any_outcome` the dependency counts as satisfied however it ends,
-- otherwise only when it finishes (and its failure or cancellation cancels
-- `job_id`).
CREATE TABLE job_deps (
    depends_on  INTEGER NOT NULL,
    job_id      INTEGER NOT NULL,
    step        TEXT    NOT NULL,
    any_outcome INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (depends_on, job_id)
);
CREATE INDEX job_deps_job ON job_deps (job_id);

-- Endings of jobs others depend on, waiting for the release step.
CREATE TABLE dep_events (
    id     INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL,
    state  TEXT    NOT NULL
);

CREATE TRIGGER jobs_dependency_ended AFTER UPDATE OF state ON jobs
WHEN NEW.has_dependents <> 0 AND NEW.state <> OLD.state
    AND (NEW.state = 'finished' OR NEW.state = 'failed' OR NEW.state = 'cancelled')
BEGIN
    INSERT INTO dep_events (job_id, state) VALUES (NEW.id, NEW.state);
END;
