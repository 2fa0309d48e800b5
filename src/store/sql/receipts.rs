//! Ingest of receipts and read watermarks: statuses only move forward, receipts that arrive
//! before their message wait for it, watermarks mark every earlier outbound message.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::events::{LiveEvents, live};
use super::ingest::Route;
use super::messages::BULK_ROWS;
use super::{Db, DbConn, db_error};
use crate::domain::{MessageStatus, receipts};
use crate::store::{IncomingReceipt, IncomingWatermark, StoreResult};

/// The rank of the `status` column, from the domain's ranks (`domain::receipts`).
static STATUS_RANK: LazyLock<String> = LazyLock::new(receipts::status_rank_sql);

/// A receipt that waited for its message: status, error code, error message.
pub(super) type WaitingReceipt = (String, Option<String>, Option<String>);

/// Of the receipts that waited for one message, the one it settles at
/// (`domain::receipts::settle`: the highest, whatever order they came in).
pub(super) fn settled(
    waiting: Vec<WaitingReceipt>,
) -> Option<(MessageStatus, Option<String>, Option<String>)> {
    let statuses = waiting.iter().filter_map(|(s, _, _)| MessageStatus::from_db(s));
    let status = receipts::settle(MessageStatus::Pending, statuses)?;
    waiting
        .into_iter()
        .find(|(s, _, _)| MessageStatus::from_db(s) == Some(status))
        .map(|(_, code, message)| (status, code, message))
}

/// Moves a message forward to `status` (never back; failed is terminal). True if it changed.
pub(super) async fn advance_status(
    conn: &mut DbConn,
    message_id: Uuid,
    status: MessageStatus,
    error_code: Option<&str>,
    error_message: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = $2, error_code = COALESCE($3, error_code), \
         error_message = COALESCE($4, error_message), updated_at = $5 \
         WHERE id = $1 AND {} < $6",
        *STATUS_RANK
    ));
    let updated = sqlx::query(sql)
        .bind(message_id)
        .bind(status.as_db())
        .bind(error_code)
        .bind(error_message)
        .bind(now)
        .bind(status.rank())
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(updated.rows_affected() == 1)
}

/// One of our sends, named by the platform with our correlation value and its platform id.
pub(super) struct Correlated<'a> {
    pub organization_id: Uuid,
    pub message_id: Uuid,
    pub external_id: &'a str,
}

