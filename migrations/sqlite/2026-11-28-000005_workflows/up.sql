CREATE TABLE workflow_executions (
    id               TEXT PRIMARY KEY NOT NULL,
    correlation_id   TEXT NOT NULL UNIQUE,
    contract         TEXT NOT NULL,
    namespace        TEXT NOT NULL,
    state            TEXT NOT NULL,
    input            TEXT NOT NULL,
    result           TEXT,
    error            TEXT,
    lease_owner      TEXT,
    lease_expires_at TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    completed_at     TEXT
);
CREATE INDEX workflow_executions_ns_created_idx ON workflow_executions (namespace, created_at DESC);
CREATE INDEX workflow_executions_state_created_idx ON workflow_executions (state, created_at DESC);
CREATE INDEX workflow_executions_created_idx ON workflow_executions (created_at DESC);
CREATE TABLE workflow_steps (
    workflow_id  TEXT    NOT NULL REFERENCES workflow_executions (id),
    name         TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    duration_ms  REAL,
    error        TEXT,
    output       TEXT,
    started_at   TEXT,
    completed_at TEXT,
    PRIMARY KEY (workflow_id, name)
);
CREATE TABLE fsm_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    workflow_id TEXT    NOT NULL REFERENCES workflow_executions (id),
    from_state  TEXT    NOT NULL,
    to_state    TEXT    NOT NULL,
    trigger     TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);
CREATE INDEX fsm_transitions_workflow_idx ON fsm_transitions (workflow_id, id);
