//! Outbound sends: the reply and its first job in one transaction, outcomes recorded by the
//! worker, the sends API (retry, discard) and the dashboard's figures.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use snorq_connectors::Platform;
use sqlx::types::Json;
use uuid::Uuid;

use super::events::{LiveEvents, insert_live_events, live};
use super::receipts::{WaitingReceipt, advance_status, settled};
use super::search::{BitsWrite, TermsGained};
use super::{Backend, Db, DbConn, HOUR_BUCKET, begin_write, db_error, push_send_jobs};
use crate::domain::{MessageStatus, SendStatus};
use crate::queue::{QueuedJob, SendJob};
use crate::store::{
    HourlyOutcome, NewOutbound, OutboundCreated, OutboundStore, PlatformColumn, ReplyTarget, SendAttempt,
    SendChange, SendClaim, SendContext, SendFilter, SendOutcome, SendRecord, SendResult, SendStatusFilter,
    StoreError, StoreResult, SweepPolicy, SweepReport,
};

/// The outcome of a claim the sweep found abandoned (no outcome recorded in time).
pub(super) const ATTEMPT_ABANDONED: &str = "abandoned";

/// Sends that the `failed` filter shows: failed and not discarded.
pub(super) const ACTIONABLE_FAILED: &str =
    "m.status = 'FAILED' AND COALESCE(m.failure_reason, '') <> 'discarded'";

pub(super) async fn send_record(
    conn: &mut DbConn,
    org_id: Uuid,
    message_id: Uuid,
) -> StoreResult<Option<SendRecord>> {
    sqlx::query_as(concat!(
        "SELECT ",
        send_columns!(),
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.organization_id = $1 AND m.id = $2 AND m.direction = 'OUTBOUND'"
    ))
    .bind(org_id)
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)
}

pub(super) async fn send_by_key(
    conn: &mut DbConn,
    org_id: Uuid,
    key: &str,
) -> StoreResult<Option<SendRecord>> {
    sqlx::query_as(concat!(
        "SELECT ",
        send_columns!(),
        " FROM messages m JOIN conversations c ON c.id = m.conversation_id \
         WHERE m.organization_id = $1 AND m.idempotency_key = $2"
    ))
    .bind(org_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)
}

pub(super) fn send_event(record: &SendRecord) -> serde_json::Value {
    json!({
        "conversation_id": record.conversation_id,
        "message_id": record.id,
        "status": record.send_status(),
        "attempts": record.attempts,
        "failure_reason": record.failure_reason,
        "error_code": record.error_code,
        "next_attempt_at": record.next_attempt_at,
    })
}

