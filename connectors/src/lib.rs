//! Platform connectors for Snorq: webhook verification, parsing into normalized events,
//! sending, error classification and tokens. No database code lives here.

pub mod platform;

pub use platform::{Platform, UnknownPlatform};
