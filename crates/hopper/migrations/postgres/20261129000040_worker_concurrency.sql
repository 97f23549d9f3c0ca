-- How many jobs each worker pool runs at once on each of its queues, as its
-- autoscaler last chose, so the dashboard can show it. A pool rewrites its
-- rows while it runs and deletes them when it stops; a row past `expires_at`
-- belongs to a pool that died and is ignored, then deleted.
CREATE TABLE worker_concurrency (
    worker      TEXT        NOT NULL,
    queue       TEXT        NOT NULL,
    concurrency INTEGER     NOT NULL CHECK (concurrency >= 0),
    min_workers INTEGER     NOT NULL CHECK (min_workers >= 0),
    max_workers INTEGER     NOT NULL CHECK (max_workers >= 0),
    running     INTEGER     NOT NULL CHECK (running >= 0),
    expires_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (worker, queue)
);
