//! `POST {graph}/{version}/{page_id}/messages` with the Page token as `Authorization: Bearer`
//! (rather than `?access_token=`, which would put the token in URLs and logs).

use serde::{Deserialize, Serialize};

use crate::Platform;
use crate::classify::{ApiError, SendError, classify_messenger};
use crate::json::opt_text;
use crate::secret::Secret;
use crate::send::{
    Client, MessagingType, OutboundContent, OutboundMessage, SendReceipt, graph_error,
    unreadable_send_success,
};

const PLATFORM: Platform = Platform::Facebook;

#[derive(Serialize)]
struct SendBody<'a> {
    recipient: Recipient<'a>,
    messaging_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'static str>,
    message: MessageBody<'a>,
}

#[derive(Serialize)]
struct Recipient<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct MessageBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attachment: Option<AttachmentBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a str>,
}

#[derive(Serialize)]
struct AttachmentBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: AttachmentPayload<'a>,
}

#[derive(Serialize)]
struct AttachmentPayload<'a> {
    url: &'a str,
    is_reusable: bool,
}

#[derive(Deserialize)]
struct SendResponse {
    #[serde(default, deserialize_with = "opt_text")]
    message_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    recipient_id: Option<String>,
}

fn body(message: &OutboundMessage) -> Result<SendBody<'_>, ApiError> {
    let attachment = |kind, url| {
        Some(AttachmentBody {
            kind,
            payload: AttachmentPayload {
                url,
                is_reusable: false,
            },
        })
    };
    let (text, attachment) = match &message.content {
        OutboundContent::Text { body } => (Some(body.as_str()), None),
        OutboundContent::Image { caption: Some(_), .. }
        | OutboundContent::Video { caption: Some(_), .. }
        | OutboundContent::File { caption: Some(_), .. } => {
            return Err(ApiError::invalid_request(
                PLATFORM,
                "Messenger attachments cannot carry a caption; send the text separately",
            ));
        }
        OutboundContent::Image { url, .. } => (None, attachment("image", url.as_str())),
        OutboundContent::Video { url, .. } => (None, attachment("video", url.as_str())),
        OutboundContent::Audio { url } => (None, attachment("audio", url.as_str())),
        OutboundContent::File { url, .. } => (None, attachment("file", url.as_str())),
    };
    let (messaging_type, tag) = match message.messaging_type {
        MessagingType::Response => ("RESPONSE", None),
        MessagingType::Update => ("UPDATE", None),
        MessagingType::HumanAgent => ("MESSAGE_TAG", Some("HUMAN_AGENT")),
    };
    Ok(SendBody {
        recipient: Recipient {
            id: &message.recipient,
        },
        messaging_type,
        tag,
        message: MessageBody {
            text,
            attachment,
            metadata: message.correlation.as_deref(),
        },
    })
}

pub(crate) async fn send(
    client: &Client,
    page_id: &str,
    token: &Secret,
    message: &OutboundMessage,
) -> Result<SendReceipt, SendError> {
    let body = body(message)?;
    let url = client.config().graph_url(&format!("{page_id}/messages"));
    let request = client.http().post(url).bearer_auth(token.expose()).json(&body);
    let reply = client.execute(PLATFORM, request, &[token]).await?;
    if !(200..300).contains(&reply.status) {
        return Err(graph_error(PLATFORM, &reply, &[token], classify_messenger));
    }
    let response = serde_json::from_slice::<SendResponse>(&reply.body).ok();
    let Some(message_id) = response.as_ref().and_then(|r| r.message_id.clone()) else {
        return Err(unreadable_send_success(PLATFORM, &reply, "message_id"));
    };
    Ok(SendReceipt {
        message_id,
        recipient_id: response.and_then(|r| r.recipient_id),
    })
}
