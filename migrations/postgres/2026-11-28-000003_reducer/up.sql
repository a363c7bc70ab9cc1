-- Per-namespace aggregates kept by the reducer, with optimistic locking on `version`.
CREATE TABLE bridge_states (
    namespace      text        PRIMARY KEY,
    total_stamps   bigint      NOT NULL DEFAULT 0,
    total_bytes    bigint      NOT NULL DEFAULT 0,
    distinct_file_types bigint NOT NULL DEFAULT 0,
    distinct_workflows  bigint NOT NULL DEFAULT 0,
    first_seen     timestamptz,
    last_seen      timestamptz,
    window_start   timestamptz,
    window_end     timestamptz,
    window_stamps  bigint      NOT NULL DEFAULT 0,
    fsm_state      text        NOT NULL,
    version        bigint      NOT NULL,
    updated_at     timestamptz NOT NULL
);
-- Exact distinct counts: one row per (namespace, kind, value); a new row is a new distinct value.
CREATE TABLE bridge_state_members (
    namespace text NOT NULL,
    kind      text NOT NULL,
    value     text NOT NULL,
    PRIMARY KEY (namespace, kind, value)
);
-- Event ids already aggregated: a redelivered event is a no-op.
CREATE TABLE reducer_processed_events (
    event_id     uuid        PRIMARY KEY,
    namespace    text        NOT NULL,
    processed_at timestamptz NOT NULL
);
-- The reducer's FSM transitions per namespace.
CREATE TABLE bridge_state_transitions (
    id          bigserial   PRIMARY KEY,
    namespace   text        NOT NULL,
    from_state  text        NOT NULL,
    to_state    text        NOT NULL,
    trigger     text        NOT NULL,
    event_count bigint      NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX bridge_state_transitions_ns_idx ON bridge_state_transitions (namespace, id);
