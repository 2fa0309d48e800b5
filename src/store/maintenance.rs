//! Housekeeping the janitor runs: retention, the search backfill, finished jobs and expired
//! rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::domain::Plan;

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub messages: u64,
    pub events: u64,
    /// Conversations whose words were indexed for search (written before the index existed).
    pub indexed: u64,
}

/// What a cleanup pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cleanup {
    pub finished_jobs: u64,
    pub pending_receipts: u64,
}

/// Deletes and compacts what is no longer needed; every method does a bounded amount of work.
#[async_trait]
pub trait MaintenanceStore: Send + Sync + 'static {
    /// Deletes up to `limit` messages created before `before` in organizations on `plan`
    /// (pending sends are kept), and rebuilds their conversations' search words; how many.
    async fn delete_messages_before(&self, plan: Plan, before: DateTime<Utc>, limit: i64)
    -> StoreResult<u64>;

    /// Indexes the words of up to `limit` conversations written before the search index
    /// existed (migration 11); how many (0: all are indexed).
    async fn index_for_search(&self, limit: i64) -> StoreResult<u64>;

    /// Deletes live events created before `before`; how many.
    async fn delete_events_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Folds the inbox count deltas; how many rows remain.
    async fn compact_conversation_counts(&self) -> StoreResult<u64>;

    /// Deletes finished queue jobs done before `jobs_before` and receipts for unknown messages
    /// received before `receipts_before`.
    async fn cleanup(
        &self,
        jobs_before: DateTime<Utc>,
        receipts_before: DateTime<Utc>,
    ) -> StoreResult<Cleanup>;

    async fn delete_oauth_states_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;
}
