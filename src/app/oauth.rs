//! Connecting accounts through the platforms' OAuth flows (issue 7).
//!
//! `start` records a state row and signs a state naming it (organization, user, platform,
//! expiry); the platform sends the browser back to `callback` with a code and that state.
//! The callback checks the signature and expiry, consumes the row (a state is good once), checks
//! that the user may still manage connections, and only then calls the platform: exchange the
//! code, list and subscribe what the grant covers, store the tokens encrypted, and create or
//! update one connection per account.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use snorq_connectors::{ApiError, Platform, Secret, oauth as urls};
use sqlx::types::Json;
use uuid::Uuid;

use super::connections::{self, Credentials};
use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};
use crate::crypto::Vault;
use crate::crypto::tokens::hash_token;
use crate::domain::{self, Role};
use crate::store::{NewOAuthState, StateUse};

/// The cookie that binds a flow to the browser that started it.
pub const BROWSER_COOKIE: &str = "snorq_connect";
/// How long a started flow may take (the 10 minutes).
const STATE_TTL_MINUTES: i64 = 10;
const STATE_PURPOSE: &str = "oauth-state";
/// Longer states are not ours; refuse before decoding.
const MAX_STATE_LEN: usize = 1024;

/// Options of a start: Facebook may connect only some of the user's Pages.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct StartOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Started {
    pub authorize_url: String,
    pub state: String,
    pub expires_at: DateTime<Utc>,
    /// The browser-binding secret to set as a cookie in the browser that started the flow
    /// (the same one it sent, or a new one); the callback must come back with it.
    pub browser_binding: String,
}

/// A browser-binding secret the caller sent, if it looks like one we issue; else a new one.
pub fn browser_binding(sent: Option<&str>) -> String {
    match sent {
        Some(value)
            if value.len() == 43
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            value.to_owned()
        }
        _ => {
            let bytes: [u8; 32] = rand::random();
            URL_SAFE_NO_PAD.encode(bytes)
        }
    }
}

/// What a state carries: checked by signature before the database is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StateClaims {
    id: Uuid,
    org: Uuid,
    user: Uuid,
    platform: Platform,
    exp: i64,
}

fn encode_state(vault: &Vault, claims: &StateClaims) -> AppResult<String> {
    let payload = serde_json::to_vec(claims).map_err(AppError::internal)?;
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signature = vault.sign(STATE_PURPOSE, payload.as_bytes());
    Ok(format!("{payload}.{signature}"))
}

fn decode_state(vault: &Vault, state: &str, now: DateTime<Utc>) -> AppResult<StateClaims> {
    let invalid = AppError::InvalidState("the state is not one this server issued");
    if state.len() > MAX_STATE_LEN {
        return Err(invalid);
    }
    let Some((payload, signature)) = state.split_once('.') else {
        return Err(invalid);
    };
    if !vault.verify_signature(STATE_PURPOSE, payload.as_bytes(), signature) {
        return Err(invalid);
    }
    let claims: StateClaims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(invalid)?;
    if claims.exp <= now.timestamp() {
        return Err(AppError::InvalidState(
            "the connect flow expired (10 minutes); start it again",
        ));
    }
    Ok(claims)
}

fn redirect_uri(app: &App, platform: Platform) -> AppResult<String> {
    let base = app.settings.oauth.public_url.as_deref().ok_or_else(|| {
        AppError::NotConfigured("public_url is not configured: platforms cannot redirect back".into())
    })?;
    Ok(format!("{base}/oauth/{platform}/callback"))
}

fn not_configured(platform: Platform) -> AppError {
    AppError::NotConfigured(format!(
        "connecting {platform} needs {platform}_app_id and {platform}_app_secret on this server"
    ))
}

