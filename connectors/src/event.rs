//! Normalized webhook events: what every platform's payload is turned into.
//!
//! One webhook body yields a list of [`Event`]s, one per message, status, watermark or other
//! notification in it; nothing in a batch is dropped (anything we do not act on becomes
//! [`Event::Ignored`] with the reason).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Platform;

/// One normalized item of a webhook body.
// Most events are messages, so boxing the large variant would add an allocation to the common
// case without saving memory.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A message from a customer, or an echo of a message the business sent.
    Message(InboundMessage),
    /// A delivery / read / failure receipt for one message the business sent.
    Status(StatusReceipt),
    /// "Everything up to this time was delivered / read" (Messenger, TikTok).
    Watermark(Watermark),
    /// A well-formed notification we do not act on, or an element too malformed to use.
    Ignored(Ignored),
}

impl Event {
    /// The platform account the event belongs to (WhatsApp `phone_number_id`, Page id, TikTok
    /// business `open_id`): the key for finding the connection.
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Event::Message(m) => Some(&m.account_id),
            Event::Status(s) => Some(&s.account_id),
            Event::Watermark(w) => Some(&w.account_id),
            Event::Ignored(i) => i.account_id.as_deref(),
        }
    }

    /// A short name of the event's kind: `message`, `status`, `watermark` or `ignored`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Message(_) => "message",
            Event::Status(_) => "status",
            Event::Watermark(_) => "watermark",
            Event::Ignored(_) => "ignored",
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The customer wrote to the business.
    Inbound,
    /// The business wrote (from our service, another app, or the platform's own inbox) and the
    /// platform echoes it back.
    Echo,
}

/// A message, inbound or echoed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub platform: Platform,
    /// WhatsApp `phone_number_id`, Messenger Page id, TikTok business `open_id`.
    pub account_id: String,
    /// The thread within the account: the customer's id on WhatsApp and Messenger, TikTok's
    /// `conversation_id`.
    pub conversation_key: String,
    pub direction: Direction,
    /// The customer (also for echoes, where the customer is the recipient).
    pub contact: Contact,
    /// The platform's message id (wamid, mid, TikTok message_id): the deduplication key.
    /// Messenger reactions and postbacks have no id of their own; theirs is derived from the
    /// event (see the Messenger module).
    pub message_id: String,
    pub timestamp: DateTime<Utc>,
    pub content: Content,
    /// Further attachments of the same platform message (Messenger sends several images as one
    /// message with one id).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_content: Vec<Content>,
    /// The platform id of the message this one quotes or replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// On echoes: the correlation value we passed when sending (Messenger `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// On Messenger echoes: the app that sent the message (ours, or e.g. the Page inbox).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_app_id: Option<String>,
}

/// The customer on the other side of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The platform id used to address the customer: WhatsApp phone (`wa_id`), or the
    /// business-scoped user id when no phone is given; Messenger PSID; TikTok user id.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// WhatsApp: the phone number (`wa_id` / `from`) when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// WhatsApp: the business-scoped user id (`user_id`, "BSUID") when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoped_user_id: Option<String>,
}

