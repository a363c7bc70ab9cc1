-- Every record seen on a DLQ topic (the DLQ monitor's own store: stats, listing, redrive).
CREATE TABLE dlq_records (
    id                 uuid        PRIMARY KEY,
    dlq_topic          text        NOT NULL,
    dlq_partition      integer     NOT NULL,
    dlq_offset         bigint      NOT NULL,
    original_topic     text,
    original_partition integer,
    original_offset    bigint,
    message_key        text,
    message_value      text,
    headers            jsonb       NOT NULL,
    error_class        text,
    error_message      text,
    received_at        timestamptz NOT NULL,
    redriven_at        timestamptz,
    CONSTRAINT dlq_records_position_key UNIQUE (dlq_topic, dlq_partition, dlq_offset)
);
CREATE INDEX dlq_records_topic_received_idx ON dlq_records (dlq_topic, received_at);
-- A message dead-lettered twice (its consumer crashed before storing the offset) is one record.
CREATE UNIQUE INDEX dlq_records_original_key ON dlq_records (original_topic, original_partition, original_offset)
    WHERE original_topic IS NOT NULL;
-- Per-topic state shared by all instances: count resets and the alert cooldown.
CREATE TABLE dlq_topic_state (
    dlq_topic     text        PRIMARY KEY,
    reset_at      timestamptz,
    last_alert_at timestamptz
);
CREATE TABLE dlq_alerts (
    id           uuid        PRIMARY KEY,
    dlq_topic    text        NOT NULL,
    count        bigint      NOT NULL,
    threshold    bigint      NOT NULL,
    recent_error text,
    created_at   timestamptz NOT NULL
);
CREATE INDEX dlq_alerts_created_idx ON dlq_alerts (created_at);
