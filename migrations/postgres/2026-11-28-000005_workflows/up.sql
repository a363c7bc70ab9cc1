CREATE TABLE workflow_executions (
    id               uuid        PRIMARY KEY,
    correlation_id   uuid        NOT NULL UNIQUE,
    contract         text        NOT NULL,
    namespace        text        NOT NULL,
    state            text        NOT NULL,
    input            jsonb       NOT NULL,
    result           jsonb,
    error            text,
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    completed_at     timestamptz
);
CREATE INDEX workflow_executions_ns_created_idx ON workflow_executions (namespace, created_at DESC);
CREATE INDEX workflow_executions_state_created_idx ON workflow_executions (state, created_at DESC);
CREATE INDEX workflow_executions_created_idx ON workflow_executions (created_at DESC);
CREATE TABLE workflow_steps (
    workflow_id  uuid             NOT NULL REFERENCES workflow_executions (id),
    name         text             NOT NULL,
    status       text             NOT NULL,
    attempts     integer          NOT NULL,
    duration_ms  double precision,
    error        text,
    output       jsonb,
    started_at   timestamptz,
    completed_at timestamptz,
    PRIMARY KEY (workflow_id, name)
);
CREATE TABLE fsm_transitions (
    id          bigserial   PRIMARY KEY,
    workflow_id uuid        NOT NULL REFERENCES workflow_executions (id),
    from_state  text        NOT NULL,
    to_state    text        NOT NULL,
    trigger     text        NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX fsm_transitions_workflow_idx ON fsm_transitions (workflow_id, id);
