//! WhatsApp webhook bodies: `object = "whatsapp_business_account"`, `entry[].changes[]`, each
//! change a `field` and a `value`. Messages (`field = messages`) carry `messages[]`,
//! `statuses[]` and `errors[]`; coexistence echoes (`field = smb_message_echoes`) carry
//! `message_echoes[]`; every other field (templates, account updates, calls, ...) is ignored.

use serde::Deserialize;

use crate::Platform;
use crate::event::{
    Contact, ContactCard, Content, DeliveryStatus, Direction, Event, InboundMessage, Media, PlatformError,
    StatusReceipt,
};
use crate::json::{
    Careful, Element, Fast, Malformed, Mode, Tolerant, list, non_empty, opt_bool, opt_f64, opt_int, opt_text,
    opt_timestamp,
};
use crate::parse::{ParseError, envelope_error, from_unix_seconds};

const PLATFORM: Platform = Platform::WhatsApp;
const OBJECT: &str = "whatsapp_business_account";

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
#[serde(bound(deserialize = "M::Of<Change<M>>: Deserialize<'de>"))]
struct Entry<M: Mode> {
    changes: Option<Vec<M::Of<Change<M>>>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "M::Of<Value<M>>: Deserialize<'de>"))]
struct Change<M: Mode> {
    #[serde(default, deserialize_with = "opt_text")]
    field: Option<String>,
    value: Option<M::Of<Value<M>>>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "M::Of<Message>: Deserialize<'de>, \
                             M::Of<Status>: Deserialize<'de>, \
                             M::Of<ContactEntry>: Deserialize<'de>, \
                             M::Of<ErrorObject>: Deserialize<'de>"))]
struct Value<M: Mode> {
    metadata: Option<Metadata>,
    contacts: Option<Vec<M::Of<ContactEntry>>>,
    messages: Option<Vec<M::Of<Message>>>,
    message_echoes: Option<Vec<M::Of<Message>>>,
    statuses: Option<Vec<M::Of<Status>>>,
    errors: Option<Vec<M::Of<ErrorObject>>>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default, deserialize_with = "opt_text")]
    phone_number_id: Option<String>,
}

#[derive(Deserialize)]
struct ContactEntry {
    #[serde(default, deserialize_with = "opt_text")]
    wa_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    user_id: Option<String>,
    profile: Option<Profile>,
}

#[derive(Deserialize)]
struct Profile {
    #[serde(default, deserialize_with = "opt_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    username: Option<String>,
}

/// The fields every message has; all lenient, so a malformed message can still be identified.
#[derive(Deserialize, Default)]
struct MessageHeader {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    from_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    to: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    to_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    timestamp: Option<i64>,
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    kind: Option<String>,
}

#[derive(Deserialize, Default)]
struct Message {
    // Repeated from MessageHeader rather than flattened: `flatten` buffers the whole message.
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    from: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    from_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    to: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    to_user_id: Option<String>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    timestamp: Option<i64>,
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    kind: Option<String>,
    context: Option<Context>,
    text: Option<TextObject>,
    image: Option<MediaObject>,
    video: Option<MediaObject>,
    audio: Option<MediaObject>,
    document: Option<MediaObject>,
    sticker: Option<MediaObject>,
    location: Option<LocationObject>,
    reaction: Option<ReactionObject>,
    contacts: Option<Vec<CardObject>>,
    button: Option<ButtonObject>,
    interactive: Option<InteractiveObject>,
    unsupported: Option<TypeOnly>,
}

impl From<MessageHeader> for Message {
    fn from(h: MessageHeader) -> Self {
        Message {
            id: h.id,
            from: h.from,
            from_user_id: h.from_user_id,
            to: h.to,
            to_user_id: h.to_user_id,
            timestamp: h.timestamp,
            kind: h.kind,
            ..Message::default()
        }
    }
}

#[derive(Deserialize)]
struct Context {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
}

#[derive(Deserialize)]
struct TextObject {
    #[serde(default, deserialize_with = "opt_text")]
    body: Option<String>,
}

