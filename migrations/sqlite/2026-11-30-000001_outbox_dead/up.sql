-- Outbox rows the sink refused for good (see the PostgreSQL migration).
CREATE TABLE event_outbox_dead (
    seq           INTEGER PRIMARY KEY NOT NULL,
    event_id      TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    partition_key TEXT    NOT NULL,
    envelope      TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    error         TEXT    NOT NULL,
    failed_at     TEXT    NOT NULL
);
CREATE INDEX event_outbox_dead_failed_idx ON event_outbox_dead (failed_at);
