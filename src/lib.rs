//! Snorq: an omnichannel inbox integration service.
//!
//! Layers, and the only direction they depend on each other:
//! `http` and `worker` -> `app` (use cases) -> `store` / `queue` / `crypto` / `snorq_connectors`.

pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod queue;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod worker;
