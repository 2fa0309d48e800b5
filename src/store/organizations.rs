//! Organizations, their members and invitations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::{Plan, Role};

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

/// Organizations, members and invitations; seat limits are checked in the same transaction as
/// the write they limit.
#[async_trait]
pub trait OrganizationStore: Send + Sync + 'static {
    // --- organizations and members ---

    /// Creates the organization and makes its owner an OWNER member, atomically.
    async fn insert_organization(&self, org: &NewOrganization) -> StoreResult<Organization>;

    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>>;

    /// Organizations the user belongs to, with the user's role, oldest first.
    async fn memberships(&self, user_id: Uuid) -> StoreResult<Vec<Membership>>;

    async fn membership(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<Option<Membership>>;

    async fn update_organization(
        &self,
        org_id: Uuid,
        update: &OrganizationUpdate,
    ) -> StoreResult<Organization>;

    async fn members(&self, org_id: Uuid) -> StoreResult<Vec<Member>>;

    async fn member(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<Option<Member>>;

    /// Adds a member unless the plan's seat limit is reached (`PlanLimit`) or the user already
    /// is one (`Conflict(Membership)`). The check and the insert are one transaction.
    async fn add_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<Member>;

    /// Records an invitation unless the seats (members and pending invitations) are taken
    /// (`PlanLimit`), the email is a member already (`Conflict(Membership)`) or invited already
    /// (`Conflict(Invitation)`). One transaction with the organization locked.
    async fn insert_invitation(&self, invitation: &NewInvitation) -> StoreResult<Invitation>;

    /// Pending (unexpired) invitations of the organization, newest first.
    async fn invitations(&self, org_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<Invitation>>;

    /// Revokes a pending invitation; false when there is none with that id here.
    async fn delete_invitation(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool>;

    /// Pending invitations addressed to this (normalized) email, newest first.
    async fn invitations_for(
        &self,
        email_normalized: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>>;

    /// Turns the invitation addressed to `email_normalized` into a membership of `user_id`, in
    /// one transaction; `NotFound` when there is no such pending invitation.
    async fn accept_invitation(
        &self,
        id: Uuid,
        email_normalized: &str,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Membership>;

    /// Declines (deletes) the invitation addressed to `email_normalized`; false when none.
    async fn decline_invitation(&self, id: Uuid, email_normalized: &str) -> StoreResult<bool>;

    /// Changes a non-owner's role; `NotFound` when the user is not a member.
    async fn set_member_role(&self, org_id: Uuid, user_id: Uuid, role: Role) -> StoreResult<Member>;

    /// Makes `to` the OWNER and the previous owner an ADMIN, atomically.
    async fn transfer_ownership(
        &self,
        org_id: Uuid,
        from: Uuid,
        to: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Removes a non-owner member; false when there was no such member.
    async fn remove_member(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<bool>;
}
