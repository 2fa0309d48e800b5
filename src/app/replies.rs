//! An agent's reply (docs/architecture.md, "The flow of a reply", steps 1-2): checked against
//! the reply window, the connection and the platform's limits before anything is stored; then
//! the message and its send job are committed together.

use chrono::{DateTime, Utc};
use snorq_connectors::Platform;
use uuid::Uuid;

use crate::domain::{self, ConnectionStatus, Invalid, Media, MessageContent, StoredContent};
use crate::store::{Constraint, NewOutbound, ReplyTarget, SendRecord, StoreError};

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

/// What an agent asked to send.
#[derive(Debug, Clone)]
pub struct ReplyRequest {
    pub content: MessageContent,
    pub idempotency_key: Option<String>,
}

impl ReplyRequest {
    pub fn text(text: impl Into<String>) -> Self {
        ReplyRequest {
            content: MessageContent::text(text),
            idempotency_key: None,
        }
    }
}

/// The reply as stored, and whether this request created it (false: same Idempotency-Key).
#[derive(Debug, Clone)]
pub struct Reply {
    pub message: SendRecord,
    pub created: bool,
}

/// Longest text each platform accepts, in characters (docs/platforms.md, "WhatsApp send API",
/// "Messenger send API", "TikTok send API").
fn max_text_chars(platform: Platform) -> usize {
    match platform {
        Platform::WhatsApp => 4096,
        Platform::Facebook => 2000,
        Platform::TikTok => 6000,
    }
}

/// WhatsApp media captions (docs/platforms.md, "WhatsApp send API").
const WHATSAPP_MAX_CAPTION_CHARS: usize = 1024;
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;
const MAX_MEDIA_URL_LEN: usize = 2048;

pub async fn reply(
    app: &App,
    access: &OrgAccess,
    conversation_id: Uuid,
    request: ReplyRequest,
) -> AppResult<Reply> {
    let org_id = access.org_id();
    let content = sendable(request.content)?;
    let stored = StoredContent::new(content.clone()).to_json();
    if let Some(key) = &request.idempotency_key {
        check_idempotency_key(key)?;
        // The same key again answers with the message it created, whatever changed since, as
        // long as it is the same request.
        if let Some(message) = app.store.outbound_by_idempotency_key(org_id, key).await? {
            return replayed(message, conversation_id, &content);
        }
    }
    let target = app
        .store
        .reply_target(org_id, conversation_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let platform = target.platform.0;
    check_connection(&target)?;
    let now = domain::now();
    check_window(app, &target, now).await?;
    check_limits(platform, &content)?;
    let message = NewOutbound {
        id: domain::new_id(),
        organization_id: org_id,
        conversation_id,
        connection_id: target.connection_id,
        platform,
        sender_user_id: Some(access.user_id),
        content_type: content.kind().to_owned(),
        content: stored,
        media_url: content.media().and_then(|m| m.url.clone()),
        preview: content
            .readable()
            .map_or_else(|| format!("[{}]", content.kind()), str::to_owned),
        idempotency_key: request.idempotency_key.clone(),
        created_at: now,
    };
    match app.store.create_outbound(&message).await {
        Ok(created) => Ok(Reply {
            message: created.message,
            created: created.created,
        }),
        // Two requests with the same key at once: the other one won; answer with its message.
        Err(StoreError::Conflict(Constraint::MessageIdempotencyKey)) => {
            let key = request.idempotency_key.as_deref().unwrap_or_default();
            let message = app
                .store
                .outbound_by_idempotency_key(org_id, key)
                .await?
                .ok_or(AppError::NotFound)?;
            replayed(message, conversation_id, &content)
        }
        Err(err) => Err(err.into()),
    }
}

/// The message an earlier request created with the same key; a key reused for another
/// conversation is a client bug, not a replay (answering with the other message would silently
/// drop this reply).
fn replayed(message: SendRecord, conversation_id: Uuid, content: &MessageContent) -> AppResult<Reply> {
    if message.conversation_id != conversation_id {
        return Err(AppError::conflict(
            "this Idempotency-Key was used for a message in another conversation",
            Some("idempotency_key"),
        ));
    }
    // Another body under the same key is a client bug too: answering with the first message
    // would report a reply as accepted that was never made.
    if &StoredContent::read(&message.content_type, &message.content.0).content != content {
        return Err(AppError::conflict(
            "this Idempotency-Key was used for a different message",
            Some("idempotency_key"),
        ));
    }
    Ok(Reply {
        message,
        created: false,
    })
}

fn check_idempotency_key(key: &str) -> AppResult<()> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new(
            "idempotency_key",
            format!(
                "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
            ),
        )
        .into());
    }
    Ok(())
}

