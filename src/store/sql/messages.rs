//! Ingest of messages: conversations found or created, messages stored in bulk (a platform
//! id is stored once), previews, unread counts and search words kept.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::types::Json;
use uuid::Uuid;

use super::events::{LiveEvents, live};
use super::ingest::Route;
use super::receipts::{
    Correlated, adopt_correlated, advance_status, apply_pending_receipts, apply_watermarks_to,
};
use super::search::{BitsWrite, TermsGained};
use super::{Db, DbConn, db_error};
use crate::domain::MessageStatus;
use crate::store::{Author, IncomingMessage, StoreError, StoreResult};

/// Records the platform id of one of our sends, named by our correlation value.
async fn learn_external_id(
    conn: &mut DbConn,
    route: Route,
    ours: Uuid,
    external_id: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<Uuid>> {
    sqlx::query_scalar::<_, Uuid>(
        "UPDATE messages SET external_id = $3, updated_at = $4 \
         WHERE organization_id = $1 AND id = $2 AND direction = 'OUTBOUND' AND external_id IS NULL \
         RETURNING id",
    )
    .bind(route.organization_id)
    .bind(ours)
    .bind(external_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)
}

pub(super) async fn apply_message(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    m: &IncomingMessage,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if m.author == Author::Business {
        // Our own send coming back: match it by platform id, then by our correlation value.
        let known: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE organization_id = $1 AND external_id = $2 AND direction = 'OUTBOUND'",
        )
        .bind(route.organization_id)
        .bind(&m.external_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        let correlated = match (known, m.correlation) {
            (None, Some(ours)) => {
                let item = Correlated {
                    organization_id: route.organization_id,
                    message_id: ours,
                    external_id: &m.external_id,
                };
                let adopted = adopt_correlated(conn, out, &[item], now).await?;
                match adopted.first() {
                    Some((id, _, _)) => Some(*id),
                    // Not in doubt (e.g. failed for a known reason): only learn its platform id.
                    None => learn_external_id(conn, route, ours, &m.external_id, now).await?,
                }
            }
            _ => None,
        };
        if let Some(id) = known.or(correlated) {
            let mut changed = correlated.is_some();
            changed |= advance_status(conn, id, MessageStatus::Sent, None, None, now).await?;
            changed |= apply_pending_receipts(conn, route, &m.external_id, id, now).await?;
            if changed {
                live(
                    out,
                    route.organization_id,
                    "message.updated",
                    json!({ "message_id": id }),
                );
            }
            return Ok(());
        }
    }
    let inserted = store_new_messages(conn, out, &[(route, m)], &HashMap::new(), now).await?;
    // A redelivery inserts nothing and changes nothing, unread count included.
    if m.author == Author::Business
        && let Some(message_id) = inserted.into_values().next()
    {
        apply_pending_receipts(conn, route, &m.external_id, message_id, now).await?;
        apply_watermarks_to(conn, out, route, message_id, now).await?;
    }
    Ok(())
}

// New messages, set-based: one look-up of the conversations, one insert of the missing ones, one
// insert of the messages and one update of the conversations, however many the batch holds.
// Single events go through the same path with one item.

/// Rows per multi-row statement: under SQLite's 32,766 bound parameters with 13 a row.
/// Multi-row statements are sent unprepared (`persistent(false)`): each batch size is another
/// SQL text, and caching them all would churn the driver's per-connection statement cache.
pub(super) const BULK_ROWS: usize = 500;

/// Stores messages not stored yet, in their conversations (created as needed), and records
/// them on the conversations: preview and times by platform time (late arrivals do not overwrite
/// newer ones); for customer messages also the unread count, the reply window, the contact's
/// details and reopening a closed conversation. Returns the inserted messages' ids by
/// (conversation, platform id); a redelivered message is not among them. `known` holds
/// conversations already found (and locked) by (connection, thread).
pub(super) async fn store_new_messages(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    items: &[(Route, &IncomingMessage)],
    known: &HashMap<(Uuid, String), Uuid>,
    now: DateTime<Utc>,
) -> StoreResult<HashMap<(Uuid, String), Uuid>> {
    if items.is_empty() {
        return Ok(HashMap::new());
    }
    let (conversations, created) = resolve_conversations(conn, items, known, now).await?;
    let conversation_of = |route: &Route, m: &IncomingMessage| {
        conversations
            .get(&(route.connection_id, m.conversation_key.clone()))
            .copied()
            .ok_or(StoreError::NotFound)
    };

    // The messages; a redelivered one conflicts and is not returned.
    let mut inserted: HashMap<(Uuid, String), Uuid> = HashMap::new();
    // In key order, so concurrent writers take the index locks in one order.
    let mut all_rows = Vec::with_capacity(items.len());
    for (route, m) in items {
        all_rows.push((route, *m, conversation_of(route, m)?));
    }
    all_rows.sort_unstable_by(|a, b| (a.2, &a.1.external_id).cmp(&(b.2, &b.1.external_id)));
    for rows in all_rows.chunks(BULK_ROWS) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO messages (id, organization_id, conversation_id, direction, external_id, content_type, \
             content, media_url, status, attempts, platform_timestamp, created_at, updated_at) ",
        );
        insert.push_values(rows, |mut row, (route, m, conversation_id)| {
            // Customer messages are delivered to us; the business's own ones, already sent.
            let (direction, status) = match m.author {
                Author::Customer => ("INBOUND", MessageStatus::Delivered),
                Author::Business => ("OUTBOUND", MessageStatus::Sent),
            };
            row.push_bind(crate::domain::new_id())
                .push_bind(route.organization_id)
                .push_bind(*conversation_id)
                .push_bind(direction)
                .push_bind(&m.external_id)
                .push_bind(&m.content_type)
                .push_bind(Json(&m.content))
                .push_bind(&m.media_url)
                .push_bind(status.as_db())
                .push_bind(0_i32)
                .push_bind(m.timestamp)
                .push_bind(m.timestamp)
                .push_bind(now);
        });
        insert.push(" ON CONFLICT (conversation_id, external_id) DO NOTHING RETURNING id, conversation_id, external_id");
        let returned: Vec<(Uuid, Uuid, String)> = insert
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        inserted.extend(
            returned
                .into_iter()
                .map(|(id, conversation, external)| ((conversation, external), id)),
        );
    }

    // What each conversation gained: the newest message, and from the customer: new unread
    // messages, the latest time they wrote, their latest details.
    struct Gain<'m> {
        organization_id: Uuid,
        newest: &'m IncomingMessage,
        unread: i32,
        last_inbound: Option<DateTime<Utc>>,
        name: Option<&'m str>,
        username: Option<&'m str>,
    }
    let mut gains: HashMap<Uuid, Gain> = HashMap::new();
    let mut terms = TermsGained::default();
    let mut stored = HashMap::with_capacity(inserted.len());
    for (route, m) in items {
        let conversation_id = conversation_of(route, m)?;
        // Once per stored message, even if the batch carried it twice.
        let key = (conversation_id, m.external_id.clone());
        let Some(message_id) = inserted.remove(&key) else {
            continue;
        };
        stored.insert(key, message_id);
        live(
            out,
            route.organization_id,
            "message.created",
            json!({ "conversation_id": conversation_id, "message_id": message_id }),
        );
        let gain = gains.entry(conversation_id).or_insert(Gain {
            organization_id: route.organization_id,
            newest: m,
            unread: 0,
            last_inbound: None,
            name: None,
            username: None,
        });
        if m.timestamp >= gain.newest.timestamp {
            gain.newest = m;
        }
        let words = terms.of(conversation_id, route.organization_id);
        words.add_message(&m.content);
        if m.author == Author::Customer {
            for text in [&m.contact_name, &m.contact_username].into_iter().flatten() {
                words.add_text(text);
            }
            gain.unread += 1;
            gain.last_inbound = gain.last_inbound.max(Some(m.timestamp));
            gain.name = m.contact_name.as_deref().or(gain.name);
            gain.username = m.contact_username.as_deref().or(gain.username);
        }
    }
    // Every writer locks conversations in id order, so concurrent batches wait, never deadlock.
    let mut gains: Vec<(Uuid, Gain)> = gains.into_iter().collect();
    gains.sort_unstable_by_key(|(id, _)| *id);
    for chunk in gains.chunks(BULK_ROWS) {
        let mut update = sqlx::QueryBuilder::<Db>::new(
            "UPDATE conversations SET \
             contact_name = COALESCE(v.column5, contact_name), \
             contact_username = COALESCE(v.column6, contact_username), \
             preview = CASE WHEN last_message_at <= v.column3 THEN v.column4 ELSE preview END, \
             last_message_at = CASE WHEN last_message_at < v.column3 THEN v.column3 ELSE last_message_at END, \
             last_inbound_at = CASE WHEN v.column8 IS NOT NULL \
                               AND (last_inbound_at IS NULL OR last_inbound_at < v.column8) \
                               THEN v.column8 ELSE last_inbound_at END, \
             unread_count = unread_count + v.column2, \
             status = CASE WHEN v.column2 > 0 AND status = 'CLOSED' THEN 'OPEN' ELSE status END, \
             updated_at = v.column7 \
             FROM (",
        );
        update.push_values(chunk, |mut row, (conversation_id, gain)| {
            row.push_bind(*conversation_id)
                .push_bind(gain.unread)
                .push_bind(gain.newest.timestamp)
                .push_bind(&gain.newest.preview)
                .push_bind(gain.name)
                .push_bind(gain.username)
                .push_bind(now)
                .push_bind(gain.last_inbound);
        });
        update.push(") AS v WHERE conversations.id = v.column1");
        update
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    // After the conversations' locks: a rebuild of the same entries holds those first too.
    terms.insert(conn, BitsWrite::Add).await?;
    for (conversation_id, gain) in &gains {
        let kind = if created.contains(conversation_id) {
            "conversation.created"
        } else {
            "conversation.updated"
        };
        live(
            out,
            gain.organization_id,
            kind,
            json!({ "conversation_id": conversation_id }),
        );
    }
    Ok(stored)
}