/// Appends the filter's conditions (after a `WHERE ...` already started).
pub(super) fn push_send_filter(query: &mut sqlx::QueryBuilder<Db>, filter: &SendFilter) {
    query.push(" AND m.direction = 'OUTBOUND' AND m.organization_id IN (");
    let mut orgs = query.separated(", ");
    for org in &filter.organizations {
        orgs.push_bind(*org);
    }
    if filter.organizations.is_empty() {
        // No organization in scope: match nothing (never everything).
        orgs.push("NULL");
    }
    query.push(")");
    match filter.status {
        Some(SendStatusFilter::Failed) => {
            query.push(" AND ").push(ACTIONABLE_FAILED);
        }
        Some(SendStatusFilter::Discarded) => {
            query.push(" AND m.status = 'FAILED' AND m.failure_reason = 'discarded'");
        }
        Some(SendStatusFilter::Pending) => {
            query.push(" AND m.status = 'PENDING' AND m.unconfirmed_until IS NULL");
        }
        Some(SendStatusFilter::Unconfirmed) => {
            query.push(" AND m.status = 'PENDING' AND m.unconfirmed_until IS NOT NULL");
        }
        Some(status) => {
            let status = match status {
                SendStatusFilter::Sent => MessageStatus::Sent,
                SendStatusFilter::Delivered => MessageStatus::Delivered,
                _ => MessageStatus::Read,
            };
            query.push(" AND m.status = ").push_bind(status.as_db());
        }
        None => {}
    }
    if let Some(platform) = filter.platform {
        query.push(" AND c.platform = ").push_bind(platform.as_str());
    }
    if let Some(connection_id) = filter.connection_id {
        query
            .push(" AND c.platform_connection_id = ")
            .push_bind(connection_id);
    }
    if let Some(code) = &filter.error_code {
        query.push(" AND m.error_code = ").push_bind(code.clone());
    }
    if let Some(reason) = &filter.reason {
        query.push(" AND m.failure_reason = ").push_bind(reason.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND m.created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND m.created_at < ").push_bind(until);
    }
}

/// Sends whose outcome is unknown: retried only when the agent confirmed.
const OUTCOME_KNOWN: &str =
    "COALESCE(m.failure_reason, '') <> 'outcome_unknown' AND m.unconfirmed_until IS NULL";

/// Moves one failed (or, when `confirmed`, unconfirmed) send back to pending, due now; the new
/// round's job is returned for the caller to push in the same transaction.
pub(super) async fn reopen_send(
    conn: &mut DbConn,
    message_id: Uuid,
    now: DateTime<Utc>,
    confirmed: bool,
) -> StoreResult<Option<QueuedJob>> {
    let mut update = sqlx::QueryBuilder::<Db>::new(
        "UPDATE messages SET status = 'PENDING', failure_reason = NULL, error_code = NULL, \
         error_message = NULL, unconfirmed_until = NULL, requeues = 0, next_attempt_at = ",
    );
    update
        .push_bind(now)
        .push(", updated_at = ")
        .push_bind(now)
        .push(" WHERE id = ")
        .push_bind(message_id)
        .push(
            " AND direction = 'OUTBOUND' AND ((status = 'FAILED' AND COALESCE(failure_reason, '') <> 'discarded') \
             OR (status = 'PENDING' AND unconfirmed_until IS NOT NULL))",
        );
    if !confirmed {
        // The same condition as OUTCOME_KNOWN, on the bare table (SQLite's UPDATE takes no alias).
        update.push(" AND COALESCE(failure_reason, '') <> 'outcome_unknown' AND unconfirmed_until IS NULL");
    }
    update.push(" RETURNING attempts");
    let attempts: Option<i32> = update
        .build_query_scalar()
        .persistent(false)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(attempts.map(|attempts| QueuedJob {
        job: SendJob::new_round(message_id, attempts),
        delay: std::time::Duration::ZERO,
    }))
}

/// The columns an outcome writes on its message.
pub(super) struct OutcomeFields<'o> {
    status: MessageStatus,
    external_id: Option<&'o str>,
    next_attempt_at: Option<DateTime<Utc>>,
    failure_reason: Option<&'o str>,
    unconfirmed_until: Option<DateTime<Utc>>,
}

pub(super) fn outcome_fields(o: &SendOutcome) -> OutcomeFields<'_> {
    let mut fields = OutcomeFields {
        status: MessageStatus::Pending,
        external_id: None,
        next_attempt_at: None,
        failure_reason: None,
        unconfirmed_until: None,
    };
    match &o.result {
        SendResult::Sent { external_id } => {
            fields.status = MessageStatus::Sent;
            fields.external_id = Some(external_id);
        }
        SendResult::Retry { at, .. } => fields.next_attempt_at = Some(*at),
        SendResult::Failed { reason } => {
            fields.status = MessageStatus::Failed;
            fields.failure_reason = Some(reason);
        }
        SendResult::Unconfirmed { until } => fields.unconfirmed_until = Some(*until),
    }
    fields
}

pub(super) fn outcome_event(o: &SendOutcome) -> serde_json::Value {
    let fields = outcome_fields(o);
    json!({
        "conversation_id": o.conversation_id,
        "message_id": o.message_id,
        "status": SendStatus::of(fields.status, fields.unconfirmed_until),
        "attempts": o.attempt,
        "failure_reason": fields.failure_reason,
        "error_code": o.error_code,
        "next_attempt_at": fields.next_attempt_at,
    })
}

