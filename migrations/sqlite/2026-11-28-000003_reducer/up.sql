CREATE TABLE bridge_states (
    namespace      TEXT    PRIMARY KEY NOT NULL,
    total_stamps   INTEGER NOT NULL DEFAULT 0,
    total_bytes    INTEGER NOT NULL DEFAULT 0,
    distinct_file_types INTEGER NOT NULL DEFAULT 0,
    distinct_workflows  INTEGER NOT NULL DEFAULT 0,
    first_seen     TEXT,
    last_seen      TEXT,
    window_start   TEXT,
    window_end     TEXT,
    window_stamps  INTEGER NOT NULL DEFAULT 0,
    fsm_state      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    updated_at     TEXT    NOT NULL
);
CREATE TABLE bridge_state_members (
    namespace TEXT NOT NULL,
    kind      TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (namespace, kind, value)
);
CREATE TABLE reducer_processed_events (
    event_id     TEXT PRIMARY KEY NOT NULL,
    namespace    TEXT NOT NULL,
    processed_at TEXT NOT NULL
);
CREATE TABLE bridge_state_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    namespace   TEXT    NOT NULL,
    from_state  TEXT    NOT NULL,
    to_state    TEXT    NOT NULL,
    trigger     TEXT    NOT NULL,
    event_count INTEGER NOT NULL,
    created_at  TEXT    NOT NULL
);
CREATE INDEX bridge_state_transitions_ns_idx ON bridge_state_transitions (namespace, id);
