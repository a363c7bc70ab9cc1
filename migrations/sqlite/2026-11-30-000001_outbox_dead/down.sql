DROP TABLE event_outbox_dead;
