//! Deadlock-free ingest batches (PostgreSQL; SQLite has one writer): before applying anything,
//! a batch creates the conversations it lacks and locks every conversation it will touch, all in
//! one global order. Every later row a batch changes (messages, receipts, watermarks, search
//! words) belongs to one of those conversations, so two batches that touch the same rows are
//! ordered by the first conversation they share, and none waits on another in a cycle.
//!
//! Creating the missing conversations here, in key order, matters as much as locking: two
//! batches inserting the same new conversations in different orders wait on each other's
//! uncommitted inserts.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::events::LiveEvents;
use super::ingest::{Routes, route};
use super::messages::{BULK_ROWS, find_conversations, resolve_conversations};
use super::{Db, DbConn, FOR_UPDATE, db_error, push_any_of};
use crate::store::{IncomingMessage, IncomingWebhook, IngestEvent, StoreResult};

/// Locks the conversations of every event in `batch` in id order; with `create`, first creates
/// the missing ones of its messages (in key order). Returns the conversations created.
pub(super) async fn lock_conversations(
    conn: &mut DbConn,
    routes: &mut Routes,
    batch: &[IncomingWebhook],
    create: bool,
    now: DateTime<Utc>,
) -> StoreResult<HashSet<Uuid>> {
    let mut messages: Vec<(super::ingest::Route, &IncomingMessage)> = Vec::new();
    let mut threads: BTreeSet<(Uuid, String)> = BTreeSet::new();
    // Receipts name a message, not its conversation: found through the message.
    let mut named: BTreeSet<(Uuid, String)> = BTreeSet::new();
    let mut ours: BTreeSet<Uuid> = BTreeSet::new();
    let events: Vec<&IngestEvent> = batch
        .iter()
        .flat_map(|webhook| webhook.events.iter().flatten())
        .collect();
    for event in events {
        let Some((platform, account)) = event.route() else {
            continue;
        };
        let Some(route) = route(&mut *conn, routes, platform, account).await? else {
            continue;
        };
        match event {
            IngestEvent::Message(m) => {
                threads.insert((route.connection_id, m.conversation_key.clone()));
                messages.push((route, m));
                ours.extend(m.correlation);
            }
            IngestEvent::Watermark(w) => {
                threads.insert((route.connection_id, w.conversation_key.clone()));
            }
            IngestEvent::Receipt(r) => {
                named.insert((route.organization_id, r.external_id.clone()));
                ours.extend(r.correlation);
            }
            IngestEvent::Ignored { .. } => {}
        }
    }
    let (mut conversations, created) = if create {
        let (found, created) = resolve_conversations(conn, &messages, now).await?;
        (found.into_values().collect::<BTreeSet<Uuid>>(), created)
    } else {
        (BTreeSet::new(), HashSet::new())
    };
    let threads: Vec<(Uuid, String)> = threads.into_iter().collect();
    conversations.extend(find_conversations(conn, &threads).await?.into_values());
    conversations.extend(conversations_of_messages(conn, &named, &ours).await?);
    let ids: Vec<Uuid> = conversations.into_iter().collect();
    for chunk in ids.chunks(BULK_ROWS) {
        let mut lock = sqlx::QueryBuilder::<Db>::new("SELECT id FROM conversations WHERE");
        push_any_of(&mut lock, "id", chunk);
        lock.push(" ORDER BY id").push(FOR_UPDATE);
        lock.build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(created)
}

/// The conversations of the messages named by (organization, platform id) or by our own id.
async fn conversations_of_messages(
    conn: &mut DbConn,
    named: &BTreeSet<(Uuid, String)>,
    ours: &BTreeSet<Uuid>,
) -> StoreResult<Vec<Uuid>> {
    let mut found = Vec::new();
    let named: Vec<&(Uuid, String)> = named.iter().collect();
    for chunk in named.chunks(BULK_ROWS) {
        let mut by_org: HashMap<Uuid, Vec<&str>> = HashMap::new();
        for (org, external_id) in chunk {
            by_org.entry(*org).or_default().push(external_id);
        }
        for (org, external_ids) in by_org {
            let mut select = sqlx::QueryBuilder::<Db>::new(
                "SELECT DISTINCT conversation_id FROM messages WHERE organization_id = ",
            );
            select.push_bind(org).push(" AND external_id IN (");
            let mut list = select.separated(", ");
            for external_id in external_ids {
                list.push_bind(external_id);
            }
            select.push(")");
            let rows: Vec<Uuid> = select
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)?;
            found.extend(rows);
        }
    }
    let ours: Vec<Uuid> = ours.iter().copied().collect();
    for chunk in ours.chunks(BULK_ROWS) {
        let mut select = sqlx::QueryBuilder::<Db>::new("SELECT DISTINCT conversation_id FROM messages WHERE");
        push_any_of(&mut select, "id", chunk);
        let rows: Vec<Uuid> = select
            .build_query_scalar()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        found.extend(rows);
    }
    Ok(found)
}

/// A conversation created by [`lock_conversations`] was found, not created, when its messages
/// were stored: its first `conversation.updated` is in fact its `conversation.created`.
pub(super) fn announce_created(events: &mut LiveEvents, created: &HashSet<Uuid>) {
    let mut pending: HashSet<Uuid> = created.clone();
    for event in events.iter_mut() {
        if pending.is_empty() {
            return;
        }
        if event.kind != "conversation.updated" {
            continue;
        }
        let id = event
            .payload
            .get("conversation_id")
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok());
        if let Some(id) = id
            && pending.remove(&id)
        {
            event.kind = "conversation.created";
        }
    }
}
