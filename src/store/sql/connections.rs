//! Platform connections: their rows, OAuth states, refresh claims and health verdicts.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use snorq_connectors::Platform;
use sqlx::types::Json;
use uuid::Uuid;

use super::events::{LiveEvents, insert_live_events, live};
use super::{Backend, Db, FOR_UPDATE, begin_write, db_error};
use crate::store::{
    Connection, ConnectionSecrets, ConnectionStore, HealthVerdict, NewOAuthState, OAuthState, RefreshClaim,
    StateUse, StoreError, StoreResult,
};

/// `connection.created` / `connection.updated`: the connection's health as clients show it.
pub(super) fn connection_changed(out: &mut LiveEvents, kind: &'static str, c: &Connection) {
    live(
        out,
        c.organization_id,
        kind,
        json!({
            "connection_id": c.id,
            "platform": c.platform.0.as_str(),
            "status": c.status,
            "last_error": c.last_error,
        }),
    );
}

/// `SET ...` for a verdict, with its binds (after `$1` .. `$n` of the caller's WHERE clause,
/// which come last). Every verdict bumps `updated_at`, so a save prepared from an older read of
/// the connection fails as stale instead of restoring old tokens.
pub(super) fn push_verdict(query: &mut sqlx::QueryBuilder<Db>, verdict: &HealthVerdict, now: DateTime<Utc>) {
    query
        .push("UPDATE platform_connections SET updated_at = ")
        .push_bind(now);
    match verdict {
        HealthVerdict::Refreshed(tokens) => {
            query
                .push(", access_token_enc = ")
                .push_bind(tokens.access_token_enc.clone())
                .push(", refresh_token_enc = ")
                .push_bind(tokens.refresh_token_enc.clone())
                .push(", token_fingerprint = ")
                .push_bind(tokens.token_fingerprint.clone())
                .push(", access_token_expires_at = ")
                .push_bind(tokens.access_token_expires_at)
                .push(", refresh_token_expires_at = ")
                .push_bind(tokens.refresh_token_expires_at)
                .push(", last_refreshed_at = ")
                .push_bind(now)
                .push(", status = 'ACTIVE', last_error = NULL, failure_count = 0, next_refresh_at = NULL");
        }
        HealthVerdict::Healthy => {
            query.push(", status = 'ACTIVE', last_error = NULL, failure_count = 0, next_refresh_at = NULL");
        }
        HealthVerdict::Expired { message } => {
            query
                .push(", status = 'EXPIRED', last_error = ")
                .push_bind(message.clone());
        }
        HealthVerdict::Failed {
            message,
            error_threshold,
            retry_at,
        } => {
            query
                .push(", status = CASE WHEN status = 'ACTIVE' AND failure_count + 1 >= ")
                .push_bind(*error_threshold)
                .push(" THEN 'ERROR' ELSE status END, failure_count = failure_count + 1, last_error = ")
                .push_bind(message.clone())
                // A check has no backoff of its own: it keeps the refresh's.
                .push(", next_refresh_at = COALESCE(")
                .push_bind(*retry_at)
                .push(", next_refresh_at)");
        }
    }
}

/// The row a verdict is for: a live connection of an organization whose token is still the one
/// checked (a check), or the connection a refresh claimed, if the claim still holds (same
/// claim, same refresh token).
pub(super) enum VerdictTarget<'a> {
    Live {
        org_id: Uuid,
        id: Uuid,
        token_fingerprint: Option<&'a str>,
    },
    Claim(&'a RefreshClaim),
}

impl VerdictTarget<'_> {
    /// `, refresh_claimed_until = NULL` when the verdict ends a claim.
    pub(super) fn push_release(&self, query: &mut sqlx::QueryBuilder<Db>) {
        if matches!(self, VerdictTarget::Claim(_)) {
            query.push(", refresh_claimed_until = NULL");
        }
    }

    pub(super) fn push(&self, query: &mut sqlx::QueryBuilder<Db>) {
        query.push(" WHERE status <> 'DISCONNECTED'");
        match self {
            VerdictTarget::Live {
                org_id,
                id,
                token_fingerprint,
            } => {
                query
                    .push(" AND organization_id = ")
                    .push_bind(*org_id)
                    .push(" AND id = ")
                    .push_bind(*id);
                // A reconnect or refresh since the check read the token: its verdict is stale.
                match token_fingerprint {
                    Some(fingerprint) => query
                        .push(" AND token_fingerprint = ")
                        .push_bind(fingerprint.to_string()),
                    None => query.push(" AND token_fingerprint IS NULL"),
                };
            }
            VerdictTarget::Claim(claim) => {
                query
                    .push(" AND id = ")
                    .push_bind(claim.id)
                    .push(" AND refresh_claimed_until = ")
                    .push_bind(claim.claimed_until)
                    .push(" AND refresh_token_enc = ")
                    .push_bind(claim.refresh_token_enc.clone());
            }
        }
    }
}

