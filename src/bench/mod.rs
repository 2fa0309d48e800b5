//! Load generators behind `snorq bench-ingest`, `snorq bench-send` and `snorq bench-inbox`
//! (figures in the README).

pub mod inbox;
pub mod ingest;
pub mod send;

pub use ingest::{IngestBenchArgs, run};
