//! Organization API keys: bearer tokens that act as the admin who created them, only inside
//! that organization. A BUSINESS plan feature (402 `plan_limit` otherwise). Only a SHA-256 of
//! the key is stored; the key is shown once.

use uuid::Uuid;

use crate::crypto::tokens::IssuedToken;
use crate::domain::{self, Invalid, Plan, Role};
use crate::store::{ApiKey, NewApiToken, TokenKind};

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

const MAX_NAME_CHARS: usize = 100;
pub const PLAN_MESSAGE: &str = "organization API keys need the BUSINESS plan";

/// A key just created: the only time the key itself is available.
pub struct CreatedKey {
    pub key: ApiKey,
    pub token: IssuedToken,
}

fn require_plan(access: &OrgAccess) -> AppResult<()> {
    if access.membership.organization.plan == Plan::Business {
        Ok(())
    } else {
        Err(AppError::PlanRequired(PLAN_MESSAGE))
    }
}

pub async fn create(app: &App, access: &OrgAccess, name: &str) -> AppResult<CreatedKey> {
    access.require(Role::Admin)?;
    require_plan(access)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Invalid::new("name", format!("must be 1 to {MAX_NAME_CHARS} characters")).into());
    }
    let token = IssuedToken::generate();
    let key = ApiKey {
        id: domain::new_id(),
        name: Some(name.to_owned()),
        user_id: access.user_id,
        created_at: domain::now(),
    };
    app.store
        .insert_api_token(&NewApiToken {
            id: key.id,
            token_hash: token.hash(),
            user_id: access.user_id,
            organization_id: Some(access.org_id()),
            kind: TokenKind::ApiKey,
            name: key.name.clone(),
            created_at: key.created_at,
            expires_at: None,
        })
        .await?;
    Ok(CreatedKey { key, token })
}

pub async fn list(app: &App, access: &OrgAccess) -> AppResult<Vec<ApiKey>> {
    access.require(Role::Admin)?;
    require_plan(access)?;
    Ok(app.store.api_keys(access.org_id()).await?)
}

/// Revokes a key; requests with it answer 401 from then on.
pub async fn revoke(app: &App, access: &OrgAccess, id: Uuid) -> AppResult<()> {
    access.require(Role::Admin)?;
    if app
        .store
        .revoke_api_key(access.org_id(), id, domain::now())
        .await?
    {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}