/// Starts a connect flow (ADMIN or OWNER): the URL to send the browser to, and its state.
pub async fn start(
    app: &App,
    access: &OrgAccess,
    platform: Platform,
    options: StartOptions,
    browser: Option<&str>,
) -> AppResult<Started> {
    access.require(Role::Admin)?;
    let app_id = match platform {
        Platform::TikTok => app.tiktok_app().map(|a| a.app_id),
        meta => app.meta_app(meta).map(|a| a.app_id),
    }
    .ok_or_else(|| not_configured(platform))?;
    if let Some(pages) = &options.page_ids
        && (pages.is_empty() || pages.len() > 100 || pages.iter().any(|p| !is_account_id(p)))
    {
        return Err(crate::domain::Invalid::new("page_ids", "must be 1 to 100 Page ids").into());
    }
    let redirect_uri = redirect_uri(app, platform)?;
    let browser_binding = browser_binding(browser);
    let now = domain::now();
    let expires_at = now + chrono::Duration::minutes(STATE_TTL_MINUTES);
    let claims = StateClaims {
        // Random, not time-ordered: nothing about it is guessable.
        id: Uuid::new_v4(),
        org: access.org_id(),
        user: access.user_id,
        platform,
        exp: expires_at.timestamp(),
    };
    app.store
        .insert_oauth_state(&NewOAuthState {
            id: claims.id,
            organization_id: claims.org,
            user_id: claims.user,
            platform,
            redirect_uri: redirect_uri.clone(),
            options: serde_json::to_value(&options).map_err(AppError::internal)?,
            browser_hash: hash_token(&browser_binding),
            created_at: now,
            expires_at,
        })
        .await?;
    let state = encode_state(&app.vault, &claims)?;
    let config = &app.settings.platforms;
    let authorize_url = match platform {
        Platform::TikTok => {
            urls::tiktok_authorize_url(config, &app_id, &redirect_uri, &state, urls::TIKTOK_SCOPES)
        }
        Platform::Facebook => {
            urls::facebook_login_url(config, &app_id, &redirect_uri, &state, urls::FACEBOOK_SCOPES)
        }
        Platform::WhatsApp => urls::whatsapp_signup_url(
            config,
            &app_id,
            &redirect_uri,
            &state,
            app.settings.oauth.whatsapp_config_id.as_deref(),
        ),
    };
    Ok(Started {
        authorize_url,
        state,
        expires_at,
        browser_binding,
    })
}

/// What the platform (or, for WhatsApp Embedded Signup, the page that ran it) sent back.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set when the user refused consent (`access_denied`).
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// WhatsApp Embedded Signup reports these to the page, which passes them on.
    pub waba_id: Option<String>,
    pub phone_number_id: Option<String>,
}

/// The end of a flow whose state was good: the browser is sent back either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackOutcome {
    Connected {
        connection_ids: Vec<Uuid>,
    },
    /// A stable reason: access_denied, missing_code, exchange_failed, platform_unavailable,
    /// subscribe_failed, no_accounts, already_connected, forbidden, invalid_request.
    Failed {
        reason: &'static str,
    },
}

/// Where the browser goes after the callback.
pub fn return_url(app: &App, platform: Platform, outcome: &CallbackOutcome) -> String {
    let base = app
        .settings
        .oauth
        .return_url
        .clone()
        .or_else(|| {
            app.settings
                .oauth
                .public_url
                .as_ref()
                .map(|p| format!("{p}/dashboard/connections"))
        })
        .unwrap_or_else(|| "/dashboard/connections".to_owned());
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("platform", platform.as_str());
    match outcome {
        CallbackOutcome::Connected { connection_ids } => {
            let ids: Vec<String> = connection_ids.iter().map(Uuid::to_string).collect();
            query
                .append_pair("status", "connected")
                .append_pair("connection_ids", &ids.join(","));
        }
        CallbackOutcome::Failed { reason } => {
            query.append_pair("status", "error").append_pair("error", reason);
        }
    }
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{}", query.finish())
}

