//! Messenger webhook bodies: `object = "page"`, `entry[]` per Page, each with `messaging[]`
//! (or `standby[]` when another app owns the thread under the Handover Protocol). What an event
//! is depends on which key it carries: `message` (with `is_echo` for the business's own sends),
//! `delivery`, `read`, `reaction`, `postback`, or something we ignore.
//!
//! Reactions and postbacks have no message id of their own; their id is derived from the event
//! (`reaction:<reacted mid>:<sender>:<timestamp ms>`, `postback:<sender>:<timestamp ms>` when
//! the postback has no `mid`), which stays the same across redeliveries.

use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::Platform;
use crate::event::{Contact, Content, Direction, Event, InboundMessage, Media, Watermark, WatermarkKind};
use crate::json::{
    Careful, Element, Fast, LenientText, Mode, list, non_empty, opt_bool, opt_f64, opt_text, opt_timestamp,
};
use crate::parse::{ParseError, envelope_error, from_unix_millis};

const PLATFORM: Platform = Platform::Facebook;

pub(crate) fn parse_webhook(text: &str) -> Result<Vec<Event>, ParseError> {
    match serde_json::from_str::<Envelope<Fast>>(text) {
        Ok(envelope) => Ok(envelope.into_events()),
        // Something in the body is malformed: read it again element by element.
        Err(_) => serde_json::from_str::<Envelope<Careful>>(text)
            .map(Envelope::into_events)
            .map_err(|e| envelope_error(PLATFORM, e)),
    }
}

fn ignored(account_id: Option<&str>, reason: String) -> Event {
    crate::parse::ignored(PLATFORM, account_id, reason)
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "M::Of<Entry<M>>: Deserialize<'de>"))]
struct Envelope<M: Mode> {
    #[serde(default, deserialize_with = "opt_text")]
    object: Option<String>,
    entry: Option<Vec<M::Of<Entry<M>>>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "M::Of<Messaging>: Deserialize<'de>, \
                             M::Of<FieldOnly>: Deserialize<'de>"))]
struct Entry<M: Mode> {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    messaging: Option<Vec<M::Of<Messaging>>>,
    standby: Option<Vec<M::Of<Messaging>>>,
    /// Page feed and other non-messaging subscriptions.
    changes: Option<Vec<M::Of<FieldOnly>>>,
}

#[derive(Deserialize)]
struct FieldOnly {
    #[serde(default, deserialize_with = "opt_text")]
    field: Option<String>,
}

