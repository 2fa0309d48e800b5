//! The organization's live event log, which live streams read.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::StoreResult;

/// An entry of the organization's live event log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRecord {
    pub id: i64,
    pub kind: String,
    pub payload: Json<Value>,
    pub created_at: DateTime<Utc>,
}

/// Reading the event log (events are written by the other areas, in their transactions).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Events of the organization with ids after `after`, in id order.
    async fn events_after(&self, org_id: Uuid, after: i64, limit: i64) -> StoreResult<Vec<EventRecord>>;

    /// The newest event id of any organization (0 when there is none): a cheap change signal.
    async fn latest_event_id(&self) -> StoreResult<i64>;

    /// Per organization with events after `after`, its newest event id: whom to wake.
    async fn newest_event_ids_after(&self, after: i64) -> StoreResult<Vec<(Uuid, i64)>>;

    /// The newest event id of the organization (0 when there is none).
    async fn latest_org_event_id(&self, org_id: Uuid) -> StoreResult<i64>;
}
