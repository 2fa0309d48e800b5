//! The storage layer on both backends: the store's contract (uniqueness, scoping, expiry,
//! concurrency) and ingest of every fixture straight into the store.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod conformance;
mod ingest;
