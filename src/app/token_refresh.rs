//! Keeping TikTok tokens fresh (issue 7). Access tokens live 24 hours; those expiring within
//! the configured window are refreshed, and the refresh token TikTok returns is saved every time
//! (it may rotate).
//!
//! A refresh is claimed first: one conditional UPDATE marks the connection as taken until the
//! claim lapses, so of several processes only one calls TikTok with a given refresh token. The
//! platform call happens outside any transaction; its verdict is saved only if the claim still
//! holds.

use chrono::{DateTime, Utc};
use snorq_connectors::{ErrorClass, Secret};

use super::{App, AppResult};
use crate::crypto::SecretField;
use crate::crypto::tokens::fingerprint;
use crate::domain;
use crate::store::{HealthVerdict, RefreshClaim, RefreshedTokens};

/// Connections refreshed per pass (the next pass takes the rest).
const BATCH: i64 = 50;

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RefreshReport {
    pub refreshed: usize,
    /// The refresh token was rejected or had expired: the connection needs reconnecting.
    pub expired: usize,
    /// No verdict (5xx, timeout): retried after a backoff.
    pub failed: usize,
    /// The claim lapsed before the verdict could be saved (another process may hold it now).
    pub lost: usize,
}

/// How long a claim holds: longer than a platform call can take.
fn claim_ttl(app: &App) -> chrono::Duration {
    let call =
        chrono::Duration::from_std(app.settings.platforms.timeout).unwrap_or(chrono::Duration::seconds(20));
    call * 3 + chrono::Duration::seconds(10)
}

/// One pass: refreshes every due connection (up to 50; the next pass takes the rest). Without a TikTok app configured
/// there is nothing it could do, so it claims nothing.
pub async fn run_once(app: &App) -> AppResult<RefreshReport> {
    let mut report = RefreshReport::default();
    if app.tiktok_app().is_none() {
        return Ok(report);
    }
    // One claim at a time: claims taken for a whole batch could lapse while the first ones are
    // refreshed, and another process would then use the same refresh token.
    for _ in 0..BATCH {
        let now = domain::now();
        let claimed = app
            .store
            .claim_due_refreshes(
                now + app.settings.token_refresh.window,
                now,
                now + claim_ttl(app),
                1,
            )
            .await?;
        let Some(claim) = claimed.into_iter().next() else {
            break;
        };
        let verdict = refresh(app, &claim).await;
        let saved = app.store.finish_refresh(&claim, &verdict, domain::now()).await?;
        match (&verdict, saved) {
            (_, None) => {
                tracing::warn!(connection_id = %claim.id, "token refresh finished after its claim lapsed; result dropped");
                report.lost += 1;
            }
            (HealthVerdict::Refreshed(_), Some(_)) => report.refreshed += 1,
            (HealthVerdict::Expired { .. }, Some(_)) => report.expired += 1,
            (_, Some(_)) => report.failed += 1,
        }
    }
    if report != RefreshReport::default() {
        tracing::info!(?report, "token refresh pass");
    }
    Ok(report)
}

/// Refreshes one connection now if no other process is (a check found its access token dead);
/// `None` when it could not be claimed.
pub async fn refresh_now(
    app: &App,
    org_id: uuid::Uuid,
    id: uuid::Uuid,
) -> AppResult<Option<crate::store::Connection>> {
    let now = domain::now();
    let Some(claim) = app
        .store
        .claim_refresh(org_id, id, now, now + claim_ttl(app))
        .await?
    else {
        return Ok(None);
    };
    let verdict = refresh(app, &claim).await;
    Ok(app.store.finish_refresh(&claim, &verdict, domain::now()).await?)
}

