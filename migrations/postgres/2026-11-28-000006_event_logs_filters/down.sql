DROP INDEX event_logs_event_type_ts_idx;
DROP INDEX event_logs_status_ts_idx;
DROP INDEX event_logs_namespace_ts_idx;
