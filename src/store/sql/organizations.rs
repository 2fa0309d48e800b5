//! Organizations, members and invitations; seat limits checked in the transaction that
//! takes the seat.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Backend, DbConn, LOCK_ORGANIZATION, begin_write, db_error};
use crate::domain::Role;
use crate::store::{
    Constraint, Invitation, Member, Membership, NewInvitation, NewOrganization, Organization,
    OrganizationStore, OrganizationUpdate, StoreError, StoreResult,
};

/// The organization's plan, with the organization locked until the transaction ends, so that
/// concurrent adds and invitations cannot both pass the seat check.
pub(super) async fn lock_organization_plan(
    conn: &mut DbConn,
    org_id: Uuid,
) -> StoreResult<crate::domain::Plan> {
    let plan: Option<String> = sqlx::query_scalar(LOCK_ORGANIZATION)
        .bind(org_id)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?;
    plan.as_deref()
        .and_then(crate::domain::Plan::from_db)
        .ok_or(StoreError::NotFound)
}

/// Seats in use: members, and invitations still pending at `now`.
pub(super) async fn seats_taken(conn: &mut DbConn, org_id: Uuid, now: DateTime<Utc>) -> StoreResult<i64> {
    sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM organization_members WHERE organization_id = $1) \
         + (SELECT COUNT(*) FROM invitations WHERE organization_id = $1 AND expires_at > $2)",
    )
    .bind(org_id)
    .bind(now)
    .fetch_one(conn)
    .await
    .map_err(db_error)
}

