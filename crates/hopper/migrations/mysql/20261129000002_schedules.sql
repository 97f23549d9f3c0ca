-- The latest tick each schedule has fired (or passed over): moving it forward
-- is what lets exactly one instance dispatch a tick.
CREATE TABLE schedules (
    name         VARCHAR(255) NOT NULL,
    last_fire_at BIGINT       NOT NULL,
    last_job_id  BIGINT       NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
