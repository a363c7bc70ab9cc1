CREATE TABLE metadata_stamps (
    id                TEXT    PRIMARY KEY NOT NULL,
    namespace         TEXT    NOT NULL,
    file_hash         TEXT    NOT NULL CHECK (length(file_hash) = 64 AND file_hash NOT GLOB '*[^0-9a-f]*'),
    file_path         TEXT,
    file_size         INTEGER NOT NULL CHECK (file_size >= 0),
    content_type      TEXT,
    stamp_data        TEXT    NOT NULL,
    protocol_version  TEXT    NOT NULL,
    intelligence_data TEXT,
    version           INTEGER NOT NULL DEFAULT 1,
    op_id             TEXT    NOT NULL,
    metadata_version  TEXT    NOT NULL,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    UNIQUE (namespace, file_hash)
);
CREATE INDEX metadata_stamps_namespace_created_idx ON metadata_stamps (namespace, created_at DESC, id DESC);
CREATE INDEX metadata_stamps_file_hash_created_idx ON metadata_stamps (file_hash, created_at, id);

CREATE TABLE event_outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    event_id      TEXT    NOT NULL UNIQUE,
    topic         TEXT    NOT NULL,
    partition_key TEXT    NOT NULL,
    envelope      TEXT    NOT NULL,
    created_at    TEXT    NOT NULL
);