/// An echo of one of these very messages may have been imported before we learned its
/// platform id: ours is the record to keep. Only TikTok needs this: WhatsApp and Messenger carry
/// our correlation value back, so ingest matches their echoes to our message instead.
pub(super) async fn forget_imported_echoes(conn: &mut DbConn, outcomes: &[SendOutcome]) -> StoreResult<()> {
    let sent: Vec<(&SendOutcome, &str)> = outcomes
        .iter()
        .filter(|o| o.platform == Platform::TikTok)
        .filter_map(|o| match &o.result {
            SendResult::Sent { external_id } => Some((o, external_id.as_str())),
            _ => None,
        })
        .collect();
    if sent.is_empty() {
        return Ok(());
    }
    let mut delete = sqlx::QueryBuilder::<Db>::new(
        "DELETE FROM messages WHERE direction = 'OUTBOUND' AND sender_user_id IS NULL \
         AND (conversation_id, external_id) IN (VALUES ",
    );
    let mut rows = delete.separated(", ");
    for (o, external_id) in &sent {
        rows.push("(")
            .push_bind_unseparated(o.conversation_id)
            .push_unseparated(", ")
            .push_bind_unseparated(*external_id)
            .push_unseparated(")");
    }
    delete.push(") AND id NOT IN (");
    let mut ids = delete.separated(", ");
    for (o, _) in &sent {
        ids.push_bind(o.message_id);
    }
    delete.push(")");
    delete
        .build()
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Moves every message that is still pending with the outcome's claim (`attempt` attempts, or
/// `attempt - 1` for an attempt refused before any call), in one statement; returns the ids it
/// moved (the others were recorded by a duplicate run, or settled by the platform's word). A
/// send the platform accepted is recorded even if it was discarded, or failed as
/// `outcome_unknown`, meanwhile: it did go out, and its receipts must find it.
pub(super) async fn advance_sends(
    conn: &mut DbConn,
    outcomes: &[SendOutcome],
    now: DateTime<Utc>,
) -> StoreResult<Vec<Uuid>> {
    let mut update = sqlx::QueryBuilder::<Db>::new(
        "UPDATE messages SET status = v.column3, external_id = COALESCE(v.column4, messages.external_id), \
         attempts = v.column2, last_attempt_at = v.column5, next_attempt_at = v.column6, \
         failure_reason = v.column7, error_code = v.column8, error_message = v.column9, \
         unconfirmed_until = v.column11, updated_at = ",
    );
    update.push_bind(now).push(" FROM (");
    update.push_values(outcomes, |mut row, o| {
        let fields = outcome_fields(o);
        row.push_bind(o.message_id)
            .push_bind(o.attempt)
            .push_bind(fields.status.as_db())
            .push_bind(fields.external_id.map(str::to_owned))
            .push_bind(o.finished_at)
            .push_bind(fields.next_attempt_at)
            .push_bind(fields.failure_reason.map(str::to_owned))
            .push_bind(o.error_code.clone())
            .push_bind(o.error_message.clone())
            .push_bind(if o.claimed { 0 } else { 1 })
            .push_bind(fields.unconfirmed_until);
    });
    update.push(
        ") AS v WHERE messages.id = v.column1 AND messages.attempts = v.column2 - v.column10 \
         AND (messages.status = 'PENDING' OR (v.column3 = 'SENT' AND messages.status = 'FAILED' \
         AND messages.failure_reason IN ('discarded', 'outcome_unknown'))) RETURNING messages.id",
    );
    // QueryBuilder::push_values writes `VALUES (...), (...)`, which both dialects accept as a
    // derived table; its columns are column1, column2, ... in both.
    update
        .build_query_scalar()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)
}

/// Writes the attempts' rows. The sweep may have written one already (`abandoned`): the real
/// outcome replaces it. A message deleted meanwhile gets none.
pub(super) async fn write_send_attempts(conn: &mut DbConn, outcomes: &[&SendOutcome]) -> StoreResult<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut insert = sqlx::QueryBuilder::<Db>::new(
        "INSERT INTO send_attempts (id, organization_id, message_id, attempt, started_at, \
         finished_at, outcome, http_status, error_code, error_subcode, error_message, next_attempt_at) \
         SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, \
         v.column9, v.column10, v.column11, v.column12 FROM (",
    );
    insert.push_values(outcomes, |mut row, o| {
        let next_attempt_at = outcome_fields(o).next_attempt_at;
        row.push_bind(crate::domain::new_id())
            .push_bind(o.organization_id)
            .push_bind(o.message_id)
            .push_bind(o.attempt)
            .push_bind(o.started_at)
            .push_bind(o.finished_at)
            .push_bind(o.result.outcome())
            .push_bind(o.http_status)
            .push_bind(o.error_code.clone())
            .push_bind(o.error_subcode.clone())
            .push_bind(o.error_message.clone())
            .push_bind(next_attempt_at);
    });
    insert.push(
        ") AS v WHERE EXISTS (SELECT 1 FROM messages m WHERE m.id = v.column3) \
         ON CONFLICT (message_id, attempt) DO UPDATE SET finished_at = excluded.finished_at, \
         outcome = excluded.outcome, http_status = excluded.http_status, error_code = excluded.error_code, \
         error_subcode = excluded.error_subcode, error_message = excluded.error_message, \
         next_attempt_at = excluded.next_attempt_at",
    );
    insert
        .build()
        .persistent(false)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Receipts that arrived before we knew the platform's id of these sent messages.