/// Our sends the platform confirmed (a status or echo carrying our correlation value) before
/// we knew their platform ids: the sends whose outcome is unknown (unconfirmed, failed as
/// `outcome_unknown`, or still in flight) become sent with the platform's id. A send never
/// attempted is not adopted. Returns (message, organization, conversation, platform id).
pub(super) async fn adopt_correlated(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    items: &[Correlated<'_>],
    now: DateTime<Utc>,
) -> StoreResult<Vec<(Uuid, Uuid, String)>> {
    let mut adopted = Vec::new();
    for chunk in items.chunks(BULK_ROWS) {
        let mut update = sqlx::QueryBuilder::<Db>::new(
            "UPDATE messages SET external_id = v.column3, status = 'SENT', unconfirmed_until = NULL, \
             failure_reason = NULL, error_code = NULL, error_message = NULL, next_attempt_at = NULL, \
             updated_at = v.column4 FROM (",
        );
        update.push_values(chunk, |mut row, c| {
            row.push_bind(c.message_id)
                .push_bind(c.organization_id)
                .push_bind(c.external_id)
                .push_bind(now);
        });
        update.push(
            ") AS v WHERE messages.id = v.column1 AND messages.organization_id = v.column2 \
             AND messages.direction = 'OUTBOUND' AND messages.external_id IS NULL AND messages.attempts > 0 \
             AND (messages.status = 'PENDING' OR (messages.status = 'FAILED' \
             AND messages.failure_reason = 'outcome_unknown')) \
             RETURNING messages.id, messages.organization_id, messages.conversation_id, messages.external_id",
        );
        let rows: Vec<(Uuid, Uuid, Uuid, String)> = update
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        for (id, org, conversation, external_id) in rows {
            live(
                out,
                org,
                "message.updated",
                json!({"conversation_id": conversation, "message_id": id, "status": MessageStatus::Sent}),
            );
            adopted.push((id, org, external_id));
        }
    }
    Ok(adopted)
}

/// Applies receipts that arrived before their message, then forgets them.
pub(super) async fn apply_pending_receipts(
    conn: &mut DbConn,
    route: Route,
    external_id: &str,
    message_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let pending: Vec<WaitingReceipt> = sqlx::query_as(
        "DELETE FROM pending_receipts WHERE platform_connection_id = $1 AND external_id = $2 \
         RETURNING status, error_code, error_message",
    )
    .bind(route.connection_id)
    .bind(external_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    match settled(pending) {
        Some((status, code, message)) => {
            advance_status(conn, message_id, status, code.as_deref(), message.as_deref(), now).await
        }
        None => Ok(false),
    }
}

/// A message's conversation watermarks (delivered, read) and the message's own time.
pub(super) type MessageWatermarks = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, DateTime<Utc>);

/// Marks a newly stored outbound message with the conversation's delivery / read watermarks,
/// for an echo that arrives after the receipt covering it.
pub(super) async fn apply_watermarks_to(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    message_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let watermarks: Option<MessageWatermarks> = sqlx::query_as(
        "SELECT c.delivered_watermark, c.read_watermark, m.created_at FROM messages m \
         JOIN conversations c ON c.id = m.conversation_id WHERE m.id = $1",
    )
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some((delivered, read, created_at)) = watermarks else {
        return Ok(());
    };
    let Some(status) = receipts::watermark_status(created_at, delivered, read) else {
        return Ok(());
    };
    if advance_status(conn, message_id, status, None, None, now).await? {
        live(
            out,
            route.organization_id,
            "message.updated",
            json!({ "message_id": message_id }),
        );
    }
    Ok(())
}

pub(super) async fn apply_receipt(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    r: &IncomingReceipt,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let message: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE organization_id = $1 AND external_id = $2 AND direction = 'OUTBOUND'",
    )
    .bind(route.organization_id)
    .bind(&r.external_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let message = match (message, r.correlation) {
        (None, Some(ours)) => {
            let item = Correlated {
                organization_id: route.organization_id,
                message_id: ours,
                external_id: &r.external_id,
            };
            let adopted = adopt_correlated(conn, out, &[item], now).await?;
            adopted.first().map(|(id, _, _)| *id)
        }
        (found, _) => found,
    };
    match message {
        Some(id) => {
            let status = r.status;
            let changed = advance_status(
                conn,
                id,
                status,
                r.error_code.as_deref(),
                r.error_message.as_deref(),
                now,
            )
            .await?;
            if changed {
                live(
                    out,
                    route.organization_id,
                    "message.updated",
                    json!({ "message_id": id }),
                );
            }
        }
        // Kept until the message appears (a receipt can overtake the send's own response).
        None => {
            sqlx::query(
                "INSERT INTO pending_receipts (id, organization_id, platform_connection_id, external_id, status, \
                 error_code, error_message, platform_timestamp, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (platform_connection_id, external_id, status) DO NOTHING",
            )
            .bind(crate::domain::new_id())
            .bind(route.organization_id)
            .bind(route.connection_id)
            .bind(&r.external_id)
            .bind(r.status.as_db())
            .bind(&r.error_code)
            .bind(&r.error_message)
            .bind(r.timestamp)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        }
    }
    Ok(())
}

pub(super) async fn apply_watermark(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    w: &IncomingWatermark,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // Ids the platform listed are receipts in their own right: applied, or kept until the
    // message appears.
    for external_id in &w.external_ids {
        let receipt = IncomingReceipt {
            platform: w.platform,
            account_id: w.account_id.clone(),
            external_id: external_id.clone(),
            correlation: None,
            status: w.status,
            timestamp: w.watermark,
            error_code: None,
            error_message: None,
        };
        apply_receipt(conn, out, route, &receipt, now).await?;
    }
    let conversation: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE platform_connection_id = $1 AND external_id = $2",
    )
    .bind(route.connection_id)
    .bind(&w.conversation_key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some(conversation_id) = conversation else {
        return Ok(());
    };
    // Remembered for outbound messages that show up later (see `apply_watermarks_to`).
    let remember = match w.status {
        MessageStatus::Read => {
            "UPDATE conversations SET read_watermark = $2 \
             WHERE id = $1 AND (read_watermark IS NULL OR read_watermark < $2)"
        }
        _ => {
            "UPDATE conversations SET delivered_watermark = $2 \
             WHERE id = $1 AND (delivered_watermark IS NULL OR delivered_watermark < $2)"
        }
    };
    sqlx::query(remember)
        .bind(conversation_id)
        .bind(w.watermark)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    // `receipts::watermark_covers` and `receipts::advance`, as one statement.
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = $2, updated_at = $3 \
         WHERE conversation_id = $1 AND direction = 'OUTBOUND' AND created_at <= $4 \
         AND status IN ('SENT', 'DELIVERED') AND {} < $5 RETURNING id",
        *STATUS_RANK
    ));
    let changed: Vec<Uuid> = sqlx::query_scalar(sql)
        .bind(conversation_id)
        .bind(w.status.as_db())
        .bind(now)
        .bind(w.watermark)
        .bind(w.status.rank())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    for id in changed {
        live(
            out,
            route.organization_id,
            "message.updated",
            json!({ "message_id": id }),
        );
    }
    Ok(())
}

