//! An agent's reply (docs/architecture.md, "The flow of a reply", steps 1-2): checked against
//! the reply window, the connection and the platform's limits before anything is stored; then
//! the message and its send job are committed together.

use chrono::{DateTime, Utc};
use serde_json::json;
use snorq_connectors::Platform;
use uuid::Uuid;

use crate::domain::{self, ConnectionStatus, Invalid};
use crate::store::{Constraint, NewOutbound, ReplyTarget, SendRecord, StoreError};

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

/// What an agent asked to send.
#[derive(Debug, Clone, Default)]
pub struct ReplyRequest {
    pub text: Option<String>,
    pub media: Option<MediaReply>,
    pub idempotency_key: Option<String>,
}

/// Media by public URL, with an optional caption (the text).
#[derive(Debug, Clone)]
pub struct MediaReply {
    pub kind: MediaKind,
    pub url: String,
    pub filename: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    File,
}

impl MediaKind {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "image" => MediaKind::Image,
            "video" => MediaKind::Video,
            "audio" => MediaKind::Audio,
            "file" => MediaKind::File,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::File => "file",
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
    let text = request.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let (content_type, content, media_url, preview) = match &request.media {
        None => {
            let body = text.unwrap_or_default().to_owned();
            ("text", json!({ "text": body }), None, body)
        }
        Some(media) => {
            let mut content = json!({ "url": media.url });
            if let Some(caption) = text {
                content["caption"] = json!(caption);
            }
            if let Some(filename) = &media.filename {
                content["filename"] = json!(filename);
            }
            let preview = text.map_or_else(|| format!("[{}]", media.kind.as_str()), str::to_owned);
            (media.kind.as_str(), content, Some(media.url.clone()), preview)
        }
    };
    if let Some(key) = &request.idempotency_key {
        check_idempotency_key(key)?;
        // The same key again answers with the message it created, whatever changed since, as
        // long as it is the same request.
        if let Some(message) = app.store.outbound_by_idempotency_key(org_id, key).await? {
            return replayed(message, conversation_id, content_type, &content);
        }
    }
    if text.is_none() && request.media.is_none() {
        return Err(Invalid::new("text", "give the text to send, or a media URL").into());
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
    check_limits(platform, text, request.media.as_ref())?;

    let (message_content_type, message_content) = (content_type.to_owned(), content.clone());
    let message = NewOutbound {
        id: domain::new_id(),
        organization_id: org_id,
        conversation_id,
        connection_id: target.connection_id,
        platform,
        sender_user_id: Some(access.user_id),
        content_type: content_type.to_owned(),
        content,
        media_url,
        preview,
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
            replayed(message, conversation_id, &message_content_type, &message_content)
        }
        Err(err) => Err(err.into()),
    }
}

/// The message an earlier request created with the same key; a key reused for another
/// conversation is a client bug, not a replay (answering with the other message would silently
/// drop this reply).
fn replayed(
    message: SendRecord,
    conversation_id: Uuid,
    content_type: &str,
    content: &serde_json::Value,
) -> AppResult<Reply> {
    if message.conversation_id != conversation_id {
        return Err(AppError::conflict(
            "this Idempotency-Key was used for a message in another conversation",
            Some("idempotency_key"),
        ));
    }
    // Another body under the same key is a client bug too: answering with the first message
    // would report a reply as accepted that was never made.
    if message.content_type != content_type || &message.content.0 != content {
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

fn check_limits(platform: Platform, text: Option<&str>, media: Option<&MediaReply>) -> AppResult<()> {
    let chars = text.map_or(0, |t| t.chars().count());
    match media {
        None => {
            let max = max_text_chars(platform);
            if chars > max {
                return Err(Invalid::new(
                    "text",
                    format!("{platform} accepts at most {max} characters; this text has {chars}"),
                )
                .into());
            }
        }
        Some(media) => {
            if platform == Platform::TikTok {
                return Err(Invalid::new("media", "TikTok replies can only be text").into());
            }
            let url = url::Url::parse(&media.url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if url.is_none() || media.url.len() > MAX_MEDIA_URL_LEN {
                return Err(Invalid::new("media.url", "must be a public http(s) URL").into());
            }
            let max = match platform {
                Platform::WhatsApp => WHATSAPP_MAX_CAPTION_CHARS,
                _ => max_text_chars(platform),
            };
            if media.kind == MediaKind::Audio && chars > 0 && platform == Platform::WhatsApp {
                return Err(Invalid::new("text", "WhatsApp audio messages have no caption").into());
            }
            if chars > max {
                return Err(Invalid::new(
                    "text",
                    format!("{platform} accepts captions of at most {max} characters; this one has {chars}"),
                )
                .into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_limits_follow_each_platform() {
        let long = |n| "é".repeat(n);
        assert!(check_limits(Platform::WhatsApp, Some(&long(4096)), None).is_ok());
        assert!(check_limits(Platform::WhatsApp, Some(&long(4097)), None).is_err());
        assert!(check_limits(Platform::Facebook, Some(&long(2000)), None).is_ok());
        assert!(check_limits(Platform::Facebook, Some(&long(2001)), None).is_err());
        assert!(check_limits(Platform::TikTok, Some(&long(6001)), None).is_err());
    }

    #[test]
    fn media_needs_an_http_url_and_a_platform_that_takes_it() {
        let media = |url: &str| MediaReply {
            kind: MediaKind::Image,
            url: url.into(),
            filename: None,
        };
        assert!(
            check_limits(
                Platform::WhatsApp,
                None,
                Some(&media("https://example.com/a.png"))
            )
            .is_ok()
        );
        assert!(check_limits(Platform::WhatsApp, None, Some(&media("file:///etc/passwd"))).is_err());
        assert!(check_limits(Platform::WhatsApp, None, Some(&media("not a url"))).is_err());
        assert!(check_limits(Platform::TikTok, None, Some(&media("https://example.com/a.png"))).is_err());
        let caption = "x".repeat(1025);
        assert!(
            check_limits(
                Platform::WhatsApp,
                Some(&caption),
                Some(&media("https://e.com/a.png"))
            )
            .is_err()
        );
    }

    #[test]
    fn idempotency_keys_are_short_visible_ascii() {
        assert!(check_idempotency_key("order-42/retry").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
        assert!(check_idempotency_key(&"k".repeat(256)).is_err());
    }
}
