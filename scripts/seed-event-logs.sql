-- Seed event_logs with :rows rows (default 1,000,000) for the trace-query benchmark
-- (scripts/load-trace.sh). Shape: 1,000 sessions `bench-s-0..999` of equal size spread over the last
-- 23 hours; 50,000 correlation ids `bench-c-N` of 20 events each, spread over two sessions
-- (correlated across sessions); 5 topics, mixed statuses and processing times. Usage: psql -v rows=1000000 -f scripts/seed-event-logs.sql postgres://.../db
\if :{?rows}
\else
\set rows 1000000
\endif
SET synchronous_commit = off;
INSERT INTO event_logs (event_id, session_id, correlation_id, event_type, topic, "partition", "offset",
                        "timestamp", status, processing_time_ms, namespace, payload, metadata, recorded_at)
SELECT md5('bench-' || i)::uuid,
       'bench-s-' || (i % 1000),
       'bench-c-' || ((i / 10000) * 1000 + (i % 1000) / 2),
       (ARRAY['request','response','status','event','error'])[1 + i % 5],
       'dev.omninode_bridge.onex.evt.' || (ARRAY['metadata-stamp-created','workflow-step-completed',
           'workflow-state-transition','blake3-hash-generated','aggregation-completed'])[1 + (i / 7) % 5] || '.v1',
       i % 12,
       i,
       now() - interval '23 hours' + (i * (interval '23 hours' / :rows)),
       (ARRAY['success','success','success','completed','processing','failed'])[1 + i % 6],
       (i % 997) * 1.7,
       'bench.ns' || (i % 20),
       jsonb_build_object('seq', i, 'file_hash', md5(i::text) || md5((i + 1)::text), 'note', 'benchmark row'),
       '{}'::jsonb,
       now()
FROM generate_series(0, :rows - 1) AS i;
-- Vacuum now, so autovacuum does not start on the fresh rows in the middle of a measurement.
VACUUM (ANALYZE) event_logs;
