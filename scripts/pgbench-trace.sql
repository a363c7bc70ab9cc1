-- Baseline for scripts/load-trace.sh: the session-trace query itself, straight to PostgreSQL.
\set s random(0, 999)
SELECT * FROM event_logs
WHERE "timestamp" >= now() - interval '24 hours'
  AND session_id = 'bench-s-' || :s
ORDER BY "timestamp", event_id
LIMIT 10001;
