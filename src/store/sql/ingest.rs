//! Webhook ingest: a batch of verified webhooks stored and applied in one transaction, a
//! savepoint per event; routing each event to its organization.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use snorq_connectors::Platform;
use sqlx::Transaction;
use uuid::Uuid;

use super::batch_locks::{LockedConversations, announce_created, lock_conversations};
use super::events::{LiveEvents, insert_live_events};
use super::messages::{apply_message, store_new_messages};
use super::receipts::{apply_receipt, apply_receipts, apply_watermark};
use super::{Backend, Db, DbConn, ROW_LOCKS, begin_write, db_error};
use crate::domain::{ConnectionStatus, routing};
use crate::store::{
    Author, IncomingMessage, IncomingReceipt, IncomingWebhook, IngestEvent, IngestOutcome, IngestStore,
    ReplayFilter, StoreError, StoreResult, StoredWebhook, WebhookStatus, WebhookSummary,
};

// ---------------------------------------------------------------------------------------------
// Webhook ingest: apply a batch of verified webhooks in one transaction, one savepoint per event.

/// The connection a platform account routes to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Route {
    pub(super) connection_id: Uuid,
    pub(super) organization_id: Uuid,
}

pub(super) type Routes = HashMap<(Platform, String), Option<Route>>;

pub(super) async fn route(
    conn: &mut DbConn,
    routes: &mut Routes,
    platform: Platform,
    account: &str,
) -> StoreResult<Option<Route>> {
    if let Some(found) = routes.get(&(platform, account.to_owned())) {
        return Ok(*found);
    }
    // `domain::routing::live_connection` decides; the status condition here is the same rule
    // in the form the live-account index answers (a disconnected account would scan).
    let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT id, organization_id, status FROM platform_connections \
         WHERE platform = $1 AND platform_user_id = $2 AND status <> 'DISCONNECTED'",
    )
    .bind(platform.as_str())
    .bind(account)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let candidates = rows
        .into_iter()
        .filter_map(|(connection_id, organization_id, status)| {
            let route = Route {
                connection_id,
                organization_id,
            };
            Some((ConnectionStatus::from_db(&status)?, route))
        });
    let found = routing::live_connection(candidates);
    routes.insert((platform, account.to_owned()), found);
    Ok(found)
}

pub(super) async fn apply_event(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    event: &IngestEvent,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    match event {
        IngestEvent::Message(m) => apply_message(conn, out, route, m, now).await,
        IngestEvent::Receipt(r) => apply_receipt(conn, out, route, r, now).await,
        IngestEvent::Watermark(w) => apply_watermark(conn, out, route, w, now).await,
        IngestEvent::Ignored { .. } => Ok(()),
    }
}

/// What an optimistic attempt applies for the whole batch at once, after its other events.
#[derive(Default)]
pub(super) struct Deferred<'w> {
    messages: Vec<(Route, &'w IncomingMessage)>,
    receipts: Vec<(Route, &'w IncomingReceipt)>,
}

/// How events are isolated from each other within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Isolation {
    /// No savepoints: the first failing event aborts the attempt (then retried with savepoints).
    /// Failures are rare, so this saves two round trips per event in the common case.
    Optimistic,
    /// A savepoint per event: a failing event is rolled back and recorded, the rest applied.
    Savepoints,
}

