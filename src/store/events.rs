//! The organization's live event log, which live streams read.
//!
//! Writers never wait for each other to make events visible in order. Instead a reader asks for
//! the [`EventHorizon`] first and reads only below it: every event with a smaller id has
//! committed (or never will). Ids below the horizon never appear later, so "everything after the
//! last id I saw, below the horizon" has no gaps and never goes back (docs/architecture.md,
//! "The event log").

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use tokio::sync::{mpsc, watch};
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

/// An event id below which the log is settled: every event with a smaller id is committed or
/// will never exist. Only the store makes one ([`EventStore::event_horizon`]); any horizon
/// obtained before a read is a safe bound for it (a newer one is only a larger bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventHorizon(i64);

impl EventHorizon {
    /// Nothing is settled yet (a reader that has not asked the store).
    pub const NONE: EventHorizon = EventHorizon(0);

    pub(crate) fn new(below: i64) -> Self {
        EventHorizon(below)
    }

    /// Events with ids strictly below this are settled.
    pub fn below(self) -> i64 {
        self.0
    }
}

/// Tells readers in this process that events may have committed: bumped after every local
/// commit that wrote events and, on PostgreSQL, for every notification from another process.
#[derive(Clone)]
pub struct EventSignal {
    commits: Arc<watch::Sender<u64>>,
    /// PostgreSQL: asks the notifier task to tell the other processes (one NOTIFY at a time;
    /// commits during one are covered by the next).
    others: Option<mpsc::Sender<()>>,
}

impl EventSignal {
    pub(crate) fn new(others: Option<mpsc::Sender<()>>) -> Self {
        EventSignal {
            commits: Arc::new(watch::channel(0).0),
            others,
        }
    }

    /// After a commit that wrote events (never before it: a reader woken early would find the
    /// events not yet visible and wait for the next signal).
    pub(crate) fn committed(&self) {
        self.bump();
        if let Some(others) = &self.others {
            // Full: a notification is already on its way, and it is sent after this commit.
            let _ = others.try_send(());
        }
    }

    pub(crate) fn bump(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Resolves once nobody in this process follows the signal any more.
    pub(crate) async fn abandoned(&self) {
        self.commits.closed().await
    }
}

/// Reading the event log (events are written by the other areas, in their transactions).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The horizon now: read events only below it.
    async fn event_horizon(&self) -> StoreResult<EventHorizon>;

    /// Events of the organization with ids after `after` and below the horizon, in id order.
    async fn events_after(
        &self,
        org_id: Uuid,
        after: i64,
        horizon: EventHorizon,
        limit: i64,
    ) -> StoreResult<Vec<EventRecord>>;

    /// The newest event id below the horizon, of any organization (0 when there is none).
    async fn latest_event_id(&self, horizon: EventHorizon) -> StoreResult<i64>;

    /// Per organization with events after `after` and below the horizon, its newest such id:
    /// whom to wake.
    async fn newest_event_ids_after(
        &self,
        after: i64,
        horizon: EventHorizon,
    ) -> StoreResult<Vec<(Uuid, i64)>>;

    /// The organization's newest event id below the horizon (0 when there is none).
    async fn latest_org_event_id(&self, org_id: Uuid, horizon: EventHorizon) -> StoreResult<i64>;

    /// Changes when events may have committed, in this process or (PostgreSQL) any other.
    /// Signals can be missed (a dropped database connection): poll as well, less often.
    fn event_signal(&self) -> watch::Receiver<u64>;
}
