//! What a message carries, in one shape whichever way it travels: a customer's message stored
//! from a webhook, an agent's reply in the API request, the message as the API and the
//! dashboard show it, and the row in the database. A tagged union on `kind`; text is always
//! `text` (in notes too).
//!
//! Rows written before this shape still read ([`StoredContent::read`]): inbound text said
//! `body`, and outbound rows had no `kind` (the row's `content_type` column names it).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// What a message carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[schema(example = json!({"kind": "text", "text": "Where is my order?"}))]
pub enum MessageContent {
    /// Plain text.
    #[schema(example = json!({"kind": "text", "text": "Where is my order?"}))]
    Text {
        #[serde(alias = "body")]
        text: String,
    },
    /// A picture, with an optional caption.
    #[schema(example = json!({"kind": "image", "url": "https://example.com/shoe.jpg", "caption": "This one"}))]
    Image(Media),
    #[schema(example = json!({"kind": "video", "url": "https://example.com/unboxing.mp4"}))]
    Video(Media),
    /// Sound; `voice` when it is a voice note recorded in the app.
    #[schema(example = json!({"kind": "audio", "id": "1013859600285441", "mime_type": "audio/ogg", "voice": true}))]
    Audio {
        #[serde(flatten)]
        media: Media,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        voice: bool,
    },
    /// A document.
    #[schema(example = json!({"kind": "file", "url": "https://example.com/invoice.pdf", "filename": "invoice.pdf"}))]
    File(Media),
    #[schema(example = json!({"kind": "sticker", "id": "1013859600285442", "mime_type": "image/webp"}))]
    Sticker(Media),
    /// A shared place.
    #[schema(example = json!({"kind": "location", "latitude": 38.72, "longitude": -9.14, "name": "Shop"}))]
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
    /// One or more shared contact cards.
    #[schema(example = json!({"kind": "contacts", "cards": [{"name": "Ana", "phones": ["+351900000000"]}]}))]
    Contacts { cards: Vec<ContactCard> },
    /// A reaction to an earlier message (its platform id); no `emoji`: the reaction was removed.
    #[schema(example = json!({"kind": "reaction", "target_message_id": "wamid.HBgL", "emoji": "👍"}))]
    Reaction {
        target_message_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
    },
    /// A tapped button (WhatsApp reply button or template quick reply, Messenger quick reply or
    /// postback); `id` is the payload the business attached to it.
    #[schema(example = json!({"kind": "button_reply", "id": "track", "title": "Track my order"}))]
    ButtonReply {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        title: String,
    },
    /// A chosen row of a WhatsApp list message.
    #[schema(example = json!({"kind": "list_reply", "id": "size-42", "title": "42"}))]
    ListReply {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// Anything else; `platform_type` is the platform's own name for it (`order`, `system`, ...).
    #[schema(example = json!({"kind": "unsupported", "platform_type": "order"}))]
    Unsupported { platform_type: String },
}

/// A media attachment: by `url` (Messenger's links, replies), or by platform `id` (WhatsApp and
/// TikTok media, fetched with the account's token).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// A shared contact card.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ContactCard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<String>,
}

impl MessageContent {
    pub fn text(text: impl Into<String>) -> Self {
        MessageContent::Text { text: text.into() }
    }

    /// The kind, as the `kind` tag and the `content_type` column say it.
    pub fn kind(&self) -> &'static str {
        match self {
            MessageContent::Text { .. } => "text",
            MessageContent::Image(_) => "image",
            MessageContent::Video(_) => "video",
            MessageContent::Audio { .. } => "audio",
            MessageContent::File(_) => "file",
            MessageContent::Sticker(_) => "sticker",
            MessageContent::Location { .. } => "location",
            MessageContent::Contacts { .. } => "contacts",
            MessageContent::Reaction { .. } => "reaction",
            MessageContent::ButtonReply { .. } => "button_reply",
            MessageContent::ListReply { .. } => "list_reply",
            MessageContent::Unsupported { .. } => "unsupported",
        }
    }

    /// The words a person reads: the text, a caption, a button's title, a place's name.
    pub fn readable(&self) -> Option<&str> {
        match self {
            MessageContent::Text { text } => Some(text),
            MessageContent::Image(m)
            | MessageContent::Video(m)
            | MessageContent::File(m)
            | MessageContent::Sticker(m)
            | MessageContent::Audio { media: m, .. } => m.caption.as_deref(),
            MessageContent::Location { name, .. } => name.as_deref(),
            MessageContent::Reaction { emoji, .. } => emoji.as_deref(),
            MessageContent::ButtonReply { title, .. } | MessageContent::ListReply { title, .. } => {
                Some(title)
            }
            MessageContent::Contacts { .. } | MessageContent::Unsupported { .. } => None,
        }
    }

    /// The media part, for the media kinds.
    pub fn media(&self) -> Option<&Media> {
        match self {
            MessageContent::Image(m)
            | MessageContent::Video(m)
            | MessageContent::File(m)
            | MessageContent::Sticker(m)
            | MessageContent::Audio { media: m, .. } => Some(m),
            _ => None,
        }
    }
}

/// A message's content as a row keeps it: the content, further attachments that came in the
/// same platform message, and the platform id of the message it quotes.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredContent {
    pub content: MessageContent,
    pub attachments: Vec<MessageContent>,
    pub reply_to: Option<String>,
}

