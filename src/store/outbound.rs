//! Outbound sends (docs/architecture.md, "The flow of a reply"): what the reply use case, the
//! send worker, the sends API and the dashboard read and write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{PlatformColumn, StoreResult};
use crate::domain::{ConnectionStatus, MessageStatus, SendStatus};
use crate::queue::QueuedJob;

/// Failure reason of a send an agent gave up on; such sends leave the `failed` list.
pub const REASON_DISCARDED: &str = "discarded";
/// Failure reason of a send whose connection was not active when its turn came.
pub const REASON_CONNECTION_UNAVAILABLE: &str = "connection_unavailable";

/// What the reply use case checks before storing anything: the conversation, its reply window
/// and its connection.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplyTarget {
    pub conversation_id: Uuid,
    #[sqlx(try_from = "String")]
    pub platform: PlatformColumn,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub connection_id: Uuid,
    #[sqlx(try_from = "String")]
    pub connection_status: ConnectionStatus,
    pub connection_settings: Json<Value>,
}

/// A reply to store with its first send job.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub conversation_id: Uuid,
    /// The conversation's connection and platform (from its [`ReplyTarget`]).
    pub connection_id: Uuid,
    pub platform: snorq_connectors::Platform,
    pub sender_user_id: Option<Uuid>,
    pub content_type: String,
    pub content: Value,
    pub media_url: Option<String>,
    pub preview: String,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An outbound message as the sends API and the dashboard show it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct SendRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub conversation_id: Uuid,
    pub connection_id: Uuid,
    #[sqlx(try_from = "String")]
    pub platform: PlatformColumn,
    pub content_type: String,
    pub content: Json<Value>,
    pub media_url: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    pub external_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub failure_reason: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Set while the platform's word on an unknown outcome is awaited (until then).
    pub unconfirmed_until: Option<DateTime<Utc>>,
    pub sender_user_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SendRecord {
    pub fn send_status(&self) -> SendStatus {
        SendStatus::of(self.status, self.unconfirmed_until)
    }
}

/// Whether `create_outbound` stored a new message or found the one with the same key.
#[derive(Debug, Clone)]
pub struct OutboundCreated {
    pub message: SendRecord,
    pub created: bool,
}

/// Everything the worker needs for one provider call.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SendContext {
    #[sqlx(flatten)]
    pub message: SendRecord,
    /// The platform's thread key: the recipient of the send.
    pub recipient: String,
    pub last_inbound_at: Option<DateTime<Utc>>,
    #[sqlx(try_from = "String")]
    pub connection_status: ConnectionStatus,
    pub account_id: String,
    pub access_token_enc: Option<String>,
    pub connection_settings: Json<Value>,
}

/// An attempt about to call the platform, recorded before the call so that a second run of the
/// same job (handed out again after a crash or a lost lease) sees it and does not call again.
#[derive(Debug, Clone)]
pub struct SendClaim {
    pub message_id: Uuid,
    pub organization_id: Uuid,
    /// Claimed only if the message is still pending with `attempt - 1` attempts.
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
}

/// How one provider call ended, to record.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub message_id: Uuid,
    pub organization_id: Uuid,
    pub conversation_id: Uuid,
    pub connection_id: Uuid,
    pub platform: snorq_connectors::Platform,
    /// The attempt made (1-based). A claimed attempt is recorded only if the message still has
    /// `attempt` attempts (its claim); an unclaimed one (refused before any call) only if it
    /// still has `attempt - 1`.
    pub attempt: i32,
    pub claimed: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub result: SendResult,
    pub http_status: Option<i32>,
    pub error_code: Option<String>,
    pub error_subcode: Option<String>,
    pub error_message: Option<String>,
    /// Set when the platform rejected the connection's token: the connection takes this status.
    pub connection_problem: Option<ConnectionStatus>,
}

