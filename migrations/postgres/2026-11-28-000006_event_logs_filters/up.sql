-- The event listing and live-tail backlog filter by namespace, status and event type, newest first.
CREATE INDEX event_logs_namespace_ts_idx ON event_logs (namespace, "timestamp");
CREATE INDEX event_logs_status_ts_idx ON event_logs (status, "timestamp");
CREATE INDEX event_logs_event_type_ts_idx ON event_logs (event_type, "timestamp");