#[derive(Deserialize)]
struct MediaObject {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    url: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    mime_type: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    caption: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    filename: Option<String>,
    #[serde(default, deserialize_with = "opt_bool")]
    voice: Option<bool>,
}

impl MediaObject {
    fn into_media(self) -> Media {
        Media {
            id: non_empty(self.id),
            url: non_empty(self.url),
            mime_type: non_empty(self.mime_type),
            caption: non_empty(self.caption),
            filename: non_empty(self.filename),
        }
    }
}

#[derive(Deserialize)]
struct LocationObject {
    #[serde(default, deserialize_with = "opt_f64")]
    latitude: Option<f64>,
    #[serde(default, deserialize_with = "opt_f64")]
    longitude: Option<f64>,
    #[serde(default, deserialize_with = "opt_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    address: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    url: Option<String>,
}

#[derive(Deserialize)]
struct ReactionObject {
    #[serde(default, deserialize_with = "opt_text")]
    message_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct CardObject {
    name: Option<CardName>,
    phones: Option<Vec<CardPhone>>,
    emails: Option<Vec<CardEmail>>,
}

#[derive(Deserialize)]
struct CardName {
    #[serde(default, deserialize_with = "opt_text")]
    formatted_name: Option<String>,
}

#[derive(Deserialize)]
struct CardPhone {
    #[serde(default, deserialize_with = "opt_text")]
    phone: Option<String>,
}

#[derive(Deserialize)]
struct CardEmail {
    #[serde(default, deserialize_with = "opt_text")]
    email: Option<String>,
}

#[derive(Deserialize)]
struct ButtonObject {
    #[serde(default, deserialize_with = "opt_text")]
    text: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    payload: Option<String>,
}

#[derive(Deserialize)]
struct InteractiveObject {
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    kind: Option<String>,
    button_reply: Option<ChoiceObject>,
    list_reply: Option<ChoiceObject>,
}

#[derive(Deserialize)]
struct ChoiceObject {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    title: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    description: Option<String>,
}

#[derive(Deserialize)]
struct TypeOnly {
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    status: Option<String>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "opt_text")]
    recipient_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    biz_opaque_callback_data: Option<String>,
    // Tolerant even in fast mode: a receipt is worth keeping without its error details.
    errors: Option<Vec<Tolerant<ErrorObject>>>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(default, deserialize_with = "opt_int")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "opt_text")]
    title: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    message: Option<String>,
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default, deserialize_with = "opt_text")]
    details: Option<String>,
}

impl ErrorObject {
    fn into_platform_error(self) -> PlatformError {
        PlatformError {
            code: self.code,
            title: non_empty(self.title),
            message: non_empty(self.message),
            details: self.error_data.and_then(|d| non_empty(d.details)),
        }
    }
}

impl<M: Mode> Envelope<M> {
    fn into_events(self) -> Vec<Event> {
        if let Some(object) = &self.object
            && object != OBJECT
        {
            return vec![ignored(
                None,
                format!("object {object:?} is not a WhatsApp Business Account webhook"),
            )];
        }
        let entries = list(self.entry);
        if entries.is_empty() {
            return vec![ignored(None, "webhook without entries".to_owned())];
        }
        let mut events = Vec::new();
        for entry in entries {
            match entry.into_result() {
                Ok(entry) => entry.collect(&mut events),
                Err(bad) => events.push(ignored(None, format!("malformed entry: {}", bad.error))),
            }
        }
        events
    }
}

impl<M: Mode> Entry<M> {
    fn collect(self, events: &mut Vec<Event>) {
        let changes = list(self.changes);
        if changes.is_empty() {
            events.push(ignored(None, "entry without changes".to_owned()));
        }
        for change in changes {
            match change.into_result() {
                Ok(change) => change.collect(events),
                Err(bad) => events.push(ignored(None, format!("malformed change: {}", bad.error))),
            }
        }
    }
}

