//! Connection health (issue 7): checking a token with the platform on demand, and Meta's
//! deauthorize callback. Status changes are written with a `connection.updated` live event by
//! the store.

use snorq_connectors::{ErrorClass, Platform, Secret, verify};
use uuid::Uuid;

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult, account_proof, token_refresh};
use crate::crypto::SecretField;
use crate::domain::{self, ConnectionStatus, Role};
use crate::store::{Connection, HealthVerdict};

/// Asks the platform whether the connection's token still works (Meta `debug_token`, TikTok
/// `token_info`) and records the answer: valid makes it active again, rejected makes it
/// expired, no answer counts as one more failure. A dead TikTok access token is refreshed on
/// the spot when the refresh token allows. ADMIN or OWNER.
pub async fn check(app: &App, access: &OrgAccess, id: Uuid) -> AppResult<Connection> {
    access.require(Role::Admin)?;
    let connection = super::connections::get(app, access, id).await?;
    if connection.status == ConnectionStatus::Disconnected {
        return Err(AppError::conflict(
            "the connection is disconnected; connect the account again",
            None,
        ));
    }
    let platform = connection.platform.0;
    let client = app.platform_client()?;
    let settings = &app.settings.token_refresh;
    let failed = |message: String| HealthVerdict::Failed {
        message,
        error_threshold: settings.error_threshold,
        retry_at: None,
    };
    let token = connection
        .access_token_enc
        .as_deref()
        .map(|envelope| {
            app.vault
                .decrypt(SecretField::ConnectionAccessToken, id, envelope)
        })
        .transpose()
        .map_err(AppError::internal)?
        .map(Secret::new);
    let verdict = match (platform, token.clone()) {
        (_, None) => HealthVerdict::Expired {
            message: "the connection has no access token; connect the account again".into(),
        },
        (Platform::TikTok, Some(token)) => {
            let tiktok = app.tiktok_app().ok_or_else(|| {
                AppError::NotConfigured("checking TikTok needs tiktok_app_id and tiktok_app_secret".into())
            })?;
            match client.tiktok_token_info(&tiktok, &token).await {
                Ok(_) => HealthVerdict::Healthy,
                Err(err)
                    if err.class == ErrorClass::Auth
                        && connection.refresh_token_enc.is_some()
                        && connection.status != ConnectionStatus::Expired =>
                {
                    // The access token is dead but the refresh token may not be: try it.
                    if let Some(refreshed) = token_refresh::refresh_now(app, access.org_id(), id).await? {
                        return Ok(refreshed);
                    }
                    return Err(AppError::conflict(
                        "the connection is being refreshed right now; check again shortly",
                        None,
                    ));
                }
                Err(err) if err.class == ErrorClass::Auth => HealthVerdict::Expired {
                    message: format!("TikTok rejected the token ({err}); reconnect the account"),
                },
                Err(err) => failed(format!("the check failed: {err}")),
            }
        }
        (meta, Some(token)) => {
            let app_credentials = app.meta_app(meta).ok_or_else(|| {
                AppError::NotConfigured(format!(
                    "checking {meta} needs {meta}_app_id and {meta}_app_secret"
                ))
            })?;
            match client.meta_debug_token(meta, &app_credentials, &token).await {
                Ok(info) if info.is_valid => HealthVerdict::Healthy,
                Ok(info) => HealthVerdict::Expired {
                    message: info.error_message.unwrap_or_else(|| {
                        "Meta says the token is no longer valid; reconnect the account".into()
                    }),
                },
                Err(err) if err.class == ErrorClass::Auth => HealthVerdict::Expired {
                    message: format!("Meta rejected the token ({err}); reconnect the account"),
                },
                Err(err) => failed(format!("the check failed: {err}")),
            }
        }
    };
    // A token the platform still accepts must still reach this connection's account.
    let verdict = match (verdict, token.as_ref()) {
        (HealthVerdict::Healthy, Some(token)) => {
            let waba_id = connection.settings.0["waba_id"].as_str().map(str::to_owned);
            match account_proof::prove(
                app,
                platform,
                &connection.platform_user_id,
                token,
                waba_id.as_deref(),
            )
            .await
            {
                Ok(_) => HealthVerdict::Healthy,
                Err(AppError::Unproven { message, .. }) => HealthVerdict::Expired {
                    message: format!("{message}; connect the account again"),
                },
                Err(AppError::PlatformUnavailable(message)) => failed(message),
                Err(err) => return Err(err),
            }
        }
        (verdict, _) => verdict,
    };
    app.store
        .record_check(
            access.org_id(),
            id,
            connection.token_fingerprint.as_deref(),
            &verdict,
            domain::now(),
        )
        .await?
        .ok_or_else(|| {
            AppError::conflict(
                "the connection changed while it was checked (reconnected or refreshed); check again",
                None,
            )
        })
}

/// Meta's deauthorize callback: a user (or a Page) removed the app. The form's
/// `signed_request` is verified with the platform's app secret; every connection that user
/// granted (or that Page's) is disconnected. How many were.
pub async fn deauthorize(app: &App, platform: Platform, form: &[u8]) -> AppResult<usize> {
    if platform == Platform::TikTok {
        return Err(AppError::NotFound);
    }
    let secret = app.settings.webhooks.app_secret(platform).ok_or_else(|| {
        AppError::NotConfigured(format!("no {platform}_app_secret is configured on this server"))
    })?;
    let signed_request = url::form_urlencoded::parse(form)
        .find(|(key, _)| key == "signed_request")
        .map(|(_, value)| value.into_owned())
        .ok_or(AppError::InvalidSignature)?;
    let request = {
        use secrecy::ExposeSecret;
        verify::verify_meta_signed_request(secret.expose_secret().as_bytes(), &signed_request)
    }
    .map_err(|err| {
        tracing::warn!(%platform, error = %err, "deauthorize callback refused");
        AppError::InvalidSignature
    })?;
    let now = domain::now();
    // Meta signs when it issued the callback (whole seconds); a grant made after that second
    // is not concerned.
    let issued_before = request
        .issued_at
        .and_then(|at| chrono::DateTime::from_timestamp(at.saturating_add(1), 0))
        .unwrap_or(now);
    let gone = app
        .store
        .disconnect_deauthorized(
            request.user_id.as_deref(),
            request.profile_id.as_deref(),
            issued_before,
            &format!(
                "the app was removed on {} (deauthorize callback)",
                platform_name(platform)
            ),
            now,
        )
        .await?;
    tracing::info!(%platform, disconnected = gone.len(), "deauthorize callback applied");
    Ok(gone.len())
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::WhatsApp => "WhatsApp",
        Platform::Facebook => "Facebook",
        Platform::TikTok => "TikTok",
    }
}
