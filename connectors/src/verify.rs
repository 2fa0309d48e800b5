//! Webhook authenticity: signatures over the raw request bytes, compared in constant time, and
//! Meta's GET subscribe handshake.
//!
//! Verify before parsing, on the bytes exactly as received: Meta signs its `\uXXXX`-escaped
//! form, so re-serialized JSON would not match.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Platform;

type HmacSha256 = Hmac<Sha256>;

/// Meta's signature header (WhatsApp, Messenger). Header names are case-insensitive.
pub const META_SIGNATURE_HEADER: &str = "x-hub-signature-256";
/// TikTok's signature header (docs spell it `TikTok-Signature`).
pub const TIKTOK_SIGNATURE_HEADER: &str = "tiktok-signature";
/// How far a TikTok signature timestamp may be from our clock, either way. TikTok gives no
/// number; 300 s tolerates retries and clock skew while still bounding replays.
pub const DEFAULT_TIKTOK_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a webhook signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No app secret is configured: fail closed.
    #[error("no app secret is configured")]
    MissingSecret,
    #[error("the signature header is missing")]
    MissingHeader,
    #[error("the signature header is malformed: {0}")]
    MalformedHeader(&'static str),
    /// TikTok: the signed timestamp is outside the tolerance (a replay, or a skewed clock).
    #[error(
        "the signature timestamp {timestamp} is {age_seconds} s from now (tolerance {tolerance_seconds} s)"
    )]
    StaleTimestamp {
        timestamp: i64,
        /// Positive when the timestamp is in the past.
        age_seconds: i64,
        tolerance_seconds: u64,
    },
    #[error("the signature does not match the body")]
    Mismatch,
}

/// The header that carries the platform's signature.
pub fn signature_header(platform: Platform) -> &'static str {
    match platform {
        Platform::WhatsApp | Platform::Facebook => META_SIGNATURE_HEADER,
        Platform::TikTok => TIKTOK_SIGNATURE_HEADER,
    }
}

/// Verifies a webhook for any platform: [`verify_meta_signature`] or
/// [`verify_tiktok_signature`] (`now` and `tolerance` only matter for TikTok).
pub fn verify_signature(
    platform: Platform,
    app_secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    match platform {
        Platform::WhatsApp | Platform::Facebook => verify_meta_signature(app_secret, header, body),
        Platform::TikTok => verify_tiktok_signature(app_secret, header, body, now, tolerance),
    }
}

