//! Platform API errors and their retry classes, following the tables of docs/platforms.md
//! ("Generic Graph error codes", "WhatsApp error codes", "Messenger error codes",
//! "TikTok error codes", and "How Snorq classifies errors").

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Platform;

/// What the caller should do about a failed platform call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Throttled: retry after [`ApiError::retry_after`] when known, else with backoff.
    RateLimited,
    /// A temporary platform or network failure: retry a few times with backoff.
    Transient,
    /// The reply window is closed (WhatsApp 24 h, Messenger 24 h / 7 d, TikTok 48 h / quota):
    /// wait for the customer, or use a template / tag.
    WindowClosed,
    /// The token is invalid or expired: refresh it or ask the user to reconnect.
    Auth,
    /// This recipient cannot receive messages (blocked, unknown, opted out, undeliverable).
    RecipientUnavailable,
    /// The request itself is wrong (bad parameter, unsupported content): a bug or bad input.
    InvalidRequest,
    /// Any other failure that a retry will not fix (permissions, policy, account state).
    Permanent,
    /// The request may have reached the platform, but we cannot tell whether it was accepted:
    /// no answer in time after it was sent, the connection lost after sending, or a success
    /// answer we could not read. Repeating the call could act twice (a second message), so it
    /// is not retryable; for reads and token calls it is an outage like `Transient`.
    OutcomeUnknown,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Transient => "transient",
            ErrorClass::WindowClosed => "window_closed",
            ErrorClass::Auth => "auth",
            ErrorClass::RecipientUnavailable => "recipient_unavailable",
            ErrorClass::InvalidRequest => "invalid_request",
            ErrorClass::Permanent => "permanent",
            ErrorClass::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// Whether repeating the same call later can succeed without risk of acting twice.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::RateLimited | ErrorClass::Transient)
    }

    /// Whether the platform could not answer (now): throttled, down, unreachable, or silent.
    /// What callers that only ask (proofs, token calls) treat as "try later".
    pub fn is_outage(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited | ErrorClass::Transient | ErrorClass::OutcomeUnknown
        )
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed platform call (send, token exchange), classified. Never contains a token: the
/// message is the platform's (scrubbed of the secrets sent) or our own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    pub platform: Platform,
    pub class: ErrorClass,
    /// The HTTP status, when a response arrived.
    pub http_status: Option<u16>,
    /// The platform's error code (Graph `error.code`, TikTok `code`).
    pub code: Option<i64>,
    /// Graph `error.error_subcode` (Messenger).
    pub subcode: Option<i64>,
    pub message: String,
    /// Graph `error.error_data.details` / `error_user_msg`.
    pub details: Option<String>,
    /// How long the platform asked us to wait (Retry-After, Business-Use-Case usage header).
    pub retry_after: Option<Duration>,
    /// The platform's request id for support (Graph `fbtrace_id`, TikTok `request_id`).
    pub trace_id: Option<String>,
}

/// The error of [`Client::send`](crate::send::Client::send).
pub type SendError = ApiError;
/// The error of the token calls in [`token`](crate::token).
pub type TokenError = ApiError;

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.platform, self.class)?;
        match (self.code, self.subcode) {
            (Some(code), Some(subcode)) => write!(f, " (code {code}/{subcode})")?,
            (Some(code), None) => write!(f, " (code {code})")?,
            _ => {}
        }
        if let Some(status) = self.http_status {
            write!(f, " [HTTP {status}]")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(details) = &self.details {
            write!(f, " ({details})")?;
        }
        Ok(())
    }
}

impl ApiError {
    pub(crate) fn new(platform: Platform, class: ErrorClass, message: impl Into<String>) -> Self {
        ApiError {
            platform,
            class,
            http_status: None,
            code: None,
            subcode: None,
            message: message.into(),
            details: None,
            retry_after: None,
            trace_id: None,
        }
    }