impl StoredContent {
    pub fn new(content: MessageContent) -> Self {
        StoredContent {
            content,
            attachments: Vec::new(),
            reply_to: None,
        }
    }

    /// The JSON the `content` column holds: the content's own shape, plus `attachments` and
    /// `reply_to` when there are any.
    pub fn to_json(&self) -> Value {
        let mut value = serde_json::to_value(&self.content).unwrap_or_else(|_| Value::Object(Map::new()));
        if let Value::Object(map) = &mut value {
            if !self.attachments.is_empty() {
                let attachments = self
                    .attachments
                    .iter()
                    .filter_map(|a| serde_json::to_value(a).ok());
                map.insert("attachments".into(), Value::Array(attachments.collect()));
            }
            if let Some(reply_to) = &self.reply_to {
                map.insert("reply_to".into(), Value::String(reply_to.clone()));
            }
        }
        value
    }

    /// Reads a row's `content`, of this shape or an older one: `content_type` stands in for a
    /// missing `kind`, `body` reads as `text`, `extra` as `attachments`. What still does not
    /// parse reads as `unsupported` of that type, never as an error: a row stays readable.
    pub fn read(content_type: &str, stored: &Value) -> Self {
        let mut map = stored.as_object().cloned().unwrap_or_default();
        let attachments = map
            .remove("attachments")
            .or_else(|| map.remove("extra"))
            .and_then(|v| match v {
                Value::Array(items) => Some(items),
                _ => None,
            })
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let kind = item.get("kind").and_then(Value::as_str).unwrap_or("unsupported");
                Self::read_one(kind, item.as_object().cloned().unwrap_or_default())
            })
            .collect();
        let reply_to = map.remove("reply_to").and_then(|v| v.as_str().map(str::to_owned));
        StoredContent {
            content: Self::read_one(content_type, map),
            attachments,
            reply_to,
        }
    }

    fn read_one(content_type: &str, mut map: Map<String, Value>) -> MessageContent {
        map.entry("kind")
            .or_insert_with(|| Value::String(content_type.to_owned()));
        serde_json::from_value(Value::Object(map)).unwrap_or_else(|_| MessageContent::Unsupported {
            platform_type: content_type.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_row() {
        let media = Media {
            url: Some("https://example.com/a.jpg".into()),
            caption: Some("look".into()),
            ..Media::default()
        };
        let all = [
            MessageContent::text("hi"),
            MessageContent::Image(media.clone()),
            MessageContent::Video(media.clone()),
            MessageContent::Audio {
                media: media.clone(),
                voice: true,
            },
            MessageContent::File(media.clone()),
            MessageContent::Sticker(media),
            MessageContent::Location {
                latitude: 1.5,
                longitude: -2.0,
                name: Some("Shop".into()),
                address: None,
                url: None,
            },
            MessageContent::Contacts {
                cards: vec![ContactCard {
                    name: Some("Ana".into()),
                    phones: vec!["1".into()],
                    emails: vec![],
                }],
            },
            MessageContent::Reaction {
                target_message_id: "wamid.1".into(),
                emoji: None,
            },
            MessageContent::ButtonReply {
                id: Some("b".into()),
                title: "Yes".into(),
            },
            MessageContent::ListReply {
                id: None,
                title: "42".into(),
                description: Some("size".into()),
            },
            MessageContent::Unsupported {
                platform_type: "order".into(),
            },
        ];
        for content in all {
            let stored = StoredContent {
                content: content.clone(),
                attachments: vec![MessageContent::text("more")],
                reply_to: Some("wamid.0".into()),
            };
            let json = stored.to_json();
            assert_eq!(json["kind"], content.kind());
            assert_eq!(StoredContent::read(content.kind(), &json), stored, "{json}");
        }
    }

    #[test]
    fn text_is_text_in_every_direction() {
        let json = serde_json::to_value(MessageContent::text("hello")).unwrap();
        assert_eq!(json, json!({"kind": "text", "text": "hello"}));
    }

    #[test]
    fn rows_of_the_older_shapes_still_read() {
        // A customer's text, stored from a webhook.
        let inbound = json!({"kind": "text", "body": "hi", "extra": [{"kind": "image", "id": "9"}], "reply_to": "wamid.0"});
        let read = StoredContent::read("text", &inbound);
        assert_eq!(read.content, MessageContent::text("hi"));
        assert_eq!(
            read.attachments,
            vec![MessageContent::Image(Media {
                id: Some("9".into()),
                ..Media::default()
            })]
        );
        assert_eq!(read.reply_to.as_deref(), Some("wamid.0"));
        // Replies: no `kind`, the column says it.
        assert_eq!(
            StoredContent::read("text", &json!({"text": "on its way"})).content,
            MessageContent::text("on its way")
        );
        assert_eq!(
            StoredContent::read(
                "file",
                &json!({"url": "https://example.com/a.pdf", "filename": "a.pdf"})
            )
            .content,
            MessageContent::File(Media {
                url: Some("https://example.com/a.pdf".into()),
                filename: Some("a.pdf".into()),
                ..Media::default()
            })
        );
    }

    #[test]
    fn what_does_not_parse_reads_as_unsupported() {
        for (kind, json) in [
            ("location", json!({"latitude": "north"})),
            ("hologram", json!({"kind": "hologram"})),
            ("text", json!("not an object")),
        ] {
            assert_eq!(
                StoredContent::read(kind, &json).content,
                MessageContent::Unsupported {
                    platform_type: kind.into()
                },
                "{json}"
            );
        }
    }
}