pub(super) async fn apply_receipts_for_sent(
    conn: &mut DbConn,
    outcomes: &[&SendOutcome],
    events: &mut LiveEvents,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sent: HashMap<(Uuid, &str), &SendOutcome> = outcomes
        .iter()
        .filter_map(|o| match &o.result {
            SendResult::Sent { external_id } => Some(((o.connection_id, external_id.as_str()), *o)),
            _ => None,
        })
        .collect();
    if sent.is_empty() {
        return Ok(());
    }
    // The two plain IN lists let both planners use the (connection, external id) index; the
    // row-value IN then keeps exactly the pairs asked for.
    let mut delete =
        sqlx::QueryBuilder::<Db>::new("DELETE FROM pending_receipts WHERE platform_connection_id IN (");
    let mut connections = delete.separated(", ");
    for connection_id in sent.keys().map(|(c, _)| *c).collect::<HashSet<_>>() {
        connections.push_bind(connection_id);
    }
    delete.push(") AND external_id IN (");
    let mut external_ids = delete.separated(", ");
    for (_, external_id) in sent.keys() {
        external_ids.push_bind(*external_id);
    }
    delete.push(") AND (platform_connection_id, external_id) IN (VALUES ");
    let mut rows = delete.separated(", ");
    for (connection_id, external_id) in sent.keys() {
        rows.push("(")
            .push_bind_unseparated(*connection_id)
            .push_unseparated(", ")
            .push_bind_unseparated(*external_id)
            .push_unseparated(")");
    }
    delete.push(") RETURNING platform_connection_id, external_id, status, error_code, error_message");
    type Receipt = (Uuid, String, String, Option<String>, Option<String>);
    let receipts: Vec<Receipt> = delete
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    let mut waiting: HashMap<(Uuid, String), Vec<WaitingReceipt>> = HashMap::new();
    for (connection_id, external_id, status, code, message) in receipts {
        waiting
            .entry((connection_id, external_id))
            .or_default()
            .push((status, code, message));
    }
    for ((connection_id, external_id), receipts) in waiting {
        let (Some(o), Some((status, code, message))) = (
            sent.get(&(connection_id, external_id.as_str())),
            settled(receipts),
        ) else {
            continue;
        };
        if advance_status(
            conn,
            o.message_id,
            status,
            code.as_deref(),
            message.as_deref(),
            now,
        )
        .await?
        {
            live(
                events,
                o.organization_id,
                "message.updated",
                json!({"conversation_id": o.conversation_id, "message_id": o.message_id, "status": status}),
            );
        }
    }
    Ok(())
}

/// The platform rejected the connection's token: the connection takes the outcome's status.
pub(super) async fn mark_connection(
    conn: &mut DbConn,
    o: &SendOutcome,
    events: &mut LiveEvents,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let Some(status) = o.connection_problem else {
        return Ok(());
    };
    let changed = sqlx::query(
        "UPDATE platform_connections SET status = $2, last_error = $3, updated_at = $4 \
         WHERE id = $1 AND status = 'ACTIVE'",
    )
    .bind(o.connection_id)
    .bind(status.as_db())
    .bind(&o.error_message)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    if changed.rows_affected() == 1 {
        live(
            events,
            o.organization_id,
            "connection.updated",
            json!({"connection_id": o.connection_id, "status": status, "last_error": o.error_message}),
        );
    }
    Ok(())
}

