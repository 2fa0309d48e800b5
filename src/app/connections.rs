//! Platform connections: created with credentials an admin supplies, or by the OAuth flows
//! (`oauth.rs`) through [`upsert`]. Tokens are
//! encrypted by the vault before they reach the store, bound to the connection's id and field;
//! nothing returned from here carries a token in clear.

use chrono::{DateTime, Utc};
use serde_json::json;
use snorq_connectors::{Platform, Secret};
use sqlx::types::Json;
use uuid::Uuid;

use crate::crypto::tokens::fingerprint;
use crate::crypto::{SecretField, Vault};
use crate::domain::{self, ConnectionStatus, Invalid, Role};
use crate::store::{Connection, PlatformColumn};

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult, account_proof};

/// Credentials as given by an admin. Debug output never shows the tokens.
pub struct Credentials {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_token", &"***")
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct NewConnection {
    pub platform: Platform,
    pub platform_user_id: String,
    pub name: Option<String>,
    /// WhatsApp: the number's WhatsApp Business Account, when the caller knows it.
    pub waba_id: Option<String>,
    pub credentials: Credentials,
}

#[derive(Debug, Default)]
pub struct ConnectionChanges {
    /// `Some(None)` clears the name.
    pub name: Option<Option<String>>,
    pub credentials: Option<Credentials>,
}

fn validate_account_id(id: &str) -> Result<String, Invalid> {
    let id = id.trim();
    if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Invalid::new(
            "platform_user_id",
            "must be 1 to 128 characters without spaces (phone_number_id, Page id or TikTok open_id)",
        ));
    }
    Ok(id.to_owned())
}

fn validate_name(name: Option<&str>) -> Result<Option<String>, Invalid> {
    match name.map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.chars().count() > 100 => Err(Invalid::new("name", "must be at most 100 characters")),
        Some(n) => Ok(Some(n.to_owned())),
    }
}