/// Finishes a flow. A state that is not ours, expired or used is `InvalidState` (400, nothing
/// stored, no platform call); anything after that ends in an outcome for the browser.
pub async fn callback(
    app: &App,
    platform: Platform,
    params: CallbackParams,
    browser: Option<&str>,
) -> AppResult<CallbackOutcome> {
    let now = domain::now();
    let state = params
        .state
        .as_deref()
        .ok_or(AppError::InvalidState("the state is missing"))?;
    let claims = decode_state(&app.vault, state, now)?;
    if claims.platform != platform {
        return Err(AppError::InvalidState(
            "the state belongs to another platform's flow",
        ));
    }
    let row = match app.store.consume_oauth_state(claims.id, now).await? {
        StateUse::Consumed(row) => row,
        StateUse::Used => return Err(AppError::InvalidState("the state was already used")),
        StateUse::Expired => {
            return Err(AppError::InvalidState(
                "the connect flow expired (10 minutes); start it again",
            ));
        }
        StateUse::Unknown => return Err(AppError::InvalidState("the state is not one this server issued")),
    };
    if row.organization_id != claims.org || row.user_id != claims.user || row.platform.0 != platform {
        return Err(AppError::InvalidState("the state is not one this server issued"));
    }
    // The browser finishing the flow must be the one that started it: otherwise an admin could
    // hand their consent link to another account's owner and receive that account.
    let same_browser = match (row.browser_hash.as_deref(), browser) {
        (Some(expected), Some(cookie)) => {
            use subtle::ConstantTimeEq;
            bool::from(expected.as_bytes().ct_eq(hash_token(cookie).as_bytes()))
        }
        _ => false,
    };
    if !same_browser {
        tracing::warn!(%platform, "connect flow finished in another browser than the one that started it");
        return Err(AppError::InvalidState(
            "the connect flow was started in another browser; start it again from this one",
        ));
    }
    let failed = |reason| Ok(CallbackOutcome::Failed { reason });
    // Consent can be withdrawn between start and callback: so can the user's role.
    let allowed = app
        .store
        .membership(claims.org, claims.user)
        .await?
        .is_some_and(|m| m.role >= Role::Admin);
    if !allowed {
        return failed("forbidden");
    }
    if params.error.is_some() {
        tracing::info!(%platform, error = ?params.error, "connect flow refused by the user");
        return failed("access_denied");
    }
    let Some(code) = params.code.clone().filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return failed("missing_code");
    };
    let code = Secret::new(code);
    let grant = Grant {
        org_id: claims.org,
        redirect_uri: row.redirect_uri,
        options: serde_json::from_value(row.options.0).unwrap_or_default(),
    };
    let connected = match platform {
        Platform::TikTok => connect_tiktok(app, &grant, &code).await,
        Platform::Facebook => connect_facebook(app, &grant, &code).await,
        Platform::WhatsApp => connect_whatsapp(app, &grant, &code, &params).await,
    };
    match connected {
        Ok(connection_ids) if connection_ids.is_empty() => failed("no_accounts"),
        Ok(connection_ids) => {
            tracing::info!(%platform, org_id = %claims.org, connections = connection_ids.len(), "accounts connected");
            Ok(CallbackOutcome::Connected { connection_ids })
        }
        Err(Failure::Reason(reason)) => failed(reason),
        Err(Failure::App(err)) => Err(err),
    }
}

struct Grant {
    org_id: Uuid,
    redirect_uri: String,
    options: StartOptions,
}

enum Failure {
    Reason(&'static str),
    App(AppError),
}

impl From<crate::store::StoreError> for Failure {
    fn from(err: crate::store::StoreError) -> Self {
        Failure::App(err.into())
    }
}

impl From<AppError> for Failure {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Conflict { .. } => Failure::Reason("already_connected"),
            AppError::Validation(_) => Failure::Reason("invalid_request"),
            other => Failure::App(other),
        }
    }
}

/// A platform call failed at `step`: worth retrying later, or not.
fn platform_failure(step: &'static str, err: &ApiError) -> Failure {
    tracing::warn!(error = %err, step, "connect flow: platform call failed");
    if err.class.is_outage() {
        Failure::Reason("platform_unavailable")
    } else {
        Failure::Reason(step)
    }
}

/// When a token given now expires; a lifetime too large for a date means none.
pub(crate) fn expiry(now: DateTime<Utc>, after: Option<chrono::Duration>) -> Option<DateTime<Utc>> {
    after.and_then(|d| now.checked_add_signed(d))
}

async fn connect_tiktok(app: &App, grant: &Grant, code: &Secret) -> Result<Vec<Uuid>, Failure> {
    let tiktok = app
        .tiktok_app()
        .ok_or_else(|| Failure::App(not_configured(Platform::TikTok)))?;
    let client = app.platform_client()?;
    let tokens = client
        .tiktok_exchange_code(&tiktok, code, &grant.redirect_uri)
        .await
        .map_err(|e| platform_failure("exchange_failed", &e))?;
    let Some(open_id) = tokens.open_id.clone().filter(|id| is_account_id(id)) else {
        return Err(Failure::Reason("exchange_failed"));
    };
    if app
        .store
        .account_live_elsewhere(grant.org_id, Platform::TikTok, &open_id)
        .await?
    {
        return Err(Failure::Reason("already_connected"));
    }
    let now = domain::now();
    let credentials = Credentials {
        access_token: tokens.access_token.expose().to_owned(),
        refresh_token: Some(tokens.refresh_token.expose().to_owned()),
        access_token_expires_at: expiry(now, tokens.expires_in),
        refresh_token_expires_at: expiry(now, tokens.refresh_expires_in),
    };
    let account = connections::Account {
        platform: Platform::TikTok,
        platform_user_id: open_id,
        name: None,
        granted_by: None,
        settings: json!({}),
    };
    let connection = connections::upsert(app, grant.org_id, account, &credentials).await?;
    Ok(vec![connection.id])
}

