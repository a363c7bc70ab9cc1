-- pgbench baseline: one single-row INSERT per transaction into metadata_stamps (same table, same
-- indexes and constraints as the service writes to).
INSERT INTO metadata_stamps (id, namespace, file_hash, file_size, stamp_data, protocol_version, op_id, metadata_version)
VALUES (gen_random_uuid(), 'pgbench', md5(random()::text) || md5(random()::text), 1024,
        '{"stamp_type":"lightweight"}'::jsonb, '1.0', gen_random_uuid(), '0.1');
