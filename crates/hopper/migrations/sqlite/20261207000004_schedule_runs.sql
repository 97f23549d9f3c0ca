-- The jobs each schedule's ticks dispatched, so its recent runs and their
-- outcomes can be read without a scan of `jobs`. A tick's job is recorded
-- in the tick's transaction; the pruner forgets rows whose job is gone.
CREATE TABLE schedule_runs (
    name    TEXT    NOT NULL,
    job_id  INTEGER NOT NULL,
    fire_at INTEGER NOT NULL,
    PRIMARY KEY (name, job_id)
) WITHOUT ROWID;
CREATE INDEX schedule_runs_recent ON schedule_runs (name, fire_at);
