//! The live event log: every area appends its events in its own transaction; streams read
//! them by organization, in id order.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Backend, Db, DbConn, db_error, lock_event_log};
use crate::store::{EventRecord, EventStore, StoreResult};

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

pub(super) async fn insert_live_events(
    conn: &mut DbConn,
    events: &[LiveEvent],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    // Readers resume by id: ids of one organization must become visible in order.
    let mut organizations: Vec<Uuid> = events.iter().map(|e| e.organization_id).collect();
    organizations.sort_unstable();
    organizations.dedup();
    lock_event_log(conn, &organizations).await?;
    let id_field = |event: &LiveEvent, field: &str| {
        event
            .payload
            .get(field)
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok())
    };
    // Chunks keep each statement well under SQLite's bound-parameter limit.
    for chunk in events.chunks(1000) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO events (organization_id, kind, payload, created_at, conversation_id, message_id) ",
        );
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(event.organization_id)
                .push_bind(event.kind)
                .push_bind(Json(&event.payload))
                .push_bind(now)
                .push_bind(id_field(event, "conversation_id"))
                .push_bind(id_field(event, "message_id"));
        });
        insert
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

#[async_trait]
impl EventStore for Backend {
    async fn events_after(&self, org_id: Uuid, after: i64, limit: i64) -> StoreResult<Vec<EventRecord>> {
        sqlx::query_as(
            "SELECT id, kind, payload, created_at FROM events \
             WHERE organization_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(org_id)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn latest_event_id(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn newest_event_ids_after(&self, after: i64) -> StoreResult<Vec<(Uuid, i64)>> {
        sqlx::query_as("SELECT organization_id, MAX(id) FROM events WHERE id > $1 GROUP BY organization_id")
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn latest_org_event_id(&self, org_id: Uuid) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events WHERE organization_id = $1")
            .bind(org_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)
    }
}