impl Contact {
    pub fn new(id: impl Into<String>) -> Self {
        Contact {
            id: id.into(),
            name: None,
            username: None,
            phone: None,
            scoped_user_id: None,
        }
    }
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Text {
        body: String,
    },
    Image(Media),
    Video(Media),
    Audio {
        #[serde(flatten)]
        media: Media,
        /// A voice note recorded in the app (WhatsApp `voice`).
        #[serde(default)]
        voice: bool,
    },
    File(Media),
    Sticker(Media),
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// A reaction to an earlier message; `emoji: None` means the reaction was removed.
    Reaction {
        target_message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
    },
    /// One or more shared contact cards.
    Contacts {
        cards: Vec<ContactCard>,
    },
    /// A tapped button: WhatsApp reply button / template quick reply, Messenger quick reply or
    /// postback. `id` is the payload the business attached to the button.
    ButtonReply {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        title: String,
    },
    /// A chosen row of a WhatsApp list message.
    ListReply {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// Anything else; `platform_type` is the platform's own name for it (e.g. `order`,
    /// `system`, `share_post`).
    Unsupported {
        platform_type: String,
    },
}

impl Content {
    /// The content kind as stored and shown: `text`, `image`, `video`, `audio`, `file`,
    /// `sticker`, `location`, `reaction`, `contacts`, `button_reply`, `list_reply`, `unsupported`.
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Text { .. } => "text",
            Content::Image(_) => "image",
            Content::Video(_) => "video",
            Content::Audio { .. } => "audio",
            Content::File(_) => "file",
            Content::Sticker(_) => "sticker",
            Content::Location { .. } => "location",
            Content::Reaction { .. } => "reaction",
            Content::Contacts { .. } => "contacts",
            Content::ButtonReply { .. } => "button_reply",
            Content::ListReply { .. } => "list_reply",
            Content::Unsupported { .. } => "unsupported",
        }
    }

    /// The human-readable text of the content, if it has any (body, caption, button title).
    pub fn text(&self) -> Option<&str> {
        match self {
            Content::Text { body } => Some(body),
            Content::Image(m) | Content::Video(m) | Content::File(m) | Content::Sticker(m) => {
                m.caption.as_deref()
            }
            Content::Audio { media, .. } => media.caption.as_deref(),
            Content::Location { name, .. } => name.as_deref(),
            Content::Reaction { emoji, .. } => emoji.as_deref(),
            Content::Contacts { .. } | Content::Unsupported { .. } => None,
            Content::ButtonReply { title, .. } | Content::ListReply { title, .. } => Some(title),
        }
    }

    /// The media part, for the media kinds.
    pub fn media(&self) -> Option<&Media> {
        match self {
            Content::Image(m) | Content::Video(m) | Content::File(m) | Content::Sticker(m) => Some(m),
            Content::Audio { media, .. } => Some(media),
            _ => None,
        }
    }
}

/// A media attachment. WhatsApp and TikTok give a media id to download with the account token;
/// Messenger gives a (short-lived) URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A shared contact card (WhatsApp `contacts` messages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
}

/// A per-message receipt for a message the business sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReceipt {
    pub platform: Platform,
    pub account_id: String,
    /// The id the platform returned when the message was sent.
    pub message_id: String,
    pub status: DeliveryStatus,
    pub timestamp: DateTime<Utc>,
    /// The customer (or group) the message went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_id: Option<String>,
    /// The correlation value we passed when sending (WhatsApp `biz_opaque_callback_data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation: Option<String>,
    /// Why the message failed (on `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<PlatformError>,
}

/// Where an outbound message is. Statuses may arrive out of order and `delivered` may be
/// skipped; apply them monotonically with [`DeliveryStatus::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    /// A voice message was played (WhatsApp).
    Played,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Played => "played",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Order for monotonic updates: sent < delivered < read = played; `failed` is terminal and
    /// ranks highest. Apply a receipt only when it moves the message forward.
    pub fn progress(self) -> u8 {
        match self {
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read | DeliveryStatus::Played => 3,
            DeliveryStatus::Failed => 4,
        }
    }
}

/// An error the platform attached to a receipt or a notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformError {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// "Every message the business sent in this conversation up to `watermark` was delivered /
/// read."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub platform: Platform,
    pub account_id: String,
    pub conversation_key: String,
    /// The customer who received / read.
    pub contact_id: String,
    pub kind: WatermarkKind,
    pub watermark: DateTime<Utc>,
    /// Messenger delivery receipts may also list the delivered message ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub message_ids: Vec<String>,
    /// When the platform emitted the receipt.
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarkKind {
    Delivered,
    Read,
}

/// Something in the body that is not a message, receipt or watermark: template and account
/// updates, calls, unknown event types, or an element too malformed to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored {
    pub platform: Platform,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_serializes_with_its_kind() {
        let content = Content::Audio {
            media: Media {
                id: Some("1".into()),
                ..Media::default()
            },
            voice: true,
        };
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "audio", "id": "1", "voice": true})
        );
        let back: Content = serde_json::from_value(json).unwrap();
        assert_eq!(back, content);
        assert_eq!(back.kind(), "audio");
    }

    #[test]
    fn progress_orders_statuses() {
        use DeliveryStatus::*;
        assert!(Sent.progress() < Delivered.progress());
        assert!(Delivered.progress() < Read.progress());
        assert_eq!(Read.progress(), Played.progress());
        assert!(Failed.progress() > Read.progress());
    }
}
