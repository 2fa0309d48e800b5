//! Between the platforms' shapes and ours: what a connector parsed from a webhook becomes a
//! [`MessageContent`], and a reply's content becomes what a connector sends.

use snorq_connectors::{Content, OutboundContent};

use crate::domain::{ContactCard, Media, MessageContent};

/// A customer's (or an echoed) message as we store and show it.
pub fn from_platform(content: &Content) -> MessageContent {
    let media = |m: &snorq_connectors::Media| Media {
        id: m.id.clone(),
        url: m.url.clone(),
        mime_type: m.mime_type.clone(),
        caption: m.caption.clone(),
        filename: m.filename.clone(),
    };
    match content {
        Content::Text { body } => MessageContent::text(body.clone()),
        Content::Image(m) => MessageContent::Image(media(m)),
        Content::Video(m) => MessageContent::Video(media(m)),
        Content::Audio { media: m, voice } => MessageContent::Audio {
            media: media(m),
            voice: *voice,
        },
        Content::File(m) => MessageContent::File(media(m)),
        Content::Sticker(m) => MessageContent::Sticker(media(m)),
        Content::Location {
            latitude,
            longitude,
            name,
            address,
            url,
        } => MessageContent::Location {
            latitude: *latitude,
            longitude: *longitude,
            name: name.clone(),
            address: address.clone(),
            url: url.clone(),
        },
        Content::Reaction {
            target_message_id,
            emoji,
        } => MessageContent::Reaction {
            target_message_id: target_message_id.clone(),
            emoji: emoji.clone(),
        },
        Content::Contacts { cards } => MessageContent::Contacts {
            cards: cards
                .iter()
                .map(|c| ContactCard {
                    name: c.name.clone(),
                    phones: c.phones.clone(),
                    emails: c.emails.clone(),
                })
                .collect(),
        },
        Content::ButtonReply { id, title } => MessageContent::ButtonReply {
            id: id.clone(),
            title: title.clone(),
        },
        Content::ListReply {
            id,
            title,
            description,
        } => MessageContent::ListReply {
            id: id.clone(),
            title: title.clone(),
            description: description.clone(),
        },
        Content::Unsupported { platform_type } => MessageContent::Unsupported {
            platform_type: platform_type.clone(),
        },
    }
}

/// What a connector sends for this content; `None` for what cannot be sent (the kinds only
/// customers send, and media without a public URL).
pub fn to_platform(content: &MessageContent) -> Option<OutboundContent> {
    let url = |m: &Media| m.url.clone();
    Some(match content {
        MessageContent::Text { text } => OutboundContent::Text { body: text.clone() },
        MessageContent::Image(m) => OutboundContent::Image {
            url: url(m)?,
            caption: m.caption.clone(),
        },
        MessageContent::Video(m) => OutboundContent::Video {
            url: url(m)?,
            caption: m.caption.clone(),
        },
        MessageContent::Audio { media, .. } => OutboundContent::Audio { url: url(media)? },
        MessageContent::File(m) => OutboundContent::File {
            url: url(m)?,
            filename: m.filename.clone(),
            caption: m.caption.clone(),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_reply_can_carry_reaches_the_connector_unchanged() {
        let file = MessageContent::File(Media {
            url: Some("https://example.com/a.pdf".into()),
            filename: Some("a.pdf".into()),
            caption: Some("your invoice".into()),
            ..Media::default()
        });
        assert_eq!(
            to_platform(&file),
            Some(OutboundContent::File {
                url: "https://example.com/a.pdf".into(),
                filename: Some("a.pdf".into()),
                caption: Some("your invoice".into()),
            })
        );
        assert_eq!(
            to_platform(&MessageContent::text("hi")),
            Some(OutboundContent::Text { body: "hi".into() })
        );
        // By platform id only, or a kind customers send: nothing to send.
        let by_id = MessageContent::Image(Media {
            id: Some("9".into()),
            ..Media::default()
        });
        assert_eq!(to_platform(&by_id), None);
        assert_eq!(
            to_platform(&MessageContent::Reaction {
                target_message_id: "m".into(),
                emoji: None
            }),
            None
        );
    }

    #[test]
    fn a_customers_text_reads_as_text() {
        assert_eq!(
            from_platform(&Content::Text { body: "hi".into() }),
            MessageContent::text("hi")
        );
    }
}