impl<M: Mode> Change<M> {
    fn collect(self, events: &mut Vec<Event>) {
        let field = self.field.unwrap_or_default();
        let value = match self.value.map(Element::into_result) {
            Some(Ok(value)) => value,
            Some(Err(bad)) => {
                events.push(ignored(
                    None,
                    format!("malformed value in change {field:?}: {}", bad.error),
                ));
                return;
            }
            None => {
                events.push(ignored(None, format!("change {field:?} without a value")));
                return;
            }
        };
        match field.as_str() {
            "messages" | "smb_message_echoes" => value.collect(events),
            _ => {
                let account = value.account_id();
                events.push(ignored(account.as_deref(), format!("{field:?} notification")));
            }
        }
    }
}

impl<M: Mode> Value<M> {
    fn account_id(&self) -> Option<String> {
        self.metadata
            .as_ref()
            .and_then(|m| non_empty(m.phone_number_id.clone()))
    }

    fn collect(self, events: &mut Vec<Event>) {
        let account = self.account_id();
        let account = account.as_deref();
        let contacts: Vec<ContactEntry> = list(self.contacts)
            .into_iter()
            .filter_map(|c| c.into_result().ok())
            .collect();
        let before = events.len();
        let messages = list(self.messages).into_iter().map(|m| (m, Direction::Inbound));
        let echoes = list(self.message_echoes)
            .into_iter()
            .map(|m| (m, Direction::Echo));
        for (message, direction) in messages.chain(echoes) {
            events.push(message_event(
                message.into_result(),
                direction,
                account,
                &contacts,
            ));
        }
        for status in list(self.statuses) {
            events.push(match status.into_result() {
                Ok(status) => status_event(status, account),
                Err(bad) => ignored(account, format!("malformed status: {}", bad.error)),
            });
        }
        for error in list(self.errors) {
            events.push(match error.into_result() {
                Ok(error) => ignored(account, describe_error(&error.into_platform_error())),
                Err(bad) => ignored(account, format!("malformed error: {}", bad.error)),
            });
        }
        if events.len() == before {
            events.push(ignored(
                account,
                "messages change without messages, statuses or errors".to_owned(),
            ));
        }
    }
}

fn describe_error(error: &PlatformError) -> String {
    let mut text = format!("WhatsApp reported error {}", error.code.unwrap_or_default());
    for part in [&error.title, &error.details].into_iter().flatten() {
        text.push_str(": ");
        text.push_str(part);
    }
    text
}

/// Keeps what can be identified of a malformed message (id, sender, type) so it still reaches
/// the inbox, as `unsupported`.
fn salvage(bad: Malformed) -> Result<Message, String> {
    serde_json::from_str::<MessageHeader>(&bad.raw)
        .map(Message::from)
        .map_err(|_| bad.error)
}

fn message_event(
    message: Result<Message, Malformed>,
    direction: Direction,
    account: Option<&str>,
    contacts: &[ContactEntry],
) -> Event {
    let message = match message.or_else(salvage) {
        Ok(message) => message,
        Err(error) => return ignored(account, format!("malformed message: {error}")),
    };
    let Some(account) = account else {
        return ignored(None, "message without metadata.phone_number_id".to_owned());
    };
    let Some(message_id) = non_empty(message.id.clone()) else {
        return ignored(Some(account), "message without an id".to_owned());
    };
    let Some(timestamp) = message.timestamp.and_then(from_unix_seconds) else {
        return ignored(
            Some(account),
            format!("message {message_id} without a valid timestamp"),
        );
    };
    // On echoes the customer is the recipient.
    let (phone, scoped_id) = match direction {
        Direction::Inbound => (
            non_empty(message.from.clone()),
            non_empty(message.from_user_id.clone()),
        ),
        Direction::Echo => (
            non_empty(message.to.clone()),
            non_empty(message.to_user_id.clone()),
        ),
    };
    let Some(contact) = customer(phone, scoped_id, contacts) else {
        return ignored(
            Some(account),
            format!("message {message_id} without a customer id"),
        );
    };
    let reply_to = message.context.as_ref().and_then(|c| non_empty(c.id.clone()));
    Event::Message(InboundMessage {
        platform: PLATFORM,
        account_id: account.to_owned(),
        conversation_key: contact.id.clone(),
        direction,
        contact,
        message_id,
        timestamp,
        content: content(message),
        extra_content: Vec::new(),
        reply_to,
        correlation: None,
        sender_app_id: None,
    })
}