#[async_trait]
impl OutboundStore for Backend {
    async fn reply_target(&self, org_id: Uuid, conversation_id: Uuid) -> StoreResult<Option<ReplyTarget>> {
        sqlx::query_as(
            "SELECT c.id AS conversation_id, c.platform, c.last_inbound_at, \
             p.id AS connection_id, p.status AS connection_status, p.settings AS connection_settings \
             FROM conversations c JOIN platform_connections p ON p.id = c.platform_connection_id \
             WHERE c.organization_id = $1 AND c.id = $2",
        )
        .bind(org_id)
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn outbound_count_since(&self, conversation_id: Uuid, since: DateTime<Utc>) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND direction = 'OUTBOUND' \
             AND status <> 'FAILED' AND created_at > $2",
        )
        .bind(conversation_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn create_outbound(&self, m: &NewOutbound) -> StoreResult<OutboundCreated> {
        // A reused Idempotency-Key fails on the unique index (`Conflict`); the caller answers
        // with the message that has it.
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(
            "INSERT INTO messages (id, organization_id, conversation_id, direction, content_type, \
             content, media_url, status, attempts, idempotency_key, sender_user_id, next_attempt_at, \
             created_at, updated_at) \
             VALUES ($1, $2, $3, 'OUTBOUND', $4, $5, $6, 'PENDING', 0, $7, $8, $9, $9, $9)",
        )
        .bind(m.id)
        .bind(m.organization_id)
        .bind(m.conversation_id)
        .bind(&m.content_type)
        .bind(Json(&m.content))
        .bind(&m.media_url)
        .bind(&m.idempotency_key)
        .bind(m.sender_user_id)
        .bind(m.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "UPDATE conversations SET preview = $2, last_message_at = $3, updated_at = $3 \
             WHERE id = $1 AND last_message_at <= $3",
        )
        .bind(m.conversation_id)
        .bind(&m.preview)
        .bind(m.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut terms = TermsGained::default();
        terms
            .of(m.conversation_id, m.organization_id)
            .add_message(&m.content);
        terms.insert(&mut tx, BitsWrite::Add).await?;
        push_send_jobs(
            &mut tx,
            &[QueuedJob {
                job: SendJob::first(m.id),
                delay: std::time::Duration::ZERO,
            }],
        )
        .await?;
        let mut events = LiveEvents::new();
        live(
            &mut events,
            m.organization_id,
            "message.created",
            json!({"conversation_id": m.conversation_id, "message_id": m.id, "direction": "outbound",
                   "status": MessageStatus::Pending}),
        );
        let written = insert_live_events(&mut tx, &events, m.created_at).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(OutboundCreated {
            message: SendRecord {
                id: m.id,
                organization_id: m.organization_id,
                conversation_id: m.conversation_id,
                connection_id: m.connection_id,
                platform: PlatformColumn(m.platform),
                content_type: m.content_type.clone(),
                content: Json(m.content.clone()),
                media_url: m.media_url.clone(),
                status: MessageStatus::Pending,
                external_id: None,
                error_code: None,
                error_message: None,
                failure_reason: None,
                attempts: 0,
                next_attempt_at: Some(m.created_at),
                last_attempt_at: None,
                unconfirmed_until: None,
                sender_user_id: m.sender_user_id,
                idempotency_key: m.idempotency_key.clone(),
                created_at: m.created_at,
                updated_at: m.created_at,
            },
            created: true,
        })
    }

    async fn outbound_by_idempotency_key(&self, org_id: Uuid, key: &str) -> StoreResult<Option<SendRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        send_by_key(&mut conn, org_id, key).await
    }

    async fn send_contexts(&self, message_ids: &[Uuid]) -> StoreResult<Vec<SendContext>> {
        let mut contexts = Vec::with_capacity(message_ids.len());
        for chunk in message_ids.chunks(1000) {
            let mut query = sqlx::QueryBuilder::<Db>::new(concat!(
                "SELECT ",
                send_columns!(),
                ", c.external_id AS recipient, c.last_inbound_at, p.status AS connection_status, \
                 p.platform_user_id AS account_id, p.access_token_enc, p.settings AS connection_settings \
                 FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                 JOIN platform_connections p ON p.id = c.platform_connection_id \
                 WHERE m.direction = 'OUTBOUND' AND m.id IN ("
            ));
            let mut ids = query.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            query.push(")");
            contexts.extend(
                query
                    .build_query_as::<SendContext>()
                    .persistent(false)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_error)?,
            );
        }
        Ok(contexts)
    }