/// Calls TikTok for one claimed connection and says what it means for the connection.
async fn refresh(app: &App, claim: &RefreshClaim) -> HealthVerdict {
    let now = domain::now();
    let settings = &app.settings.token_refresh;
    let failed = |message: String| HealthVerdict::Failed {
        message,
        error_threshold: settings.error_threshold,
        retry_at: Some(now + backoff(&settings.retry_delays, claim.failure_count)),
    };
    if claim.refresh_token_expires_at.is_some_and(|at| at <= now) {
        return HealthVerdict::Expired {
            message: "the TikTok refresh token expired; reconnect the account".into(),
        };
    }
    let (Some(tiktok), Some(envelope)) = (app.tiktok_app(), claim.refresh_token_enc.as_deref()) else {
        return failed("no TikTok app or refresh token to refresh with".into());
    };
    let refresh_token = match app
        .vault
        .decrypt(SecretField::ConnectionRefreshToken, claim.id, envelope)
    {
        Ok(token) => Secret::new(token),
        Err(err) => return failed(format!("the stored refresh token cannot be read: {err}")),
    };
    let client = match app.platform_client() {
        Ok(client) => client,
        Err(err) => return failed(err.to_string()),
    };
    match client.tiktok_refresh_token(&tiktok, &refresh_token).await {
        Ok(tokens) => {
            if tokens
                .open_id
                .as_deref()
                .is_some_and(|id| id != claim.platform_user_id)
            {
                tracing::warn!(connection_id = %claim.id, "TikTok refresh returned another open_id than the connection's");
            }
            match sealed(app, claim, &tokens, now) {
                Ok(sealed) => HealthVerdict::Refreshed(sealed),
                Err(message) => failed(message),
            }
        }
        Err(err) if err.class == ErrorClass::Auth => {
            tracing::warn!(connection_id = %claim.id, error = %err, "TikTok refresh token rejected; the connection needs reconnecting");
            HealthVerdict::Expired {
                message: format!("TikTok rejected the refresh token ({err}); reconnect the account"),
            }
        }
        Err(err) => {
            tracing::warn!(connection_id = %claim.id, error = %err, "TikTok token refresh failed; will retry");
            failed(format!("token refresh failed: {err}"))
        }
    }
}

fn sealed(
    app: &App,
    claim: &RefreshClaim,
    tokens: &snorq_connectors::TikTokTokens,
    now: DateTime<Utc>,
) -> Result<RefreshedTokens, String> {
    let seal = |field, value: &Secret| {
        app.vault
            .encrypt(field, claim.id, value.expose())
            .map_err(|e| format!("could not encrypt the new token: {e}"))
    };
    Ok(RefreshedTokens {
        access_token_enc: seal(SecretField::ConnectionAccessToken, &tokens.access_token)?,
        refresh_token_enc: seal(SecretField::ConnectionRefreshToken, &tokens.refresh_token)?,
        token_fingerprint: fingerprint(tokens.access_token.expose()),
        access_token_expires_at: super::oauth::expiry(now, tokens.expires_in),
        refresh_token_expires_at: super::oauth::expiry(now, tokens.refresh_expires_in)
            .or(claim.refresh_token_expires_at),
    })
}

/// The wait before the next attempt after `failures` failed ones (the last delay repeats).
fn backoff(delays: &[chrono::Duration], failures: i32) -> chrono::Duration {
    let index = usize::try_from(failures)
        .unwrap_or(0)
        .min(delays.len().saturating_sub(1));
    delays.get(index).copied().unwrap_or(chrono::Duration::minutes(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_walks_the_delays_then_repeats_the_last() {
        let delays = [chrono::Duration::seconds(1), chrono::Duration::seconds(10)];
        assert_eq!(backoff(&delays, 0), chrono::Duration::seconds(1));
        assert_eq!(backoff(&delays, 1), chrono::Duration::seconds(10));
        assert_eq!(backoff(&delays, 7), chrono::Duration::seconds(10));
        assert_eq!(backoff(&delays, -1), chrono::Duration::seconds(1));
        assert_eq!(backoff(&[], 3), chrono::Duration::minutes(5));
    }
}
