//! Parsing a verified webhook body into normalized [`Event`]s.

use chrono::{DateTime, Utc};
use serde_json::error::Category;

use crate::event::{Event, Ignored};
use crate::{Platform, messenger, tiktok, whatsapp};

/// The body is not the platform's webhook envelope at all. Anything inside a recognizable
/// envelope, however odd, yields events (possibly `ignored` ones) instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("the body is not a {platform} webhook: {reason}")]
    NotAnEnvelope { platform: Platform, reason: String },
}

/// Parses a webhook body (already verified) into events: one per message, status, watermark or
/// other notification in it, in body order. Never panics, whatever the input.
pub fn parse(platform: Platform, body: &[u8]) -> Result<Vec<Event>, ParseError> {
    let text =
        std::str::from_utf8(body).map_err(|e| ParseError::NotJson(format!("the body is not UTF-8: {e}")))?;
    // serde would also read a struct from a JSON array; every envelope is an object.
    if !text.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => ParseError::NotAnEnvelope {
                platform,
                reason: "the top level is not a JSON object".to_owned(),
            },
            Err(e) => ParseError::NotJson(e.to_string()),
        });
    }
    match platform {
        Platform::WhatsApp => whatsapp::parse_webhook(text),
        Platform::Facebook => messenger::parse_webhook(text),
        Platform::TikTok => tiktok::parse_webhook(text),
    }
}

/// Maps a serde error on the whole body: syntax errors mean "not JSON", data errors mean "JSON,
/// but not shaped like the envelope".
pub(crate) fn envelope_error(platform: Platform, error: serde_json::Error) -> ParseError {
    match error.classify() {
        Category::Data => ParseError::NotAnEnvelope {
            platform,
            reason: error.to_string(),
        },
        Category::Io | Category::Syntax | Category::Eof => ParseError::NotJson(error.to_string()),
    }
}

pub(crate) fn ignored(platform: Platform, account_id: Option<&str>, reason: String) -> Event {
    Event::Ignored(Ignored {
        platform,
        account_id: account_id.map(str::to_owned),
        reason,
    })
}

pub(crate) fn from_unix_seconds(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

pub(crate) fn from_unix_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_json_and_non_envelopes_are_errors() {
        for platform in Platform::ALL {
            assert!(matches!(
                parse(platform, b"not json"),
                Err(ParseError::NotJson(_))
            ));
            assert!(matches!(
                parse(platform, b"\xff\xfe"),
                Err(ParseError::NotJson(_))
            ));
            assert!(matches!(parse(platform, b"{\"a\":"), Err(ParseError::NotJson(_))));
            assert!(matches!(
                parse(platform, b"[1,2]"),
                Err(ParseError::NotAnEnvelope { .. })
            ));
            assert!(matches!(
                parse(platform, b"\"text\""),
                Err(ParseError::NotAnEnvelope { .. })
            ));
        }
    }
}
