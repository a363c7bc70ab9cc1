//! Stamping: the O.N.E. v0.1 stamp formats (pure, in `core`, `protocol`, `file_type`, `namespace`) and
//! the stamping service that persists stamps through the store and emits their events.
//!
//! API boundary: `StampingService` is what the HTTP layer, the CLI and (later) the workflow engine
//! call. This module knows nothing about HTTP; wire types live in `crate::http::dto`.

pub mod core;
pub mod file_type;
pub mod namespace;
pub mod protocol;
mod service;

pub use service::*;
