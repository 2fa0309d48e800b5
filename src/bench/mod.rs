//! Load generators behind `snorq bench-ingest` and `snorq bench-send` (figures in the README).

pub mod ingest;
pub mod send;

pub use ingest::{IngestBenchArgs, run};
