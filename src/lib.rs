//! OmniNode Bridge: one binary that stamps content with verifiable BLAKE3 metadata stamps, persists
//! them, and moves every event through an outbox to the event bus. See ARCHITECTURE.md for the map.

pub mod app;
pub mod cli;
pub mod codegen;
pub mod config;
pub mod dashboard;
pub mod dlq;
pub mod events;
pub mod http;
pub mod intelligence;
pub mod json;
pub mod kafka;
pub mod multipart;
pub mod reducer;
pub mod stamping;
pub mod store;
pub mod telemetry;
pub mod tracer;
pub mod web;
pub mod workflow;
