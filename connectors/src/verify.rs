//! Webhook authenticity: signatures over the raw request bytes, compared in constant time, and
//! Meta's GET subscribe handshake.
//!
//! Verify before parsing, on the bytes exactly as received: Meta signs its `\uXXXX`-escaped
//! form, so re-serialized JSON would not match.

use std::time::Duration;

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Platform;
use crate::json::{non_empty, opt_text, opt_timestamp};

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

/// The largest `signed_request` accepted; Meta's are a few hundred bytes.
const MAX_SIGNED_REQUEST_LEN: usize = 8 * 1024;

/// base64url as Meta writes it (no padding), decoding with or without `=` padding.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The verified content of a Meta `signed_request` (deauthorize and data-deletion callbacks):
/// which user removed the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The app-scoped user id; `None` when Meta sends none (or `"0"`).
    pub user_id: Option<String>,
    /// The Page / profile the callback concerns, when Meta says.
    pub profile_id: Option<String>,
    /// When Meta signed it (unix seconds).
    pub issued_at: Option<i64>,
}

#[derive(Deserialize)]
struct SignedPayload {
    #[serde(default, deserialize_with = "opt_text")]
    algorithm: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    profile_id: Option<String>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    issued_at: Option<i64>,
}

/// Verifies a Meta `signed_request` form field, `<sig>.<payload>`: `sig` is the base64url
/// HMAC-SHA256 of the payload **as sent** (still encoded), keyed with the app secret; the payload
/// is base64url JSON with `algorithm: "HMAC-SHA256"`. The signature is checked (constant time)
/// before the payload is parsed. Errors reuse the webhook variants: an empty field is
/// `MissingHeader`, a malformed one (or another algorithm) `MalformedHeader`.
pub fn verify_meta_signed_request(
    app_secret: &[u8],
    signed_request: &str,
) -> Result<SignedRequest, SignatureError> {
    let mut mac = keyed(app_secret)?;
    let signed_request = signed_request.trim();
    if signed_request.is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    if signed_request.len() > MAX_SIGNED_REQUEST_LEN {
        return Err(SignatureError::MalformedHeader(
            "the signed_request is longer than 8 KiB",
        ));
    }
    let (signature, payload) = signed_request
        .split_once('.')
        .ok_or(SignatureError::MalformedHeader("expected <signature>.<payload>"))?;
    let expected = BASE64URL
        .decode(signature)
        .map_err(|_| SignatureError::MalformedHeader("the signature is not base64url"))?;
    if expected.len() != 32 {
        return Err(SignatureError::MalformedHeader("the signature is not 32 bytes"));
    }
    mac.update(payload.as_bytes());
    let actual = mac.finalize().into_bytes();
    if !bool::from(actual.as_slice().ct_eq(&expected)) {
        return Err(SignatureError::Mismatch);
    }
    let json = BASE64URL
        .decode(payload)
        .map_err(|_| SignatureError::MalformedHeader("the payload is not base64url"))?;
    let payload = serde_json::from_slice::<SignedPayload>(&json)
        .map_err(|_| SignatureError::MalformedHeader("the payload is not a JSON object"))?;
    let hmac_sha256 = payload
        .algorithm
        .is_some_and(|a| a.eq_ignore_ascii_case("HMAC-SHA256"));
    if !hmac_sha256 {
        return Err(SignatureError::MalformedHeader(
            "the algorithm is not HMAC-SHA256",
        ));
    }
    let id = |value: Option<String>| non_empty(value).filter(|v| v != "0");
    Ok(SignedRequest {
        user_id: id(payload.user_id),
        profile_id: id(payload.profile_id),
        issued_at: payload.issued_at,
    })
}