#[derive(Deserialize)]
struct Messaging {
    sender: Option<Party>,
    recipient: Option<Party>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    timestamp: Option<i64>,
    message: Option<MessageObject>,
    delivery: Option<DeliveryObject>,
    read: Option<ReadObject>,
    reaction: Option<ReactionObject>,
    postback: Option<PostbackObject>,
    // Known event kinds we do not act on, recognised by name for the `ignored` reason.
    optin: Option<IgnoredAny>,
    referral: Option<IgnoredAny>,
    policy_enforcement: Option<IgnoredAny>,
    pass_thread_control: Option<IgnoredAny>,
    take_thread_control: Option<IgnoredAny>,
    request_thread_control: Option<IgnoredAny>,
    app_roles: Option<IgnoredAny>,
    account_linking: Option<IgnoredAny>,
    message_edit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Party {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    user_ref: Option<String>,
}

impl Party {
    fn into_id(self) -> Option<String> {
        non_empty(self.id).or_else(|| non_empty(self.user_ref))
    }
}

#[derive(Deserialize)]
struct MessageObject {
    #[serde(default, deserialize_with = "opt_text")]
    mid: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    text: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    is_echo: Option<bool>,
    #[serde(default, deserialize_with = "opt_text")]
    app_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    metadata: Option<String>,
    quick_reply: Option<PayloadOnly>,
    reply_to: Option<MidOnly>,
    attachments: Option<Vec<Attachment>>,
    #[serde(default, deserialize_with = "opt_bool")]
    is_deleted: Option<bool>,
    #[serde(default, deserialize_with = "opt_bool")]
    is_unsupported: Option<bool>,
}

#[derive(Deserialize)]
struct PayloadOnly {
    #[serde(default, deserialize_with = "opt_text")]
    payload: Option<String>,
}

#[derive(Deserialize)]
struct MidOnly {
    #[serde(default, deserialize_with = "opt_text")]
    mid: Option<String>,
}

#[derive(Deserialize)]
struct Attachment {
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    kind: Option<String>,
    payload: Option<AttachmentPayload>,
}

#[derive(Deserialize, Default)]
struct AttachmentPayload {
    #[serde(default, deserialize_with = "opt_text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    title: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    sticker_id: Option<String>,
    coordinates: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Coordinates {
    #[serde(default, deserialize_with = "opt_f64")]
    lat: Option<f64>,
    #[serde(default, deserialize_with = "opt_f64")]
    long: Option<f64>,
}

#[derive(Deserialize)]
struct DeliveryObject {
    mids: Option<Vec<LenientText>>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    watermark: Option<i64>,
}

#[derive(Deserialize)]
struct ReadObject {
    #[serde(default, deserialize_with = "opt_timestamp")]
    watermark: Option<i64>,
}

#[derive(Deserialize)]
struct ReactionObject {
    #[serde(default, deserialize_with = "opt_text")]
    mid: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    emoji: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    action: Option<String>,
}

#[derive(Deserialize)]
struct PostbackObject {
    #[serde(default, deserialize_with = "opt_text")]
    mid: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    title: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    payload: Option<String>,
}

impl<M: Mode> Envelope<M> {
    fn into_events(self) -> Vec<Event> {
        let object = self.object.unwrap_or_default();
        // Instagram uses the same envelope; it is a different channel we do not connect.
        let instagram = object == "instagram";
        if !(instagram || object == "page" || object.is_empty()) {
            return vec![ignored(
                None,
                format!("object {object:?} is not a Messenger webhook"),
            )];
        }
        let entries = list(self.entry);
        if entries.is_empty() {
            return vec![ignored(None, "webhook without entries".to_owned())];
        }
        let mut events = Vec::new();
        for entry in entries {
            match entry.into_result() {
                Ok(entry) if instagram => events.push(ignored(
                    entry.id.as_deref(),
                    "Instagram messaging is not handled by the facebook connector".to_owned(),
                )),
                Ok(entry) => entry.collect(&mut events),
                Err(bad) => events.push(ignored(None, format!("malformed entry: {}", bad.error))),
            }
        }
        events
    }
}

impl<M: Mode> Entry<M> {
    fn collect(self, events: &mut Vec<Event>) {
        let page = non_empty(self.id);
        let page = page.as_deref();
        let before = events.len();
        for item in list(self.messaging).into_iter().chain(list(self.standby)) {
            events.push(match item.into_result() {
                Ok(messaging) => messaging_event(messaging, page),
                Err(bad) => ignored(page, format!("malformed messaging event: {}", bad.error)),
            });
        }
        for change in list(self.changes) {
            let field = change.into_result().ok().and_then(|c| c.field);
            events.push(ignored(
                page,
                format!("Page change {:?}", field.unwrap_or_default()),
            ));
        }
        if events.len() == before {
            events.push(ignored(page, "entry without events".to_owned()));
        }
    }
}

fn messaging_event(event: Messaging, page: Option<&str>) -> Event {
    let Some(page) = page else {
        return ignored(None, "messaging event without a Page id".to_owned());
    };
    let sender = event.sender.and_then(Party::into_id);
    let recipient = event.recipient.and_then(Party::into_id);
    let Some(timestamp_ms) = event.timestamp else {
        return ignored(Some(page), "messaging event without a timestamp".to_owned());
    };
    let Some(timestamp) = from_unix_millis(timestamp_ms) else {
        return ignored(Some(page), format!("invalid timestamp {timestamp_ms}"));
    };
    if let Some(message) = event.message {
        let direction = if message.is_echo == Some(true) {
            Direction::Echo
        } else {
            Direction::Inbound
        };
        // Echoes go from the Page to the customer.
        let customer = match direction {
            Direction::Inbound => sender,
            Direction::Echo => recipient,
        };
        return message_event(message, direction, customer, page, timestamp);
    }
    let Some(customer) = sender else {
        return ignored(Some(page), "messaging event without a sender".to_owned());
    };
    if let Some(delivery) = event.delivery {
        let message_ids = list(delivery.mids)
            .into_iter()
            .filter_map(|m| non_empty(m.0))
            .collect();
        return watermark(
            page,
            customer,
            WatermarkKind::Delivered,
            delivery.watermark,
            message_ids,
            timestamp,
        );
    }
    if let Some(read) = event.read {
        return watermark(
            page,
            customer,
            WatermarkKind::Read,
            read.watermark,
            Vec::new(),
            timestamp,
        );
    }
    if let Some(reaction) = event.reaction {
        let Some(target) = non_empty(reaction.mid) else {
            return ignored(Some(page), "reaction without the reacted message id".to_owned());
        };
        let removed = reaction.action.as_deref() == Some("unreact");
        let content = Content::Reaction {
            target_message_id: target.clone(),
            emoji: if removed { None } else { non_empty(reaction.emoji) },
        };
        let message_id = format!("reaction:{target}:{customer}:{timestamp_ms}");
        return inbound(page, customer, message_id, timestamp, content);
    }
    if let Some(postback) = event.postback {
        let message_id =
            non_empty(postback.mid).unwrap_or_else(|| format!("postback:{customer}:{timestamp_ms}"));
        let content = Content::ButtonReply {
            title: postback
                .title
                .or_else(|| postback.payload.clone())
                .unwrap_or_default(),
            id: non_empty(postback.payload),
        };
        return inbound(page, customer, message_id, timestamp, content);
    }
    let known = [
        ("optin", event.optin.is_some()),
        ("referral", event.referral.is_some()),
        ("policy_enforcement", event.policy_enforcement.is_some()),
        ("pass_thread_control", event.pass_thread_control.is_some()),
        ("take_thread_control", event.take_thread_control.is_some()),
        ("request_thread_control", event.request_thread_control.is_some()),
        ("app_roles", event.app_roles.is_some()),
        ("account_linking", event.account_linking.is_some()),
        ("message_edit", event.message_edit.is_some()),
    ];
    let reason = match known.iter().find(|(_, present)| *present) {
        Some((name, _)) => format!("{name} event"),
        None => "messaging event of an unknown kind".to_owned(),
    };
    ignored(Some(page), reason)
}

fn watermark(
    page: &str,
    customer: String,
    kind: WatermarkKind,
    watermark_ms: Option<i64>,
    message_ids: Vec<String>,
    timestamp: chrono::DateTime<chrono::Utc>,
) -> Event {
    let Some(watermark) = watermark_ms.and_then(from_unix_millis) else {
        return ignored(Some(page), format!("{kind:?} receipt without a valid watermark"));
    };
    Event::Watermark(Watermark {
        platform: PLATFORM,
        account_id: page.to_owned(),
        conversation_key: customer.clone(),
        contact_id: customer,
        kind,
        watermark,
        message_ids,
        timestamp,
    })
}

fn inbound(
    page: &str,
    customer: String,
    message_id: String,
    timestamp: chrono::DateTime<chrono::Utc>,
    content: Content,
) -> Event {
    Event::Message(InboundMessage {
        platform: PLATFORM,
        account_id: page.to_owned(),
        conversation_key: customer.clone(),
        direction: Direction::Inbound,
        contact: Contact::new(customer),
        message_id,
        timestamp,
        content,
        extra_content: Vec::new(),
        reply_to: None,
        correlation: None,
        sender_app_id: None,
    })
}

fn message_event(
    message: MessageObject,
    direction: Direction,
    customer: Option<String>,
    page: &str,
    timestamp: chrono::DateTime<chrono::Utc>,
) -> Event {
    let Some(message_id) = non_empty(message.mid) else {
        return ignored(Some(page), "message without a mid".to_owned());
    };
    let Some(customer) = customer else {
        return ignored(Some(page), format!("message {message_id} without a customer id"));
    };
    let mut contents = Vec::new();
    if let Some(text) = non_empty(message.text) {
        contents.push(match message.quick_reply {
            Some(quick_reply) => Content::ButtonReply {
                id: non_empty(quick_reply.payload),
                title: text,
            },
            None => Content::Text { body: text },
        });
    }
    contents.extend(list(message.attachments).into_iter().map(attachment_content));
    let mut contents = contents.into_iter();
    let content = contents.next().unwrap_or_else(|| Content::Unsupported {
        platform_type: match (message.is_deleted, message.is_unsupported) {
            (Some(true), _) => "deleted",
            (_, Some(true)) => "unsupported",
            _ => "empty",
        }
        .to_owned(),
    });
    Event::Message(InboundMessage {
        platform: PLATFORM,
        account_id: page.to_owned(),
        conversation_key: customer.clone(),
        direction,
        contact: Contact::new(customer),
        message_id,
        timestamp,
        content,
        extra_content: contents.collect(),
        reply_to: message.reply_to.and_then(|r| non_empty(r.mid)),
        correlation: non_empty(message.metadata),
        sender_app_id: non_empty(message.app_id),
    })
}

fn attachment_content(attachment: Attachment) -> Content {
    let kind = attachment.kind.unwrap_or_default();
    let payload = attachment.payload.unwrap_or_default();
    let media = |payload: AttachmentPayload| Media {
        url: non_empty(payload.url),
        ..Media::default()
    };
    match kind.as_str() {
        // Stickers arrive as images carrying a sticker_id (and, newer, as `sticker`).
        "image" | "sticker" if payload.sticker_id.is_some() || kind == "sticker" => Content::Sticker(Media {
            id: non_empty(payload.sticker_id.clone()),
            ..media(payload)
        }),
        "image" => Content::Image(media(payload)),
        "video" => Content::Video(media(payload)),
        "audio" => Content::Audio {
            media: media(payload),
            voice: false,
        },
        "file" => Content::File(media(payload)),
        "location" => match payload.coordinates.as_ref().map(|c| (c.lat, c.long)) {
            Some((Some(latitude), Some(longitude))) => Content::Location {
                latitude,
                longitude,
                name: non_empty(payload.title),
                address: None,
                url: non_empty(payload.url),
            },
            _ => Content::Unsupported { platform_type: kind },
        },
        "" => Content::Unsupported {
            platform_type: "attachment".to_owned(),
        },
        _ => Content::Unsupported { platform_type: kind },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_modes_agree_on_every_fixture() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/webhooks");
        for name in [
            "messenger_text",
            "messenger_image",
            "messenger_echo",
            "messenger_delivery_read",
            "instagram_text",
        ] {
            let body = std::fs::read_to_string(format!("{dir}/{name}.json")).unwrap();
            let fast = serde_json::from_str::<Envelope<Fast>>(&body).map(Envelope::into_events);
            let careful = serde_json::from_str::<Envelope<Careful>>(&body).map(Envelope::into_events);
            assert_eq!(fast.unwrap(), careful.unwrap(), "{name}");
        }
    }

    #[test]
    fn a_malformed_event_does_not_spoil_its_neighbours() {
        let body = r#"{"object":"page","entry":[
            {"id":"1087","time":1,"messaging":[
                {"sender":{"id":"2468"},"recipient":{"id":"1087"},"timestamp":1767225600000,"message":{"mid":"m_1","text":"hi"}},
                {"sender":"nobody","timestamp":1767225600001,"message":{"mid":"m_2","text":"hi"}},
                {"sender":{"id":"2468"},"recipient":{"id":"1087"},"timestamp":1767225600002,"message":{"mid":"m_3","attachments":[{"type":"location","payload":{"coordinates":{"lat":1.5,"long":2}}},{"type":"image","payload":{"url":"u","sticker_id":369239263222822}}]}},
                {"sender":{"id":"2468"},"recipient":{"id":"1087"},"timestamp":1767225600003,"reaction":{"mid":"m_0","action":"unreact","emoji":"x"}},
                {"sender":{"id":"2468"},"recipient":{"id":"1087"},"timestamp":1767225600004,"postback":{"title":"Start","payload":"GET_STARTED"}}
            ]},
            {"id":"1087","time":2,"changes":[{"field":"feed","value":{}}]},
            "junk"
        ]}"#;
        let events = parse_webhook(body).unwrap();
        let kinds: Vec<&str> = events.iter().map(Event::kind).collect();
        assert_eq!(
            kinds,
            [
                "message", "ignored", "message", "message", "message", "ignored", "ignored"
            ]
        );
        let Event::Message(location) = &events[2] else {
            panic!()
        };
        assert!(matches!(location.content, Content::Location { latitude, .. } if latitude == 1.5));
        assert!(
            matches!(&location.extra_content[..], [Content::Sticker(m)] if m.id.as_deref() == Some("369239263222822"))
        );
        let Event::Message(reaction) = &events[3] else {
            panic!()
        };
        assert_eq!(reaction.message_id, "reaction:m_0:2468:1767225600003");
        assert!(matches!(&reaction.content, Content::Reaction { emoji: None, .. }));
        let Event::Message(postback) = &events[4] else {
            panic!()
        };
        assert_eq!(postback.message_id, "postback:2468:1767225600004");
        assert_eq!(
            postback.content,
            Content::ButtonReply {
                id: Some("GET_STARTED".into()),
                title: "Start".into()
            }
        );
    }
}
