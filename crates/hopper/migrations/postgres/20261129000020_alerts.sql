-- Alerts: one row per incident of a rule. While it fires, `open_key` holds its
-- rule and subject, so the unique index admits one open incident per rule and
-- subject however many instances evaluate; resolving clears the key.
CREATE TABLE alerts (
    id          BIGSERIAL   PRIMARY KEY,
    rule        TEXT        NOT NULL,
    subject     TEXT        NOT NULL,
    summary     TEXT        NOT NULL,
    fired_at    TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    open_key    TEXT        UNIQUE
);
-- Serves the dashboard's recently resolved alerts.
CREATE INDEX alerts_resolved ON alerts (resolved_at);