async fn connect_facebook(app: &App, grant: &Grant, code: &Secret) -> Result<Vec<Uuid>, Failure> {
    const PLATFORM: Platform = Platform::Facebook;
    let meta = app
        .meta_app(PLATFORM)
        .ok_or_else(|| Failure::App(not_configured(PLATFORM)))?;
    let client = app.platform_client()?;
    let short = client
        .meta_exchange_code(PLATFORM, &meta, code, Some(&grant.redirect_uri))
        .await
        .map_err(|e| platform_failure("exchange_failed", &e))?;
    let long = client
        .meta_exchange_long_lived(PLATFORM, &meta, &short.access_token)
        .await
        .map_err(|e| platform_failure("exchange_failed", &e))?;
    let user = client
        .meta_me(PLATFORM, &long.access_token)
        .await
        .map_err(|e| platform_failure("exchange_failed", &e))?;
    let pages = client
        .meta_pages(&long.access_token)
        .await
        .map_err(|e| platform_failure("exchange_failed", &e))?;
    let chosen = |id: &str| {
        grant
            .options
            .page_ids
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|p| p == id))
    };
    let mut connected = Vec::new();
    // Every chosen Page must be subscribed before any is stored: a connection that receives
    // no webhooks would look healthy and stay silent.
    let mut seen = std::collections::HashSet::new();
    let candidates: Vec<_> = pages
        .into_iter()
        .filter(|p| chosen(&p.id) && is_account_id(&p.id) && seen.insert(p.id.clone()))
        .collect();
    // A Page live in another organization is left alone: not subscribed, not stored.
    let mut taken_elsewhere = 0;
    let mut pages = Vec::new();
    for page in candidates {
        if app
            .store
            .account_live_elsewhere(grant.org_id, PLATFORM, &page.id)
            .await?
        {
            taken_elsewhere += 1;
        } else {
            pages.push(page);
        }
    }
    for page in &pages {
        client
            .meta_subscribe_page(&page.id, &page.access_token)
            .await
            .map_err(|e| platform_failure("subscribe_failed", &e))?;
    }
    for page in pages {
        let credentials = Credentials {
            // Page tokens from a long-lived user token do not expire.
            access_token: page.access_token.expose().to_owned(),
            refresh_token: None,
            access_token_expires_at: None,
            refresh_token_expires_at: None,
        };
        let account = connections::Account {
            platform: PLATFORM,
            platform_user_id: page.id,
            name: page.name,
            granted_by: Some(user.id.clone()),
            settings: json!({}),
        };
        // A Page live in another organization is skipped; the others are still connected.
        match connections::upsert(app, grant.org_id, account, &credentials).await {
            Ok(connection) => connected.push(connection.id),
            Err(AppError::Conflict { .. }) => taken_elsewhere += 1,
            Err(err) => return Err(err.into()),
        }
    }
    if connected.is_empty() && taken_elsewhere > 0 {
        return Err(Failure::Reason("already_connected"));
    }
    Ok(connected)
}