    async fn claim_sends(&self, claims: &[SendClaim]) -> StoreResult<Vec<bool>> {
        let mut tx = begin_write(&self.pool).await?;
        let mut claimed: HashSet<Uuid> = HashSet::with_capacity(claims.len());
        for chunk in claims.chunks(1000) {
            let mut update = sqlx::QueryBuilder::<Db>::new(
                "UPDATE messages SET attempts = v.column2, last_attempt_at = v.column3, \
                 next_attempt_at = NULL, updated_at = v.column3 FROM (",
            );
            update.push_values(chunk, |mut row, c| {
                row.push_bind(c.message_id)
                    .push_bind(c.attempt)
                    .push_bind(c.started_at);
            });
            update.push(
                ") AS v WHERE messages.id = v.column1 AND messages.attempts = v.column2 - 1 \
                 AND messages.status = 'PENDING' AND messages.unconfirmed_until IS NULL RETURNING messages.id",
            );
            let ids: Vec<Uuid> = update
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
            claimed.extend(ids);
        }
        tx.commit().await.map_err(db_error)?;
        Ok(claims.iter().map(|c| claimed.contains(&c.message_id)).collect())
    }

    async fn record_send_outcomes(&self, outcomes: &[SendOutcome]) -> StoreResult<Vec<bool>> {
        let mut tx = begin_write(&self.pool).await?;
        let now = crate::domain::now();
        let mut recorded: HashSet<Uuid> = HashSet::with_capacity(outcomes.len());
        // Chunks keep each statement under SQLite's bound-parameter limit.
        for chunk in outcomes.chunks(1000) {
            forget_imported_echoes(&mut tx, chunk).await?;
            recorded.extend(advance_sends(&mut tx, chunk, now).await?);
        }
        let applied: Vec<bool> = outcomes
            .iter()
            .map(|o| recorded.contains(&o.message_id))
            .collect();
        let done: Vec<&SendOutcome> = outcomes
            .iter()
            .filter(|o| recorded.contains(&o.message_id))
            .collect();
        let mut events = LiveEvents::new();
        for o in &done {
            live(
                &mut events,
                o.organization_id,
                "message.updated",
                outcome_event(o),
            );
        }
        // A claimed attempt gets its row whether or not its message moved (the platform's word
        // may have come first): the call was made.
        let attempts: Vec<&SendOutcome> = outcomes
            .iter()
            .filter(|o| o.claimed || recorded.contains(&o.message_id))
            .collect();
        for chunk in attempts.chunks(1000) {
            write_send_attempts(&mut tx, chunk).await?;
        }
        for chunk in done.chunks(1000) {
            apply_receipts_for_sent(&mut tx, chunk, &mut events, now).await?;
        }
        for o in done.iter().filter(|o| o.connection_problem.is_some()) {
            mark_connection(&mut tx, o, &mut events, now).await?;
        }
        let jobs: Vec<QueuedJob> = done
            .iter()
            .filter_map(|o| match &o.result {
                SendResult::Retry { next, .. } => Some(*next),
                _ => None,
            })
            .collect();
        push_send_jobs(&mut tx, &jobs).await?;
        let written = insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(applied)
    }

    async fn sweep_sends(&self, policy: &SweepPolicy) -> StoreResult<SweepReport> {
        super::sweep::sweep(self, policy).await
    }

