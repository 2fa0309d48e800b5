//! What webhook ingest hands to the store: verified bodies and their events in a
//! platform-neutral form (the app maps connector events onto these), and what comes back.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use snorq_connectors::Platform;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::MessageStatus;

/// One verified webhook body with its parsed events.
#[derive(Debug, Clone)]
pub struct IncomingWebhook {
    pub id: Uuid,
    pub platform: Platform,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    /// The events, or why the body could not be parsed (it is stored either way).
    pub events: Result<Vec<IngestEvent>, String>,
}

#[derive(Debug, Clone)]
pub enum IngestEvent {
    Message(IncomingMessage),
    Receipt(IncomingReceipt),
    Watermark(IncomingWatermark),
    /// Well-formed, but nothing to store (template updates, calls, ...).
    Ignored {
        reason: String,
    },
}

/// Who wrote an incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Customer,
    /// The business, echoed back by the platform: ours (matched, never duplicated) or typed in
    /// the platform's own app (imported as outbound).
    Business,
}

#[derive(Debug, Clone)]
pub struct IncomingMessage {
    pub platform: Platform,
    pub account_id: String,
    pub conversation_key: String,
    pub author: Author,
    pub contact_id: String,
    pub contact_name: Option<String>,
    pub contact_username: Option<String>,
    pub external_id: String,
    /// On echoes: our message id, when the platform carries our correlation value back.
    pub correlation: Option<Uuid>,
    pub timestamp: DateTime<Utc>,
    pub content_type: String,
    pub content: Value,
    /// The conversation preview line for this message.
    pub preview: String,
    pub media_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct IncomingReceipt {
    pub platform: Platform,
    pub account_id: String,
    pub external_id: String,
    /// Our message id, when the platform carries our correlation value back (WhatsApp
    /// statuses): how a send whose outcome was unknown learns its platform id.
    pub correlation: Option<Uuid>,
    pub status: MessageStatus,
    pub timestamp: DateTime<Utc>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// Every outbound message of a conversation up to `watermark` reached `status`.
#[derive(Debug, Clone)]
pub struct IncomingWatermark {
    pub platform: Platform,
    pub account_id: String,
    pub conversation_key: String,
    pub status: MessageStatus,
    pub watermark: DateTime<Utc>,
    /// Ids the platform listed explicitly (Messenger delivery receipts).
    pub external_ids: Vec<String>,
}

impl IngestEvent {
    pub fn route(&self) -> Option<(Platform, &str)> {
        match self {
            IngestEvent::Message(m) => Some((m.platform, &m.account_id)),
            IngestEvent::Receipt(r) => Some((r.platform, &r.account_id)),
            IngestEvent::Watermark(w) => Some((w.platform, &w.account_id)),
            IngestEvent::Ignored { .. } => None,
        }
    }
}

/// How a stored webhook was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookStatus {
    /// Every event applied (or deliberately ignored).
    Processed,
    /// Some event's platform account is not connected; replay after connecting it.
    Unroutable,
    /// The body did not parse, or an event could not be applied; replayable after a fix.
    Failed,
}

impl WebhookStatus {
    pub fn as_db(self) -> &'static str {
        match self {
            WebhookStatus::Processed => "PROCESSED",
            WebhookStatus::Unroutable => "UNROUTABLE",
            WebhookStatus::Failed => "FAILED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub webhook_id: Uuid,
    pub status: WebhookStatus,
    pub events: usize,
    pub applied: usize,
    pub unroutable: usize,
    pub failed: usize,
    /// Why events were not applied, one line each (stored on the webhook_events row).
    pub reasons: Vec<String>,
}

/// A stored webhook, for replay.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredWebhook {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub platform: super::PlatformColumn,
    pub body: Vec<u8>,
    pub received_at: DateTime<Utc>,
    pub status: String,
}

/// A stored webhook without its body, for the dashboard.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookSummary {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub platform: super::PlatformColumn,
    /// `None` when it reached no organization (unroutable).
    pub organization_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
    pub status: String,
    pub reason: Option<String>,
    pub event_count: i32,
    pub applied_count: i32,
}

/// Which stored webhooks to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    pub id: Option<Uuid>,
    pub platform: Option<Platform>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Also processed ones (normally only unroutable and failed are replayed).
    pub include_processed: bool,
}

/// Webhook ingest (docs/architecture.md, "The flow of a webhook"): verified bodies stored and
/// applied in one transaction.
#[async_trait]
pub trait IngestStore: Send + Sync + 'static {
    /// Stores every webhook of the batch and applies its events, all in one transaction: when
    /// this returns Ok, everything is committed. One savepoint per event, so a bad event is
    /// recorded on its webhook's row without affecting the others.
    async fn ingest(&self, batch: &[IncomingWebhook]) -> StoreResult<Vec<IngestOutcome>>;

    /// Applies a stored webhook's events again (idempotently) and updates its row.
    async fn reapply(&self, webhook: &IncomingWebhook) -> StoreResult<IngestOutcome>;

    /// Webhooks whose events were not all applied (unroutable, failed, partial), newest first:
    /// of these organizations, or all of them (also those that reached none) for `None`.
    async fn webhooks_needing_attention(
        &self,
        organizations: Option<&[Uuid]>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookSummary>>;

    async fn webhook_summary(&self, id: Uuid) -> StoreResult<Option<WebhookSummary>>;

    /// Stored webhooks matching the filter with an id after `after`, in id order.
    async fn webhooks_for_replay(
        &self,
        filter: &ReplayFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<StoredWebhook>>;
}
