-- Listing filters. Namespace: a selective, user-facing filter. Failures: rare rows a user looks for
-- (`event_type=error`, `status=failed|error`) get a partial index, so "show me the errors" stays fast
-- without making every event insert maintain full status and type indexes (measured: three full
-- indexes cost ~9 % of workflow throughput). Common values are found by walking the timestamp index.
CREATE INDEX event_logs_namespace_ts_idx ON event_logs (namespace, "timestamp");
CREATE INDEX event_logs_failures_ts_idx ON event_logs ("timestamp")
    WHERE event_type = 'error' OR status = 'failed' OR status = 'error';
