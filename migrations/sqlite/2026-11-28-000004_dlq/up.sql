CREATE TABLE dlq_records (
    id                 TEXT    PRIMARY KEY NOT NULL,
    dlq_topic          TEXT    NOT NULL,
    dlq_partition      INTEGER NOT NULL,
    dlq_offset         INTEGER NOT NULL,
    original_topic     TEXT,
    original_partition INTEGER,
    original_offset    INTEGER,
    message_key        TEXT,
    message_value      TEXT,
    headers            TEXT    NOT NULL,
    error_class        TEXT,
    error_message      TEXT,
    received_at        TEXT    NOT NULL,
    redriven_at        TEXT,
    UNIQUE (dlq_topic, dlq_partition, dlq_offset)
);
CREATE INDEX dlq_records_topic_received_idx ON dlq_records (dlq_topic, received_at);
-- A message dead-lettered twice (its consumer crashed before storing the offset) is one record.
CREATE UNIQUE INDEX dlq_records_original_key ON dlq_records (original_topic, original_partition, original_offset)
    WHERE original_topic IS NOT NULL;
CREATE TABLE dlq_topic_state (
    dlq_topic     TEXT PRIMARY KEY NOT NULL,
    reset_at      TEXT,
    last_alert_at TEXT
);
CREATE TABLE dlq_alerts (
    id           TEXT    PRIMARY KEY NOT NULL,
    dlq_topic    TEXT    NOT NULL,
    count        INTEGER NOT NULL,
    threshold    INTEGER NOT NULL,
    recent_error TEXT,
    created_at   TEXT    NOT NULL
);
CREATE INDEX dlq_alerts_created_idx ON dlq_alerts (created_at);
