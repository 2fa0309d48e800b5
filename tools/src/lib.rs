//! Tools for trying and measuring Snorq, kept apart from the service: the service library does
//! not depend on this crate, and its test binaries do not link it.
//!
//! - [`simulator`]: plays WhatsApp, Messenger and TikTok for a running service (customers'
//!   signed webhooks, the send and token APIs with injected failures, receipts, a record of
//!   every send);
//! - [`demo`]: the service and the simulator in one process, seeded with a demo organization;
//! - [`bench`]: the load generators behind `benches/*.sh` and docs/benchmarks.md;
//! - [`chaos`]: the delivery guarantees under faults (processes killed, the database restarted).

pub mod bench;
pub mod chaos;
pub mod cli;
pub mod demo;
pub mod simulator;
