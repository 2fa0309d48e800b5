// Connection health and OAuth states, shared by both backends (included after `shared_sql.rs`,
// whose `connection_columns!`, `connection_changed` and `insert_live_events` it uses).

macro_rules! refresh_claim_columns {
    () => {
        "id, organization_id, platform, platform_user_id, status, refresh_token_enc, \
         refresh_token_expires_at, failure_count, last_error, refresh_claimed_until AS claimed_until"
    };
}

/// `SET ...` for a verdict, with its binds (after `$1` .. `$n` of the caller's WHERE clause,
/// which come last). Every verdict bumps `updated_at`, so a save prepared from an older read of
/// the connection fails as stale instead of restoring old tokens.
fn push_verdict(query: &mut sqlx::QueryBuilder<Db>, verdict: &HealthVerdict, now: DateTime<Utc>) {
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
enum VerdictTarget<'a> {
    Live {
        org_id: Uuid,
        id: Uuid,
        token_fingerprint: Option<&'a str>,
    },
    Claim(&'a RefreshClaim),
}

impl VerdictTarget<'_> {
    /// `, refresh_claimed_until = NULL` when the verdict ends a claim.
    fn push_release(&self, query: &mut sqlx::QueryBuilder<Db>) {
        if matches!(self, VerdictTarget::Claim(_)) {
            query.push(", refresh_claimed_until = NULL");
        }
    }

    fn push(&self, query: &mut sqlx::QueryBuilder<Db>) {
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
async fn apply_verdict(
    pool: &sqlx::Pool<Db>,
    target: VerdictTarget<'_>,
    verdict: &HealthVerdict,
    now: DateTime<Utc>,
) -> StoreResult<Option<Connection>> {
    let mut tx = begin_write(pool).await?;
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
    if saved.status.as_db() != status_before || saved.last_error != error_before {
        let mut events = LiveEvents::new();
        connection_changed(&mut events, "connection.updated", &saved);
        insert_live_events(&mut tx, &events, now).await?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(Some(saved))
}

/// Claims the rows `select` picks (pushed after `WHERE ... AND`), conditionally: the claim's
/// own condition is repeated on the updated row, so of two processes racing for a row the
/// second finds it claimed once the first commits.
async fn claim_refreshes(
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

    async fn delete_oauth_states_before(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let deleted = sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected())
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
        apply_verdict(&self.pool, VerdictTarget::Claim(claim), verdict, now).await
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
        let saved = apply_verdict(&self.pool, target, verdict, now).await?;
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
        insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(gone)
    }
}