/// The conversation of every (connection, thread) in `items`, creating the missing ones; also
/// which were created now. Threads in `known` are taken from it.
pub(super) async fn resolve_conversations(
    conn: &mut DbConn,
    items: &[(Route, &IncomingMessage)],
    known: &HashMap<(Uuid, String), Uuid>,
    now: DateTime<Utc>,
) -> StoreResult<(HashMap<(Uuid, String), Uuid>, HashSet<Uuid>)> {
    let first_of = first_message_of_each_thread(items);
    let mut found: HashMap<(Uuid, String), Uuid> = HashMap::new();
    let mut unknown = Vec::new();
    for key in first_of.keys() {
        match known.get(key) {
            Some(id) => {
                found.insert(key.clone(), *id);
            }
            None => unknown.push(key.clone()),
        }
    }
    if unknown.is_empty() {
        return Ok((found, HashSet::new()));
    }
    found.extend(find_conversations(conn, &unknown).await?);
    let missing: Vec<(Route, &IncomingMessage)> = first_of
        .iter()
        .filter(|(key, _)| !found.contains_key(*key))
        .map(|(_, item)| *item)
        .collect();
    let (inserted, created) = insert_conversations(conn, &missing, now).await?;
    found.extend(inserted);
    // Created meanwhile by another writer: look those up again.
    let raced: Vec<(Uuid, String)> = unknown
        .into_iter()
        .filter(|key| !found.contains_key(key))
        .collect();
    if !raced.is_empty() {
        found.extend(find_conversations(conn, &raced).await?);
    }
    Ok((found, created))
}