/// Verifies `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of the raw body keyed with the
/// Meta app secret.
pub fn verify_meta_signature(
    app_secret: &[u8],
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    let mut mac = keyed(app_secret)?;
    let header = header.ok_or(SignatureError::MissingHeader)?.trim();
    let hex_digest = strip_prefix_ignore_case(header, "sha256=")
        .ok_or(SignatureError::MalformedHeader("expected sha256=<hex>"))?;
    let expected = decode_digest(hex_digest)?;
    mac.update(body);
    let actual = mac.finalize().into_bytes();
    if bool::from(actual.as_slice().ct_eq(&expected)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Verifies `Tiktok-Signature: t=<unix seconds>,s=<hex>`, the HMAC-SHA256 of `"<t>.<raw body>"`
/// keyed with the app secret, then that `t` is within `tolerance` of `now` (either way).
/// Several `s` values (secret rotation) are accepted if any matches; unknown keys are ignored.
pub fn verify_tiktok_signature(
    app_secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut mac = keyed(app_secret)?;
    let header = header.ok_or(SignatureError::MissingHeader)?;
    let mut timestamp_text = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or(SignatureError::MalformedHeader("expected t=<ts>,s=<hex>"))?;
        match key.trim() {
            "t" => timestamp_text = Some(value.trim()),
            "s" => candidates.push(decode_digest(value.trim())?),
            _ => {}
        }
    }
    let timestamp_text = timestamp_text.ok_or(SignatureError::MalformedHeader("no t= value"))?;
    if candidates.is_empty() {
        return Err(SignatureError::MalformedHeader("no s= value"));
    }
    let timestamp = timestamp_text
        .parse::<i64>()
        .ok()
        .filter(|_| timestamp_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(SignatureError::MalformedHeader("t is not a unix timestamp"))?;
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    let actual = mac.finalize().into_bytes();
    let matched = candidates
        .iter()
        .fold(subtle::Choice::from(0), |any, c| any | actual.as_slice().ct_eq(c));
    if !bool::from(matched) {
        return Err(SignatureError::Mismatch);
    }
    let age_seconds = now.timestamp().saturating_sub(timestamp);
    let tolerance_seconds = tolerance.as_secs();
    if age_seconds.unsigned_abs() > tolerance_seconds {
        return Err(SignatureError::StaleTimestamp {
            timestamp,
            age_seconds,
            tolerance_seconds,
        });
    }
    Ok(())
}

/// The `X-Hub-Signature-256` value Meta would send for `body` (tests, local tools).
pub fn meta_signature_header(app_secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(app_secret) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The `Tiktok-Signature` value TikTok would send for `body` at `timestamp` (tests, local
/// tools).
pub fn tiktok_signature_header(app_secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(app_secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},s={}", hex::encode(mac.finalize().into_bytes()))
}

fn keyed(app_secret: &[u8]) -> Result<HmacSha256, SignatureError> {
    if app_secret.is_empty() {
        return Err(SignatureError::MissingSecret);
    }
    HmacSha256::new_from_slice(app_secret).map_err(|_| SignatureError::MissingSecret)
}

fn decode_digest(hex_digest: &str) -> Result<[u8; 32], SignatureError> {
    let mut digest = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut digest)
        .map_err(|_| SignatureError::MalformedHeader("the digest is not 64 hex characters"))?;
    Ok(digest)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text.get(prefix.len()..))
        .flatten()
}

/// Why a Meta subscribe handshake was refused (answer 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("no verify token is configured")]
    MissingVerifyToken,
    #[error("the query parameter {0} is missing")]
    MissingParameter(&'static str),
    #[error("hub.mode is not \"subscribe\"")]
    NotSubscribe,
    #[error("hub.verify_token does not match")]
    TokenMismatch,
}

/// Meta's GET handshake: valid when `hub.mode=subscribe` and `hub.verify_token` equals ours
/// (constant-time); the answer is then HTTP 200 with the returned `hub.challenge` as the
/// plain-text body. `query` is the decoded query pairs (e.g. a `HashMap<String, String>`).
pub fn meta_subscribe_handshake<I, K, V>(
    query: I,
    expected_verify_token: &str,
) -> Result<String, HandshakeError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    if expected_verify_token.is_empty() {
        return Err(HandshakeError::MissingVerifyToken);
    }
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (key, value) in query {
        let slot = match key.as_ref() {
            "hub.mode" => &mut mode,
            "hub.verify_token" => &mut token,
            "hub.challenge" => &mut challenge,
            _ => continue,
        };
        *slot = Some(value.as_ref().to_owned());
    }
    let mode = mode.ok_or(HandshakeError::MissingParameter("hub.mode"))?;
    let token = token.ok_or(HandshakeError::MissingParameter("hub.verify_token"))?;
    let challenge = challenge
        .filter(|c| !c.is_empty())
        .ok_or(HandshakeError::MissingParameter("hub.challenge"))?;
    if mode != "subscribe" {
        return Err(HandshakeError::NotSubscribe);
    }
    if !bool::from(token.as_bytes().ct_eq(expected_verify_token.as_bytes())) {
        return Err(HandshakeError::TokenMismatch);
    }
    Ok(challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn published_hmac_vector() {
        // HMAC-SHA256(key="secret", msg="test") from the whatsapp_sdk docs (SIGNATURES.md).
        let header = "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914";
        assert_eq!(verify_meta_signature(b"secret", Some(header), b"test"), Ok(()));
        assert_eq!(meta_signature_header(b"secret", b"test"), header);
        let upper = header.to_uppercase().replace("SHA256=", "sha256=");
        assert_eq!(verify_meta_signature(b"secret", Some(&upper), b"test"), Ok(()));
    }

    #[test]
    fn meta_failures_say_which_check_failed() {
        let good = meta_signature_header(b"secret", b"body");
        assert_eq!(
            verify_meta_signature(b"", Some(&good), b"body"),
            Err(SignatureError::MissingSecret)
        );
        assert_eq!(
            verify_meta_signature(b"secret", None, b"body"),
            Err(SignatureError::MissingHeader)
        );
        for bad in ["", "sha1=abc", "sha256=", "sha256=zz", "sha256=abcd", "é"] {
            assert!(
                matches!(
                    verify_meta_signature(b"secret", Some(bad), b"body"),
                    Err(SignatureError::MalformedHeader(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            verify_meta_signature(b"other", Some(&good), b"body"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_meta_signature(b"secret", Some(&good), b"bodY"),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tiktok_checks_signature_then_timestamp() {
        let header = tiktok_signature_header(b"k", 1_000_000, b"{}");
        let ok = |now, tolerance| verify_tiktok_signature(b"k", Some(&header), b"{}", at(now), tolerance);
        assert_eq!(ok(1_000_000, DEFAULT_TIKTOK_TOLERANCE), Ok(()));
        assert_eq!(ok(1_000_300, DEFAULT_TIKTOK_TOLERANCE), Ok(()));
        assert_eq!(ok(999_700, DEFAULT_TIKTOK_TOLERANCE), Ok(()));
        assert_eq!(
            ok(1_000_301, DEFAULT_TIKTOK_TOLERANCE),
            Err(SignatureError::StaleTimestamp {
                timestamp: 1_000_000,
                age_seconds: 301,
                tolerance_seconds: 300
            })
        );
        assert!(matches!(
            ok(999_000, DEFAULT_TIKTOK_TOLERANCE),
            Err(SignatureError::StaleTimestamp {
                age_seconds: -1000,
                ..
            })
        ));
        assert!(matches!(
            ok(1_000_006, Duration::from_secs(5)),
            Err(SignatureError::StaleTimestamp { .. })
        ));
        // A forged body is a mismatch even when the timestamp is also stale.
        assert_eq!(
            verify_tiktok_signature(b"k", Some(&header), b"{ }", at(5), DEFAULT_TIKTOK_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn tiktok_header_forms() {
        let now = at(1_000_000);
        let sig = tiktok_signature_header(b"k", 1_000_000, b"x");
        let digest = sig.split_once(",s=").unwrap().1;
        let check = |h: &str| verify_tiktok_signature(b"k", Some(h), b"x", now, DEFAULT_TIKTOK_TOLERANCE);
        assert_eq!(check(&format!(" t=1000000 , s={digest} ")), Ok(()));
        assert_eq!(check(&format!("s={digest},t=1000000,v=2")), Ok(()));
        assert_eq!(
            check(&format!("t=1000000,s={},s={digest}", "0".repeat(64))),
            Ok(())
        );
        assert_eq!(
            check(&format!("t=1000000,s={}", "0".repeat(64))),
            Err(SignatureError::Mismatch)
        );
        for bad in [
            "".to_owned(),
            "garbage".to_owned(),
            format!("s={digest}"),
            "t=1000000".to_owned(),
            format!("t=-5,s={digest}"),
            format!("t=1e6,s={digest}"),
            format!("t=99999999999999999999999,s={digest}"),
            "t=1000000,s=nothex".to_owned(),
        ] {
            assert!(
                matches!(check(&bad), Err(SignatureError::MalformedHeader(_))),
                "{bad}"
            );
        }
        assert_eq!(
            verify_tiktok_signature(b"k", None, b"x", now, DEFAULT_TIKTOK_TOLERANCE),
            Err(SignatureError::MissingHeader)
        );
        assert_eq!(
            verify_tiktok_signature(b"", Some(&sig), b"x", now, DEFAULT_TIKTOK_TOLERANCE),
            Err(SignatureError::MissingSecret)
        );
    }

    #[test]
    fn handshake() {
        let query = |mode: &str, token: &str| {
            vec![
                ("hub.mode".to_owned(), mode.to_owned()),
                ("hub.verify_token".to_owned(), token.to_owned()),
                ("hub.challenge".to_owned(), "1158201444".to_owned()),
            ]
        };
        assert_eq!(
            meta_subscribe_handshake(query("subscribe", "tok"), "tok"),
            Ok("1158201444".to_owned())
        );
        assert_eq!(
            meta_subscribe_handshake(query("subscribe", "tok2"), "tok"),
            Err(HandshakeError::TokenMismatch)
        );
        assert_eq!(
            meta_subscribe_handshake(query("unsubscribe", "tok"), "tok"),
            Err(HandshakeError::NotSubscribe)
        );
        assert_eq!(
            meta_subscribe_handshake(query("subscribe", ""), ""),
            Err(HandshakeError::MissingVerifyToken)
        );
        let map: std::collections::HashMap<&str, &str> =
            [("hub.mode", "subscribe"), ("hub.verify_token", "tok")].into();
        assert_eq!(
            meta_subscribe_handshake(&map, "tok"),
            Err(HandshakeError::MissingParameter("hub.challenge"))
        );
    }
}
