DROP TABLE event_logs;
