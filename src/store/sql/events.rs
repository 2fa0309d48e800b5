//! The live event log: every area appends its events in its own transaction; streams read
//! them by organization, in id order, below the horizon (`store::events`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use tokio::sync::watch;
use uuid::Uuid;

use super::{Backend, Db, DbConn, EVENTS_INSERT, db_error, event_horizon};
use crate::store::{EventHorizon, EventRecord, EventSignal, EventStore, StoreResult};

/// A live event, written with the batch it belongs to.
pub(super) struct LiveEvent {
    pub(super) organization_id: Uuid,
    pub(super) kind: &'static str,
    pub(super) payload: serde_json::Value,
}

/// Changes made while applying: collected, then written once per batch.
pub(super) type LiveEvents = Vec<LiveEvent>;

pub(super) fn live(
    out: &mut LiveEvents,
    organization_id: Uuid,
    kind: &'static str,
    payload: serde_json::Value,
) {
    out.push(LiveEvent {
        organization_id,
        kind,
        payload,
    });
}

/// Whether a transaction wrote live events: once it has committed, [`Written::announce`]
/// wakes the readers.
#[must_use = "announce the events once the transaction has committed"]
pub(super) struct Written(bool);

impl Written {
    pub(super) fn announce(self, signal: &EventSignal) {
        if self.0 {
            signal.committed();
        }
    }
}

/// Appends the events in the caller's transaction. Call it last, just before the commit: until
/// then the transaction holds the horizon back (readers wait for it; writers never do).
pub(super) async fn insert_live_events(
    conn: &mut DbConn,
    events: &[LiveEvent],
    now: DateTime<Utc>,
) -> StoreResult<Written> {
    if events.is_empty() {
        return Ok(Written(false));
    }
    let id_field = |event: &LiveEvent, field: &str| {
        event
            .payload
            .get(field)
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok())
    };
    // Chunks keep each statement well under SQLite's bound-parameter limit.
    for chunk in events.chunks(1000) {
        // On PostgreSQL the statement first marks this transaction as a writer, before any id is
        // taken: readers must see that ids from there on may still commit (`EVENTS_INSERT`).
        let mut insert = sqlx::QueryBuilder::<Db>::new(EVENTS_INSERT.0);
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(event.organization_id)
                .push_bind(event.kind)
                .push_bind(Json(&event.payload))
                .push_bind(now)
                .push_bind(id_field(event, "conversation_id"))
                .push_bind(id_field(event, "message_id"));
        });
        insert.push(EVENTS_INSERT.1);
        insert
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(Written(true))
}

#[async_trait]
impl EventStore for Backend {
    async fn event_horizon(&self) -> StoreResult<EventHorizon> {
        event_horizon(&self.pool).await.map(EventHorizon::new)
    }

    async fn events_after(
        &self,
        org_id: Uuid,
        after: i64,
        horizon: EventHorizon,
        limit: i64,
    ) -> StoreResult<Vec<EventRecord>> {
        sqlx::query_as(
            "SELECT id, kind, payload, created_at FROM events \
             WHERE organization_id = $1 AND id > $2 AND id < $3 ORDER BY id LIMIT $4",
        )
        .bind(org_id)
        .bind(after)
        .bind(horizon.below())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn latest_event_id(&self, horizon: EventHorizon) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events WHERE id < $1")
            .bind(horizon.below())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn newest_event_ids_after(
        &self,
        after: i64,
        horizon: EventHorizon,
    ) -> StoreResult<Vec<(Uuid, i64)>> {
        sqlx::query_as(
            "SELECT organization_id, MAX(id) FROM events WHERE id > $1 AND id < $2 GROUP BY organization_id",
        )
        .bind(after)
        .bind(horizon.below())
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn latest_org_event_id(&self, org_id: Uuid, horizon: EventHorizon) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events WHERE organization_id = $1 AND id < $2")
            .bind(org_id)
            .bind(horizon.below())
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    fn event_signal(&self) -> watch::Receiver<u64> {
        self.follow_events()
    }
}
