//! The `snorq` binary as an operator and a newcomer run it: key generation and rotation,
//! operator commands, refusing to start misconfigured. (`snorq-tools` has its own tests.)

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod cli;
