DROP TABLE event_outbox;
DROP TABLE metadata_stamps;
