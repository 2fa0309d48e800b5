//! TikTok webhook bodies: one event per body, `{client_key, event, create_time, user_openid,
//! content}`, where `content` is a JSON document encoded as a string (parsed twice; an object is
//! accepted too). `im_receive_msg` is a customer's message, `im_send_msg` the business's own
//! (echo), `im_mark_read_msg` a read watermark; anything else is ignored.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::Platform;
use crate::event::{Contact, Content, Direction, Event, InboundMessage, Media, Watermark, WatermarkKind};
use crate::json::{non_empty, opt_text, opt_timestamp};
use crate::parse::{ParseError, envelope_error, from_unix_millis, from_unix_seconds};

const PLATFORM: Platform = Platform::TikTok;

fn ignored(account_id: Option<&str>, reason: String) -> Event {
    crate::parse::ignored(PLATFORM, account_id, reason)
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, deserialize_with = "opt_text")]
    event: Option<String>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    create_time: Option<i64>,
    /// The connected business account (its `open_id`).
    #[serde(default, deserialize_with = "opt_text")]
    user_openid: Option<String>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DmContent {
    #[serde(default, deserialize_with = "opt_text")]
    message_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    conversation_id: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "opt_text")]
    kind: Option<String>,
    /// Milliseconds.
    #[serde(default, deserialize_with = "opt_timestamp")]
    timestamp: Option<i64>,
    /// The sender's display / user name.
    #[serde(default, deserialize_with = "opt_text")]
    from: Option<String>,
    from_user: Option<User>,
    #[serde(default, deserialize_with = "opt_text")]
    to: Option<String>,
    to_user: Option<User>,
    #[serde(default, deserialize_with = "opt_text")]
    unique_identifier: Option<String>,
    text: Option<TextObject>,
    image: Option<MediaObject>,
    video: Option<MediaObject>,
    sticker: Option<MediaObject>,
    #[serde(default, deserialize_with = "opt_text")]
    media_url: Option<String>,
    referenced_message_info: Option<Reference>,
    read: Option<ReadObject>,
}

#[derive(Deserialize)]
struct User {
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
    media_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    url: Option<String>,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(default, deserialize_with = "opt_text")]
    referenced_message_id: Option<String>,
}

#[derive(Deserialize)]
struct ReadObject {
    /// Milliseconds.
    #[serde(default, deserialize_with = "opt_timestamp")]
    last_read_timestamp: Option<i64>,
}

pub(crate) fn parse_webhook(text: &str) -> Result<Vec<Event>, ParseError> {
    let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| envelope_error(PLATFORM, e))?;
    let Some(event_name) = envelope.event.clone() else {
        return Err(ParseError::NotAnEnvelope {
            platform: PLATFORM,
            reason: "no \"event\" field".to_owned(),
        });
    };
    Ok(vec![event(envelope, &event_name)])
}

fn event(envelope: Envelope<'_>, event_name: &str) -> Event {
    let business = non_empty(envelope.user_openid);
    let business = business.as_deref();
    let handled = matches!(event_name, "im_receive_msg" | "im_send_msg" | "im_mark_read_msg");
    if !handled {
        return ignored(business, format!("{event_name:?} event"));
    }
    let Some(business) = business else {
        return ignored(None, format!("{event_name} event without user_openid"));
    };
    let content = match envelope.content.map(decode_content) {
        Some(Ok(content)) => content,
        Some(Err(error)) => {
            return ignored(
                Some(business),
                format!("{event_name} event with malformed content: {error}"),
            );
        }
        None => {
            return ignored(Some(business), format!("{event_name} event without content"));
        }
    };
    let created = envelope.create_time.and_then(from_unix_seconds);
    if event_name == "im_mark_read_msg" {
        read_event(content, business, created)
    } else {
        message_event(content, event_name, business, created)
    }
}

/// `content` is normally a string holding JSON; accept an object as well.
fn decode_content(raw: &RawValue) -> Result<DmContent, serde_json::Error> {
    if raw.get().starts_with('"') {
        let inner: String = serde_json::from_str(raw.get())?;
        serde_json::from_str(&inner)
    } else {
        serde_json::from_str(raw.get())
    }
}

