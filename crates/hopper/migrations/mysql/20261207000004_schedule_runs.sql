-- The jobs each schedule's ticks dispatched, so its recent runs and their
-- outcomes can be read without a scan of `jobs`. A tick's job is recorded
-- in the tick's transaction; the pruner forgets rows whose job is gone.
CREATE TABLE schedule_runs (
    name    VARCHAR(255) NOT NULL,
    job_id  BIGINT       NOT NULL,
    fire_at BIGINT       NOT NULL,
    PRIMARY KEY (name, job_id),
    KEY schedule_runs_recent (name, fire_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
