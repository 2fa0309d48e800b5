//! Platform connections: the accounts an organization connected, and keeping them healthy
//! (OAuth states, token refresh claims, health verdicts).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use snorq_connectors::Platform;
use sqlx::types::Json;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::ConnectionStatus;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Connection {
    pub id: Uuid,
    pub organization_id: Uuid,
    #[sqlx(try_from = "String")]
    pub platform: PlatformColumn,
    pub platform_user_id: String,
    pub name: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ConnectionStatus,
    /// Vault envelopes; never plaintext (see `crypto::vault`).
    pub access_token_enc: Option<String>,
    pub refresh_token_enc: Option<String>,
    pub token_fingerprint: Option<String>,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    pub settings: Json<Value>,
    pub last_error: Option<String>,
    /// The platform user who granted it (Meta's app-scoped user id; deauthorize names them).
    pub granted_by_external_id: Option<String>,
    /// Refreshes and checks failed in a row without a verdict on the token.
    pub failure_count: i32,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the platform last granted these credentials (a connect flow, or credentials given
    /// by hand): a deauthorize issued before it concerns an older grant.
    pub granted_at: Option<DateTime<Utc>>,
}

/// `Platform` as a column value (the connectors crate owns `Platform` and knows no SQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformColumn(pub Platform);

impl TryFrom<String> for PlatformColumn {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        value.parse().map(PlatformColumn).map_err(|e| e.to_string())
    }
}

/// The encrypted columns of one connection, for key rotation.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectionSecrets {
    pub id: Uuid,
    pub access_token_enc: Option<String>,
    pub refresh_token_enc: Option<String>,
}

/// An OAuth start: the state the platform hands back names this row.
#[derive(Debug, Clone)]
pub struct NewOAuthState {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub platform: Platform,
    /// Sent to the platform with the code request; the exchange must repeat it.
    pub redirect_uri: String,
    pub options: Value,
    /// SHA-256 of the browser-binding cookie set when the flow started.
    pub browser_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OAuthState {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    #[sqlx(try_from = "String")]
    pub platform: PlatformColumn,
    pub redirect_uri: String,
    pub options: Json<Value>,
    pub browser_hash: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// What consuming a state found.
#[derive(Debug, Clone)]
pub enum StateUse {
    /// Unused and unexpired: now used.
    Consumed(OAuthState),
    Used,
    Expired,
    Unknown,
}

/// A connection this process may refresh until `claimed_until`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshClaim {
    pub id: Uuid,
    pub organization_id: Uuid,
    #[sqlx(try_from = "String")]
    pub platform: PlatformColumn,
    pub platform_user_id: String,
    #[sqlx(try_from = "String")]
    pub status: ConnectionStatus,
    pub refresh_token_enc: Option<String>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    pub failure_count: i32,
    pub last_error: Option<String>,
    pub claimed_until: DateTime<Utc>,
}

/// New tokens from a refresh, already encrypted for the connection's row.
#[derive(Debug, Clone)]
pub struct RefreshedTokens {
    pub access_token_enc: String,
    pub refresh_token_enc: String,
    pub token_fingerprint: String,
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
}

/// What a refresh or a check learned about a connection's token.
#[derive(Debug, Clone)]
pub enum HealthVerdict {
    /// A refresh gave new tokens: active, failures forgotten.
    Refreshed(RefreshedTokens),
    /// The platform accepted the token: active, failures forgotten.
    Healthy,
    /// The platform rejected the token (or the refresh token): expired until reconnected.
    Expired { message: String },
    /// No answer about the token (5xx, timeout, rate limit): one more failure in a row; at
    /// `error_threshold` an active connection turns `error`. No refresh before `retry_at`.
    Failed {
        message: String,
        error_threshold: i32,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// Platform connections: their records, OAuth states, refresh claims and health verdicts.
#[async_trait]
pub trait ConnectionStore: Send + Sync + 'static {
    // --- platform connections ---

    /// Fails with `Conflict(ConnectionLiveAccount)` when the account is connected anywhere.
    async fn insert_connection(&self, connection: &Connection) -> StoreResult<Connection>;

    async fn connections(&self, org_id: Uuid) -> StoreResult<Vec<Connection>>;

    async fn connection(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<Connection>>;

    /// Whether the account is connected (not disconnected) in an organization other than
    /// `org_id`: the connect flows leave such accounts alone.
    async fn account_live_elsewhere(
        &self,
        org_id: Uuid,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<bool>;

    async fn connection_by_account(
        &self,
        org_id: Uuid,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<Option<Connection>>;

    /// Writes every mutable field of the connection, if it is unchanged since it was read
    /// (`updated_at` still `read_at`; otherwise `Stale`); `NotFound` when it is not in that org.
    async fn save_connection(
        &self,
        connection: &Connection,
        read_at: DateTime<Utc>,
    ) -> StoreResult<Connection>;

    /// Encrypted token columns of every connection with an id after `after`, in id order.
    async fn connection_secrets_page(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<ConnectionSecrets>>;

    /// Replaces the encrypted tokens only if they are still `old` (a concurrent change wins), and
    /// bumps `updated_at` so an edit that read the old tokens cannot write them back; true when
    /// the row was updated.
    async fn replace_connection_secrets(
        &self,
        old: &ConnectionSecrets,
        new: &ConnectionSecrets,
    ) -> StoreResult<bool>;

    async fn insert_oauth_state(&self, state: &NewOAuthState) -> StoreResult<()>;

    /// Marks the state used if it is unused and unexpired, atomically: a state is good once.
    async fn consume_oauth_state(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<StateUse>;

    /// Claims up to `limit` connections with a refresh token whose access token expires before
    /// `due_before` (active or in error, out of backoff, unclaimed or claim lapsed), until
    /// `claimed_until`. Each row is claimed by one conditional UPDATE under its row lock, so two
    /// processes never claim the same connection.
    async fn claim_due_refreshes(
        &self,
        due_before: DateTime<Utc>,
        now: DateTime<Utc>,
        claimed_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<RefreshClaim>>;

    /// Claims this connection for a refresh now (a check found its access token dead); `None`
    /// when another process holds it or it has no refresh token.
    async fn claim_refresh(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        claimed_until: DateTime<Utc>,
    ) -> StoreResult<Option<RefreshClaim>>;

    /// Applies a refresh's verdict if the claim still holds (same claim, same refresh token)
    /// and releases it; `None` when the claim was lost.
    async fn finish_refresh(
        &self,
        claim: &RefreshClaim,
        verdict: &HealthVerdict,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>>;

    /// Applies a check's verdict (not to a disconnected connection) if the connection's token
    /// is still the one checked (`token_fingerprint`); `None` when there is no such live
    /// connection in the organization, or its token changed. Writes `connection.updated` on a
    /// change.
    async fn record_check(
        &self,
        org_id: Uuid,
        id: Uuid,
        token_fingerprint: Option<&str>,
        verdict: &HealthVerdict,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Connection>>;

    /// The platform says this user (or this Page) removed the app: every live Meta connection
    /// they granted (or that Page's) is disconnected, its tokens erased, in one transaction.
    /// Connections granted before `issued_before` only: a deauthorize signed before the
    /// current grant (a replay, or one overtaken by a reconnect) leaves it alone.
    async fn disconnect_deauthorized(
        &self,
        granted_by: Option<&str>,
        page_id: Option<&str>,
        issued_before: DateTime<Utc>,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Connection>>;
}
