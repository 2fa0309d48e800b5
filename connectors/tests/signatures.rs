//! The HMAC test vectors of fixtures/SIGNATURES.md verify over the fixture bytes; one changed
//! byte fails; a stale TikTok timestamp fails.

mod common;

use chrono::DateTime;
use common::{fixture, fixture_path};
use snorq_connectors::SignatureError;
use snorq_connectors::verify::{DEFAULT_TIKTOK_TOLERANCE, verify_meta_signature, verify_tiktok_signature};

const META_SECRET: &str = "test_app_secret_123";
const TIKTOK_SECRET: &str = "test_tiktok_app_secret_456";
const TIKTOK_TIMESTAMP: i64 = 1_767_226_201;

/// `(file, header value)` rows of the vector tables.
fn vectors() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(fixture_path("SIGNATURES.md")).unwrap();
    assert!(doc.contains(META_SECRET) && doc.contains(TIKTOK_SECRET));
    assert!(doc.contains(&format!("t=`{TIKTOK_TIMESTAMP}`")));
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            match cells.as_slice() {
                ["", file, header, ""] if file.ends_with(".json") => {
                    Some((file.to_string(), header.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

fn now(seconds: i64) -> DateTime<chrono::Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn verify(file: &str, header: &str, body: &[u8], at: i64) -> Result<(), SignatureError> {
    if file.starts_with("tiktok") {
        verify_tiktok_signature(
            TIKTOK_SECRET.as_bytes(),
            Some(header),
            body,
            now(at),
            DEFAULT_TIKTOK_TOLERANCE,
        )
    } else {
        verify_meta_signature(META_SECRET.as_bytes(), Some(header), body)
    }
}

#[test]
fn every_vector_verifies_and_covers_every_fixture() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 14);
    for (file, header) in &vectors {
        let body = fixture(&format!("webhooks/{file}"));
        assert_eq!(
            verify(file, header, &body, TIKTOK_TIMESTAMP + 10),
            Ok(()),
            "{file}"
        );
    }
}

#[test]
fn one_changed_byte_fails() {
    for (file, header) in vectors() {
        let body = fixture(&format!("webhooks/{file}"));
        for position in [0, body.len() / 2, body.len() - 1] {
            let mut tampered = body.clone();
            tampered[position] ^= 0x01;
            assert_eq!(
                verify(&file, &header, &tampered, TIKTOK_TIMESTAMP),
                Err(SignatureError::Mismatch),
                "{file} byte {position}"
            );
        }
        let mut longer = body.clone();
        longer.push(b' ');
        assert_eq!(
            verify(&file, &header, &longer, TIKTOK_TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
        // One changed hex digit of the signature.
        let mut bad_header = header.clone().into_bytes();
        let last = bad_header.len() - 1;
        bad_header[last] = if bad_header[last] == b'0' { b'1' } else { b'0' };
        let bad_header = String::from_utf8(bad_header).unwrap();
        assert_eq!(
            verify(&file, &bad_header, &body, TIKTOK_TIMESTAMP),
            Err(SignatureError::Mismatch),
            "{file} header"
        );
    }
}

#[test]
fn wrong_secret_fails() {
    let body = fixture("webhooks/whatsapp_text.json");
    let (_, header) = vectors()
        .into_iter()
        .find(|(f, _)| f == "whatsapp_text.json")
        .unwrap();
    assert_eq!(
        verify_meta_signature(b"test_app_secret_124", Some(&header), &body),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn stale_tiktok_timestamp_fails() {
    for (file, header) in vectors().into_iter().filter(|(f, _)| f.starts_with("tiktok")) {
        let body = fixture(&format!("webhooks/{file}"));
        assert_eq!(verify(&file, &header, &body, TIKTOK_TIMESTAMP + 300), Ok(()));
        assert_eq!(
            verify(&file, &header, &body, TIKTOK_TIMESTAMP + 301),
            Err(SignatureError::StaleTimestamp {
                timestamp: TIKTOK_TIMESTAMP,
                age_seconds: 301,
                tolerance_seconds: 300,
            })
        );
        // A tighter, configured tolerance.
        assert!(matches!(
            verify_tiktok_signature(
                TIKTOK_SECRET.as_bytes(),
                Some(&header),
                &body,
                now(TIKTOK_TIMESTAMP + 6),
                std::time::Duration::from_secs(5),
            ),
            Err(SignatureError::StaleTimestamp { .. })
        ));
        // The timestamp is signed: moving it breaks the signature.
        let moved = header.replace(&TIKTOK_TIMESTAMP.to_string(), &(TIKTOK_TIMESTAMP + 1).to_string());
        assert_eq!(
            verify(&file, &moved, &body, TIKTOK_TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
    }
}
