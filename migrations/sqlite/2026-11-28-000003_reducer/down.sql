DROP TABLE bridge_state_transitions;
DROP TABLE reducer_processed_events;
DROP TABLE bridge_state_members;
DROP TABLE bridge_states;