#[derive(Debug, Clone)]
pub enum SendResult {
    Sent {
        external_id: String,
    },
    /// Try again: the next job, pushed in the same transaction.
    Retry {
        next: QueuedJob,
        at: DateTime<Utc>,
    },
    Failed {
        reason: String,
    },
    /// The platform may have accepted it: wait for its status or echo until `until`.
    Unconfirmed {
        until: DateTime<Utc>,
    },
}

impl SendResult {
    pub fn outcome(&self) -> &'static str {
        match self {
            SendResult::Sent { .. } => "sent",
            SendResult::Retry { .. } => "retry",
            SendResult::Failed { .. } => "failed",
            SendResult::Unconfirmed { .. } => "unconfirmed",
        }
    }
}

/// What the stalled-send sweep looks for, as of `now`.
#[derive(Debug, Clone)]
pub struct SweepPolicy {
    pub now: DateTime<Utc>,
    /// Claims (attempts in flight) started before this were abandoned: their worker died or
    /// could not record the outcome. The platform may have accepted them.
    pub abandoned_before: DateTime<Utc>,
    /// Pending sends due before this have a job that never ran (lost or given up by the queue).
    pub stalled_before: DateTime<Utc>,
    /// How long an abandoned claim on a platform that echoes our correlation waits for it.
    pub confirm_window: chrono::Duration,
    /// Most sends of each kind handled in one pass.
    pub limit: i64,
}

/// What one sweep pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Abandoned claims now awaiting the platform's word.
    pub unconfirmed: u64,
    /// Abandoned claims failed at once (their platform cannot confirm) and unconfirmed sends
    /// whose window ended: failed with reason `outcome_unknown`.
    pub outcome_unknown: u64,
    /// Stalled sends given a new job.
    pub requeued: u64,
    /// Stalled sends re-queued too often: failed with reason `stalled`.
    pub stalled: u64,
}

impl SweepReport {
    pub fn total(&self) -> u64 {
        self.unconfirmed + self.outcome_unknown + self.requeued + self.stalled
    }
}

/// Which sends to list or retry. Every field narrows; `organizations` is always applied.
#[derive(Debug, Clone, Default)]
pub struct SendFilter {
    /// The organizations in scope (one for the API; the dashboard user's for the dashboard).
    pub organizations: Vec<Uuid>,
    pub status: Option<SendStatusFilter>,
    pub platform: Option<snorq_connectors::Platform>,
    pub connection_id: Option<Uuid>,
    pub error_code: Option<String>,
    pub reason: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before (the dashboard's "older than").
    pub until: Option<DateTime<Utc>>,
}

/// The statuses the sends API filters by: `failed` leaves out discarded sends, which have their
/// own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatusFilter {
    Pending,
    Unconfirmed,
    Sent,
    Delivered,
    Read,
    Failed,
    Discarded,
}

impl SendStatusFilter {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "pending" => SendStatusFilter::Pending,
            "unconfirmed" => SendStatusFilter::Unconfirmed,
            "sent" => SendStatusFilter::Sent,
            "delivered" => SendStatusFilter::Delivered,
            "read" => SendStatusFilter::Read,
            "failed" => SendStatusFilter::Failed,
            "discarded" => SendStatusFilter::Discarded,
            _ => return None,
        })
    }
}

/// The result of asking to retry or discard one send.
#[derive(Debug, Clone)]
pub enum SendChange {
    Changed(SendRecord),
    /// The send exists but is not in a state that allows the change (e.g. retrying a sent one).
    WrongState(SendRecord),
    NotFound,
}

/// One provider call, for the dashboard's send detail.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SendAttempt {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub http_status: Option<i32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Provider calls per hour and outcome, for the dashboard chart. `hour` is `YYYY-MM-DDTHH` (UTC).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HourlyOutcome {
    pub hour: String,
    pub outcome: String,
    pub count: i64,
}