    async fn sends(
        &self,
        filter: &SendFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SendRecord>> {
        let mut query = sqlx::QueryBuilder::<Db>::new(concat!(
            "SELECT ",
            send_columns!(),
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE 1 = 1"
        ));
        push_send_filter(&mut query, filter);
        if let Some(before) = before {
            query.push(" AND m.id < ").push_bind(before);
        }
        query.push(" ORDER BY m.id DESC LIMIT ").push_bind(limit);
        query
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn send(&self, org_id: Uuid, message_id: Uuid) -> StoreResult<Option<SendRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        send_record(&mut conn, org_id, message_id).await
    }

    async fn send_attempts(&self, org_id: Uuid, message_id: Uuid) -> StoreResult<Vec<SendAttempt>> {
        sqlx::query_as(
            "SELECT attempt, started_at, finished_at, outcome, http_status, error_code, error_message, \
             next_attempt_at FROM send_attempts WHERE organization_id = $1 AND message_id = $2 \
             ORDER BY attempt",
        )
        .bind(org_id)
        .bind(message_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn retry_send(
        &self,
        org_id: Uuid,
        message_id: Uuid,
        now: DateTime<Utc>,
        confirmed: bool,
    ) -> StoreResult<SendChange> {
        let mut tx = begin_write(&self.pool).await?;
        let Some(before) = send_record(&mut tx, org_id, message_id).await? else {
            return Ok(SendChange::NotFound);
        };
        let Some(job) = reopen_send(&mut tx, message_id, now, confirmed).await? else {
            return Ok(SendChange::WrongState(before));
        };
        push_send_jobs(&mut tx, &[job]).await?;
        let after = send_record(&mut tx, org_id, message_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut events = LiveEvents::new();
        live(&mut events, org_id, "message.updated", send_event(&after));
        let written = insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(SendChange::Changed(after))
    }

    async fn discard_send(
        &self,
        org_id: Uuid,
        message_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<SendChange> {
        let mut tx = begin_write(&self.pool).await?;
        let Some(before) = send_record(&mut tx, org_id, message_id).await? else {
            return Ok(SendChange::NotFound);
        };
        let changed = sqlx::query(
            "UPDATE messages SET status = 'FAILED', failure_reason = 'discarded', next_attempt_at = NULL, \
             unconfirmed_until = NULL, updated_at = $2 WHERE id = $1 AND direction = 'OUTBOUND' AND (status = 'PENDING' OR \
             (status = 'FAILED' AND COALESCE(failure_reason, '') <> 'discarded'))",
        )
        .bind(message_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if changed.rows_affected() == 0 {
            return Ok(SendChange::WrongState(before));
        }
        let after = send_record(&mut tx, org_id, message_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut events = LiveEvents::new();
        live(&mut events, org_id, "message.updated", send_event(&after));
        let written = insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(SendChange::Changed(after))
    }

    async fn retry_sends(
        &self,
        filter: &SendFilter,
        after: Option<Uuid>,
        now: DateTime<Utc>,
        limit: i64,
        confirmed: bool,
    ) -> StoreResult<(u64, Option<Uuid>)> {
        let mut tx = begin_write(&self.pool).await?;
        let mut query = sqlx::QueryBuilder::<Db>::new(
            "SELECT m.id, m.organization_id FROM messages m JOIN conversations c \
                                           ON c.id = m.conversation_id WHERE ",
        );
        query.push(ACTIONABLE_FAILED);
        if !confirmed {
            query.push(" AND ").push(OUTCOME_KNOWN);
        }
        push_send_filter(&mut query, filter);
        if let Some(after) = after {
            query.push(" AND m.id > ").push_bind(after);
        }
        query.push(" ORDER BY m.id LIMIT ").push_bind(limit);
        let ids: Vec<(Uuid, Uuid)> = query
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let last = ids.last().map(|(id, _)| *id);
        let mut jobs = Vec::with_capacity(ids.len());
        let mut events = LiveEvents::new();
        for (id, org_id) in ids {
            if let Some(job) = reopen_send(&mut tx, id, now, confirmed).await? {
                jobs.push(job);
                live(
                    &mut events,
                    org_id,
                    "message.updated",
                    json!({"message_id": id, "status": MessageStatus::Pending}),
                );
            }
        }
        push_send_jobs(&mut tx, &jobs).await?;
        let written = insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok((jobs.len() as u64, last))
    }

    async fn failed_sends_by_connection(&self, organizations: &[Uuid]) -> StoreResult<Vec<(Uuid, i64)>> {
        let mut query = sqlx::QueryBuilder::<Db>::new(
            "SELECT c.platform_connection_id, COUNT(*) FROM messages m \
             JOIN conversations c ON c.id = m.conversation_id WHERE ",
        );
        query.push(ACTIONABLE_FAILED);
        push_send_filter(
            &mut query,
            &SendFilter {
                organizations: organizations.to_vec(),
                ..SendFilter::default()
            },
        );
        query.push(" GROUP BY c.platform_connection_id");
        query
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn hourly_outcomes(
        &self,
        organizations: &[Uuid],
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<HourlyOutcome>> {
        let mut query = sqlx::QueryBuilder::<Db>::new("SELECT ");
        query
            .push(HOUR_BUCKET)
            .push(" AS hour, outcome, COUNT(*) AS count FROM send_attempts WHERE started_at >= ")
            .push_bind(since)
            .push(" AND organization_id IN (");
        let mut orgs = query.separated(", ");
        for org in organizations {
            orgs.push_bind(*org);
        }
        if organizations.is_empty() {
            orgs.push("NULL");
        }
        query.push(") GROUP BY 1, 2 ORDER BY 1, 2");
        query
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }
}