    /// An error we detect before calling the platform.
    pub(crate) fn invalid_request(platform: Platform, message: impl Into<String>) -> Self {
        ApiError::new(platform, ErrorClass::InvalidRequest, message)
    }
}

/// Classifies an error by the platform's code (and subcode, for Messenger).
pub fn classify(platform: Platform, code: i64, subcode: Option<i64>, http_status: Option<u16>) -> ErrorClass {
    match platform {
        Platform::WhatsApp => classify_whatsapp(code, http_status),
        Platform::Facebook => classify_messenger(code, subcode, http_status),
        Platform::TikTok => classify_tiktok(code, http_status),
    }
}

/// Graph API codes common to every Meta API (docs/platforms.md, "Generic Graph error codes").
pub fn classify_graph(code: i64, http_status: Option<u16>) -> ErrorClass {
    match code {
        0 | 190 => ErrorClass::Auth,
        4 | 17 | 32 | 613 | 80001 | 80002 | 80006 | 80007 => ErrorClass::RateLimited,
        1 | 2 => ErrorClass::Transient,
        33 | 100 => ErrorClass::InvalidRequest,
        3 | 10 | 200..=299 | 368 => ErrorClass::Permanent,
        _ => classify_http_status(http_status),
    }
}

/// WhatsApp Cloud API `error.code` (docs/platforms.md, "WhatsApp error codes"). Also applies
/// to the `errors[]` of a `failed` status receipt.
pub fn classify_whatsapp(code: i64, http_status: Option<u16>) -> ErrorClass {
    match code {
        // Throughput, spam, pair-rate, registration and template-classification limits.
        130429 | 131048 | 131056 | 133016 | 131064 => ErrorClass::RateLimited,
        132069 => ErrorClass::RateLimited,
        // Unknown error, service unavailable, maintenance, media download / upload.
        131000 | 131016 | 131057 | 131052 | 131053 => ErrorClass::Transient,
        131047 => ErrorClass::WindowClosed,
        // Undeliverable, opted out of marketing, in a marketing experiment.
        131026 | 131050 | 130472 => ErrorClass::RecipientUnavailable,
        // Missing / invalid parameter, recipient is the sender, unsupported type, template
        // parameters, identity hash mismatch.
        131008 | 131009 | 131021 | 131051 | 132000..=132014 | 137000 => ErrorClass::InvalidRequest,
        // Sandbox allow-list, locked account, billing, registration, per-user marketing cap,
        // BSUID / marketing / display-name restrictions, paused / disabled templates, flows,
        // generic user error, country restriction.
        131030 | 131031 | 131042 | 131044 | 131045 | 131049 | 131062 | 131063 | 131037 | 132015 | 132016
        | 132068 | 135000 | 130497 => ErrorClass::Permanent,
        _ => classify_graph(code, http_status),
    }
}

/// Messenger Send API `error.code` / `error.error_subcode`
/// (docs/platforms.md, "Messenger error codes").
pub fn classify_messenger(code: i64, subcode: Option<i64>, http_status: Option<u16>) -> ErrorClass {
    match (code, subcode) {
        (1200, _) => ErrorClass::Transient,
        // Code 2 is also what a Page blocked by the user gets; the caller caps retries.
        (2, Some(2018344)) => ErrorClass::Permanent,
        (1 | 2, _) => ErrorClass::Transient,
        (4, Some(2018354)) => ErrorClass::Permanent,
        (10, Some(2018278 | 2018065 | 2018108)) => ErrorClass::WindowClosed,
        (100, Some(2018001)) => ErrorClass::RecipientUnavailable,
        (551, _) => ErrorClass::RecipientUnavailable,
        (230, _) => ErrorClass::Permanent,
        _ => classify_graph(code, http_status),
    }
}