#[async_trait]
impl OrganizationStore for Backend {
    async fn insert_organization(&self, org: &NewOrganization) -> StoreResult<Organization> {
        let mut tx = begin_write(&self.pool).await?;
        let created: Organization = sqlx::query_as(concat!(
            "INSERT INTO organizations (id, name, slug, plan, owner_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
            org_columns!("")
        ))
        .bind(org.id)
        .bind(&org.name)
        .bind(&org.slug)
        .bind(org.plan.as_db())
        .bind(org.owner_id)
        .bind(org.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO organization_members (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org.id)
        .bind(org.owner_id)
        .bind(Role::Owner.as_db())
        .bind(org.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(created)
    }

    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>> {
        sqlx::query_as(concat!(
            "SELECT ",
            org_columns!("o."),
            " FROM organizations o WHERE o.slug = $1"
        ))
        .bind(slug)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn memberships(&self, user_id: Uuid) -> StoreResult<Vec<Membership>> {
        sqlx::query_as(concat!(
            "SELECT ",
            org_columns!("o."),
            ", m.role FROM organizations o JOIN organization_members m ON m.organization_id = o.id \
             WHERE m.user_id = $1 ORDER BY o.created_at, o.id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn membership(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<Option<Membership>> {
        sqlx::query_as(concat!(
            "SELECT ",
            org_columns!("o."),
            ", m.role FROM organizations o JOIN organization_members m ON m.organization_id = o.id \
             WHERE o.id = $1 AND m.user_id = $2"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn update_organization(
        &self,
        org_id: Uuid,
        update: &OrganizationUpdate,
    ) -> StoreResult<Organization> {
        sqlx::query_as(concat!(
            "UPDATE organizations SET name = COALESCE($2, name), slug = COALESCE($3, slug), \
             plan = COALESCE($4, plan), updated_at = COALESCE($5, updated_at) WHERE id = $1 RETURNING ",
            org_columns!("")
        ))
        .bind(org_id)
        .bind(&update.name)
        .bind(&update.slug)
        .bind(update.plan.map(|p| p.as_db()))
        .bind(update.updated_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)
    }

    async fn members(&self, org_id: Uuid) -> StoreResult<Vec<Member>> {
        sqlx::query_as(concat!(
            "SELECT ",
            member_columns!(),
            " FROM organization_members m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = $1 ORDER BY m.created_at, m.user_id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn member(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<Option<Member>> {
        sqlx::query_as(concat!(
            "SELECT ",
            member_columns!(),
            " FROM organization_members m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = $1 AND m.user_id = $2"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn add_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<Member> {
        let mut tx = begin_write(&self.pool).await?;
        let plan = lock_organization_plan(&mut tx, org_id).await?;
        let seats = seats_taken(&mut tx, org_id, now).await?;
        let already: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM organization_members WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if already > 0 {
            return Err(StoreError::Conflict(Constraint::Membership));
        }
        if seats >= plan.seat_limit() {
            return Err(StoreError::PlanLimit {
                limit: plan.seat_limit(),
            });
        }
        sqlx::query(
            "INSERT INTO organization_members (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_db())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let member = sqlx::query_as(concat!(
            "SELECT ",
            member_columns!(),
            " FROM organization_members m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = $1 AND m.user_id = $2"
        ))
        .bind(org_id)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(member)
    }

    async fn insert_invitation(&self, invitation: &NewInvitation) -> StoreResult<Invitation> {
        let org_id = invitation.organization_id;
        let mut tx = begin_write(&self.pool).await?;
        let plan = lock_organization_plan(&mut tx, org_id).await?;
        let member: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM organization_members m JOIN users u ON u.id = m.user_id \
             WHERE m.organization_id = $1 AND u.email_normalized = $2",
        )
        .bind(org_id)
        .bind(&invitation.email_normalized)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if member > 0 {
            return Err(StoreError::Conflict(Constraint::Membership));
        }
        // An expired invitation for the same email gives way to the new one.
        sqlx::query("DELETE FROM invitations WHERE organization_id = $1 AND email_normalized = $2 AND expires_at <= $3")
            .bind(org_id)
            .bind(&invitation.email_normalized)
            .bind(invitation.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let invited: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM invitations WHERE organization_id = $1 AND email_normalized = $2",
        )
        .bind(org_id)
        .bind(&invitation.email_normalized)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        if invited > 0 {
            return Err(StoreError::Conflict(Constraint::Invitation));
        }
        if seats_taken(&mut tx, org_id, invitation.created_at).await? >= plan.seat_limit() {
            return Err(StoreError::PlanLimit {
                limit: plan.seat_limit(),
            });
        }
        sqlx::query(
            "INSERT INTO invitations (id, organization_id, email, email_normalized, role, invited_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(invitation.id)
        .bind(org_id)
        .bind(&invitation.email)
        .bind(&invitation.email_normalized)
        .bind(invitation.role.as_db())
        .bind(invitation.invited_by)
        .bind(invitation.created_at)
        .bind(invitation.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let saved = sqlx::query_as(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM invitations i JOIN organizations o ON o.id = i.organization_id WHERE i.id = $1"
        ))
        .bind(invitation.id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(saved)
    }

    async fn invitations(&self, org_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<Invitation>> {
        sqlx::query_as(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM invitations i JOIN organizations o ON o.id = i.organization_id \
             WHERE i.organization_id = $1 AND i.expires_at > $2 ORDER BY i.created_at DESC, i.id"
        ))
        .bind(org_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn delete_invitation(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM invitations WHERE organization_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn invitations_for(
        &self,
        email_normalized: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>> {
        sqlx::query_as(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM invitations i JOIN organizations o ON o.id = i.organization_id \
             WHERE i.email_normalized = $1 AND i.expires_at > $2 ORDER BY i.created_at DESC, i.id"
        ))
        .bind(email_normalized)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn accept_invitation(
        &self,
        id: Uuid,
        email_normalized: &str,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Membership> {
        let mut tx = begin_write(&self.pool).await?;
        let found: Option<(Uuid, String)> = sqlx::query_as(
            "DELETE FROM invitations WHERE id = $1 AND email_normalized = $2 AND expires_at > $3 \
             RETURNING organization_id, role",
        )
        .bind(id)
        .bind(email_normalized)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let (org_id, role) = found.ok_or(StoreError::NotFound)?;
        // The invitation held the seat: becoming a member takes no new one.
        sqlx::query(
            "INSERT INTO organization_members (organization_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(&role)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        self.membership(org_id, user_id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn decline_invitation(&self, id: Uuid, email_normalized: &str) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM invitations WHERE id = $1 AND email_normalized = $2")
            .bind(id)
            .bind(email_normalized)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn set_member_role(&self, org_id: Uuid, user_id: Uuid, role: Role) -> StoreResult<Member> {
        let updated = sqlx::query(
            "UPDATE organization_members SET role = $3 \
             WHERE organization_id = $1 AND user_id = $2 AND role <> 'OWNER'",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_db())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.member(org_id, user_id).await?.ok_or(StoreError::NotFound)
    }

    async fn transfer_ownership(
        &self,
        org_id: Uuid,
        from: Uuid,
        to: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query_scalar::<_, String>(LOCK_ORGANIZATION)
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or(StoreError::NotFound)?;
        // Demote first: it proves `from` is the owner right now (inside the lock).
        let demoted = sqlx::query(
            "UPDATE organization_members SET role = 'ADMIN' \
             WHERE organization_id = $1 AND user_id = $2 AND role = 'OWNER'",
        )
        .bind(org_id)
        .bind(from)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if demoted.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        let promoted = sqlx::query(
            "UPDATE organization_members SET role = 'OWNER' WHERE organization_id = $1 AND user_id = $2",
        )
        .bind(org_id)
        .bind(to)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if promoted.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE organizations SET owner_id = $2, updated_at = $3 WHERE id = $1")
            .bind(org_id)
            .bind(to)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn remove_member(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
        let deleted = sqlx::query(
            "DELETE FROM organization_members WHERE organization_id = $1 AND user_id = $2 AND role <> 'OWNER'",
        )
        .bind(org_id)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(deleted.rows_affected() == 1)
    }
}
