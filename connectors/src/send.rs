//! Sending one message to a platform, and the HTTP client shared with the token calls.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::classify::{ApiError, ErrorClass, SendError, classify_http_status};
use crate::secret::{Secret, scrub};
use crate::{Platform, messenger, tiktok, whatsapp};

/// Where the platform APIs live and how long a call may take. Base URLs are configurable so
/// tests and benchmarks can point them at local fakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Graph API host (WhatsApp, Messenger, Meta OAuth).
    pub graph_base_url: String,
    /// Graph API version path segment, e.g. `v24.0`.
    pub graph_api_version: String,
    /// TikTok API for Business host.
    pub tiktok_base_url: String,
    /// TikTok API version path segment, e.g. `v1.3`.
    pub tiktok_api_version: String,
    /// Facebook Login dialog host: the browser is sent here, not the Graph host.
    pub facebook_dialog_base_url: String,
    /// TikTok's OAuth consent page (a different host from the API).
    pub tiktok_authorize_url: String,
    /// The whole call, connect to last byte.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            graph_base_url: "https://graph.facebook.com".to_owned(),
            graph_api_version: "v24.0".to_owned(),
            tiktok_base_url: "https://business-api.tiktok.com".to_owned(),
            tiktok_api_version: "v1.3".to_owned(),
            facebook_dialog_base_url: "https://www.facebook.com".to_owned(),
            tiktok_authorize_url: "https://www.tiktok.com/v2/auth/authorize/".to_owned(),
            timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ClientConfig {
    /// Every URL points at one local server (tests, benchmarks).
    pub fn with_base_url(base_url: &str) -> Self {
        ClientConfig {
            graph_base_url: base_url.to_owned(),
            tiktok_base_url: base_url.to_owned(),
            facebook_dialog_base_url: base_url.to_owned(),
            tiktok_authorize_url: format!("{}/v2/auth/authorize/", base_url.trim_end_matches('/')),
            ..ClientConfig::default()
        }
    }

    /// `{graph}/{version}/{path}`.
    pub(crate) fn graph_url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.graph_base_url.trim_end_matches('/'),
            self.graph_api_version.trim_matches('/'),
            path
        )
    }

    /// `{tiktok}/open_api/{version}/{path}`; TikTok paths end with `/` (without it: 404).
    pub(crate) fn tiktok_url(&self, path: &str) -> String {
        format!(
            "{}/open_api/{}/{}",
            self.tiktok_base_url.trim_end_matches('/'),
            self.tiktok_api_version.trim_matches('/'),
            path
        )
    }
}

/// The HTTP client could not be created (TLS initialisation).
#[derive(Debug, thiserror::Error)]
#[error("could not create the HTTP client: {0}")]
pub struct ClientBuildError(String);

/// Calls the platform APIs: sending messages and the token endpoints. Cheap to clone (shares
/// its connection pool).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// WhatsApp: phone number or business-scoped user id; Messenger: PSID; TikTok:
    /// `conversation_id`.
    pub recipient: String,
    pub content: OutboundContent,
    /// The platform id of a message to quote (WhatsApp `context`, TikTok
    /// `referenced_message_info`; Messenger has no quoting in the Send API and ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Echoed back by the platform to correlate receipts with our record (WhatsApp
    /// `biz_opaque_callback_data`, Messenger `metadata`; TikTok has none and ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// Messenger only.
    #[serde(default)]
    pub messaging_type: MessagingType,
}

impl OutboundMessage {
    pub fn new(recipient: impl Into<String>, content: OutboundContent) -> Self {
        OutboundMessage {
            recipient: recipient.into(),
            content,
            reply_to: None,
            correlation: None,
            messaging_type: MessagingType::default(),
        }
    }

    pub fn text(recipient: impl Into<String>, body: impl Into<String>) -> Self {
        Self::new(recipient, OutboundContent::Text { body: body.into() })
    }

    pub fn reply_to(mut self, message_id: impl Into<String>) -> Self {
        self.reply_to = Some(message_id.into());
        self
    }

    pub fn correlation(mut self, value: impl Into<String>) -> Self {
        self.correlation = Some(value.into());
        self
    }

    pub fn messaging_type(mut self, messaging_type: MessagingType) -> Self {
        self.messaging_type = messaging_type;
        self
    }
}

