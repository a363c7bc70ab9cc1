CREATE TABLE metadata_stamps (
    id                uuid        PRIMARY KEY,
    namespace         text        NOT NULL,
    file_hash         text        NOT NULL CHECK (file_hash ~ '^[0-9a-f]{64}$'),
    file_path         text,
    file_size         bigint      NOT NULL CHECK (file_size >= 0),
    content_type      text,
    stamp_data        jsonb       NOT NULL,
    protocol_version  text        NOT NULL,
    intelligence_data jsonb,
    version           integer     NOT NULL DEFAULT 1,
    op_id             uuid        NOT NULL,
    metadata_version  text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT metadata_stamps_namespace_file_hash_key UNIQUE (namespace, file_hash)
);
-- GET /namespace/{ns}: newest first, paginated.
CREATE INDEX metadata_stamps_namespace_created_idx ON metadata_stamps (namespace, created_at DESC, id DESC);
-- GET /stamp/{hash} without namespace: earliest stamp of a hash.
CREATE INDEX metadata_stamps_file_hash_created_idx ON metadata_stamps (file_hash, created_at, id);

-- Transactional outbox: written in the same transaction as the state change that causes the event;
-- the relay deletes rows once published, so the table holds only unpublished events.
CREATE TABLE event_outbox (
    seq           bigserial   PRIMARY KEY,
    event_id      uuid        NOT NULL UNIQUE,
    topic         text        NOT NULL,
    partition_key text        NOT NULL,
    envelope      jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
