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
use super::ingest::{Route, Routes, route};
use super::messages::{first_message_of_each_thread, insert_conversations};
use super::{DbConn, lock_conversation_rows};
use crate::store::{IncomingMessage, IncomingWebhook, IngestEvent, StoreResult};

/// The conversations a batch holds locked.
#[derive(Default)]
pub(super) struct LockedConversations {
    /// Those of its messages and watermarks, by (connection, thread).
    pub(super) by_thread: HashMap<(Uuid, String), Uuid>,
    /// Those it created.
    pub(super) created: HashSet<Uuid>,
}

/// Locks the conversations of every event in `batch` in id order; with `create`, first creates
/// the missing ones of its messages (in key order). Two statements: the insert (existing
/// threads conflict and are skipped without waiting), then one that finds and locks them all.
pub(super) async fn lock_conversations(
    conn: &mut DbConn,
    routes: &mut Routes,
    batch: &[IncomingWebhook],
    create: bool,
    now: DateTime<Utc>,
) -> StoreResult<LockedConversations> {
    let mut messages: Vec<(Route, &IncomingMessage)> = Vec::new();
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
    if threads.is_empty() && named.is_empty() && ours.is_empty() {
        return Ok(LockedConversations::default());
    }
    let created = if create {
        let first_of: Vec<(Route, &IncomingMessage)> =
            first_message_of_each_thread(&messages).into_values().collect();
        insert_conversations(conn, &first_of, now).await?.1
    } else {
        HashSet::new()
    };
    let threads: Vec<(Uuid, String)> = threads.into_iter().collect();
    let named: Vec<(Uuid, String)> = named.into_iter().collect();
    let ours: Vec<Uuid> = ours.into_iter().collect();
    let rows = lock_conversation_rows(conn, &threads, &named, &ours).await?;
    let wanted: HashSet<&(Uuid, String)> = threads.iter().collect();
    let by_thread = rows
        .into_iter()
        .map(|(id, connection, thread)| ((connection, thread), id))
        .filter(|(key, _)| wanted.contains(key))
        .collect();
    Ok(LockedConversations { by_thread, created })
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
