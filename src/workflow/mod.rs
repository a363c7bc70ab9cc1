//! The workflow orchestrator (SPEC §3). So far the pure parts: the FSM (`fsm`) and workflow contracts
//! (`contract`: steps, dependencies → parallel waves, retry/backoff, timeouts; validated at load). The
//! engine, its persistence (`workflow_executions`, `workflow_steps`, `fsm_transitions`), crash recovery
//! and the HTTP API are not built yet (see the open issue); the OnexTree client it will call is
//! `crate::intelligence`.

pub mod contract;
pub mod engine;
pub mod fsm;