/// Applies every event of one webhook and says how it went; live events go to `out`.
/// In optimistic mode, customer messages and receipts are not applied here but pushed to
/// `deferred`, to be applied for the whole batch at once ([`store_new_messages`],
/// [`apply_receipts`]).
pub(super) async fn apply_webhook<'w>(
    tx: &mut Transaction<'static, Db>,
    routes: &mut Routes,
    webhook: &'w IncomingWebhook,
    isolation: Isolation,
    out: &mut LiveEvents,
    deferred: &mut Deferred<'w>,
) -> StoreResult<(IngestOutcome, Option<Uuid>)> {
    let mut outcome = IngestOutcome {
        webhook_id: webhook.id,
        status: WebhookStatus::Processed,
        events: 0,
        applied: 0,
        unroutable: 0,
        failed: 0,
        reasons: Vec::new(),
    };
    let events = match &webhook.events {
        Ok(events) => events,
        Err(reason) => {
            outcome.status = WebhookStatus::Failed;
            outcome.reasons.push(format!("unparseable body: {reason}"));
            return Ok((outcome, None));
        }
    };
    outcome.events = events.len();
    let now = crate::domain::now();
    let mut organization = None;
    for event in events {
        let Some((platform, account)) = event.route() else {
            outcome.applied += 1;
            continue;
        };
        let Some(route) = route(&mut *tx, routes, platform, account).await? else {
            outcome.unroutable += 1;
            let reason = format!("no live {platform} connection for account {account}");
            if !outcome.reasons.contains(&reason) {
                outcome.reasons.push(reason);
            }
            continue;
        };
        organization.get_or_insert(route.organization_id);
        if isolation == Isolation::Optimistic {
            match event {
                IngestEvent::Message(m) if m.author == Author::Customer => deferred.messages.push((route, m)),
                IngestEvent::Receipt(r) => deferred.receipts.push((route, r)),
                _ => apply_event(&mut *tx, out, route, event, now).await?,
            }
            outcome.applied += 1;
            continue;
        }
        let mut savepoint = sqlx::Connection::begin(&mut **tx).await.map_err(db_error)?;
        let mut changes = LiveEvents::new();
        match apply_event(&mut savepoint, &mut changes, route, event, now).await {
            Ok(()) => {
                savepoint.commit().await.map_err(db_error)?;
                out.append(&mut changes);
                outcome.applied += 1;
            }
            // Not this event's fault: fail the attempt so the batch is retried or redelivered.
            Err(err @ (StoreError::Unavailable(_) | StoreError::Transient(_))) => return Err(err),
            Err(err) => {
                savepoint.rollback().await.map_err(db_error)?;
                tracing::warn!(webhook_id = %webhook.id, error = %err, "webhook event could not be applied");
                outcome.failed += 1;
                outcome
                    .reasons
                    .push(format!("{} event failed: {err}", event_kind(event)));
            }
        }
    }
    outcome.status = if outcome.failed > 0 {
        WebhookStatus::Failed
    } else if outcome.unroutable > 0 {
        WebhookStatus::Unroutable
    } else {
        WebhookStatus::Processed
    };
    Ok((outcome, organization))
}

pub(super) fn reason_text(outcome: &IngestOutcome) -> Option<String> {
    (!outcome.reasons.is_empty()).then(|| outcome.reasons.join("; "))
}

impl Backend {
    /// One attempt at a batch: apply, then write the webhook rows and live events, commit.
    pub(super) async fn ingest_attempt(
        &self,
        batch: &[IncomingWebhook],
        isolation: Isolation,
    ) -> StoreResult<Vec<IngestOutcome>> {
        let mut tx = begin_write(&self.pool).await?;
        let mut routes = Routes::new();
        let locked = if ROW_LOCKS {
            // A savepoint attempt does not create conversations ahead: one whose event then
            // failed would be left empty.
            let create = isolation == Isolation::Optimistic;
            lock_conversations(&mut tx, &mut routes, batch, create, crate::domain::now()).await?
        } else {
            LockedConversations::default()
        };
        let mut changes = LiveEvents::new();
        let mut applied = Vec::with_capacity(batch.len());
        let mut deferred = Deferred::default();
        for webhook in batch {
            applied.push(
                apply_webhook(
                    &mut tx,
                    &mut routes,
                    webhook,
                    isolation,
                    &mut changes,
                    &mut deferred,
                )
                .await?,
            );
        }
        let now = crate::domain::now();
        store_new_messages(&mut tx, &mut changes, &deferred.messages, &locked.by_thread, now).await?;
        apply_receipts(&mut tx, &mut changes, &deferred.receipts, now).await?;
        // Ten parameters a row; chunks stay under SQLite's bound-parameter limit.
        for chunk in batch.iter().zip(&applied).collect::<Vec<_>>().chunks(500) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO webhook_events (id, platform, organization_id, body, received_at, status, reason, \
                 processed_at, event_count, applied_count) ",
            );
            insert.push_values(chunk, |mut row, (webhook, (outcome, organization))| {
                row.push_bind(webhook.id)
                    .push_bind(webhook.platform.as_str())
                    .push_bind(*organization)
                    .push_bind(webhook.body.as_slice())
                    .push_bind(webhook.received_at)
                    .push_bind(outcome.status.as_db())
                    .push_bind(reason_text(outcome))
                    .push_bind(now)
                    .push_bind(count(outcome.events))
                    .push_bind(count(outcome.applied));
            });
            insert
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        announce_created(&mut changes, &locked.created);
        let written = insert_live_events(&mut tx, &changes, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(applied.into_iter().map(|(outcome, _)| outcome).collect())
    }
}