/// What to send. Media is sent by public URL (WhatsApp `link`, Messenger `payload.url`);
/// TikTok accepts text only this way (its media must be uploaded first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboundContent {
    Text {
        body: String,
    },
    Image {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Video {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
    Audio {
        url: String,
    },
    File {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
    },
}

impl OutboundContent {
    pub fn kind(&self) -> &'static str {
        match self {
            OutboundContent::Text { .. } => "text",
            OutboundContent::Image { .. } => "image",
            OutboundContent::Video { .. } => "video",
            OutboundContent::Audio { .. } => "audio",
            OutboundContent::File { .. } => "file",
        }
    }
}

/// Messenger `messaging_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessagingType {
    /// A reply inside the 24 h window.
    #[default]
    Response,
    /// A proactive update inside the 24 h window.
    Update,
    /// `MESSAGE_TAG` + `HUMAN_AGENT`: a human agent's reply up to 7 days after the customer's
    /// last message (needs the Human Agent permission).
    HumanAgent,
}

/// A message the platform accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendReceipt {
    /// The platform's id of the sent message; status receipts and echoes refer to it.
    pub message_id: String,
    /// The recipient as the platform resolved it (WhatsApp `wa_id`, Messenger `recipient_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
}

/// A response as received.
pub(crate) struct HttpReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Self, ClientBuildError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("snorq-connectors/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientBuildError(e.without_url().to_string()))?;
        Ok(Client { http, config })
    }

    /// Uses an existing reqwest client (to share its pool); every call still gets the
    /// configured timeout.
    pub fn with_http_client(config: ClientConfig, http: reqwest::Client) -> Self {
        Client { http, config }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sends one message from `account_id` (WhatsApp `phone_number_id`, Page id, TikTok
    /// business `open_id`) with that account's token. Returns the platform's message id, or a
    /// classified error.
    pub async fn send(
        &self,
        platform: Platform,
        account_id: &str,
        token: &Secret,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, SendError> {
        check_path_segment(platform, "account id", account_id)?;
        if message.recipient.trim().is_empty() {
            return Err(ApiError::invalid_request(platform, "the recipient is empty"));
        }
        if let OutboundContent::Text { body } = &message.content
            && body.trim().is_empty()
        {
            return Err(ApiError::invalid_request(platform, "the text is empty"));
        }
        match platform {
            Platform::WhatsApp => whatsapp::send(self, account_id, token, message).await,
            Platform::Facebook => messenger::send(self, account_id, token, message).await,
            Platform::TikTok => tiktok::send(self, account_id, token, message).await,
        }
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Runs a request with the configured timeout and reads the whole response. A failure to
    /// connect is `transient` (nothing was sent); a failure after that (no answer in time, the
    /// connection lost) is `outcome_unknown`: the platform may have acted on the request.
    /// `secrets` are scrubbed from every message.
    pub(crate) async fn execute(
        &self,
        platform: Platform,
        request: reqwest::RequestBuilder,
        secrets: &[&Secret],
    ) -> Result<HttpReply, ApiError> {
        let transport_error = |error: reqwest::Error| {
            let timed_out = error.is_timeout();
            let class = if error.is_connect() {
                ErrorClass::Transient
            } else {
                ErrorClass::OutcomeUnknown
            };
            // Without the URL: a query string may hold a secret (Meta OAuth).
            let error = error.without_url();
            let message = if timed_out {
                format!(
                    "no response within {:?}; the platform may still have accepted the request",
                    self.config.timeout
                )
            } else {
                error_chain(&error)
            };
            ApiError::new(platform, class, scrub(message, secrets))
        };
        let response = request
            .timeout(self.config.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport_error)?.to_vec();
        Ok(HttpReply {
            status,
            headers,
            body,
        })
    }
}

/// The error and its causes on one line (reqwest puts the useful part in the sources).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Ids go into URL paths: refuse anything that could change the path or query.
pub(crate) fn check_path_segment(platform: Platform, what: &str, value: &str) -> Result<(), ApiError> {
    let safe = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if safe {
        Ok(())
    } else {
        Err(ApiError::invalid_request(
            platform,
            format!("the {what} {value:?} is not a valid id"),
        ))
    }
}

/// An `Access-Token`-style header carrying a secret, marked sensitive so it is never logged.
pub(crate) fn secret_header(platform: Platform, token: &Secret) -> Result<HeaderValue, ApiError> {
    let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
        ApiError::invalid_request(platform, "the token contains characters not allowed in a header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The Graph error envelope (`{"error": {...}}`), shared by WhatsApp, Messenger and Meta OAuth.
#[derive(Deserialize)]
struct GraphErrorEnvelope {
    error: Option<GraphError>,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default, deserialize_with = "crate::json::opt_text")]
    message: Option<String>,
    #[serde(default, deserialize_with = "crate::json::opt_int")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "crate::json::opt_int")]
    error_subcode: Option<i64>,
    error_data: Option<GraphErrorData>,
    #[serde(default, deserialize_with = "crate::json::opt_text")]
    error_user_msg: Option<String>,
    #[serde(default, deserialize_with = "crate::json::opt_text")]
    fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct GraphErrorData {
    #[serde(default, deserialize_with = "crate::json::opt_text")]
    details: Option<String>,
}

/// Turns a non-2xx Graph response into a classified error, with `classify(code, subcode,
/// http status)` the platform's table.
pub(crate) fn graph_error(
    platform: Platform,
    reply: &HttpReply,
    secrets: &[&Secret],
    classify: impl Fn(i64, Option<i64>, Option<u16>) -> ErrorClass,
) -> ApiError {
    let status = Some(reply.status);
    let parsed = serde_json::from_slice::<GraphErrorEnvelope>(&reply.body)
        .ok()
        .and_then(|e| e.error);
    let mut error = match parsed {
        Some(graph) => ApiError {
            platform,
            class: match graph.code {
                Some(code) => classify(code, graph.error_subcode, status),
                None => classify_http_status(status),
            },
            http_status: status,
            code: graph.code,
            subcode: graph.error_subcode,
            message: graph.message.unwrap_or_else(|| "unknown error".to_owned()),
            details: graph.error_data.and_then(|d| d.details).or(graph.error_user_msg),
            retry_after: None,
            trace_id: graph.fbtrace_id,
        },
        None => ApiError {
            http_status: status,
            ..ApiError::new(
                platform,
                classify_http_status(status),
                format!("HTTP {} without a Graph error body", reply.status),
            )
        },
    };
    error.message = scrub(error.message, secrets);
    error.details = error.details.map(|d| scrub(d, secrets));
    if error.class == ErrorClass::RateLimited {
        error.retry_after = retry_after(&reply.headers);
    }
    error
}

/// A 2xx response whose body we could not use: the platform may have sent the message, so it
/// is reported as `permanent` (look before retrying) rather than retried blindly.
pub(crate) fn unreadable_success(platform: Platform, reply: &HttpReply, what: &str) -> ApiError {
    ApiError {
        http_status: Some(reply.status),
        ..ApiError::new(
            platform,
            ErrorClass::Permanent,
            format!(
                "HTTP {} but the response has no {what}; the platform may have accepted the request",
                reply.status
            ),
        )
    }
}

/// A send answered with success but without the message id: the message may well have gone
/// out, so the outcome is unknown (a read answered so is just unreadable: [`unreadable_success`]).
pub(crate) fn unreadable_send_success(platform: Platform, reply: &HttpReply, what: &str) -> ApiError {
    ApiError {
        class: ErrorClass::OutcomeUnknown,
        ..unreadable_success(platform, reply, what)
    }
}

/// How long to wait, from `Retry-After` (seconds) or Meta's `X-Business-Use-Case-Usage`
/// (`estimated_time_to_regain_access`, minutes).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let from_retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    from_retry_after.or_else(|| {
        let usage = headers.get("x-business-use-case-usage")?.to_str().ok()?;
        let usage: serde_json::Value = serde_json::from_str(usage).ok()?;
        let minutes = usage
            .as_object()?
            .values()
            .filter_map(|v| v.as_array())
            .flatten()
            .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
            .max()?;
        (minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_cleanly() {
        let config = ClientConfig::with_base_url("http://127.0.0.1:9/");
        assert_eq!(
            config.graph_url("123/messages"),
            "http://127.0.0.1:9/v24.0/123/messages"
        );
        assert_eq!(
            config.tiktok_url("business/message/send/"),
            "http://127.0.0.1:9/open_api/v1.3/business/message/send/"
        );
        assert_eq!(config.facebook_dialog_base_url, "http://127.0.0.1:9/");
        assert_eq!(
            config.tiktok_authorize_url,
            "http://127.0.0.1:9/v2/auth/authorize/"
        );
    }

    #[test]
    fn path_segments_are_checked() {
        assert!(check_path_segment(Platform::WhatsApp, "id", "204512345678901").is_ok());
        for bad in ["", "1/../2", "1?x=2", "a b", "1#", "%2F"] {
            assert!(
                check_path_segment(Platform::WhatsApp, "id", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn retry_after_reads_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("30"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"1234":[{"type":"whatsapp","call_count":100,"estimated_time_to_regain_access":5}]}"#,
            ),
        );
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(300)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }
}
