//! Webhook ingest (docs/architecture.md, "The flow of a webhook"): map verified, parsed bodies
//! onto store events and commit them with group commit. Concurrent requests are applied
//! together in one transaction (up to `max_batch`, no added wait: whatever queued while the
//! previous commit ran); each request is answered only once its own data is committed.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use snorq_connectors::{Content, DeliveryStatus, Direction, Event, Platform, WatermarkKind};
use uuid::Uuid;

use crate::domain::{self, MessageStatus, StoredContent};
use crate::store::{
    Author, IncomingMessage, IncomingReceipt, IncomingWatermark, IncomingWebhook, IngestEvent, IngestOutcome,
    IngestStore, ReplayFilter, StoreResult, WebhookStatus,
};

use super::batcher::{Batched, Batcher, QueueFull};
use super::{AppError, AppResult};

/// What a refused webhook's `Retry-After` says (platforms use their own schedule anyway).
const BUSY_RETRY_AFTER_SECS: u64 = 2;
use super::content;

/// How ingest batches its writes.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// Most webhooks committed in one transaction.
    pub max_batch: usize,
    /// Transactions in flight at once (SQLite has one writer; PostgreSQL benefits from a few).
    pub writers: usize,
    /// Webhooks waiting for a writer; beyond it, [`Ingestor::submit`] refuses (`Busy`).
    pub queue_limit: usize,
}

/// Accepts verified webhooks and answers once they are durable.
#[derive(Clone)]
pub struct Ingestor {
    commits: Batcher<IngestWrite>,
}

struct IngestWrite(Arc<dyn IngestStore>);

#[async_trait]
impl Batched for IngestWrite {
    type Item = IncomingWebhook;
    type Output = IngestOutcome;
    const BATCH_SIZE_METRIC: &'static str = "ingest_batch_size";
    const COMMIT_SECONDS_METRIC: &'static str = "ingest_commit_duration_seconds";
    const ITEMS: &'static str = "webhooks";
    const QUEUE_DEPTH_METRIC: &'static str = "ingest_queue_depth";
    const QUEUE_WAIT_METRIC: &'static str = "ingest_queue_oldest_wait_seconds";

    async fn call(&self, webhooks: &[IncomingWebhook]) -> StoreResult<Vec<IngestOutcome>> {
        self.0.ingest(webhooks).await
    }
}

impl Ingestor {
    /// Starts the writer tasks; they end when the last `Ingestor` clone is dropped.
    pub fn start(store: Arc<dyn IngestStore>, settings: IngestSettings) -> Self {
        Ingestor {
            commits: Batcher::start(
                IngestWrite(store),
                settings.max_batch,
                settings.writers,
                settings.queue_limit,
            ),
        }
    }

    /// Stores and applies one webhook; returns when it is committed. `Busy` at once when
    /// `queue_limit` webhooks already wait: the platform delivers it again later, when the
    /// writers have caught up, rather than every request waiting longer and longer.
    pub async fn submit(&self, webhook: IncomingWebhook) -> AppResult<IngestOutcome> {
        match self.commits.try_submit(webhook).await {
            Ok(outcome) => Ok(outcome?),
            Err(QueueFull) => Err(AppError::Busy {
                message: "ingest is behind; this webhook was not stored: deliver it again shortly",
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            }),
        }
    }
}

/// A verified body, parsed and ready to submit.
pub fn prepare(platform: Platform, body: Vec<u8>, received_at: DateTime<Utc>) -> IncomingWebhook {
    let events = snorq_connectors::parse(platform, &body)
        .map(|events| events.into_iter().map(to_ingest_event).collect())
        .map_err(|e| e.to_string());
    IncomingWebhook {
        id: domain::new_id(),
        platform,
        body,
        received_at,
        events,
    }
}

/// Our correlation value is a message id, optionally behind a prefix (`outbound:<uuid>`).
fn parse_correlation(value: &str) -> Option<Uuid> {
    Uuid::parse_str(value.rsplit(':').next().unwrap_or(value).trim()).ok()
}

const PREVIEW_CHARS: usize = 200;

fn preview(content: &Content) -> String {
    let text = match content.text() {
        Some(text) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => match content {
            Content::Reaction { emoji: None, .. } => "[reaction removed]".to_owned(),
            Content::Unsupported { platform_type } => format!("[{platform_type}]"),
            other => format!("[{}]", other.kind()),
        },
    };
    text.chars().take(PREVIEW_CHARS).collect()
}

/// The stored content (`domain::StoredContent`): the message's content, further attachments
/// and the quoted message when there are any.
fn content_json(m: &snorq_connectors::InboundMessage) -> Value {
    StoredContent {
        content: content::from_platform(&m.content),
        attachments: m.extra_content.iter().map(content::from_platform).collect(),
        reply_to: m.reply_to.clone(),
    }
    .to_json()
}

/// PostgreSQL refuses U+0000 in `text` and `jsonb`; SQLite would keep it. Replacing it here makes
/// both backends store the same thing instead of failing the event on one of them.
fn clean(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

fn clean_json(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => *text = text.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(clean_json),
        Value::Object(map) => {
            let dirty: Vec<String> = map.keys().filter(|k| k.contains('\0')).cloned().collect();
            for key in dirty {
                if let Some(v) = map.remove(&key) {
                    map.insert(clean(key), v);
                }
            }
            map.values_mut().for_each(clean_json);
        }
        _ => {}
    }
}

