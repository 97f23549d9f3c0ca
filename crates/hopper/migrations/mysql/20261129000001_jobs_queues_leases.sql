-- The jobs table. Timestamps are integer microseconds since the Unix epoch (UTC);
-- `errors` is a JSON array of {attempt, at, error}, oldest first. Text compares
-- byte for byte (utf8mb4_bin), as on the other databases.
CREATE TABLE jobs (
    id           BIGINT       NOT NULL AUTO_INCREMENT,
    type         VARCHAR(255) NOT NULL,
    queue        VARCHAR(255) NOT NULL DEFAULT 'default',
    payload      LONGTEXT     NOT NULL,
    state        VARCHAR(16)  NOT NULL DEFAULT 'pending',
    priority     INT          NOT NULL DEFAULT 0,
    attempts     INT          NOT NULL DEFAULT 0,
    max_attempts INT          NOT NULL DEFAULT 3,
    available_at BIGINT       NOT NULL,
    created_at   BIGINT       NOT NULL,
    started_at   BIGINT       NULL,
    finished_at  BIGINT       NULL,
    locked_by    VARCHAR(255) NULL,
    locked_until BIGINT       NULL,
    last_error   LONGTEXT     NULL,
    errors       LONGTEXT     NOT NULL DEFAULT ('[]'),
    unique_key   VARCHAR(255) NULL,
    -- The unique key while the job is live (pending or started), NULL otherwise:
    -- the unique index below lets one live job hold a key, and NULLs never collide.
    live_key     VARCHAR(255) AS (IF(state IN ('pending', 'started'), unique_key, NULL)) STORED,
    PRIMARY KEY (id),
    -- Serves the claim: due pending jobs of a queue, highest priority first, oldest due first.
    KEY jobs_claim (state, queue, priority DESC, available_at, id),
    -- Serves lease renewal, release and rescue of started jobs.
    KEY jobs_started (state, locked_by),
    -- Serves pruning and throughput of ended jobs by age.
    KEY jobs_ended (state, finished_at),
    -- Serves listings by type.
    KEY jobs_type (type),
    UNIQUE KEY jobs_live_key (live_key),
    CONSTRAINT jobs_state CHECK (state IN ('pending', 'started', 'finished', 'failed', 'cancelled')),
    CONSTRAINT jobs_attempts CHECK (attempts >= 0),
    CONSTRAINT jobs_max_attempts CHECK (max_attempts >= 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Paused queues: workers claim nothing from a queue whose row says paused.
CREATE TABLE queues (
    name       VARCHAR(255) NOT NULL,
    paused     BOOLEAN      NOT NULL DEFAULT FALSE,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Named leases: maintenance work runs where the live lease is held.
CREATE TABLE leases (
    name       VARCHAR(255) NOT NULL,
    holder     VARCHAR(255) NOT NULL,
    held_until BIGINT       NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
