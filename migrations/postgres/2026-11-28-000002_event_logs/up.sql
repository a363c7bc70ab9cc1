-- Every event seen on the bus or Kafka (own and codegen topics), recorded by the event-log writer.
CREATE TABLE event_logs (
    event_id           uuid             PRIMARY KEY,
    session_id         text,
    correlation_id     text,
    event_type         text             NOT NULL,
    topic              text             NOT NULL,
    "partition"        integer,
    "offset"           bigint,
    "timestamp"        timestamptz      NOT NULL,
    status             text             NOT NULL,
    processing_time_ms double precision,
    namespace          text,
    payload            jsonb            NOT NULL,
    metadata           jsonb            NOT NULL,
    recorded_at        timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX event_logs_session_ts_idx ON event_logs (session_id, "timestamp");
CREATE INDEX event_logs_correlation_ts_idx ON event_logs (correlation_id, "timestamp");
CREATE INDEX event_logs_topic_ts_idx ON event_logs (topic, "timestamp");
CREATE INDEX event_logs_ts_idx ON event_logs ("timestamp");