fn to_ingest_event(event: Event) -> IngestEvent {
    match event {
        Event::Message(m) => IngestEvent::Message(IncomingMessage {
            platform: m.platform,
            account_id: clean(m.account_id.clone()),
            conversation_key: clean(m.conversation_key.clone()),
            author: match m.direction {
                Direction::Inbound => Author::Customer,
                Direction::Echo => Author::Business,
            },
            contact_id: clean(m.contact.id.clone()),
            contact_name: m.contact.name.clone().map(clean),
            contact_username: m.contact.username.clone().map(clean),
            external_id: clean(m.message_id.clone()),
            correlation: m.correlation.as_deref().and_then(parse_correlation),
            timestamp: m.timestamp,
            content_type: m.content.kind().to_owned(),
            content: {
                let mut content = content_json(&m);
                clean_json(&mut content);
                content
            },
            preview: clean(preview(&m.content)),
            media_url: m.content.media().and_then(|media| media.url.clone()).map(clean),
        }),
        Event::Status(s) => IngestEvent::Receipt(IncomingReceipt {
            platform: s.platform,
            account_id: clean(s.account_id),
            external_id: clean(s.message_id),
            correlation: s.correlation.as_deref().and_then(parse_correlation),
            status: match s.status {
                DeliveryStatus::Sent => MessageStatus::Sent,
                DeliveryStatus::Delivered => MessageStatus::Delivered,
                DeliveryStatus::Read | DeliveryStatus::Played => MessageStatus::Read,
                DeliveryStatus::Failed => MessageStatus::Failed,
            },
            timestamp: s.timestamp,
            error_code: s.error.as_ref().and_then(|e| e.code).map(|c| c.to_string()),
            error_message: s.error.as_ref().and_then(|e| {
                let parts: Vec<&str> = [&e.title, &e.message, &e.details]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                (!parts.is_empty()).then(|| clean(parts.join(": ")))
            }),
        }),
        Event::Watermark(w) => IngestEvent::Watermark(IncomingWatermark {
            platform: w.platform,
            account_id: clean(w.account_id),
            conversation_key: clean(w.conversation_key),
            status: match w.kind {
                WatermarkKind::Delivered => MessageStatus::Delivered,
                WatermarkKind::Read => MessageStatus::Read,
            },
            watermark: w.watermark,
            external_ids: w.message_ids.into_iter().map(clean).collect(),
        }),
        Event::Ignored(i) => IngestEvent::Ignored { reason: i.reason },
    }
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub examined: u64,
    pub processed: u64,
    pub unroutable: u64,
    pub failed: u64,
}

/// Applies stored webhooks again (after a fix, or after the missing connection was added).
/// Idempotent: what was applied before is not applied twice.
pub async fn replay(
    store: &dyn IngestStore,
    filter: &ReplayFilter,
    mut progress: impl FnMut(&ReplayReport),
) -> AppResult<ReplayReport> {
    let mut report = ReplayReport::default();
    let mut after = None;
    loop {
        let page = store.webhooks_for_replay(filter, after, 100).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for stored in page {
            let mut webhook = prepare(stored.platform.0, stored.body, stored.received_at);
            webhook.id = stored.id;
            let outcome = store.reapply(&webhook).await?;
            report.examined += 1;
            match outcome.status {
                WebhookStatus::Processed => report.processed += 1,
                WebhookStatus::Unroutable => report.unroutable += 1,
                WebhookStatus::Failed => report.failed += 1,
            }
        }
        progress(&report);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_prefer_text_and_name_other_kinds() {
        assert_eq!(preview(&Content::Text { body: " hi ".into() }), "hi");
        assert_eq!(preview(&Content::Image(Default::default())), "[image]");
        assert_eq!(
            preview(&Content::Unsupported {
                platform_type: "order".into()
            }),
            "[order]"
        );
        assert_eq!(
            preview(&Content::Text {
                body: "x".repeat(500)
            })
            .chars()
            .count(),
            PREVIEW_CHARS
        );
    }

    #[test]
    fn correlation_values_may_carry_a_prefix() {
        let id = Uuid::now_v7();
        assert_eq!(parse_correlation(&id.to_string()), Some(id));
        assert_eq!(parse_correlation(&format!("outbound:{id}")), Some(id));
        assert_eq!(parse_correlation("outbound:not-a-uuid"), None);
    }

    #[test]
    fn nul_characters_are_replaced_everywhere() {
        let body = br#"{"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
            "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1"},
            "contacts": [{"profile": {"name": "A\u0000B"}, "wa_id": "55"}],
            "messages": [{"from": "55", "id": "wamid.1", "timestamp": "1767225600", "type": "text",
                          "text": {"body": "hi\u0000there"}}]}}]}]}"#;
        let webhook = prepare(Platform::WhatsApp, body.to_vec(), domain::now());
        let events = webhook.events.unwrap();
        let [IngestEvent::Message(m)] = events.as_slice() else {
            panic!("{events:?}")
        };
        assert_eq!(m.preview, "hi\u{FFFD}there");
        assert_eq!(m.contact_name.as_deref(), Some("A\u{FFFD}B"));
        assert!(!m.content.to_string().contains("\\u0000"), "{}", m.content);
    }

    #[test]
    fn unparseable_bodies_are_kept_with_the_reason() {
        let webhook = prepare(Platform::WhatsApp, b"not json".to_vec(), domain::now());
        assert!(webhook.events.is_err());
        assert_eq!(webhook.body, b"not json");
    }
}