/// Applies a batch's receipts, planned in memory (`domain::receipts::plan`): one look-up of the
/// messages they name, one conditional update of those that move (in id order, so concurrent
/// batches take the rows' locks in one order), one insert of those that wait for their message.
pub(super) async fn apply_receipts(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    batch: &[(Route, &IncomingReceipt)],
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let keys: BTreeSet<(Uuid, &str)> = batch
        .iter()
        .map(|(route, r)| (route.organization_id, r.external_id.as_str()))
        .collect();
    let keys: Vec<(Uuid, &str)> = keys.into_iter().collect();
    let mut messages: HashMap<(Uuid, String), Uuid> = HashMap::new();
    let mut current: HashMap<(Uuid, String), MessageStatus> = HashMap::new();
    for chunk in keys.chunks(BULK_ROWS) {
        // The two plain IN lists let both planners use the (organization, external id) index;
        // the row-value IN then keeps exactly the pairs asked for.
        let mut select = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, organization_id, external_id, status FROM messages \
             WHERE direction = 'OUTBOUND' AND external_id IS NOT NULL AND organization_id IN (",
        );
        let mut organizations = select.separated(", ");
        for org in chunk.iter().map(|(org, _)| *org).collect::<BTreeSet<_>>() {
            organizations.push_bind(org);
        }
        select.push(") AND external_id IN (");
        let mut external_ids = select.separated(", ");
        for (_, external_id) in chunk {
            external_ids.push_bind(*external_id);
        }
        select.push(") AND (organization_id, external_id) IN (VALUES ");
        let mut pairs = select.separated(", ");
        for (org, external_id) in chunk {
            pairs
                .push("(")
                .push_bind_unseparated(*org)
                .push_unseparated(", ")
                .push_bind_unseparated(*external_id)
                .push_unseparated(")");
        }
        select.push(")");
        let rows: Vec<(Uuid, Uuid, String, String)> = select
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        for (id, org, external_id, status) in rows {
            if let Some(status) = MessageStatus::from_db(&status) {
                messages.entry((org, external_id.clone())).or_insert(id);
                current.entry((org, external_id)).or_insert(status);
            }
        }
    }
    // Receipts naming one of our sends by correlation before we knew its platform id.
    let mut asked = std::collections::HashSet::new();
    let unknown: Vec<Correlated> = batch
        .iter()
        .filter_map(|(route, r)| {
            let ours = r.correlation?;
            let key = (route.organization_id, r.external_id.clone());
            (!messages.contains_key(&key) && asked.insert(ours)).then_some(Correlated {
                organization_id: route.organization_id,
                message_id: ours,
                external_id: &r.external_id,
            })
        })
        .collect();
    if !unknown.is_empty() {
        for (id, org, external_id) in adopt_correlated(conn, out, &unknown, now).await? {
            messages.insert((org, external_id.clone()), id);
            current.insert((org, external_id), MessageStatus::Sent);
        }
    }
    let plan = receipts::plan(
        &current,
        batch.iter().map(|(route, r)| {
            (
                (route.organization_id, r.external_id.clone()),
                r.status,
                (*route, *r),
            )
        }),
    );

    let mut advances: Vec<(Uuid, MessageStatus, &IncomingReceipt)> = plan
        .advances
        .iter()
        .filter_map(|(key, status, (_, r))| Some((*messages.get(key)?, *status, *r)))
        .collect();
    advances.sort_unstable_by_key(|(id, _, _)| *id);
    for chunk in advances.chunks(BULK_ROWS) {
        // The domain decided from what it read; the rank condition keeps a concurrent writer's
        // newer status.
        let mut update = sqlx::QueryBuilder::<Db>::new(
            "UPDATE messages SET status = v.column2, error_code = COALESCE(v.column3, error_code), \
             error_message = COALESCE(v.column4, error_message), updated_at = v.column5 FROM (",
        );
        update.push_values(chunk, |mut row, (id, status, r)| {
            row.push_bind(*id)
                .push_bind(status.as_db())
                .push_bind(&r.error_code)
                .push_bind(&r.error_message)
                .push_bind(now)
                .push_bind(status.rank());
        });
        update.push(format!(
            ") AS v WHERE messages.id = v.column1 AND {} < v.column6 \
             RETURNING messages.id, messages.organization_id",
            *STATUS_RANK
        ));
        let moved: Vec<(Uuid, Uuid)> = update
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        for (id, org) in moved {
            live(out, org, "message.updated", json!({ "message_id": id }));
        }
    }

    // Kept until the message appears (a receipt can overtake the send's own response). In key
    // order, so that batches inserting the same receipts do not wait on each other in a cycle.
    let mut waiting: Vec<_> = plan.waiting.iter().collect();
    waiting.sort_unstable_by(|(_, a, (ra, a_r)), (_, b, (rb, b_r))| {
        (ra.connection_id, &a_r.external_id, a.as_db()).cmp(&(rb.connection_id, &b_r.external_id, b.as_db()))
    });
    for chunk in waiting.chunks(BULK_ROWS) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO pending_receipts (id, organization_id, platform_connection_id, external_id, status, \
             error_code, error_message, platform_timestamp, received_at) ",
        );
        insert.push_values(chunk, |mut row, (_, status, (route, r))| {
            row.push_bind(crate::domain::new_id())
                .push_bind(route.organization_id)
                .push_bind(route.connection_id)
                .push_bind(&r.external_id)
                .push_bind(status.as_db())
                .push_bind(&r.error_code)
                .push_bind(&r.error_message)
                .push_bind(r.timestamp)
                .push_bind(now);
        });
        insert.push(" ON CONFLICT (platform_connection_id, external_id, status) DO NOTHING");
        insert
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}
