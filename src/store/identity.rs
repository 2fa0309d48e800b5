//! Who is calling: users, their sessions and tokens, and organizations' API keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Membership, StoreResult};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub struct NewUser {
    pub id: Uuid,
    pub email: String,
    pub email_normalized: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserCredentials {
    #[sqlx(flatten)]
    pub user: User,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Session,
    ApiKey,
    /// A dashboard sign-in: its cookie is stored hashed under its own prefix, so it never
    /// works as an API bearer token (nor an API token as its cookie).
    Dashboard,
}

impl TokenKind {
    pub fn as_db(self) -> &'static str {
        match self {
            TokenKind::Session => "SESSION",
            TokenKind::ApiKey => "API_KEY",
            TokenKind::Dashboard => "DASHBOARD",
        }
    }
}

pub struct NewApiToken {
    pub id: Uuid,
    pub token_hash: String,
    pub user_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub kind: TokenKind,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// An authenticated bearer token and its user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub token_id: Uuid,
    /// Set for organization API keys: the token is valid only inside this organization.
    pub token_organization_id: Option<Uuid>,
    #[sqlx(flatten)]
    pub user: User,
}

/// An organization API key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: Option<String>,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Users, sessions and API tokens.
#[async_trait]
pub trait IdentityStore: Send + Sync + 'static {
    // --- users and tokens ---

    /// Fails with `Conflict(UserEmail)` when the (case-insensitive) email is taken.
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User>;

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>>;

    async fn user_credentials(&self, email_normalized: &str) -> StoreResult<Option<UserCredentials>>;

    async fn insert_api_token(&self, token: &NewApiToken) -> StoreResult<()>;

    /// The live (unrevoked, unexpired) token with this hash, and its user.
    async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>>;

    /// [`session`](Self::session) and its user's membership of `org_id` (`None` when not a
    /// member), in one statement: every organization route asks for both.
    async fn session_in_org(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        org_id: Uuid,
    ) -> StoreResult<Option<(Session, Option<Membership>)>>;

    async fn revoke_api_token(&self, token_id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;

    /// Live (unrevoked) API keys of the organization, newest first.
    async fn api_keys(&self, org_id: Uuid) -> StoreResult<Vec<ApiKey>>;

    async fn revoke_api_key(&self, org_id: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;
}