/// A `signed_request` as Meta would send it for `payload` (tests, local tools).
pub fn meta_signed_request(app_secret: &[u8], payload: &serde_json::Value) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(app_secret) else {
        return String::new();
    };
    let payload = BASE64URL.encode(payload.to_string());
    mac.update(payload.as_bytes());
    format!("{}.{payload}", BASE64URL.encode(mac.finalize().into_bytes()))
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

    fn deauthorize_payload() -> serde_json::Value {
        serde_json::json!({
            "algorithm": "HMAC-SHA256",
            "issued_at": 1_767_225_600,
            "user_id": "1234567890123456"
        })
    }

    #[test]
    fn signed_request_round_trip() {
        let signed = meta_signed_request(b"app-secret", &deauthorize_payload());
        assert!(!signed.contains('='), "{signed}");
        assert_eq!(
            verify_meta_signed_request(b"app-secret", &signed),
            Ok(SignedRequest {
                user_id: Some("1234567890123456".to_owned()),
                profile_id: None,
                issued_at: Some(1_767_225_600),
            })
        );
        // Numeric ids, a profile id and a lower-case algorithm name.
        let payload = serde_json::json!({
            "algorithm": "hmac-sha256", "issued_at": "1767225600",
            "user_id": 7456789012345678901_u64, "profile_id": 104512345678901_u64
        });
        let verified = verify_meta_signed_request(b"k", &meta_signed_request(b"k", &payload)).unwrap();
        assert_eq!(verified.user_id.as_deref(), Some("7456789012345678901"));
        assert_eq!(verified.profile_id.as_deref(), Some("104512345678901"));
        assert_eq!(verified.issued_at, Some(1_767_225_600));
        for user_id in [
            serde_json::json!("0"),
            serde_json::json!(""),
            serde_json::json!(0),
        ] {
            let payload = serde_json::json!({"algorithm": "HMAC-SHA256", "user_id": user_id});
            let verified = verify_meta_signed_request(b"k", &meta_signed_request(b"k", &payload)).unwrap();
            assert_eq!(verified.user_id, None, "{payload}");
        }
    }

    /// A known vector: HMAC-SHA256("secret", "eyJhbGdvcml0aG0iOiJITUFDLVNIQTI1NiJ9") computed
    /// independently (Python hmac), base64url without padding.
    #[test]
    fn signed_request_vector() {
        let payload = "eyJhbGdvcml0aG0iOiJITUFDLVNIQTI1NiJ9"; // {"algorithm":"HMAC-SHA256"}
        let signed = format!("QsWIu6IiDRayhMf4kx9u2JPUVtBOIxKy7dVRCknZEIM.{payload}");
        assert_eq!(
            verify_meta_signed_request(b"secret", &signed),
            Ok(SignedRequest {
                user_id: None,
                profile_id: None,
                issued_at: None
            })
        );
    }

    #[test]
    fn signed_request_padding_is_tolerated() {
        let signed = meta_signed_request(b"k", &deauthorize_payload());
        let (sig, payload) = signed.split_once('.').unwrap();
        // 32 bytes encode to 43 characters; padded base64url adds one '='.
        assert_eq!(sig.len(), 43);
        let padded = format!("{sig}=.{payload}");
        assert!(verify_meta_signed_request(b"k", &padded).is_ok());
    }

    #[test]
    fn signed_request_rejections() {
        let signed = meta_signed_request(b"app-secret", &deauthorize_payload());
        let (sig, payload) = signed.split_once('.').unwrap();
        // Tampered payload: another user id, validly encoded, same signature.
        let forged = BASE64URL.encode(
            serde_json::json!({"algorithm": "HMAC-SHA256", "issued_at": 1_767_225_600, "user_id": "666"})
                .to_string(),
        );
        assert_eq!(
            verify_meta_signed_request(b"app-secret", &format!("{sig}.{forged}")),
            Err(SignatureError::Mismatch)
        );
        // Tampered signature: one character changed (the first, so every bit it carries counts).
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{flipped}{}.{payload}", &sig[1..]);
        assert_eq!(
            verify_meta_signed_request(b"app-secret", &tampered),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_meta_signed_request(b"other-secret", &signed),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_meta_signed_request(b"", &signed),
            Err(SignatureError::MissingSecret)
        );
        assert_eq!(
            verify_meta_signed_request(b"app-secret", "  "),
            Err(SignatureError::MissingHeader)
        );
        // Correctly signed, but not HMAC-SHA256 (or no algorithm at all).
        for payload in [
            serde_json::json!({"algorithm": "HMAC-SHA1", "user_id": "1"}),
            serde_json::json!({"user_id": "1"}),
            serde_json::json!(["not", "an", "object"]),
        ] {
            let signed = meta_signed_request(b"app-secret", &payload);
            assert!(
                matches!(
                    verify_meta_signed_request(b"app-secret", &signed),
                    Err(SignatureError::MalformedHeader(_))
                ),
                "{payload}"
            );
        }
        let too_long = format!("{sig}.{}", "A".repeat(MAX_SIGNED_REQUEST_LEN));
        for garbage in [
            "garbage".to_owned(),
            ".".to_owned(),
            format!(".{payload}"),
            sig.to_owned(),
            format!("not*base64.{payload}"),
            format!("{}.{payload}", BASE64URL.encode([0u8; 16])),
            too_long,
            "é.é".to_owned(),
        ] {
            assert!(
                matches!(
                    verify_meta_signed_request(b"app-secret", &garbage),
                    Err(SignatureError::MalformedHeader(_))
                ),
                "{garbage}"
            );
        }
        // A valid signature over a payload that is not base64url JSON is still refused.
        let mut mac = HmacSha256::new_from_slice(b"app-secret").unwrap();
        mac.update(b"!!!");
        let sig = BASE64URL.encode(mac.finalize().into_bytes());
        assert!(matches!(
            verify_meta_signed_request(b"app-secret", &format!("{sig}.!!!")),
            Err(SignatureError::MalformedHeader(_))
        ));
    }
}
