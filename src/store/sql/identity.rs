//! Users, sessions and API tokens, and organizations' API keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, db_error};
use crate::domain::{Plan, Role};
use crate::store::{
    ApiKey, IdentityStore, Membership, NewApiToken, NewUser, Organization, Session, StoreError, StoreResult,
    User, UserCredentials,
};

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

#[async_trait]
impl IdentityStore for Backend {
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User> {
        sqlx::query_as(concat!(
            "INSERT INTO users (id, email, email_normalized, name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
            user_columns!("")
        ))
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.email_normalized)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn user(&self, id: Uuid) -> StoreResult<Option<User>> {
        sqlx::query_as(concat!(
            "SELECT ",
            user_columns!("u."),
            " FROM users u WHERE u.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn user_credentials(&self, email_normalized: &str) -> StoreResult<Option<UserCredentials>> {
        sqlx::query_as(concat!(
            "SELECT ",
            user_columns!("u."),
            ", u.password_hash FROM users u WHERE u.email_normalized = $1"
        ))
        .bind(email_normalized)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn insert_api_token(&self, token: &NewApiToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, token_hash, user_id, organization_id, kind, name, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token.id)
        .bind(&token.token_hash)
        .bind(token.user_id)
        .bind(token.organization_id)
        .bind(token.kind.as_db())
        .bind(&token.name)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>> {
        sqlx::query_as(concat!(
            "SELECT t.id AS token_id, t.organization_id AS token_organization_id, ",
            user_columns!("u."),
            " FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn session_in_org(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        org_id: Uuid,
    ) -> StoreResult<Option<(Session, Option<Membership>)>> {
        let row: Option<SessionInOrgRow> = sqlx::query_as(concat!(
            "SELECT t.id AS token_id, t.organization_id AS token_organization_id, ",
            user_columns!("u."),
            ", o.id AS org_id, o.name AS org_name, o.slug AS org_slug, o.plan AS org_plan, \
             o.owner_id AS org_owner_id, o.created_at AS org_created_at, \
             o.updated_at AS org_updated_at, m.role AS org_role \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             LEFT JOIN organization_members m ON m.organization_id = $3 AND m.user_id = t.user_id \
             LEFT JOIN organizations o ON o.id = m.organization_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
        ))
        .bind(token_hash)
        .bind(now)
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.map(SessionInOrgRow::split)
            .transpose()
            .map_err(|err| StoreError::Database(sqlx::Error::Decode(err.into())))
    }

    async fn revoke_api_token(&self, token_id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(token_id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn api_keys(&self, org_id: Uuid) -> StoreResult<Vec<ApiKey>> {
        sqlx::query_as(
            "SELECT id, name, user_id, created_at FROM api_tokens \
             WHERE organization_id = $1 AND kind = 'API_KEY' AND revoked_at IS NULL ORDER BY id DESC",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn revoke_api_key(&self, org_id: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 \
             WHERE organization_id = $1 AND id = $2 AND kind = 'API_KEY' AND revoked_at IS NULL",
        )
        .bind(org_id)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(revoked.rows_affected() == 1)
    }
}
