CREATE TABLE event_logs (
    event_id           TEXT    PRIMARY KEY NOT NULL,
    session_id         TEXT,
    correlation_id     TEXT,
    event_type         TEXT    NOT NULL,
    topic              TEXT    NOT NULL,
    "partition"        INTEGER,
    "offset"           INTEGER,
    "timestamp"        TEXT    NOT NULL,
    status             TEXT    NOT NULL,
    processing_time_ms REAL,
    namespace          TEXT,
    payload            TEXT    NOT NULL,
    metadata           TEXT    NOT NULL,
    recorded_at        TEXT    NOT NULL
);
CREATE INDEX event_logs_session_ts_idx ON event_logs (session_id, "timestamp");
CREATE INDEX event_logs_correlation_ts_idx ON event_logs (correlation_id, "timestamp");
CREATE INDEX event_logs_topic_ts_idx ON event_logs (topic, "timestamp");
CREATE INDEX event_logs_ts_idx ON event_logs ("timestamp");