/// The first message of each (connection, thread), in key order.
pub(super) fn first_message_of_each_thread<'m>(
    items: &[(Route, &'m IncomingMessage)],
) -> BTreeMap<(Uuid, String), (Route, &'m IncomingMessage)> {
    let mut first_of: BTreeMap<(Uuid, String), (Route, &IncomingMessage)> = BTreeMap::new();
    for (route, m) in items {
        first_of
            .entry((route.connection_id, m.conversation_key.clone()))
            .or_insert((*route, *m));
    }
    first_of
}

/// Inserts a conversation for each item's thread unless one exists, in the order given (key
/// order, so every writer takes the new rows' index entries in one order): the inserted ones
/// by (connection, thread), and their ids.
pub(super) async fn insert_conversations(
    conn: &mut DbConn,
    items: &[(Route, &IncomingMessage)],
    now: DateTime<Utc>,
) -> StoreResult<(HashMap<(Uuid, String), Uuid>, HashSet<Uuid>)> {
    let mut inserted = HashMap::new();
    let mut created = HashSet::new();
    for chunk in items.chunks(BULK_ROWS) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO conversations (id, organization_id, platform_connection_id, platform, external_id, \
             contact_external_id, contact_name, contact_username, status, last_message_at, unread_count, \
             created_at, updated_at) ",
        );
        insert.push_values(chunk, |mut row, (route, m)| {
            row.push_bind(crate::domain::new_id())
                .push_bind(route.organization_id)
                .push_bind(route.connection_id)
                .push_bind(m.platform.as_str())
                .push_bind(&m.conversation_key)
                .push_bind(&m.contact_id)
                .push_bind(&m.contact_name)
                .push_bind(&m.contact_username)
                .push_bind("OPEN")
                .push_bind(m.timestamp)
                .push_bind(0_i32)
                .push_bind(now)
                .push_bind(now);
        });
        insert.push(
            " ON CONFLICT (platform_connection_id, external_id) DO NOTHING \
             RETURNING id, platform_connection_id, external_id",
        );
        let rows: Vec<(Uuid, Uuid, String)> = insert
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        for (id, connection, external) in rows {
            created.insert(id);
            inserted.insert((connection, external), id);
        }
    }
    Ok((inserted, created))
}

pub(super) async fn find_conversations(
    conn: &mut DbConn,
    keys: &[(Uuid, String)],
) -> StoreResult<HashMap<(Uuid, String), Uuid>> {
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(BULK_ROWS) {
        let mut select = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, platform_connection_id, external_id FROM conversations \
             WHERE (platform_connection_id, external_id) IN ",
        );
        select.push_tuples(chunk, |mut row, (connection, external)| {
            row.push_bind(*connection).push_bind(external);
        });
        let rows: Vec<(Uuid, Uuid, String)> = select
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        found.extend(
            rows.into_iter()
                .map(|(id, connection, external)| ((connection, external), id)),
        );
    }
    Ok(found)
}