async fn connect_whatsapp(
    app: &App,
    grant: &Grant,
    code: &Secret,
    params: &CallbackParams,
) -> Result<Vec<Uuid>, Failure> {
    const PLATFORM: Platform = Platform::WhatsApp;
    let (Some(waba_id), Some(phone_number_id)) = (
        params.waba_id.as_deref().filter(|id| is_account_id(id)),
        params.phone_number_id.as_deref().filter(|id| is_account_id(id)),
    ) else {
        return Err(Failure::Reason("invalid_request"));
    };
    let meta = app
        .meta_app(PLATFORM)
        .ok_or_else(|| Failure::App(not_configured(PLATFORM)))?;
    let client = app.platform_client()?;
    // Embedded Signup's code is exchanged without a redirect_uri.
    let token = client
        .meta_exchange_code(PLATFORM, &meta, code, None)
        .await
        .map_err(|e| platform_failure("exchange_failed", &e))?;
    // The ids come from the browser: the number must be one the granted token reaches, or
    // anyone could claim any number.
    let numbers = client
        .whatsapp_phone_numbers(waba_id, &token.access_token)
        .await
        .map_err(|e| platform_failure("exchange_failed", &e))?;
    if !numbers.iter().any(|n| n == phone_number_id) {
        tracing::warn!(
            waba_id,
            "Embedded Signup reported a number the granted token does not reach"
        );
        return Err(Failure::Reason("invalid_request"));
    }
    // A number live in another organization is left alone: its WABA is not subscribed.
    if app
        .store
        .account_live_elsewhere(grant.org_id, PLATFORM, phone_number_id)
        .await?
    {
        return Err(Failure::Reason("already_connected"));
    }
    client
        .whatsapp_subscribe_waba(waba_id, &token.access_token)
        .await
        .map_err(|e| platform_failure("subscribe_failed", &e))?;
    let now = domain::now();
    let credentials = Credentials {
        access_token: token.access_token.expose().to_owned(),
        refresh_token: None,
        access_token_expires_at: expiry(now, token.expires_in),
        refresh_token_expires_at: None,
    };
    let account = connections::Account {
        platform: PLATFORM,
        platform_user_id: phone_number_id.to_owned(),
        name: None,
        granted_by: None,
        settings: json!({ "waba_id": waba_id }),
    };
    Ok(vec![
        connections::upsert(app, grant.org_id, account, &credentials)
            .await?
            .id,
    ])
}

/// Platform account ids are digits, letters, `-` and `_` (they end up in URL paths).
fn is_account_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Settings merged into a connection's: the keys given replace the same keys.
pub(crate) fn merge_settings(current: &Json<Value>, patch: &Value) -> Json<Value> {
    let mut merged = current.0.clone();
    if let (Some(target), Some(patch)) = (merged.as_object_mut(), patch.as_object()) {
        for (key, value) in patch {
            target.insert(key.clone(), value.clone());
        }
    }
    Json(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        let key = crate::crypto::EncryptionKey::from_base64(&crate::crypto::EncryptionKey::generate_base64())
            .unwrap();
        Vault::new(crate::crypto::Keyring::new(vec![key]).unwrap())
    }

    fn claims(exp: i64) -> StateClaims {
        StateClaims {
            id: Uuid::new_v4(),
            org: Uuid::new_v4(),
            user: Uuid::new_v4(),
            platform: Platform::TikTok,
            exp,
        }
    }

    #[test]
    fn states_decode_only_when_signed_here_and_unexpired() {
        let vault = vault();
        let now = Utc::now();
        let good = claims((now + chrono::Duration::minutes(10)).timestamp());
        let state = encode_state(&vault, &good).unwrap();
        assert_eq!(decode_state(&vault, &state, now).unwrap(), good);
        // Expired: refused even though the signature is good.
        let old = encode_state(&vault, &claims(now.timestamp() - 1)).unwrap();
        assert!(matches!(
            decode_state(&vault, &old, now),
            Err(AppError::InvalidState(_))
        ));
        // Signed by another server (another key), or altered.
        let foreign = encode_state(&super::tests::vault(), &good).unwrap();
        assert!(decode_state(&vault, &foreign, now).is_err());
        let (payload, signature) = state.split_once('.').unwrap();
        let other_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(good.exp)).unwrap());
        for forged in [
            format!("{other_payload}.{signature}"),
            format!("{payload}x.{signature}"),
            payload.to_owned(),
            String::new(),
            "a".repeat(MAX_STATE_LEN + 1),
        ] {
            assert!(
                matches!(decode_state(&vault, &forged, now), Err(AppError::InvalidState(_))),
                "{forged}"
            );
        }
    }

    #[test]
    fn account_ids_are_path_safe() {
        assert!(is_account_id("106540352242922"));
        assert!(is_account_id("-000Ab_9"));
        for bad in ["", "a/b", "a b", "../x", "a?b", &"1".repeat(129)] {
            assert!(!is_account_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn settings_merge_replaces_given_keys_only() {
        let merged = merge_settings(
            &Json(json!({"waba_id": "1", "keep": true})),
            &json!({"waba_id": "2"}),
        );
        assert_eq!(merged.0, json!({"waba_id": "2", "keep": true}));
    }
}