fn check_connection(target: &ReplyTarget) -> AppResult<()> {
    let status = match target.connection_status {
        ConnectionStatus::Active => return Ok(()),
        ConnectionStatus::Expired => "expired",
        ConnectionStatus::Error => "in error",
        ConnectionStatus::Disconnected => "disconnected",
    };
    Err(AppError::ConnectionUnavailable { status })
}

/// Messenger allows 7 days with the HUMAN_AGENT tag when the app has that permission, which the
/// connection's settings declare (`"human_agent": true`).
pub fn human_agent_allowed(settings: &serde_json::Value) -> bool {
    settings
        .get("human_agent")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// When the reply window of this conversation closes (`None`: the customer never wrote).
pub fn window_expires_at(
    platform: Platform,
    last_inbound_at: Option<DateTime<Utc>>,
    settings: &serde_json::Value,
) -> Option<DateTime<Utc>> {
    last_inbound_at
        .map(|at| snorq_connectors::window::window_closes_at(platform, at, human_agent_allowed(settings)))
}

async fn check_window(app: &App, target: &ReplyTarget, now: DateTime<Utc>) -> AppResult<()> {
    let platform = target.platform.0;
    let expires_at = window_expires_at(platform, target.last_inbound_at, &target.connection_settings);
    match expires_at {
        None => {
            return Err(AppError::WindowClosed {
                message: "the customer has not written in this conversation yet, so it cannot be \
                          answered freely"
                    .into(),
                expires_at: None,
            });
        }
        Some(at) if now > at => {
            return Err(AppError::WindowClosed {
                message: format!("the {platform} reply window closed at {}", at.to_rfc3339()),
                expires_at: Some(at),
            });
        }
        Some(_) => {}
    }
    if let (Some(cap), Some(opened)) = (
        snorq_connectors::window::max_messages_per_window(platform),
        target.last_inbound_at,
    ) && app
        .store
        .outbound_count_since(target.conversation_id, opened)
        .await?
        >= i64::from(cap)
    {
        return Err(AppError::WindowClosed {
            message: format!("{platform} allows {cap} messages until the customer writes again"),
            expires_at,
        });
    }
    Ok(())
}

/// What can be sent at all: text, or media by public URL, trimmed; blank captions dropped.
fn sendable(content: MessageContent) -> AppResult<MessageContent> {
    let media = |mut m: Media| -> AppResult<Media> {
        if m.id.is_some() {
            return Err(Invalid::new(
                "content.id",
                "replies send media by public URL, not by platform id",
            )
            .into());
        }
        let url = m.url.as_deref().map(str::trim).unwrap_or_default();
        let public = url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if public.is_none() || url.len() > MAX_MEDIA_URL_LEN {
            return Err(Invalid::new("content.url", "must be a public http(s) URL").into());
        }
        m.url = Some(url.to_owned());
        m.caption = m.caption.map(|c| c.trim().to_owned()).filter(|c| !c.is_empty());
        Ok(m)
    };
    Ok(match content {
        MessageContent::Text { text } => {
            let text = text.trim();
            if text.is_empty() {
                return Err(Invalid::new("content.text", "give the text to send").into());
            }
            MessageContent::text(text)
        }
        MessageContent::Image(m) => MessageContent::Image(media(m)?),
        MessageContent::Video(m) => MessageContent::Video(media(m)?),
        MessageContent::Audio { media: m, .. } => MessageContent::Audio {
            media: media(m)?,
            voice: false,
        },
        MessageContent::File(m) => MessageContent::File(media(m)?),
        other => {
            return Err(Invalid::new(
                "content.kind",
                format!(
                    "{} cannot be sent; replies are text, image, video, audio or file",
                    other.kind()
                ),
            )
            .into());
        }
    })
}

/// The platform's limits on what it takes (docs/platforms.md): text length, captions, media.
fn check_limits(platform: Platform, content: &MessageContent) -> AppResult<()> {
    let Some(media) = content.media() else {
        let chars = content.readable().map_or(0, |t| t.chars().count());
        let max = max_text_chars(platform);
        if chars > max {
            return Err(Invalid::new(
                "content.text",
                format!("{platform} accepts at most {max} characters; this text has {chars}"),
            )
            .into());
        }
        return Ok(());
    };
    if platform == Platform::TikTok {
        return Err(Invalid::new("content.kind", "TikTok replies can only be text").into());
    }
    let chars = media.caption.as_deref().map_or(0, |t| t.chars().count());
    if matches!(content, MessageContent::Audio { .. }) && chars > 0 && platform == Platform::WhatsApp {
        return Err(Invalid::new("content.caption", "WhatsApp audio messages have no caption").into());
    }
    let max = match platform {
        Platform::WhatsApp => WHATSAPP_MAX_CAPTION_CHARS,
        _ => max_text_chars(platform),
    };
    if chars > max {
        return Err(Invalid::new(
            "content.caption",
            format!("{platform} accepts captions of at most {max} characters; this one has {chars}"),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(url: &str, caption: Option<&str>) -> MessageContent {
        MessageContent::Image(Media {
            url: Some(url.into()),
            caption: caption.map(str::to_owned),
            ..Media::default()
        })
    }

    #[test]
    fn text_limits_follow_each_platform() {
        let long = |n| MessageContent::text("é".repeat(n));
        assert!(check_limits(Platform::WhatsApp, &long(4096)).is_ok());
        assert!(check_limits(Platform::WhatsApp, &long(4097)).is_err());
        assert!(check_limits(Platform::Facebook, &long(2000)).is_ok());
        assert!(check_limits(Platform::Facebook, &long(2001)).is_err());
        assert!(check_limits(Platform::TikTok, &long(6001)).is_err());
    }

    #[test]
    fn media_needs_an_http_url_and_a_platform_that_takes_it() {
        assert!(sendable(image("https://example.com/a.png", None)).is_ok());
        assert!(sendable(image("file:///etc/passwd", None)).is_err());
        assert!(sendable(image("not a url", None)).is_err());
        let by_id = MessageContent::Image(Media {
            id: Some("9".into()),
            ..Media::default()
        });
        assert!(sendable(by_id).is_err());
        assert!(check_limits(Platform::TikTok, &image("https://example.com/a.png", None)).is_err());
        let caption = "x".repeat(1025);
        assert!(check_limits(Platform::WhatsApp, &image("https://e.com/a.png", Some(&caption))).is_err());
        assert!(check_limits(Platform::Facebook, &image("https://e.com/a.png", Some(&caption))).is_ok());
    }

    #[test]
    fn only_what_a_business_sends_can_be_sent() {
        assert!(sendable(MessageContent::text("  ")).is_err());
        assert_eq!(
            sendable(MessageContent::text(" hi ")).ok(),
            Some(MessageContent::text("hi"))
        );
        let reaction = MessageContent::Reaction {
            target_message_id: "m".into(),
            emoji: Some("x".into()),
        };
        assert!(sendable(reaction).is_err());
    }

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        assert!(check_idempotency_key("order-42/retry").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"k".repeat(256)).is_err());
    }
}