/// Applies a verdict and writes `connection.updated` when the status or the last error
/// changed; `None` when the target row is gone (or the claim was lost).
pub(super) async fn apply_verdict(
    store: &Backend,
    target: VerdictTarget<'_>,
    verdict: &HealthVerdict,
    now: DateTime<Utc>,
) -> StoreResult<Option<Connection>> {
    let mut tx = begin_write(&store.pool).await?;
    let mut read = sqlx::QueryBuilder::<Db>::new("SELECT status, last_error FROM platform_connections");
    target.push(&mut read);
    read.push(FOR_UPDATE);
    let before: Option<(String, Option<String>)> = read
        .build_query_as()
        .persistent(false)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    let Some((status_before, error_before)) = before else {
        return Ok(None);
    };
    let mut update = sqlx::QueryBuilder::<Db>::new("");
    push_verdict(&mut update, verdict, now);
    target.push_release(&mut update);
    target.push(&mut update);
    update.push(concat!(" RETURNING ", connection_columns!()));
    let saved: Option<Connection> = update
        .build_query_as()
        .persistent(false)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
    let Some(saved) = saved else {
        return Ok(None);
    };
    let mut events = LiveEvents::new();
    if saved.status.as_db() != status_before || saved.last_error != error_before {
        connection_changed(&mut events, "connection.updated", &saved);
    }
    let written = insert_live_events(&mut tx, &events, now).await?;
    tx.commit().await.map_err(db_error)?;
    written.announce(&store.events);
    Ok(Some(saved))
}

/// Claims the rows `select` picks (pushed after `WHERE ... AND`), conditionally: the claim's
/// own condition is repeated on the updated row, so of two processes racing for a row the
/// second finds it claimed once the first commits.
pub(super) async fn claim_refreshes(
    pool: &sqlx::Pool<Db>,
    now: DateTime<Utc>,
    claimed_until: DateTime<Utc>,
    select: impl Fn(&mut sqlx::QueryBuilder<Db>),
) -> StoreResult<Vec<RefreshClaim>> {
    let claimable = |q: &mut sqlx::QueryBuilder<Db>| {
        q.push(
            " platform = 'tiktok' AND refresh_token_enc IS NOT NULL AND status IN ('ACTIVE', 'ERROR') \
             AND (refresh_claimed_until IS NULL OR refresh_claimed_until < ",
        )
        .push_bind(now)
        .push(")");
    };
    let mut query = sqlx::QueryBuilder::<Db>::new("UPDATE platform_connections SET refresh_claimed_until = ");
    query
        .push_bind(claimed_until)
        .push(" WHERE id IN (SELECT id FROM platform_connections WHERE");
    claimable(&mut query);
    query.push(" AND ");
    select(&mut query);
    query.push(") AND");
    claimable(&mut query);
    query.push(concat!(" RETURNING ", refresh_claim_columns!()));
    let mut tx = begin_write(pool).await?;
    let claims = query
        .build_query_as()
        .persistent(false)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    Ok(claims)
}

#[async_trait]
impl ConnectionStore for Backend {
    async fn insert_connection(&self, c: &Connection) -> StoreResult<Connection> {
        let mut tx = begin_write(&self.pool).await?;
        let saved: Connection = sqlx::query_as(concat!(
            "INSERT INTO platform_connections (id, organization_id, platform, platform_user_id, name, status, \
             access_token_enc, refresh_token_enc, token_fingerprint, access_token_expires_at, \
             refresh_token_expires_at, settings, last_error, granted_by_external_id, failure_count, \
             last_checked_at, last_refreshed_at, created_at, updated_at, granted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING ",
            connection_columns!()
        ))
        .bind(c.id)
        .bind(c.organization_id)
        .bind(c.platform.0.as_str())
        .bind(&c.platform_user_id)
        .bind(&c.name)
        .bind(c.status.as_db())
        .bind(&c.access_token_enc)
        .bind(&c.refresh_token_enc)
        .bind(&c.token_fingerprint)
        .bind(c.access_token_expires_at)
        .bind(c.refresh_token_expires_at)
        .bind(&c.settings)
        .bind(&c.last_error)
        .bind(&c.granted_by_external_id)
        .bind(c.failure_count)
        .bind(c.last_checked_at)
        .bind(c.last_refreshed_at)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.granted_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut events = LiveEvents::new();
        connection_changed(&mut events, "connection.created", &saved);
        let written = insert_live_events(&mut tx, &events, saved.updated_at).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(saved)
    }

