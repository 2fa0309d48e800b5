//! Any bytes: `parse` must not panic, and an accepted body yields at least one event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snorq_connectors::{Platform, parse};

fuzz_target!(|body: &[u8]| {
    if let Ok(events) = parse(Platform::Facebook, body) {
        assert!(!events.is_empty());
    }
});