fn validate_token(field: &'static str, token: &str) -> Result<(), Invalid> {
    // Platform tokens are printable ASCII; anything else could not even travel in a header.
    if token.is_empty() || token.len() > 8192 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new(
            field,
            "must be 1 to 8192 printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

fn validate_credentials(credentials: &Credentials) -> Result<(), Invalid> {
    validate_token("access_token", &credentials.access_token)?;
    if let Some(refresh) = &credentials.refresh_token {
        validate_token("refresh_token", refresh)?;
    }
    Ok(())
}

/// Encrypts the credentials into the connection's token columns and marks it active.
fn apply_credentials(vault: &Vault, connection: &mut Connection, credentials: &Credentials) -> AppResult<()> {
    validate_credentials(credentials)?;
    connection.access_token_enc = Some(
        vault
            .encrypt(
                SecretField::ConnectionAccessToken,
                connection.id,
                &credentials.access_token,
            )
            .map_err(AppError::internal)?,
    );
    connection.refresh_token_enc = credentials
        .refresh_token
        .as_deref()
        .map(|t| vault.encrypt(SecretField::ConnectionRefreshToken, connection.id, t))
        .transpose()
        .map_err(AppError::internal)?;
    connection.token_fingerprint = Some(fingerprint(&credentials.access_token));
    connection.access_token_expires_at = credentials.access_token_expires_at;
    connection.refresh_token_expires_at = credentials.refresh_token_expires_at;
    connection.status = ConnectionStatus::Active;
    connection.last_error = None;
    connection.failure_count = 0;
    connection.granted_at = Some(crate::domain::now());
    Ok(())
}

fn new_connection(
    org_id: Uuid,
    platform: Platform,
    platform_user_id: String,
    now: DateTime<Utc>,
) -> Connection {
    Connection {
        id: domain::new_id(),
        organization_id: org_id,
        platform: PlatformColumn(platform),
        platform_user_id,
        name: None,
        status: ConnectionStatus::Active,
        access_token_enc: None,
        refresh_token_enc: None,
        token_fingerprint: None,
        access_token_expires_at: None,
        refresh_token_expires_at: None,
        settings: Json(json!({})),
        last_error: None,
        granted_by_external_id: None,
        failure_count: 0,
        last_checked_at: None,
        last_refreshed_at: None,
        created_at: now,
        updated_at: now,
        granted_at: None,
    }
}

/// An account a connect flow was granted.
#[derive(Debug, Clone)]
pub struct Account {
    pub platform: Platform,
    pub platform_user_id: String,
    pub name: Option<String>,
    /// The platform user who granted it (Meta's app-scoped id), for deauthorize callbacks.
    pub granted_by: Option<String>,
    /// Merged into the connection's settings (e.g. WhatsApp's `waba_id`).
    pub settings: serde_json::Value,
}

/// Stores a grant: the organization's connection for the account gets the new tokens and is
/// active again (whatever its status was), or a new connection is created. An account live in
/// another organization is `Conflict`.
pub async fn upsert(
    app: &App,
    org_id: Uuid,
    account: Account,
    credentials: &Credentials,
) -> AppResult<Connection> {
    let now = domain::now();
    let name = validate_name(account.name.as_deref())?;
    let existing = app
        .store
        .connection_by_account(org_id, account.platform, &account.platform_user_id)
        .await?;
    let (mut connection, read_at) = match existing {
        Some(existing) => {
            let read_at = existing.updated_at;
            (existing, Some(read_at))
        }
        None => (
            new_connection(
                org_id,
                account.platform,
                validate_account_id(&account.platform_user_id)?,
                now,
            ),
            None,
        ),
    };
    connection.name = name.or(connection.name);
    connection.granted_by_external_id = account.granted_by.or(connection.granted_by_external_id);
    connection.settings = super::oauth::merge_settings(&connection.settings, &account.settings);
    connection.updated_at = now;
    // Encrypted after the id is known: the ciphertext is bound to the row.
    apply_credentials(&app.vault, &mut connection, credentials)?;
    let saved = match read_at {
        Some(read_at) => app.store.save_connection(&connection, read_at).await?,
        None => app.store.insert_connection(&connection).await?,
    };
    tracing::info!(connection_id = %saved.id, platform = %account.platform, "connection granted");
    Ok(saved)
}

/// Connects a platform account to the organization (ADMIN or OWNER). An account connected
/// anywhere else, or already here, answers `Conflict`; one this organization disconnected
/// earlier is reconnected in place, keeping its conversations.
pub async fn create(app: &App, access: &OrgAccess, new: NewConnection) -> AppResult<Connection> {
    access.require(Role::Admin)?;
    let platform_user_id = validate_account_id(&new.platform_user_id)?;
    let name = validate_name(new.name.as_deref())?;
    let waba_id = new
        .waba_id
        .as_deref()
        .map(|id| {
            validate_account_id(id)
                .map_err(|_| Invalid::new("waba_id", "must be a WhatsApp Business Account id"))
        })
        .transpose()?;
    if waba_id.is_some() && new.platform != Platform::WhatsApp {
        return Err(Invalid::new("waba_id", "only WhatsApp connections have a waba_id").into());
    }
    validate_credentials(&new.credentials)?;
    // Before anything is stored: the token must reach the account it claims.
    let proven = account_proof::prove(
        app,
        new.platform,
        &platform_user_id,
        &Secret::new(new.credentials.access_token.clone()),
        waba_id.as_deref(),
    )
    .await?;
    let now = domain::now();
    let previous = app
        .store
        .connection_by_account(access.org_id(), new.platform, &platform_user_id)
        .await?;
    match previous {
        Some(existing) if existing.status != ConnectionStatus::Disconnected => Err(AppError::conflict(
            "this platform account is already connected",
            Some("platform_user_id"),
        )),
        Some(mut existing) => {
            let read_at = existing.updated_at;
            existing.name = name.or(existing.name);
            existing.settings = super::oauth::merge_settings(&existing.settings, &proven.settings);
            existing.updated_at = now;
            apply_credentials(&app.vault, &mut existing, &new.credentials)?;
            let saved = app.store.save_connection(&existing, read_at).await?;
            tracing::info!(connection_id = %saved.id, platform = %new.platform, "connection re-established");
            Ok(saved)
        }
        None => {
            let mut connection = new_connection(access.org_id(), new.platform, platform_user_id, now);
            connection.name = name;
            connection.settings = super::oauth::merge_settings(&connection.settings, &proven.settings);
            apply_credentials(&app.vault, &mut connection, &new.credentials)?;
            let saved = app.store.insert_connection(&connection).await?;
            tracing::info!(connection_id = %saved.id, platform = %new.platform, "connection created");
            Ok(saved)
        }
    }
}

pub async fn list(app: &App, access: &OrgAccess) -> AppResult<Vec<Connection>> {
    Ok(app.store.connections(access.org_id()).await?)
}

pub async fn get(app: &App, access: &OrgAccess, id: Uuid) -> AppResult<Connection> {
    app.store
        .connection(access.org_id(), id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Renames a connection or replaces its credentials (which makes it active again).
pub async fn update(
    app: &App,
    access: &OrgAccess,
    id: Uuid,
    changes: ConnectionChanges,
) -> AppResult<Connection> {
    access.require(Role::Admin)?;
    let mut connection = get(app, access, id).await?;
    let read_at = connection.updated_at;
    if let Some(name) = changes.name {
        connection.name = validate_name(name.as_deref())?;
    }
    if let Some(credentials) = &changes.credentials {
        validate_credentials(credentials)?;
        // New credentials must reach this connection's account, as at creation.
        let waba_id = connection.settings.0["waba_id"].as_str().map(str::to_owned);
        let proven = account_proof::prove(
            app,
            connection.platform.0,
            &connection.platform_user_id,
            &Secret::new(credentials.access_token.clone()),
            waba_id.as_deref(),
        )
        .await?;
        connection.settings = super::oauth::merge_settings(&connection.settings, &proven.settings);
        apply_credentials(&app.vault, &mut connection, credentials)?;
    }
    connection.updated_at = domain::now();
    Ok(app.store.save_connection(&connection, read_at).await?)
}

/// Disconnects: the tokens are erased and webhooks for the account stop routing here. The row
/// stays so that its conversations keep their history. Idempotent.
pub async fn disconnect(app: &App, access: &OrgAccess, id: Uuid) -> AppResult<()> {
    access.require(Role::Admin)?;
    let mut connection = get(app, access, id).await?;
    let read_at = connection.updated_at;
    if connection.status == ConnectionStatus::Disconnected {
        return Ok(());
    }
    connection.status = ConnectionStatus::Disconnected;
    connection.access_token_enc = None;
    connection.refresh_token_enc = None;
    connection.token_fingerprint = None;
    connection.access_token_expires_at = None;
    connection.refresh_token_expires_at = None;
    connection.updated_at = domain::now();
    app.store.save_connection(&connection, read_at).await?;
    tracing::info!(connection_id = %id, "connection disconnected");
    Ok(())
}