pub(super) fn event_kind(event: &IngestEvent) -> &'static str {
    match event {
        IngestEvent::Message(_) => "message",
        IngestEvent::Receipt(_) => "receipt",
        IngestEvent::Watermark(_) => "watermark",
        IngestEvent::Ignored { .. } => "ignored",
    }
}

pub(super) fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[async_trait]
impl IngestStore for Backend {
    async fn ingest(&self, batch: &[IncomingWebhook]) -> StoreResult<Vec<IngestOutcome>> {
        match self.ingest_attempt(batch, Isolation::Optimistic).await {
            Err(err @ StoreError::Unavailable(_)) => Err(err),
            // Some event failed: nothing of the attempt was kept; again, isolating each event.
            Err(err) => {
                tracing::warn!(error = %err, "ingest batch failed; applying it again with a savepoint per event");
                self.ingest_attempt(batch, Isolation::Savepoints).await
            }
            ok => ok,
        }
    }

    async fn reapply(&self, webhook: &IncomingWebhook) -> StoreResult<IngestOutcome> {
        let mut tx = begin_write(&self.pool).await?;
        let mut routes = Routes::new();
        if ROW_LOCKS {
            let batch = std::slice::from_ref(webhook);
            lock_conversations(&mut tx, &mut routes, batch, false, crate::domain::now()).await?;
        }
        let mut changes = LiveEvents::new();
        let (outcome, organization) = apply_webhook(
            &mut tx,
            &mut routes,
            webhook,
            Isolation::Savepoints,
            &mut changes,
            &mut Deferred::default(),
        )
        .await?;
        let updated = sqlx::query(
            "UPDATE webhook_events SET status = $2, reason = $3, processed_at = $4, event_count = $5, \
             applied_count = $6, organization_id = COALESCE($7, organization_id) WHERE id = $1",
        )
        .bind(webhook.id)
        .bind(outcome.status.as_db())
        .bind(reason_text(&outcome))
        .bind(crate::domain::now())
        .bind(count(outcome.events))
        .bind(count(outcome.applied))
        .bind(organization)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        let written = insert_live_events(&mut tx, &changes, crate::domain::now()).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(outcome)
    }

    async fn webhooks_needing_attention(
        &self,
        organizations: Option<&[Uuid]>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookSummary>> {
        let mut query = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, platform, organization_id, received_at, status, reason, event_count, applied_count \
             FROM webhook_events WHERE status IN ('UNROUTABLE', 'FAILED', 'PARTIAL')",
        );
        if let Some(organizations) = organizations {
            query.push(" AND organization_id IN (");
            let mut orgs = query.separated(", ");
            for org in organizations {
                orgs.push_bind(*org);
            }
            if organizations.is_empty() {
                orgs.push("NULL");
            }
            query.push(")");
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        query
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn webhook_summary(&self, id: Uuid) -> StoreResult<Option<WebhookSummary>> {
        sqlx::query_as(
            "SELECT id, platform, organization_id, received_at, status, reason, event_count, applied_count \
             FROM webhook_events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn webhooks_for_replay(
        &self,
        filter: &ReplayFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<StoredWebhook>> {
        sqlx::query_as(
            "SELECT id, platform, body, received_at, status FROM webhook_events \
             WHERE ($1 IS NULL OR id = $1) AND ($2 IS NULL OR platform = $2) \
             AND ($3 IS NULL OR received_at >= $3) AND ($4 IS NULL OR received_at < $4) \
             AND ($5 OR status <> 'PROCESSED') AND ($6 IS NULL OR id > $6) \
             ORDER BY id LIMIT $7",
        )
        .bind(filter.id)
        .bind(filter.platform.map(Platform::as_str))
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.include_processed)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }
}
