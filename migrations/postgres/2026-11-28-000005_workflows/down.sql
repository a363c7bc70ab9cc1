DROP TABLE fsm_transitions;
DROP TABLE workflow_steps;
DROP TABLE workflow_executions;
