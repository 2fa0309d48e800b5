//! Invitations: how someone joins an organization. An admin invites an email with a role; the
//! person with that email (once signed in) sees the invitation and accepts or declines it.
//! Nothing here tells the admin whether the email has an account, and nobody becomes a member
//! without saying yes. A pending invitation holds a seat of the plan until it is accepted,
//! declined, revoked, or expires ([`INVITATION_TTL_DAYS`]).

use uuid::Uuid;

use crate::domain::{self, Email, Invalid, Role};
use crate::store::{Invitation, Membership, NewInvitation, Session};

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

pub const INVITATION_TTL_DAYS: i64 = 7;

/// The caller's email as invitations are keyed.
fn email_key(session: &Session) -> AppResult<String> {
    Ok(Email::parse(&session.user.email)?.normalized())
}

/// Invites `email` with `role` (ADMIN or OWNER). The answer is the same whether or not the
/// email has an account.
pub async fn invite(app: &App, access: &OrgAccess, email: &str, role: Role) -> AppResult<Invitation> {
    access.require(Role::Admin)?;
    if role == Role::Owner {
        return Err(Invalid::new(
            "role",
            "an invitation cannot make an owner; invite them, then transfer ownership",
        )
        .into());
    }
    let email = Email::parse(email)?;
    let now = domain::now();
    let invitation = app
        .store
        .insert_invitation(&NewInvitation {
            id: domain::new_id(),
            organization_id: access.org_id(),
            email: email.as_str().to_owned(),
            email_normalized: email.normalized(),
            role,
            invited_by: access.user_id,
            created_at: now,
            expires_at: now + chrono::Duration::days(INVITATION_TTL_DAYS),
        })
        .await?;
    tracing::info!(org_id = %access.org_id(), invitation_id = %invitation.id, "invitation created");
    Ok(invitation)
}

/// The organization's pending invitations (ADMIN or OWNER).
pub async fn pending(app: &App, access: &OrgAccess) -> AppResult<Vec<Invitation>> {
    access.require(Role::Admin)?;
    Ok(app.store.invitations(access.org_id(), domain::now()).await?)
}

/// Withdraws a pending invitation (ADMIN or OWNER); its seat is free again.
pub async fn revoke(app: &App, access: &OrgAccess, id: Uuid) -> AppResult<()> {
    access.require(Role::Admin)?;
    if app.store.delete_invitation(access.org_id(), id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

/// The invitations addressed to the caller's email. An organization API key has none: it
/// acts for its organization, not for a person.
pub async fn mine(app: &App, session: &Session) -> AppResult<Vec<Invitation>> {
    if session.token_organization_id.is_some() {
        return Ok(Vec::new());
    }
    Ok(app
        .store
        .invitations_for(&email_key(session)?, domain::now())
        .await?)
}

/// Accepts an invitation addressed to the caller: they become a member with its role.
pub async fn accept(app: &App, session: &Session, id: Uuid) -> AppResult<Membership> {
    if session.token_organization_id.is_some() {
        return Err(AppError::NotFound);
    }
    let membership = app
        .store
        .accept_invitation(id, &email_key(session)?, session.user.id, domain::now())
        .await?;
    tracing::info!(org_id = %membership.organization.id, user_id = %session.user.id, "invitation accepted");
    Ok(membership)
}

/// Declines an invitation addressed to the caller.
pub async fn decline(app: &App, session: &Session, id: Uuid) -> AppResult<()> {
    if session.token_organization_id.is_some() {
        return Err(AppError::NotFound);
    }
    if app.store.decline_invitation(id, &email_key(session)?).await? {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}