/// The customer: phone and/or business-scoped id from the message, name and username from the
/// matching `contacts[]` entry (joined by id, never by position, except when the message names
/// no one at all and there is exactly one contact).
fn customer(phone: Option<String>, scoped_id: Option<String>, contacts: &[ContactEntry]) -> Option<Contact> {
    let matches = |c: &&ContactEntry| {
        (phone.is_some() && c.wa_id == phone) || (scoped_id.is_some() && c.user_id == scoped_id)
    };
    let entry = match (phone.is_none() && scoped_id.is_none(), contacts) {
        (true, [only]) => Some(only),
        _ => contacts.iter().find(matches),
    };
    let phone = phone.or_else(|| entry.and_then(|c| non_empty(c.wa_id.clone())));
    let scoped_id = scoped_id.or_else(|| entry.and_then(|c| non_empty(c.user_id.clone())));
    let profile = entry.and_then(|c| c.profile.as_ref());
    Some(Contact {
        id: phone.clone().or_else(|| scoped_id.clone())?,
        name: profile.and_then(|p| non_empty(p.name.clone())),
        username: profile.and_then(|p| non_empty(p.username.clone())),
        phone,
        scoped_user_id: scoped_id,
    })
}

fn content(message: Message) -> Content {
    let kind = message.kind.unwrap_or_default();
    let unsupported_as = |platform_type: Option<String>| Content::Unsupported {
        platform_type: non_empty(platform_type).unwrap_or_else(|| {
            if kind.is_empty() {
                "unknown".to_owned()
            } else {
                kind.clone()
            }
        }),
    };
    let parsed = match kind.as_str() {
        "text" => message
            .text
            .and_then(|t| t.body)
            .map(|body| Content::Text { body }),
        "image" => message.image.map(|m| Content::Image(m.into_media())),
        "video" => message.video.map(|m| Content::Video(m.into_media())),
        "sticker" => message.sticker.map(|m| Content::Sticker(m.into_media())),
        "document" => message.document.map(|m| Content::File(m.into_media())),
        "audio" => message.audio.map(|m| Content::Audio {
            voice: m.voice.unwrap_or(false),
            media: m.into_media(),
        }),
        "location" => message.location.and_then(|l| {
            Some(Content::Location {
                latitude: l.latitude?,
                longitude: l.longitude?,
                name: non_empty(l.name),
                address: non_empty(l.address),
                url: non_empty(l.url),
            })
        }),
        "reaction" => message.reaction.and_then(|r| {
            Some(Content::Reaction {
                target_message_id: non_empty(r.message_id)?,
                // An empty or missing emoji means the reaction was removed.
                emoji: non_empty(r.emoji),
            })
        }),
        "contacts" => message.contacts.map(|cards| Content::Contacts {
            cards: cards.into_iter().map(card).collect(),
        }),
        "button" => message.button.map(|b| Content::ButtonReply {
            title: b.text.or_else(|| b.payload.clone()).unwrap_or_default(),
            id: non_empty(b.payload),
        }),
        "interactive" => {
            let interactive = message.interactive;
            let inner_kind = interactive.as_ref().and_then(|i| i.kind.clone());
            let reply = interactive.and_then(|i| match i.kind.as_deref() {
                Some("button_reply") => i.button_reply.map(|c| Content::ButtonReply {
                    id: non_empty(c.id),
                    title: c.title.unwrap_or_default(),
                }),
                Some("list_reply") => i.list_reply.map(|c| Content::ListReply {
                    id: non_empty(c.id),
                    title: c.title.unwrap_or_default(),
                    description: non_empty(c.description),
                }),
                _ => None,
            });
            return reply.unwrap_or_else(|| unsupported_as(inner_kind));
        }
        "unsupported" => {
            return unsupported_as(message.unsupported.and_then(|u| u.kind));
        }
        _ => None,
    };
    parsed.unwrap_or_else(|| unsupported_as(None))
}