fn message_event(
    content: DmContent,
    event_name: &str,
    business: &str,
    created: Option<chrono::DateTime<chrono::Utc>>,
) -> Event {
    let Some(message_id) = non_empty(content.message_id) else {
        return ignored(Some(business), format!("{event_name} event without message_id"));
    };
    let Some(conversation) = non_empty(content.conversation_id) else {
        return ignored(
            Some(business),
            format!("message {message_id} without conversation_id"),
        );
    };
    let from_id = content.from_user.and_then(|u| non_empty(u.id));
    let to_id = content.to_user.and_then(|u| non_empty(u.id));
    // The business's own messages come back as im_send_msg; the sender id is a second check.
    let direction = if event_name == "im_send_msg" || from_id.as_deref() == Some(business) {
        Direction::Echo
    } else {
        Direction::Inbound
    };
    let (customer_id, customer_name) = match direction {
        Direction::Inbound => (
            from_id.or_else(|| non_empty(content.unique_identifier)),
            content.from,
        ),
        Direction::Echo => (to_id, content.to),
    };
    let Some(customer_id) = customer_id else {
        return ignored(
            Some(business),
            format!("message {message_id} without the customer's id"),
        );
    };
    let timestamp = content.timestamp.and_then(from_unix_millis).or(created);
    let Some(timestamp) = timestamp else {
        return ignored(
            Some(business),
            format!("message {message_id} without a valid timestamp"),
        );
    };
    let media_url = non_empty(content.media_url);
    let media = |m: MediaObject| Media {
        id: non_empty(m.media_id),
        url: non_empty(m.url).or(media_url.clone()),
        ..Media::default()
    };
    let kind = content.kind.unwrap_or_default();
    let parsed = match kind.as_str() {
        "text" => content
            .text
            .and_then(|t| t.body)
            .map(|body| Content::Text { body }),
        "image" => content.image.map(|m| Content::Image(media(m))),
        "video" => content.video.map(|m| Content::Video(media(m))),
        "sticker" => content.sticker.map(|m| Content::Sticker(media(m))),
        _ => None,
    };
    let content_value = parsed.unwrap_or_else(|| Content::Unsupported {
        platform_type: if kind.is_empty() {
            "unknown".to_owned()
        } else {
            kind
        },
    });
    Event::Message(InboundMessage {
        platform: PLATFORM,
        account_id: business.to_owned(),
        conversation_key: conversation,
        direction,
        contact: Contact {
            username: non_empty(customer_name),
            ..Contact::new(customer_id)
        },
        message_id,
        timestamp,
        content: content_value,
        extra_content: Vec::new(),
        reply_to: content
            .referenced_message_info
            .and_then(|r| non_empty(r.referenced_message_id)),
        correlation: None,
        sender_app_id: None,
    })
}

fn read_event(content: DmContent, business: &str, created: Option<chrono::DateTime<chrono::Utc>>) -> Event {
    let Some(conversation) = non_empty(content.conversation_id) else {
        return ignored(Some(business), "read event without conversation_id".to_owned());
    };
    let Some(reader) = content.from_user.and_then(|u| non_empty(u.id)) else {
        return ignored(Some(business), "read event without from_user".to_owned());
    };
    if reader == business {
        // The business read the customer's messages: nothing to record about our sends.
        return ignored(
            Some(business),
            "the business marked a conversation read".to_owned(),
        );
    }
    let watermark = content
        .read
        .and_then(|r| r.last_read_timestamp)
        .and_then(from_unix_millis);
    let Some(watermark) = watermark else {
        return ignored(
            Some(business),
            "read event without a valid last_read_timestamp".to_owned(),
        );
    };
    Event::Watermark(Watermark {
        platform: PLATFORM,
        account_id: business.to_owned(),
        conversation_key: conversation,
        contact_id: reader,
        kind: WatermarkKind::Read,
        watermark,
        message_ids: Vec::new(),
        timestamp: created.unwrap_or(watermark),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(event: &str, content: &str) -> Vec<Event> {
        let body = serde_json::json!({
            "client_key": "k", "event": event, "create_time": 1767226200,
            "user_openid": "biz", "content": content,
        });
        parse_webhook(&body.to_string()).unwrap()
    }

    #[test]
    fn echoes_other_events_and_bad_content() {
        let echo = events(
            "im_send_msg",
            r#"{"message_id":"1","conversation_id":"c","type":"image","timestamp":1767226200123,"from_user":{"id":"biz"},"to":"ana","to_user":{"id":"u"},"image":{"media_id":"m1"}}"#,
        );
        let [Event::Message(m)] = echo.as_slice() else {
            panic!("{echo:?}")
        };
        assert_eq!(m.direction, Direction::Echo);
        assert_eq!(
            (m.contact.id.as_str(), m.contact.username.as_deref()),
            ("u", Some("ana"))
        );
        assert!(matches!(&m.content, Content::Image(media) if media.id.as_deref() == Some("m1")));

        let share = events(
            "im_receive_msg",
            r#"{"message_id":"2","conversation_id":"c","type":"share_post","from_user":{"id":"u"},"share_post":{"video_id":7312345678901234567}}"#,
        );
        let [Event::Message(m)] = share.as_slice() else {
            panic!("{share:?}")
        };
        assert_eq!(
            m.content,
            Content::Unsupported {
                platform_type: "share_post".into()
            }
        );
        // No content timestamp: the envelope's create_time.
        assert_eq!(m.timestamp.timestamp(), 1_767_226_200);

        for (event, content) in [
            ("im_receive_high_intent_comment", "{}"),
            ("im_receive_msg", "{not json"),
            ("im_receive_msg", "[1]"),
            ("im_receive_msg", r#"{"conversation_id":"c"}"#),
            (
                "im_mark_read_msg",
                r#"{"conversation_id":"c","read":{"last_read_timestamp":1},"from_user":{"id":"biz"}}"#,
            ),
        ] {
            let result = events(event, content);
            assert!(
                matches!(result.as_slice(), [Event::Ignored(_)]),
                "{event} {content}: {result:?}"
            );
        }
        // The content may also arrive as an object.
        let body = r#"{"event":"im_receive_msg","user_openid":"biz","content":{"message_id":3,"conversation_id":"c","type":"text","timestamp":1767226200123,"from_user":{"id":"u"},"text":{"body":"hi"}}}"#;
        assert!(matches!(
            parse_webhook(body).unwrap().as_slice(),
            [Event::Message(_)]
        ));
        assert!(matches!(
            parse_webhook(r#"{"user_openid":"biz"}"#),
            Err(ParseError::NotAnEnvelope { .. })
        ));
    }
}
