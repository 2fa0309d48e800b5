//! Rows as the store reads and writes them. Field names follow the columns.

use chrono::{DateTime, Utc};
use serde_json::Value;
use snorq_connectors::Platform;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::{ConnectionStatus, Plan, Role};

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

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    #[sqlx(try_from = "String")]
    pub plan: Plan,
    pub owner_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewOrganization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub plan: Plan,
    pub owner_id: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct OrganizationUpdate {
    pub name: Option<String>,
    pub slug: Option<String>,
    pub plan: Option<Plan>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// An organization seen by one of its members.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Membership {
    #[sqlx(flatten)]
    pub organization: Organization,
    #[sqlx(try_from = "String")]
    pub role: Role,
}

/// A session read together with its user's membership of one organization (the `org_`
/// columns are NULL when the user is not a member).
#[derive(sqlx::FromRow)]
pub(super) struct SessionInOrgRow {
    #[sqlx(flatten)]
    session: Session,
    org_id: Option<Uuid>,
    org_name: Option<String>,
    org_slug: Option<String>,
    org_plan: Option<String>,
    org_owner_id: Option<Uuid>,
    org_created_at: Option<DateTime<Utc>>,
    org_updated_at: Option<DateTime<Utc>>,
    org_role: Option<String>,
}

impl SessionInOrgRow {
    pub(super) fn split(self) -> Result<(Session, Option<Membership>), String> {
        let membership = match (
            self.org_id,
            self.org_name,
            self.org_slug,
            self.org_plan,
            self.org_owner_id,
            self.org_created_at,
            self.org_updated_at,
            self.org_role,
        ) {
            (
                Some(id),
                Some(name),
                Some(slug),
                Some(plan),
                Some(owner_id),
                Some(created_at),
                Some(updated_at),
                Some(role),
            ) => Some(Membership {
                organization: Organization {
                    id,
                    name,
                    slug,
                    plan: Plan::try_from(plan)?,
                    owner_id,
                    created_at,
                    updated_at,
                },
                role: Role::try_from(role)?,
            }),
            _ => None,
        };
        Ok((self.session, membership))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// An invitation to join an organization, pending until accepted, declined, revoked or
/// expired. It holds a seat meanwhile.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Invitation {
    pub id: Uuid,
    pub organization_id: Uuid,
    /// The organization's name (for the invited user's list).
    pub organization_name: String,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// An invitation to record.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub email_normalized: String,
    pub role: Role,
    pub invited_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

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