fn card(card: CardObject) -> ContactCard {
    ContactCard {
        name: card.name.and_then(|n| non_empty(n.formatted_name)),
        phones: list(card.phones)
            .into_iter()
            .filter_map(|p| non_empty(p.phone))
            .collect(),
        emails: list(card.emails)
            .into_iter()
            .filter_map(|e| non_empty(e.email))
            .collect(),
    }
}

fn status_event(status: Status, account: Option<&str>) -> Event {
    let Some(account) = account else {
        return ignored(None, "status without metadata.phone_number_id".to_owned());
    };
    let Some(message_id) = non_empty(status.id) else {
        return ignored(Some(account), "status without a message id".to_owned());
    };
    let name = status.status.unwrap_or_default();
    let delivery_status = match name.as_str() {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "played" => DeliveryStatus::Played,
        "failed" => DeliveryStatus::Failed,
        // Legacy `deleted` / `warning` and anything new: not a delivery step.
        other => {
            return ignored(
                Some(account),
                format!("status {other:?} for message {message_id}"),
            );
        }
    };
    let Some(timestamp) = status.timestamp.and_then(from_unix_seconds) else {
        return ignored(
            Some(account),
            format!("status of message {message_id} without a valid timestamp"),
        );
    };
    let error = list(status.errors)
        .into_iter()
        .find_map(|e| e.into_result().ok())
        .map(ErrorObject::into_platform_error);
    Event::Status(StatusReceipt {
        platform: PLATFORM,
        account_id: account.to_owned(),
        message_id,
        status: delivery_status,
        timestamp,
        recipient_id: non_empty(status.recipient_id),
        correlation: non_empty(status.biz_opaque_callback_data),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn careful(text: &str) -> Vec<Event> {
        serde_json::from_str::<Envelope<Careful>>(text)
            .map(Envelope::into_events)
            .unwrap()
    }

    fn fast(text: &str) -> Vec<Event> {
        serde_json::from_str::<Envelope<Fast>>(text)
            .map(Envelope::into_events)
            .unwrap()
    }

    /// The careful mode is only a fallback: on well-formed bodies both modes must agree.
    #[test]
    fn both_modes_agree_on_every_fixture() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
        let mut bodies = Vec::new();
        for name in [
            "whatsapp_text",
            "whatsapp_image",
            "whatsapp_status_failed",
            "whatsapp_batch_two_messages",
        ] {
            bodies.push(std::fs::read_to_string(format!("{dir}/webhooks/{name}.json")).unwrap());
        }
        for entry in std::fs::read_dir(format!("{dir}/pywa")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let document: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
                for sample in document.as_object().unwrap().values() {
                    bodies.push(sample.to_string());
                }
            }
        }
        assert!(bodies.len() > 70);
        for body in &bodies {
            assert_eq!(fast(body), careful(body), "{body}");
        }
    }

    #[test]
    fn a_malformed_message_is_salvaged_and_its_neighbours_kept() {
        let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
            "metadata":{"phone_number_id":"204"},
            "messages":[
                {"from":"55","id":"wamid.A","timestamp":"1767225600","type":"text","text":{"body":"ok"}},
                {"from":"55","id":"wamid.B","timestamp":"1767225601","type":"text","text":"not an object"},
                "not a message",
                {"from":"55","id":"wamid.C","timestamp":1767225602,"type":"image","image":{"id":123}}
            ],
            "statuses":[{"id":"wamid.S","status":"failed","timestamp":"1767225603","errors":[{"code":"x"}, 7]}]
        }}]}]}"#;
        assert!(serde_json::from_str::<Envelope<Fast>>(body).is_err());
        let events = parse_webhook(body).unwrap();
        let kinds: Vec<String> = events
            .iter()
            .map(|e| match e {
                Event::Message(m) => format!("{}:{}", m.message_id, m.content.kind()),
                other => other.kind().to_owned(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "wamid.A:text",
                "wamid.B:unsupported",
                "ignored",
                "wamid.C:image",
                "status"
            ]
        );
        let Event::Status(status) = &events[4] else {
            panic!()
        };
        assert_eq!(status.error.as_ref().map(|e| e.code), Some(None));
    }
}
