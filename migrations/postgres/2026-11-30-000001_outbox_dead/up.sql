-- Outbox rows the sink refused for good (undecodable envelope, message over the broker's size limit,
-- a value the event log cannot store): moved here by the relay so every later event keeps flowing.
-- `seq` is the row's outbox sequence number when it failed; a redrive moves the row back into
-- event_outbox (a new seq, so it is published after what is waiting).
CREATE TABLE event_outbox_dead (
    seq           bigint      PRIMARY KEY,
    event_id      uuid        NOT NULL,
    topic         text        NOT NULL,
    partition_key text        NOT NULL,
    envelope      jsonb       NOT NULL,
    created_at    timestamptz NOT NULL,
    error         text        NOT NULL,
    failed_at     timestamptz NOT NULL
);
CREATE INDEX event_outbox_dead_failed_idx ON event_outbox_dead (failed_at);
