-- How many jobs each worker pool runs at once on each of its queues, as its
-- autoscaler last chose, so the dashboard can show it. A pool rewrites its
-- rows while it runs and deletes them when it stops; a row past `expires_at`
-- (microseconds since the epoch) belongs to a pool that died and is ignored,
-- then deleted.
CREATE TABLE worker_concurrency (
    worker      VARCHAR(255) NOT NULL,
    queue       VARCHAR(255) NOT NULL,
    concurrency INT          NOT NULL,
    min_workers INT          NOT NULL,
    max_workers INT          NOT NULL,
    running     INT          NOT NULL,
    expires_at  BIGINT       NOT NULL,
    PRIMARY KEY (worker, queue),
    CONSTRAINT worker_concurrency_counts CHECK (concurrency >= 0 AND min_workers >= 0 AND max_workers >= 0 AND running >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