    async fn connections(&self, org_id: Uuid) -> StoreResult<Vec<Connection>> {
        sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM platform_connections WHERE organization_id = $1 ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn connection(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<Connection>> {
        sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM platform_connections WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn connection_by_account(
        &self,
        org_id: Uuid,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<Option<Connection>> {
        sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM platform_connections WHERE organization_id = $1 AND platform = $2 AND platform_user_id = $3"
        ))
        .bind(org_id)
        .bind(platform.as_str())
        .bind(platform_user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn account_live_elsewhere(
        &self,
        org_id: Uuid,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM platform_connections WHERE platform = $1 AND platform_user_id = $2 \
             AND organization_id <> $3 AND status <> 'DISCONNECTED'",
        )
        .bind(platform.as_str())
        .bind(platform_user_id)
        .bind(org_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(n > 0)
    }

    async fn save_connection(&self, c: &Connection, read_at: DateTime<Utc>) -> StoreResult<Connection> {
        let mut tx = begin_write(&self.pool).await?;
        // A save (a reconnect, new credentials) also ends any refresh backoff.
        let saved: Option<Connection> = sqlx::query_as(concat!(
            "UPDATE platform_connections SET name = $3, status = $4, access_token_enc = $5, \
             refresh_token_enc = $6, token_fingerprint = $7, access_token_expires_at = $8, \
             refresh_token_expires_at = $9, settings = $10, last_error = $11, granted_by_external_id = $12, \
             failure_count = $13, last_checked_at = $14, last_refreshed_at = $15, next_refresh_at = NULL, \
             updated_at = $16, granted_at = $18 WHERE organization_id = $1 AND id = $2 AND updated_at = $17 RETURNING ",
            connection_columns!()
        ))
        .bind(c.organization_id)
        .bind(c.id)
        .bind(&c.name)
        .bind(c.status.as_db())
        .bind(&c.access_token_enc)
        .bind(&c.refresh_token_enc)
        .bind(&c.token_fingerprint)
        .bind(c.access_token_expires_at)
        .bind(c.refresh_token_expires_at)
        .bind(&c.settings)
        .bind(&c.last_error)
        .bind(&c.granted_by_external_id)
        .bind(c.failure_count)
        .bind(c.last_checked_at)
        .bind(c.last_refreshed_at)
        .bind(c.updated_at)
        .bind(read_at)
        .bind(c.granted_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(saved) = saved else {
            drop(tx);
            // Changed since it was read, or not in this organization at all.
            return match self.connection(c.organization_id, c.id).await? {
                Some(_) => Err(StoreError::Stale),
                None => Err(StoreError::NotFound),
            };
        };
        let mut events = LiveEvents::new();
        connection_changed(&mut events, "connection.updated", &saved);
        let written = insert_live_events(&mut tx, &events, saved.updated_at).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(saved)
    }

    async fn connection_secrets_page(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<ConnectionSecrets>> {
        sqlx::query_as(
            "SELECT id, access_token_enc, refresh_token_enc FROM platform_connections \
             WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn replace_connection_secrets(
        &self,
        old: &ConnectionSecrets,
        new: &ConnectionSecrets,
    ) -> StoreResult<bool> {
        // IS NOT DISTINCT FROM would be clearer, but SQLite spells it IS; this form runs on both.
        let updated = sqlx::query(
            "UPDATE platform_connections SET access_token_enc = $4, refresh_token_enc = $5, updated_at = $6 \
             WHERE id = $1 \
             AND ((access_token_enc IS NULL AND $2 IS NULL) OR access_token_enc = $2) \
             AND ((refresh_token_enc IS NULL AND $3 IS NULL) OR refresh_token_enc = $3)",
        )
        .bind(old.id)
        .bind(&old.access_token_enc)
        .bind(&old.refresh_token_enc)
        .bind(&new.access_token_enc)
        .bind(&new.refresh_token_enc)
        // A concurrent edit that read the old envelope must not write it back (see save_connection).
        .bind(crate::domain::now())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(updated.rows_affected() == 1)
    }

    async fn insert_oauth_state(&self, state: &NewOAuthState) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oauth_states (id, organization_id, user_id, platform, redirect_uri, options, \
             created_at, expires_at, browser_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(state.id)
        .bind(state.organization_id)
        .bind(state.user_id)
        .bind(state.platform.as_str())
        .bind(&state.redirect_uri)
        .bind(Json(&state.options))
        .bind(state.created_at)
        .bind(state.expires_at)
        .bind(&state.browser_hash)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn consume_oauth_state(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<StateUse> {
        let consumed: Option<OAuthState> = sqlx::query_as(
            "UPDATE oauth_states SET used_at = $2 WHERE id = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING id, organization_id, user_id, platform, redirect_uri, options, browser_hash, expires_at",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        if let Some(state) = consumed {
            return Ok(StateUse::Consumed(state));
        }
        let found: Option<(Option<DateTime<Utc>>,)> =
            sqlx::query_as("SELECT used_at FROM oauth_states WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(match found {
            None => StateUse::Unknown,
            Some((Some(_),)) => StateUse::Used,
            Some((None,)) => StateUse::Expired,
        })
    }

    async fn claim_due_refreshes(
        &self,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
        claimed_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<RefreshClaim>> {
        claim_refreshes(&self.pool, now, claimed_until, |q| {
            q.push("access_token_expires_at < ")
                .push_bind(due_before)
                .push(" AND (next_refresh_at IS NULL OR next_refresh_at <= ")
                .push_bind(now)
                .push(") ORDER BY access_token_expires_at LIMIT ")
                .push_bind(limit);
        })
        .await
    }

    async fn claim_refresh(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        claimed_until: DateTime<Utc>,
    ) -> StoreResult<Option<RefreshClaim>> {
        let claims = claim_refreshes(&self.pool, now, claimed_until, |q| {
            q.push("organization_id = ")
                .push_bind(org_id)
                .push(" AND id = ")
                .push_bind(id);
        })
        .await?;
        Ok(claims.into_iter().next())
    }

    async fn finish_refresh(
        &self,
        claim: &RefreshClaim,
        verdict: &HealthVerdict,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>> {
        apply_verdict(self, VerdictTarget::Claim(claim), verdict, now).await
    }

    async fn record_check(
        &self,
        org_id: Uuid,
        id: Uuid,
        token_fingerprint: Option<&str>,
        verdict: &HealthVerdict,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>> {
        let target = VerdictTarget::Live {
            org_id,
            id,
            token_fingerprint,
        };
        let saved = apply_verdict(self, target, verdict, now).await?;
        if saved.is_some() {
            sqlx::query("UPDATE platform_connections SET last_checked_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_error)?;
        }
        Ok(saved.map(|c| Connection {
            last_checked_at: Some(now),
            ..c
        }))
    }

    async fn disconnect_deauthorized(
        &self,
        granted_by: Option<&str>,
        page_id: Option<&str>,
        issued_before: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Connection>> {
        if granted_by.is_none() && page_id.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = begin_write(&self.pool).await?;
        let gone: Vec<Connection> = sqlx::query_as(concat!(
            "UPDATE platform_connections SET status = 'DISCONNECTED', access_token_enc = NULL, \
             refresh_token_enc = NULL, token_fingerprint = NULL, access_token_expires_at = NULL, \
             refresh_token_expires_at = NULL, refresh_claimed_until = NULL, last_error = $3, updated_at = $4 \
             WHERE status <> 'DISCONNECTED' AND platform IN ('facebook', 'whatsapp') \
             AND (granted_by_external_id = $1 OR (platform = 'facebook' AND platform_user_id = $2)) \
             AND (granted_at IS NULL OR granted_at < $5) RETURNING ",
            connection_columns!()
        ))
        .bind(granted_by)
        .bind(page_id)
        .bind(reason)
        .bind(now)
        .bind(issued_before)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut events = LiveEvents::new();
        for connection in &gone {
            connection_changed(&mut events, "connection.updated", connection);
        }
        let written = insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(gone)
    }
}
