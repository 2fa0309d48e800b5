//! Ingest of receipts and read watermarks: statuses only move forward, receipts that arrive
//! before their message wait for it, watermarks mark every earlier outbound message.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::events::{LiveEvents, live};
use super::ingest::Route;
use super::{DbConn, db_error};
use crate::domain::MessageStatus;
use crate::store::{IncomingReceipt, IncomingWatermark, StoreResult};

pub(super) const STATUS_RANK: &str = "(CASE status WHEN 'PENDING' THEN 0 WHEN 'SENT' THEN 1 \
                           WHEN 'DELIVERED' THEN 2 WHEN 'READ' THEN 3 ELSE 4 END)";

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
         WHERE id = $1 AND {STATUS_RANK} < $6"
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

/// Applies receipts that arrived before their message, then forgets them.
pub(super) async fn apply_pending_receipts(
    conn: &mut DbConn,
    route: Route,
    external_id: &str,
    message_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let pending: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "DELETE FROM pending_receipts WHERE platform_connection_id = $1 AND external_id = $2 \
         RETURNING status, error_code, error_message",
    )
    .bind(route.connection_id)
    .bind(external_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let mut changed = false;
    for (status, code, message) in pending {
        if let Some(status) = MessageStatus::from_db(&status) {
            changed |=
                advance_status(conn, message_id, status, code.as_deref(), message.as_deref(), now).await?;
        }
    }
    Ok(changed)
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
    let status = if read.is_some_and(|w| created_at <= w) {
        MessageStatus::Read
    } else if delivered.is_some_and(|w| created_at <= w) {
        MessageStatus::Delivered
    } else {
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
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = $2, updated_at = $3 \
         WHERE conversation_id = $1 AND direction = 'OUTBOUND' AND created_at <= $4 \
         AND status IN ('SENT', 'DELIVERED') AND {STATUS_RANK} < $5 RETURNING id"
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
