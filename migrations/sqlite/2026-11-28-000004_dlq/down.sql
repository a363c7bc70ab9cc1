DROP TABLE dlq_alerts;
DROP TABLE dlq_topic_state;
DROP TABLE dlq_records;
