//! `POST {graph}/{version}/{phone_number_id}/messages` with `Authorization: Bearer`.

use serde::{Deserialize, Serialize};

use crate::Platform;
use crate::classify::{SendError, classify_whatsapp};
use crate::json::opt_text;
use crate::secret::Secret;
use crate::send::{
    Client, OutboundContent, OutboundMessage, SendReceipt, graph_error, unreadable_send_success,
};

const PLATFORM: Platform = Platform::WhatsApp;

#[derive(Serialize)]
struct SendBody<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<MediaBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<MediaBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<MediaBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<MediaBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<ContextBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
}

#[derive(Serialize)]
struct TextBody<'a> {
    body: &'a str,
    preview_url: bool,
}

#[derive(Serialize)]
struct MediaBody<'a> {
    link: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
}

#[derive(Serialize)]
struct ContextBody<'a> {
    message_id: &'a str,
}

#[derive(Deserialize)]
struct SendResponse {
    messages: Option<Vec<IdOnly>>,
    contacts: Option<Vec<WaIdOnly>>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct WaIdOnly {
    #[serde(default, deserialize_with = "opt_text")]
    wa_id: Option<String>,
}

fn media<'a>(link: &'a str, caption: &'a Option<String>, filename: &'a Option<String>) -> MediaBody<'a> {
    MediaBody {
        link,
        caption: caption.as_deref(),
        filename: filename.as_deref(),
    }
}

fn body(message: &OutboundMessage) -> SendBody<'_> {
    let mut body = SendBody {
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: &message.recipient,
        kind: "text",
        text: None,
        image: None,
        video: None,
        audio: None,
        document: None,
        context: message
            .reply_to
            .as_deref()
            .map(|message_id| ContextBody { message_id }),
        biz_opaque_callback_data: message.correlation.as_deref(),
    };
    match &message.content {
        OutboundContent::Text { body: text } => {
            body.text = Some(TextBody {
                body: text,
                preview_url: false,
            });
        }
        OutboundContent::Image { url, caption } => {
            body.kind = "image";
            body.image = Some(media(url, caption, &None));
        }
        OutboundContent::Video { url, caption } => {
            body.kind = "video";
            body.video = Some(media(url, caption, &None));
        }
        OutboundContent::Audio { url } => {
            body.kind = "audio";
            body.audio = Some(media(url, &None, &None));
        }
        OutboundContent::File {
            url,
            filename,
            caption,
        } => {
            body.kind = "document";
            body.document = Some(media(url, caption, filename));
        }
    }
    body
}

pub(crate) async fn send(
    client: &Client,
    phone_number_id: &str,
    token: &Secret,
    message: &OutboundMessage,
) -> Result<SendReceipt, SendError> {
    let url = client.config().graph_url(&format!("{phone_number_id}/messages"));
    let request = client
        .http()
        .post(url)
        .bearer_auth(token.expose())
        .json(&body(message));
    let reply = client.execute(PLATFORM, request, &[token]).await?;
    if !(200..300).contains(&reply.status) {
        return Err(graph_error(PLATFORM, &reply, &[token], |code, _, status| {
            classify_whatsapp(code, status)
        }));
    }
    let response = serde_json::from_slice::<SendResponse>(&reply.body).ok();
    let message_id = response
        .as_ref()
        .and_then(|r| r.messages.as_ref()?.first()?.id.clone());
    let Some(message_id) = message_id else {
        return Err(unreadable_send_success(PLATFORM, &reply, "messages[0].id"));
    };
    Ok(SendReceipt {
        message_id,
        recipient_id: response.and_then(|r| r.contacts?.into_iter().next()?.wa_id),
    })
}
