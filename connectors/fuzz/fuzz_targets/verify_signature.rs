//! Any header and body: verification must not panic, and must never accept a header it did not
//! compute (the fuzzer cannot forge HMAC-SHA256).
#![no_main]

use chrono::DateTime;
use libfuzzer_sys::fuzz_target;
use snorq_connectors::verify::{verify_meta_signature, verify_tiktok_signature};

fuzz_target!(|data: &[u8]| {
    // First line: the header; the rest: the body.
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (header, body) = data.split_at(split);
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let Some(now) = DateTime::from_timestamp(1_767_226_201, 0) else {
        return;
    };
    let tolerance = std::time::Duration::from_secs(300);
    assert!(verify_meta_signature(b"fuzz-secret", Some(header), body).is_err());
    assert!(verify_tiktok_signature(b"fuzz-secret", Some(header), body, now, tolerance).is_err());
});
