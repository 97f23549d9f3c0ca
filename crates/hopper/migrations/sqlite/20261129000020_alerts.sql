-- Alerts: one row per incident of a rule. While it fires, `open_key` holds its
-- rule and subject, so the unique index admits one open incident per rule and
-- subject however many instances evaluate; resolving clears the key.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    rule        TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    summary     TEXT    NOT NULL,
    fired_at    INTEGER NOT NULL,
    resolved_at INTEGER,
    open_key    TEXT    UNIQUE
);
-- Serves the dashboard's recently resolved alerts.
CREATE INDEX alerts_resolved ON alerts (resolved_at);
