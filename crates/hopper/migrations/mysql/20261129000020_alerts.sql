-- Alerts: one row per incident of a rule. While it fires, `open_key` holds its
-- rule and subject, so the unique index admits one open incident per rule and
-- subject however many instances evaluate; resolving clears the key.
CREATE TABLE alerts (
    id          BIGINT        NOT NULL AUTO_INCREMENT,
    rule        VARCHAR(255)  NOT NULL,
    subject     VARCHAR(255)  NOT NULL,
    summary     TEXT          NOT NULL,
    fired_at    BIGINT        NOT NULL,
    resolved_at BIGINT        NULL,
    open_key    VARCHAR(511)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY alerts_open (open_key),
    KEY alerts_resolved (resolved_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
