-- The latest tick each schedule has fired (or passed over): moving it forward
-- is what lets exactly one instance dispatch a tick.
CREATE TABLE schedules (
    name         TEXT        PRIMARY KEY,
    last_fire_at TIMESTAMPTZ NOT NULL,
    last_job_id  BIGINT
);