/// Outbound sends (docs/architecture.md, "The flow of a reply"): the reply, its jobs, their
/// outcomes, the sends API.
#[async_trait]
pub trait OutboundStore: Send + Sync + 'static {
    /// The conversation to reply in, with its connection; `None` when not in that organization.
    async fn reply_target(&self, org_id: Uuid, conversation_id: Uuid) -> StoreResult<Option<ReplyTarget>>;

    /// Outbound messages of the conversation created after `since` and not failed (TikTok caps
    /// them per window).
    async fn outbound_count_since(&self, conversation_id: Uuid, since: DateTime<Utc>) -> StoreResult<i64>;

    /// Stores the message (pending) and pushes its first send job in one transaction. With an
    /// idempotency key already used in the organization, returns that message instead
    /// (`created: false`) and pushes nothing.
    async fn create_outbound(&self, message: &NewOutbound) -> StoreResult<OutboundCreated>;

    /// The outbound message created with this Idempotency-Key in the organization.
    async fn outbound_by_idempotency_key(&self, org_id: Uuid, key: &str) -> StoreResult<Option<SendRecord>>;

    /// The messages, with their conversations and connections, for the worker (missing ids are
    /// left out; any order).
    async fn send_contexts(&self, message_ids: &[Uuid]) -> StoreResult<Vec<SendContext>>;

    /// Claims attempts before their platform calls, all in one transaction: a message is
    /// claimed only if it is still pending, not unconfirmed, with `attempt - 1` attempts; it
    /// then has `attempt` attempts, `last_attempt_at` and no `next_attempt_at` (in flight until
    /// an outcome sets it, a window or a final status). `false`: another run has it.
    async fn claim_sends(&self, claims: &[SendClaim]) -> StoreResult<Vec<bool>>;

    /// Records provider calls, all in one transaction: each message moves on only if it is still
    /// pending with its claim (see [`SendOutcome::attempt`]; otherwise `false`: a duplicate run,
    /// or the platform's word arrived first), gets its live event and its retry job; the
    /// attempt gets its row either way; receipts that arrived before the platform's id are
    /// applied; an auth failure marks the connection.
    async fn record_send_outcomes(&self, outcomes: &[SendOutcome]) -> StoreResult<Vec<bool>>;

    /// One pass of the stalled-send sweep (see [`SweepPolicy`]); safe to run in several
    /// processes at once.
    async fn sweep_sends(&self, policy: &SweepPolicy) -> StoreResult<SweepReport>;

    /// Outbound messages matching the filter, newest first, with ids below `before`.
    async fn sends(
        &self,
        filter: &SendFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SendRecord>>;

    async fn send(&self, org_id: Uuid, message_id: Uuid) -> StoreResult<Option<SendRecord>>;

    async fn send_attempts(&self, org_id: Uuid, message_id: Uuid) -> StoreResult<Vec<SendAttempt>>;

    /// A failed send back to pending, with a new job (a fresh retry budget). A send whose
    /// outcome is unknown (unconfirmed, or failed `outcome_unknown`) is reopened only when
    /// `confirmed`: the platform may have accepted it already.
    async fn retry_send(
        &self,
        org_id: Uuid,
        message_id: Uuid,
        now: DateTime<Utc>,
        confirmed: bool,
    ) -> StoreResult<SendChange>;

    /// A failed or pending send marked failed with reason `discarded`; its pending job, if any,
    /// then does nothing.
    async fn discard_send(
        &self,
        org_id: Uuid,
        message_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<SendChange>;

    /// Retries up to `limit` failed (not discarded) sends matching the filter with ids after
    /// `after`, in id order; how many, and the last id looked at (where the next chunk starts).
    /// Sends whose outcome is unknown are included only when `confirmed`.
    async fn retry_sends(
        &self,
        filter: &SendFilter,
        after: Option<Uuid>,
        now: DateTime<Utc>,
        limit: i64,
        confirmed: bool,
    ) -> StoreResult<(u64, Option<Uuid>)>;

    /// Failed (not discarded) sends per connection of these organizations.
    async fn failed_sends_by_connection(&self, organizations: &[Uuid]) -> StoreResult<Vec<(Uuid, i64)>>;

    /// Provider calls per hour and outcome since `since`.
    async fn hourly_outcomes(
        &self,
        organizations: &[Uuid],
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<HourlyOutcome>>;
}
