//! What the two web edges — `crate::http` (JSON API) and `crate::dashboard` (HTML) — share, owned
//! by neither: the state they are handed (`state`), the in-flight body budget (`budget`), request parameters (`params`), links
//! (`links`), the request context and its middleware (`context`), the health model (`health`), and
//! the one mapping from module errors to status, code and field (`error`).
//!
//! Boundary: depends on the services and the store's row types, never on `http` or `dashboard`.
//! The edges depend on it; `crate::app` mounts both side by side.

pub mod budget;
pub mod context;
pub mod error;
pub mod health;
pub mod links;
pub mod params;
pub mod state;

pub use state::AppState;