/// TikTok API for Business `code`, returned with HTTP 200
/// (docs/platforms.md, "TikTok error codes").
pub fn classify_tiktok(code: i64, http_status: Option<u16>) -> ErrorClass {
    match code {
        40000 | 40002 | 40907 | 40908 | 40904 => ErrorClass::InvalidRequest,
        // Permissions / allow-listing; a missing object; a duplicated request (the message may
        // already be sent, so never retry blindly); OAuth flow errors; blocked app.
        40001 | 40125 | 40118 | 40007 | 40050 | 40110 | 40101 | 40113 => ErrorClass::Permanent,
        40016 | 40100 | 40133 => ErrorClass::RateLimited,
        // Access token expired / empty / invalid; refresh token expired / invalid.
        40102 | 40104 | 40105 | 40103 | 40107 => ErrorClass::Auth,
        40202 | 40902 | 40903 | 40913 | 50000 | 50002 | 51305 | 60001 => ErrorClass::Transient,
        // Messaging restriction: outside the 48 h window or over its message quota.
        40064 => ErrorClass::WindowClosed,
        40000..=49999 => ErrorClass::Permanent,
        50000..=59999 => ErrorClass::Transient,
        _ => classify_http_status(http_status),
    }
}

/// The fallback for codes not in the tables, and for responses without a platform error.
pub fn classify_http_status(http_status: Option<u16>) -> ErrorClass {
    match http_status {
        Some(429) => ErrorClass::RateLimited,
        Some(401) => ErrorClass::Auth,
        Some(408) | Some(500..=599) => ErrorClass::Transient,
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::*;
    use super::*;

    /// Every code of docs/platforms.md, "WhatsApp error codes" (and the generic Graph codes).
    #[test]
    fn whatsapp_codes() {
        let table: &[(i64, ErrorClass)] = &[
            (0, Auth),
            (190, Auth),
            (3, Permanent),
            (10, Permanent),
            (200, Permanent),
            (299, Permanent),
            (4, RateLimited),
            (80007, RateLimited),
            (130429, RateLimited),
            (131048, RateLimited),
            (131056, RateLimited),
            (133016, RateLimited),
            (131064, RateLimited),
            (1, Transient),
            (2, Transient),
            (131000, Transient),
            (131016, Transient),
            (131057, Transient),
            (131052, Transient),
            (131053, Transient),
            (33, InvalidRequest),
            (100, InvalidRequest),
            (131008, InvalidRequest),
            (131009, InvalidRequest),
            (131021, InvalidRequest),
            (131026, RecipientUnavailable),
            (131030, Permanent),
            (131031, Permanent),
            (131042, Permanent),
            (131044, Permanent),
            (131045, Permanent),
            (131047, WindowClosed),
            (131049, Permanent),
            (131050, RecipientUnavailable),
            (131051, InvalidRequest),
            (131062, Permanent),
            (131063, Permanent),
            (131037, Permanent),
            (132000, InvalidRequest),
            (132001, InvalidRequest),
            (132012, InvalidRequest),
            (132015, Permanent),
            (132016, Permanent),
            (132068, Permanent),
            (132069, RateLimited),
            (135000, Permanent),
            (368, Permanent),
            (130472, RecipientUnavailable),
            (130497, Permanent),
            (137000, InvalidRequest),
        ];
        for &(code, class) in table {
            assert_eq!(classify_whatsapp(code, Some(400)), class, "code {code}");
            assert_eq!(
                classify(Platform::WhatsApp, code, None, None),
                class,
                "code {code}"
            );
        }
    }

    /// Every code / subcode of docs/platforms.md, "Messenger error codes" (and the generic
    /// Graph codes).
    #[test]
    fn messenger_codes() {
        let table: &[(i64, Option<i64>, ErrorClass)] = &[
            (1200, None, Transient),
            (1, Some(99), Transient),
            (1, Some(1357046), Transient),
            (2, None, Transient),
            (2, Some(2018344), Permanent),
            (4, None, RateLimited),
            (4, Some(2018354), Permanent),
            (17, None, RateLimited),
            (32, None, RateLimited),
            (80006, None, RateLimited),
            (613, None, RateLimited),
            (10, Some(2018278), WindowClosed),
            (10, Some(2018065), WindowClosed),
            (10, Some(2018108), WindowClosed),
            (10, None, Permanent),
            (10, Some(2534041), Permanent),
            (100, Some(2018001), RecipientUnavailable),
            (100, None, InvalidRequest),
            (100, Some(33), InvalidRequest),
            (190, None, Auth),
            (190, Some(463), Auth),
            (200, None, Permanent),
            (230, None, Permanent),
            (551, Some(1545041), RecipientUnavailable),
            (551, None, RecipientUnavailable),
            (368, None, Permanent),
        ];
        for &(code, subcode, class) in table {
            assert_eq!(
                classify_messenger(code, subcode, Some(400)),
                class,
                "code {code}/{subcode:?}"
            );
            assert_eq!(classify(Platform::Facebook, code, subcode, None), class);
        }
    }

    /// Every code of docs/platforms.md, "TikTok error codes".
    #[test]
    fn tiktok_codes() {
        let table: &[(i64, ErrorClass)] = &[
            (40000, InvalidRequest),
            (40002, InvalidRequest),
            (40001, Permanent),
            (40125, Permanent),
            (40118, Permanent),
            (40007, Permanent),
            (40016, RateLimited),
            (40100, RateLimited),
            (40133, RateLimited),
            (40050, Permanent),
            (40102, Auth),
            (40104, Auth),
            (40105, Auth),
            (40103, Auth),
            (40107, Auth),
            (40110, Permanent),
            (40101, Permanent),
            (40113, Permanent),
            (40202, Transient),
            (40902, Transient),
            (40903, Transient),
            (40913, Transient),
            (40907, InvalidRequest),
            (40908, InvalidRequest),
            (40904, InvalidRequest),
            (40064, WindowClosed),
            (50000, Transient),
            (50002, Transient),
            (51305, Transient),
            (60001, Transient),
            // Not in the table: by range.
            (40999, Permanent),
            (51999, Transient),
        ];
        for &(code, class) in table {
            assert_eq!(classify_tiktok(code, Some(200)), class, "code {code}");
            assert_eq!(classify(Platform::TikTok, code, None, None), class);
        }
    }

    #[test]
    fn unknown_codes_fall_back_to_the_http_status() {
        assert_eq!(classify_whatsapp(999_999, Some(429)), RateLimited);
        assert_eq!(classify_whatsapp(999_999, Some(503)), Transient);
        assert_eq!(classify_whatsapp(999_999, Some(401)), Auth);
        assert_eq!(classify_whatsapp(999_999, Some(400)), Permanent);
        assert_eq!(classify_messenger(999_999, None, Some(500)), Transient);
        assert_eq!(classify_tiktok(12, Some(200)), Permanent);
        assert_eq!(classify_tiktok(12, Some(502)), Transient);
        assert_eq!(classify_http_status(None), Permanent);
        assert_eq!(classify_http_status(Some(408)), Transient);
    }

    #[test]
    fn only_rate_limits_and_transient_errors_are_retryable() {
        assert!(RateLimited.is_retryable() && Transient.is_retryable());
        for class in [
            WindowClosed,
            Auth,
            RecipientUnavailable,
            InvalidRequest,
            Permanent,
            OutcomeUnknown,
        ] {
            assert!(!class.is_retryable());
        }
        assert!(OutcomeUnknown.is_outage() && Transient.is_outage() && !Permanent.is_outage());
        assert_eq!(
            serde_json::to_string(&RecipientUnavailable).unwrap(),
            "\"recipient_unavailable\""
        );
    }

    #[test]
    fn display_names_the_class_and_code() {
        let error = ApiError {
            code: Some(131047),
            http_status: Some(400),
            ..ApiError::invalid_request(Platform::WhatsApp, "Re-engagement message")
        };
        let error = ApiError {
            class: WindowClosed,
            ..error
        };
        assert_eq!(
            error.to_string(),
            "whatsapp window_closed (code 131047) [HTTP 400]: Re-engagement message"
        );
    }
}
