//! `POST {tiktok}/open_api/{version}/business/message/send/` with the `Access-Token` header.
//! TikTok answers application errors with HTTP 200 and `code != 0`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Platform;
use crate::classify::{ApiError, ErrorClass, SendError, classify_http_status, classify_tiktok};
use crate::json::{opt_int, opt_text};
use crate::secret::{Secret, scrub};
use crate::send::{
    Client, HttpReply, OutboundContent, OutboundMessage, SendReceipt, retry_after, secret_header,
    unreadable_send_success,
};

const PLATFORM: Platform = Platform::TikTok;

#[derive(Serialize)]
struct SendBody<'a> {
    business_id: &'a str,
    recipient_type: &'static str,
    recipient: &'a str,
    message_type: &'static str,
    text: TextBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    referenced_message_info: Option<Reference<'a>>,
}

#[derive(Serialize)]
struct TextBody<'a> {
    body: &'a str,
}

#[derive(Serialize)]
struct Reference<'a> {
    referenced_message_id: &'a str,
}

/// Every TikTok API for Business response: `{code, message, request_id, data}`.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct ApiEnvelope<T> {
    #[serde(default, deserialize_with = "opt_int")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "opt_text")]
    message: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    request_id: Option<String>,
    data: Option<T>,
}

#[derive(Deserialize)]
struct SendData {
    message: Option<SentMessage>,
}

#[derive(Deserialize)]
struct SentMessage {
    #[serde(default, deserialize_with = "opt_text")]
    message_id: Option<String>,
}

/// Reads a TikTok response: `Ok(data)` for code 0 (or 20001, partial success), otherwise the
/// classified error. `data` is `None` when the body did not have the expected shape.
pub(crate) fn read_response<T: DeserializeOwned>(
    reply: &HttpReply,
    secrets: &[&Secret],
) -> Result<Option<T>, ApiError> {
    let status = Some(reply.status);
    let envelope = serde_json::from_slice::<ApiEnvelope<serde_json::Value>>(&reply.body).ok();
    let code = envelope.as_ref().and_then(|e| e.code);
    let success = (200..300).contains(&reply.status) && matches!(code, Some(0 | 20001));
    if success {
        let data = envelope
            .and_then(|e| e.data)
            .and_then(|d| serde_json::from_value::<T>(d).ok());
        return Ok(data);
    }
    let class = match code {
        // HTTP 5xx: TikTok asks to wait and retry, whatever the body says.
        _ if reply.status >= 500 => ErrorClass::Transient,
        Some(code) if code != 0 => classify_tiktok(code, status),
        _ => classify_http_status(status),
    };
    let message = envelope
        .as_ref()
        .and_then(|e| e.message.clone())
        .unwrap_or_else(|| format!("HTTP {} without a TikTok response body", reply.status));
    Err(ApiError {
        http_status: status,
        code,
        retry_after: if class == ErrorClass::RateLimited {
            retry_after(&reply.headers)
        } else {
            None
        },
        trace_id: envelope.and_then(|e| e.request_id),
        ..ApiError::new(PLATFORM, class, scrub(message, secrets))
    })
}

pub(crate) async fn send(
    client: &Client,
    business_id: &str,
    token: &Secret,
    message: &OutboundMessage,
) -> Result<SendReceipt, SendError> {
    let OutboundContent::Text { body: text } = &message.content else {
        return Err(ApiError::invalid_request(
            PLATFORM,
            format!(
                "TikTok cannot send {} by URL; only text is supported",
                message.content.kind()
            ),
        ));
    };
    let body = SendBody {
        business_id,
        recipient_type: "CONVERSATION",
        recipient: &message.recipient,
        message_type: "TEXT",
        text: TextBody { body: text },
        referenced_message_info: message
            .reply_to
            .as_deref()
            .map(|referenced_message_id| Reference {
                referenced_message_id,
            }),
    };
    let request = client
        .http()
        .post(client.config().tiktok_url("business/message/send/"))
        .header("Access-Token", secret_header(PLATFORM, token)?)
        .json(&body);
    let reply = client.execute(PLATFORM, request, &[token]).await?;
    let data: Option<SendData> = read_response(&reply, &[token])?;
    let Some(message_id) = data.and_then(|d| d.message?.message_id) else {
        return Err(unreadable_send_success(
            PLATFORM,
            &reply,
            "data.message.message_id",
        ));
    };
    Ok(SendReceipt {
        message_id,
        recipient_id: None,
    })
}
