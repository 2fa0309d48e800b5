// The `Store` implementation shared by both backends, included by `postgres.rs` and
// `sqlite.rs`. Each includer defines:
//   type Backend  - the store struct, with a `pool: sqlx::Pool<Db>` field
//   fn begin_write(&Pool<Db>)  - starts a write transaction (SQLite: BEGIN IMMEDIATE)
//   fn db_error(sqlx::Error) -> StoreError  - maps errors, naming constraints
//   const LOCK_ORGANIZATION  - SELECT that locks an organization row for the transaction
//   const BACKEND, fn run_migrations(&Pool<Db>) (ours and the job queue's),
//   fn push_send_jobs(&mut DbConn, &[QueuedJob]) (apalis, on the caller's transaction),
//   const DELETE_FINISHED_JOBS, const HOUR_BUCKET.
// Placeholders are `$n` (both drivers accept them); everything else here is standard SQL that
// both dialects run unchanged.

// Column lists take a table prefix ("u." in joins, "" in RETURNING, which SQLite wants bare).
macro_rules! user_columns {
    ($p:literal) => {
        concat!($p, "id, ", $p, "email, ", $p, "name, ", $p, "created_at")
    };
}
macro_rules! org_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "name, ",
            $p,
            "slug, ",
            $p,
            "plan, ",
            $p,
            "owner_id, ",
            $p,
            "created_at, ",
            $p,
            "updated_at"
        )
    };
}
macro_rules! member_columns {
    () => {
        "m.user_id, u.email, u.name, m.role, m.created_at"
    };
}
macro_rules! invitation_columns {
    () => {
        "i.id, i.organization_id, o.name AS organization_name, i.email, i.role, i.invited_by, \
         i.created_at, i.expires_at"
    };
}
macro_rules! connection_columns {
    () => {
        "id, organization_id, platform, platform_user_id, name, status, access_token_enc, \
         refresh_token_enc, token_fingerprint, access_token_expires_at, refresh_token_expires_at, \
         settings, last_error, granted_by_external_id, failure_count, last_checked_at, last_refreshed_at, \
         created_at, updated_at, granted_at"
    };
}

#[async_trait]
impl Store for Backend {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> StoreResult<()> {
        run_migrations(&self.pool).await
    }

    fn queue_pool(&self) -> QueuePool {
        self.queue()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

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

    async fn conversation_ids(&self, org_id: Uuid) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar("SELECT id FROM conversations WHERE organization_id = $1 ORDER BY id")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn insert_connection(&self, c: &Connection) -> StoreResult<Connection> {
        let mut tx = begin_write(&self.pool).await?;
        let saved: Connection = sqlx::query_as(concat!(
            "INSERT INTO platform_connections (id, organization_id, platform, platform_user_id, name, status, \
             access_token_enc, refresh_token_enc, token_fingerprint, access_token_expires_at, \
             refresh_token_expires_at, settings, last_error, granted_by_external_id, failure_count, \
             last_checked_at, last_refreshed_at, created_at, updated_at, granted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING ",
            connection_columns!()
        ))
        .bind(c.id)
        .bind(c.organization_id)
        .bind(c.platform.0.as_str())
        .bind(&c.platform_user_id)
        .bind(&c.name)
        .bind(c.status.as_db())
        .bind(&c.access_token_enc)
        .bind(&c.refresh_token_enc)
        .bind(&c.token_fingerprint)
        .bind(c.access_token_expires_at)
        .bind(c.refresh_token_expires_at)
        .bind(&c.settings)
        .bind(&c.last_error)
        .bind(&c.granted_by_external_id)
        .bind(c.failure_count)
        .bind(c.last_checked_at)
        .bind(c.last_refreshed_at)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.granted_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
        let mut events = LiveEvents::new();
        connection_changed(&mut events, "connection.created", &saved);
        insert_live_events(&mut tx, &events, saved.updated_at).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(saved)
    }

    async fn connections(&self, org_id: Uuid) -> StoreResult<Vec<Connection>> {
        sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM platform_connections WHERE organization_id = $1 ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn connection(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<Connection>> {
        sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM platform_connections WHERE organization_id = $1 AND id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn connection_by_account(
        &self,
        org_id: Uuid,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<Option<Connection>> {
        sqlx::query_as(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM platform_connections WHERE organization_id = $1 AND platform = $2 AND platform_user_id = $3"
        ))
        .bind(org_id)
        .bind(platform.as_str())
        .bind(platform_user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn account_live_elsewhere(
        &self,
        org_id: Uuid,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM platform_connections WHERE platform = $1 AND platform_user_id = $2 \
             AND organization_id <> $3 AND status <> 'DISCONNECTED'",
        )
        .bind(platform.as_str())
        .bind(platform_user_id)
        .bind(org_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(n > 0)
    }

    async fn save_connection(&self, c: &Connection, read_at: DateTime<Utc>) -> StoreResult<Connection> {
        let mut tx = begin_write(&self.pool).await?;
        // A save (a reconnect, new credentials) also ends any refresh backoff.
        let saved: Option<Connection> = sqlx::query_as(concat!(
            "UPDATE platform_connections SET name = $3, status = $4, access_token_enc = $5, \
             refresh_token_enc = $6, token_fingerprint = $7, access_token_expires_at = $8, \
             refresh_token_expires_at = $9, settings = $10, last_error = $11, granted_by_external_id = $12, \
             failure_count = $13, last_checked_at = $14, last_refreshed_at = $15, next_refresh_at = NULL, \
             updated_at = $16, granted_at = $18 WHERE organization_id = $1 AND id = $2 AND updated_at = $17 RETURNING ",
            connection_columns!()
        ))
        .bind(c.organization_id)
        .bind(c.id)
        .bind(&c.name)
        .bind(c.status.as_db())
        .bind(&c.access_token_enc)
        .bind(&c.refresh_token_enc)
        .bind(&c.token_fingerprint)
        .bind(c.access_token_expires_at)
        .bind(c.refresh_token_expires_at)
        .bind(&c.settings)
        .bind(&c.last_error)
        .bind(&c.granted_by_external_id)
        .bind(c.failure_count)
        .bind(c.last_checked_at)
        .bind(c.last_refreshed_at)
        .bind(c.updated_at)
        .bind(read_at)
        .bind(c.granted_at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let Some(saved) = saved else {
            drop(tx);
            // Changed since it was read, or not in this organization at all.
            return match self.connection(c.organization_id, c.id).await? {
                Some(_) => Err(StoreError::Stale),
                None => Err(StoreError::NotFound),
            };
        };
        let mut events = LiveEvents::new();
        connection_changed(&mut events, "connection.updated", &saved);
        insert_live_events(&mut tx, &events, saved.updated_at).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(saved)
    }

    async fn connection_secrets_page(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<ConnectionSecrets>> {
        sqlx::query_as(
            "SELECT id, access_token_enc, refresh_token_enc FROM platform_connections \
             WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn replace_connection_secrets(
        &self,
        old: &ConnectionSecrets,
        new: &ConnectionSecrets,
    ) -> StoreResult<bool> {
        // IS NOT DISTINCT FROM would be clearer, but SQLite spells it IS; this form runs on both.
        let updated = sqlx::query(
            "UPDATE platform_connections SET access_token_enc = $4, refresh_token_enc = $5, updated_at = $6 \
             WHERE id = $1 \
             AND ((access_token_enc IS NULL AND $2 IS NULL) OR access_token_enc = $2) \
             AND ((refresh_token_enc IS NULL AND $3 IS NULL) OR refresh_token_enc = $3)",
        )
        .bind(old.id)
        .bind(&old.access_token_enc)
        .bind(&old.refresh_token_enc)
        .bind(&new.access_token_enc)
        .bind(&new.refresh_token_enc)
        // A concurrent edit that read the old envelope must not write it back (see save_connection).
        .bind(crate::domain::now())
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(updated.rows_affected() == 1)
    }
}

// ---------------------------------------------------------------------------------------------
// Webhook ingest: apply a batch of verified webhooks in one transaction, one savepoint per event.

/// The connection a platform account routes to.
#[derive(Debug, Clone, Copy)]
struct Route {
    connection_id: Uuid,
    organization_id: Uuid,
}

type Routes = HashMap<(Platform, String), Option<Route>>;

const STATUS_RANK: &str = "(CASE status WHEN 'PENDING' THEN 0 WHEN 'SENT' THEN 1 \
                           WHEN 'DELIVERED' THEN 2 WHEN 'READ' THEN 3 ELSE 4 END)";

async fn route(
    conn: &mut DbConn,
    routes: &mut Routes,
    platform: Platform,
    account: &str,
) -> StoreResult<Option<Route>> {
    if let Some(found) = routes.get(&(platform, account.to_owned())) {
        return Ok(*found);
    }
    let row: Option<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT id, organization_id FROM platform_connections \
         WHERE platform = $1 AND platform_user_id = $2 AND status <> 'DISCONNECTED'",
    )
    .bind(platform.as_str())
    .bind(account)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let found = row.map(|(connection_id, organization_id)| Route {
        connection_id,
        organization_id,
    });
    routes.insert((platform, account.to_owned()), found);
    Ok(found)
}

/// A live event, written with the batch it belongs to.
struct LiveEvent {
    organization_id: Uuid,
    kind: &'static str,
    payload: serde_json::Value,
}

/// Changes made while applying: collected, then written once per batch.
type LiveEvents = Vec<LiveEvent>;

/// The organization's plan, with the organization locked until the transaction ends, so that
/// concurrent adds and invitations cannot both pass the seat check.
async fn lock_organization_plan(conn: &mut DbConn, org_id: Uuid) -> StoreResult<crate::domain::Plan> {
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
async fn seats_taken(conn: &mut DbConn, org_id: Uuid, now: DateTime<Utc>) -> StoreResult<i64> {
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

fn live(out: &mut LiveEvents, organization_id: Uuid, kind: &'static str, payload: serde_json::Value) {
    out.push(LiveEvent {
        organization_id,
        kind,
        payload,
    });
}

/// `connection.created` / `connection.updated`: the connection's health as clients show it.
fn connection_changed(out: &mut LiveEvents, kind: &'static str, c: &Connection) {
    live(
        out,
        c.organization_id,
        kind,
        json!({
            "connection_id": c.id,
            "platform": c.platform.0.as_str(),
            "status": c.status,
            "last_error": c.last_error,
        }),
    );
}

async fn insert_live_events(conn: &mut DbConn, events: &[LiveEvent], now: DateTime<Utc>) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    // Readers resume by id: ids of one organization must become visible in order.
    let mut organizations: Vec<Uuid> = events.iter().map(|e| e.organization_id).collect();
    organizations.sort_unstable();
    organizations.dedup();
    lock_event_log(conn, &organizations).await?;
    let id_field = |event: &LiveEvent, field: &str| {
        event
            .payload
            .get(field)
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok())
    };
    // Chunks keep each statement well under SQLite's bound-parameter limit.
    for chunk in events.chunks(1000) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO events (organization_id, kind, payload, created_at, conversation_id, message_id) ",
        );
        insert.push_values(chunk, |mut row, event| {
            row.push_bind(event.organization_id)
                .push_bind(event.kind)
                .push_bind(Json(&event.payload))
                .push_bind(now)
                .push_bind(id_field(event, "conversation_id"))
                .push_bind(id_field(event, "message_id"));
        });
        insert
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Moves a message forward to `status` (never back; failed is terminal). True if it changed.
async fn advance_status(
    conn: &mut DbConn,
    message_id: Uuid,
    status: MessageStatus,
    error_code: Option<&str>,
    error_message: Option<&str>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = $2, error_code = COALESCE($3, error_code), \
         error_message = COALESCE($4, error_message), updated_at = $5 \
         WHERE id = $1 AND {STATUS_RANK} < $6"
    ));
    let updated = sqlx::query(sql)
        .bind(message_id)
        .bind(status.as_db())
        .bind(error_code)
        .bind(error_message)
        .bind(now)
        .bind(status.rank())
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    Ok(updated.rows_affected() == 1)
}

/// Applies receipts that arrived before their message, then forgets them.
async fn apply_pending_receipts(
    conn: &mut DbConn,
    route: Route,
    external_id: &str,
    message_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let pending: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "DELETE FROM pending_receipts WHERE platform_connection_id = $1 AND external_id = $2 \
         RETURNING status, error_code, error_message",
    )
    .bind(route.connection_id)
    .bind(external_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let mut changed = false;
    for (status, code, message) in pending {
        if let Some(status) = MessageStatus::from_db(&status) {
            changed |=
                advance_status(conn, message_id, status, code.as_deref(), message.as_deref(), now).await?;
        }
    }
    Ok(changed)
}

async fn apply_message(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    m: &IncomingMessage,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    if m.author == Author::Business {
        // Our own send coming back: match it by platform id, then by our correlation value.
        let known: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE organization_id = $1 AND external_id = $2 AND direction = 'OUTBOUND'",
        )
        .bind(route.organization_id)
        .bind(&m.external_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
        let correlated = match (known, m.correlation) {
            (None, Some(ours)) => sqlx::query_scalar::<_, Uuid>(
                "UPDATE messages SET external_id = $3, updated_at = $4 \
                 WHERE organization_id = $1 AND id = $2 AND direction = 'OUTBOUND' AND external_id IS NULL \
                 RETURNING id",
            )
            .bind(route.organization_id)
            .bind(ours)
            .bind(&m.external_id)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?,
            _ => None,
        };
        if let Some(id) = known.or(correlated) {
            let mut changed = correlated.is_some();
            changed |= advance_status(conn, id, MessageStatus::Sent, None, None, now).await?;
            changed |= apply_pending_receipts(conn, route, &m.external_id, id, now).await?;
            if changed {
                live(
                    out,
                    route.organization_id,
                    "message.updated",
                    json!({ "message_id": id }),
                );
            }
            return Ok(());
        }
    }
    let inserted = store_new_messages(conn, out, &[(route, m)], now).await?;
    // A redelivery inserts nothing and changes nothing, unread count included.
    if m.author == Author::Business
        && let Some(message_id) = inserted.into_values().next()
    {
        apply_pending_receipts(conn, route, &m.external_id, message_id, now).await?;
        apply_watermarks_to(conn, out, route, message_id, now).await?;
    }
    Ok(())
}

/// A message's conversation watermarks (delivered, read) and the message's own time.
type MessageWatermarks = (Option<DateTime<Utc>>, Option<DateTime<Utc>>, DateTime<Utc>);

/// Marks a newly stored outbound message with the conversation's delivery / read watermarks,
/// for an echo that arrives after the receipt covering it.
async fn apply_watermarks_to(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    message_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let watermarks: Option<MessageWatermarks> = sqlx::query_as(
        "SELECT c.delivered_watermark, c.read_watermark, m.created_at FROM messages m \
         JOIN conversations c ON c.id = m.conversation_id WHERE m.id = $1",
    )
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some((delivered, read, created_at)) = watermarks else {
        return Ok(());
    };
    let status = if read.is_some_and(|w| created_at <= w) {
        MessageStatus::Read
    } else if delivered.is_some_and(|w| created_at <= w) {
        MessageStatus::Delivered
    } else {
        return Ok(());
    };
    if advance_status(conn, message_id, status, None, None, now).await? {
        live(
            out,
            route.organization_id,
            "message.updated",
            json!({ "message_id": message_id }),
        );
    }
    Ok(())
}

async fn apply_receipt(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    r: &IncomingReceipt,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let message: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM messages WHERE organization_id = $1 AND external_id = $2 AND direction = 'OUTBOUND'",
    )
    .bind(route.organization_id)
    .bind(&r.external_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    match message {
        Some(id) => {
            let status = r.status;
            let changed = advance_status(
                conn,
                id,
                status,
                r.error_code.as_deref(),
                r.error_message.as_deref(),
                now,
            )
            .await?;
            if changed {
                live(
                    out,
                    route.organization_id,
                    "message.updated",
                    json!({ "message_id": id }),
                );
            }
        }
        // Kept until the message appears (a receipt can overtake the send's own response).
        None => {
            sqlx::query(
                "INSERT INTO pending_receipts (id, organization_id, platform_connection_id, external_id, status, \
                 error_code, error_message, platform_timestamp, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (platform_connection_id, external_id, status) DO NOTHING",
            )
            .bind(crate::domain::new_id())
            .bind(route.organization_id)
            .bind(route.connection_id)
            .bind(&r.external_id)
            .bind(r.status.as_db())
            .bind(&r.error_code)
            .bind(&r.error_message)
            .bind(r.timestamp)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        }
    }
    Ok(())
}

async fn apply_watermark(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    w: &IncomingWatermark,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    // Ids the platform listed are receipts in their own right: applied, or kept until the
    // message appears.
    for external_id in &w.external_ids {
        let receipt = IncomingReceipt {
            platform: w.platform,
            account_id: w.account_id.clone(),
            external_id: external_id.clone(),
            status: w.status,
            timestamp: w.watermark,
            error_code: None,
            error_message: None,
        };
        apply_receipt(conn, out, route, &receipt, now).await?;
    }
    let conversation: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM conversations WHERE platform_connection_id = $1 AND external_id = $2",
    )
    .bind(route.connection_id)
    .bind(&w.conversation_key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    let Some(conversation_id) = conversation else {
        return Ok(());
    };
    // Remembered for outbound messages that show up later (see `apply_watermarks_to`).
    let remember = match w.status {
        MessageStatus::Read => {
            "UPDATE conversations SET read_watermark = $2 \
             WHERE id = $1 AND (read_watermark IS NULL OR read_watermark < $2)"
        }
        _ => {
            "UPDATE conversations SET delivered_watermark = $2 \
             WHERE id = $1 AND (delivered_watermark IS NULL OR delivered_watermark < $2)"
        }
    };
    sqlx::query(remember)
        .bind(conversation_id)
        .bind(w.watermark)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE messages SET status = $2, updated_at = $3 \
         WHERE conversation_id = $1 AND direction = 'OUTBOUND' AND created_at <= $4 \
         AND status IN ('SENT', 'DELIVERED') AND {STATUS_RANK} < $5 RETURNING id"
    ));
    let changed: Vec<Uuid> = sqlx::query_scalar(sql)
        .bind(conversation_id)
        .bind(w.status.as_db())
        .bind(now)
        .bind(w.watermark)
        .bind(w.status.rank())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    for id in changed {
        live(
            out,
            route.organization_id,
            "message.updated",
            json!({ "message_id": id }),
        );
    }
    Ok(())
}

async fn apply_event(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    route: Route,
    event: &IngestEvent,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    match event {
        IngestEvent::Message(m) => apply_message(conn, out, route, m, now).await,
        IngestEvent::Receipt(r) => apply_receipt(conn, out, route, r, now).await,
        IngestEvent::Watermark(w) => apply_watermark(conn, out, route, w, now).await,
        IngestEvent::Ignored { .. } => Ok(()),
    }
}

// New messages, set-based: one look-up of the conversations, one insert of the missing ones, one
// insert of the messages and one update of the conversations, however many the batch holds.
// Single events go through the same path with one item.

/// Rows per multi-row statement: under SQLite's 32,766 bound parameters with 13 a row.
/// Multi-row statements are sent unprepared (`persistent(false)`): each batch size is another
/// SQL text, and caching them all would churn the driver's per-connection statement cache.
const BULK_ROWS: usize = 500;

/// Stores messages not stored yet, in their conversations (created as needed), and records
/// them on the conversations: preview and times by platform time (late arrivals do not overwrite
/// newer ones); for customer messages also the unread count, the reply window, the contact's
/// details and reopening a closed conversation. Returns the inserted messages' ids by
/// (conversation, platform id); a redelivered message is not among them.
async fn store_new_messages(
    conn: &mut DbConn,
    out: &mut LiveEvents,
    items: &[(Route, &IncomingMessage)],
    now: DateTime<Utc>,
) -> StoreResult<HashMap<(Uuid, String), Uuid>> {
    if items.is_empty() {
        return Ok(HashMap::new());
    }
    let (conversations, created) = resolve_conversations(conn, items, now).await?;
    let conversation_of = |route: &Route, m: &IncomingMessage| {
        conversations
            .get(&(route.connection_id, m.conversation_key.clone()))
            .copied()
            .ok_or(StoreError::NotFound)
    };

    // The messages; a redelivered one conflicts and is not returned.
    let mut inserted: HashMap<(Uuid, String), Uuid> = HashMap::new();
    // In key order, so concurrent writers take the index locks in one order.
    let mut all_rows = Vec::with_capacity(items.len());
    for (route, m) in items {
        all_rows.push((route, *m, conversation_of(route, m)?));
    }
    all_rows.sort_unstable_by(|a, b| (a.2, &a.1.external_id).cmp(&(b.2, &b.1.external_id)));
    for rows in all_rows.chunks(BULK_ROWS) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO messages (id, organization_id, conversation_id, direction, external_id, content_type, \
             content, media_url, status, attempts, platform_timestamp, created_at, updated_at) ",
        );
        insert.push_values(rows, |mut row, (route, m, conversation_id)| {
            // Customer messages are delivered to us; the business's own ones, already sent.
            let (direction, status) = match m.author {
                Author::Customer => ("INBOUND", MessageStatus::Delivered),
                Author::Business => ("OUTBOUND", MessageStatus::Sent),
            };
            row.push_bind(crate::domain::new_id())
                .push_bind(route.organization_id)
                .push_bind(*conversation_id)
                .push_bind(direction)
                .push_bind(&m.external_id)
                .push_bind(&m.content_type)
                .push_bind(Json(&m.content))
                .push_bind(&m.media_url)
                .push_bind(status.as_db())
                .push_bind(0_i32)
                .push_bind(m.timestamp)
                .push_bind(m.timestamp)
                .push_bind(now);
        });
        insert.push(" ON CONFLICT (conversation_id, external_id) DO NOTHING RETURNING id, conversation_id, external_id");
        let returned: Vec<(Uuid, Uuid, String)> = insert
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        inserted.extend(
            returned
                .into_iter()
                .map(|(id, conversation, external)| ((conversation, external), id)),
        );
    }

    // What each conversation gained: the newest message, and from the customer: new unread
    // messages, the latest time they wrote, their latest details.
    struct Gain<'m> {
        organization_id: Uuid,
        newest: &'m IncomingMessage,
        unread: i32,
        last_inbound: Option<DateTime<Utc>>,
        name: Option<&'m str>,
        username: Option<&'m str>,
    }
    let mut gains: HashMap<Uuid, Gain> = HashMap::new();
    let mut terms = TermsGained::default();
    let mut stored = HashMap::with_capacity(inserted.len());
    for (route, m) in items {
        let conversation_id = conversation_of(route, m)?;
        // Once per stored message, even if the batch carried it twice.
        let key = (conversation_id, m.external_id.clone());
        let Some(message_id) = inserted.remove(&key) else {
            continue;
        };
        stored.insert(key, message_id);
        live(
            out,
            route.organization_id,
            "message.created",
            json!({ "conversation_id": conversation_id, "message_id": message_id }),
        );
        let gain = gains.entry(conversation_id).or_insert(Gain {
            organization_id: route.organization_id,
            newest: m,
            unread: 0,
            last_inbound: None,
            name: None,
            username: None,
        });
        if m.timestamp >= gain.newest.timestamp {
            gain.newest = m;
        }
        let words = terms.of(conversation_id, route.organization_id);
        words.add_message(&m.content);
        if m.author == Author::Customer {
            for text in [&m.contact_name, &m.contact_username].into_iter().flatten() {
                words.add_text(text);
            }
            gain.unread += 1;
            gain.last_inbound = gain.last_inbound.max(Some(m.timestamp));
            gain.name = m.contact_name.as_deref().or(gain.name);
            gain.username = m.contact_username.as_deref().or(gain.username);
        }
    }
    // Every writer locks conversations in id order, so concurrent batches wait, never deadlock.
    let mut gains: Vec<(Uuid, Gain)> = gains.into_iter().collect();
    gains.sort_unstable_by_key(|(id, _)| *id);
    for chunk in gains.chunks(BULK_ROWS) {
        let mut update = sqlx::QueryBuilder::<Db>::new(
            "UPDATE conversations SET \
             contact_name = COALESCE(v.column5, contact_name), \
             contact_username = COALESCE(v.column6, contact_username), \
             preview = CASE WHEN last_message_at <= v.column3 THEN v.column4 ELSE preview END, \
             last_message_at = CASE WHEN last_message_at < v.column3 THEN v.column3 ELSE last_message_at END, \
             last_inbound_at = CASE WHEN v.column8 IS NOT NULL \
                               AND (last_inbound_at IS NULL OR last_inbound_at < v.column8) \
                               THEN v.column8 ELSE last_inbound_at END, \
             unread_count = unread_count + v.column2, \
             status = CASE WHEN v.column2 > 0 AND status = 'CLOSED' THEN 'OPEN' ELSE status END, \
             updated_at = v.column7 \
             FROM (",
        );
        update.push_values(chunk, |mut row, (conversation_id, gain)| {
            row.push_bind(*conversation_id)
                .push_bind(gain.unread)
                .push_bind(gain.newest.timestamp)
                .push_bind(&gain.newest.preview)
                .push_bind(gain.name)
                .push_bind(gain.username)
                .push_bind(now)
                .push_bind(gain.last_inbound);
        });
        update.push(") AS v WHERE conversations.id = v.column1");
        update
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
    }
    // After the conversations' locks: a rebuild of the same entries holds those first too.
    terms.insert(conn, BitsWrite::Add).await?;
    for (conversation_id, gain) in &gains {
        let kind = if created.contains(conversation_id) {
            "conversation.created"
        } else {
            "conversation.updated"
        };
        live(
            out,
            gain.organization_id,
            kind,
            json!({ "conversation_id": conversation_id }),
        );
    }
    Ok(stored)
}

/// The conversation of every (connection, thread) in `items`, creating the missing ones; also
/// which were created now.
async fn resolve_conversations(
    conn: &mut DbConn,
    items: &[(Route, &IncomingMessage)],
    now: DateTime<Utc>,
) -> StoreResult<(HashMap<(Uuid, String), Uuid>, HashSet<Uuid>)> {
    let mut first_of: BTreeMap<(Uuid, String), (Route, &IncomingMessage)> = BTreeMap::new();
    for (route, m) in items {
        first_of
            .entry((route.connection_id, m.conversation_key.clone()))
            .or_insert((*route, *m));
    }
    let keys: Vec<(Uuid, String)> = first_of.keys().cloned().collect();
    let mut found = find_conversations(conn, &keys).await?;
    // In key order (a BTreeMap), so every writer takes the conversations' locks in one order.
    let missing: Vec<(Route, &IncomingMessage)> = first_of
        .iter()
        .filter(|(key, _)| !found.contains_key(*key))
        .map(|(_, item)| *item)
        .collect();
    let mut created = HashSet::new();
    for chunk in missing.chunks(BULK_ROWS) {
        let mut insert = sqlx::QueryBuilder::<Db>::new(
            "INSERT INTO conversations (id, organization_id, platform_connection_id, platform, external_id, \
             contact_external_id, contact_name, contact_username, status, last_message_at, unread_count, \
             created_at, updated_at) ",
        );
        insert.push_values(chunk, |mut row, (route, m)| {
            row.push_bind(crate::domain::new_id())
                .push_bind(route.organization_id)
                .push_bind(route.connection_id)
                .push_bind(m.platform.as_str())
                .push_bind(&m.conversation_key)
                .push_bind(&m.contact_id)
                .push_bind(&m.contact_name)
                .push_bind(&m.contact_username)
                .push_bind("OPEN")
                .push_bind(m.timestamp)
                .push_bind(0_i32)
                .push_bind(now)
                .push_bind(now);
        });
        insert.push(
            " ON CONFLICT (platform_connection_id, external_id) DO NOTHING \
             RETURNING id, platform_connection_id, external_id",
        );
        let rows: Vec<(Uuid, Uuid, String)> = insert
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        for (id, connection, external) in rows {
            created.insert(id);
            found.insert((connection, external), id);
        }
    }
    // Created meanwhile by another writer: look those up again.
    let raced: Vec<(Uuid, String)> = keys.into_iter().filter(|key| !found.contains_key(key)).collect();
    if !raced.is_empty() {
        found.extend(find_conversations(conn, &raced).await?);
    }
    Ok((found, created))
}

async fn find_conversations(
    conn: &mut DbConn,
    keys: &[(Uuid, String)],
) -> StoreResult<HashMap<(Uuid, String), Uuid>> {
    let mut found = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(BULK_ROWS) {
        let mut select = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, platform_connection_id, external_id FROM conversations \
             WHERE (platform_connection_id, external_id) IN ",
        );
        select.push_tuples(chunk, |mut row, (connection, external)| {
            row.push_bind(*connection).push_bind(external);
        });
        let rows: Vec<(Uuid, Uuid, String)> = select
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        found.extend(
            rows.into_iter()
                .map(|(id, connection, external)| ((connection, external), id)),
        );
    }
    Ok(found)
}

/// How events are isolated from each other within a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// No savepoints: the first failing event aborts the attempt (then retried with savepoints).
    /// Failures are rare, so this saves two round trips per event in the common case.
    Optimistic,
    /// A savepoint per event: a failing event is rolled back and recorded, the rest applied.
    Savepoints,
}

/// Applies every event of one webhook and says how it went; live events go to `out`.
/// In optimistic mode, customer messages are not applied here but pushed to `deferred`, to be
/// applied for the whole batch at once by [`store_new_messages`].
async fn apply_webhook<'w>(
    tx: &mut Transaction<'static, Db>,
    routes: &mut Routes,
    webhook: &'w IncomingWebhook,
    isolation: Isolation,
    out: &mut LiveEvents,
    deferred: &mut Vec<(Route, &'w IncomingMessage)>,
) -> StoreResult<(IngestOutcome, Option<Uuid>)> {
    let mut outcome = IngestOutcome {
        webhook_id: webhook.id,
        status: WebhookStatus::Processed,
        events: 0,
        applied: 0,
        unroutable: 0,
        failed: 0,
        reasons: Vec::new(),
    };
    let events = match &webhook.events {
        Ok(events) => events,
        Err(reason) => {
            outcome.status = WebhookStatus::Failed;
            outcome.reasons.push(format!("unparseable body: {reason}"));
            return Ok((outcome, None));
        }
    };
    outcome.events = events.len();
    let now = crate::domain::now();
    let mut organization = None;
    for event in events {
        let Some((platform, account)) = event.route() else {
            outcome.applied += 1;
            continue;
        };
        let Some(route) = route(&mut *tx, routes, platform, account).await? else {
            outcome.unroutable += 1;
            let reason = format!("no live {platform} connection for account {account}");
            if !outcome.reasons.contains(&reason) {
                outcome.reasons.push(reason);
            }
            continue;
        };
        organization.get_or_insert(route.organization_id);
        if isolation == Isolation::Optimistic {
            match event {
                IngestEvent::Message(m) if m.author == Author::Customer => deferred.push((route, m)),
                _ => apply_event(&mut *tx, out, route, event, now).await?,
            }
            outcome.applied += 1;
            continue;
        }
        let mut savepoint = sqlx::Connection::begin(&mut **tx).await.map_err(db_error)?;
        let mut changes = LiveEvents::new();
        match apply_event(&mut savepoint, &mut changes, route, event, now).await {
            Ok(()) => {
                savepoint.commit().await.map_err(db_error)?;
                out.append(&mut changes);
                outcome.applied += 1;
            }
            // Not this event's fault: fail the attempt so the batch is retried or redelivered.
            Err(err @ (StoreError::Unavailable(_) | StoreError::Transient(_))) => return Err(err),
            Err(err) => {
                savepoint.rollback().await.map_err(db_error)?;
                tracing::warn!(webhook_id = %webhook.id, error = %err, "webhook event could not be applied");
                outcome.failed += 1;
                outcome
                    .reasons
                    .push(format!("{} event failed: {err}", event_kind(event)));
            }
        }
    }
    outcome.status = if outcome.failed > 0 {
        WebhookStatus::Failed
    } else if outcome.unroutable > 0 {
        WebhookStatus::Unroutable
    } else {
        WebhookStatus::Processed
    };
    Ok((outcome, organization))
}

fn reason_text(outcome: &IngestOutcome) -> Option<String> {
    (!outcome.reasons.is_empty()).then(|| outcome.reasons.join("; "))
}

impl Backend {
    /// One attempt at a batch: apply, then write the webhook rows and live events, commit.
    async fn ingest_attempt(
        &self,
        batch: &[IncomingWebhook],
        isolation: Isolation,
    ) -> StoreResult<Vec<IngestOutcome>> {
        let mut tx = begin_write(&self.pool).await?;
        let mut routes = Routes::new();
        let mut changes = LiveEvents::new();
        let mut applied = Vec::with_capacity(batch.len());
        let mut customer_messages = Vec::new();
        for webhook in batch {
            applied.push(
                apply_webhook(
                    &mut tx,
                    &mut routes,
                    webhook,
                    isolation,
                    &mut changes,
                    &mut customer_messages,
                )
                .await?,
            );
        }
        let now = crate::domain::now();
        store_new_messages(&mut tx, &mut changes, &customer_messages, now).await?;
        // Ten parameters a row; chunks stay under SQLite's bound-parameter limit.
        for chunk in batch.iter().zip(&applied).collect::<Vec<_>>().chunks(500) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO webhook_events (id, platform, organization_id, body, received_at, status, reason, \
                 processed_at, event_count, applied_count) ",
            );
            insert.push_values(chunk, |mut row, (webhook, (outcome, organization))| {
                row.push_bind(webhook.id)
                    .push_bind(webhook.platform.as_str())
                    .push_bind(*organization)
                    .push_bind(webhook.body.as_slice())
                    .push_bind(webhook.received_at)
                    .push_bind(outcome.status.as_db())
                    .push_bind(reason_text(outcome))
                    .push_bind(now)
                    .push_bind(count(outcome.events))
                    .push_bind(count(outcome.applied));
            });
            insert
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        insert_live_events(&mut tx, &changes, now).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(applied.into_iter().map(|(outcome, _)| outcome).collect())
    }
}

fn event_kind(event: &IngestEvent) -> &'static str {
    match event {
        IngestEvent::Message(_) => "message",
        IngestEvent::Receipt(_) => "receipt",
        IngestEvent::Watermark(_) => "watermark",
        IngestEvent::Ignored { .. } => "ignored",
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[async_trait]
impl IngestStore for Backend {
    async fn ingest(&self, batch: &[IncomingWebhook]) -> StoreResult<Vec<IngestOutcome>> {
        match self.ingest_attempt(batch, Isolation::Optimistic).await {
            Err(err @ StoreError::Unavailable(_)) => Err(err),
            // Some event failed: nothing of the attempt was kept; again, isolating each event.
            Err(err) => {
                tracing::warn!(error = %err, "ingest batch failed; applying it again with a savepoint per event");
                self.ingest_attempt(batch, Isolation::Savepoints).await
            }
            ok => ok,
        }
    }

    async fn reapply(&self, webhook: &IncomingWebhook) -> StoreResult<IngestOutcome> {
        let mut tx = begin_write(&self.pool).await?;
        let mut changes = LiveEvents::new();
        let (outcome, organization) = apply_webhook(
            &mut tx,
            &mut Routes::new(),
            webhook,
            Isolation::Savepoints,
            &mut changes,
            &mut Vec::new(),
        )
        .await?;
        let updated = sqlx::query(
            "UPDATE webhook_events SET status = $2, reason = $3, processed_at = $4, event_count = $5, \
             applied_count = $6, organization_id = COALESCE($7, organization_id) WHERE id = $1",
        )
        .bind(webhook.id)
        .bind(outcome.status.as_db())
        .bind(reason_text(&outcome))
        .bind(crate::domain::now())
        .bind(count(outcome.events))
        .bind(count(outcome.applied))
        .bind(organization)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::NotFound);
        }
        insert_live_events(&mut tx, &changes, crate::domain::now()).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(outcome)
    }

    async fn webhooks_needing_attention(
        &self,
        organizations: Option<&[Uuid]>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookSummary>> {
        let mut query = sqlx::QueryBuilder::<Db>::new(
            "SELECT id, platform, organization_id, received_at, status, reason, event_count, applied_count \
             FROM webhook_events WHERE status IN ('UNROUTABLE', 'FAILED', 'PARTIAL')",
        );
        if let Some(organizations) = organizations {
            query.push(" AND organization_id IN (");
            let mut orgs = query.separated(", ");
            for org in organizations {
                orgs.push_bind(*org);
            }
            if organizations.is_empty() {
                orgs.push("NULL");
            }
            query.push(")");
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
        query
            .build_query_as()
            .persistent(false)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn webhook_summary(&self, id: Uuid) -> StoreResult<Option<WebhookSummary>> {
        sqlx::query_as(
            "SELECT id, platform, organization_id, received_at, status, reason, event_count, applied_count \
             FROM webhook_events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn webhooks_for_replay(
        &self,
        filter: &ReplayFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<StoredWebhook>> {
        sqlx::query_as(
            "SELECT id, platform, body, received_at, status FROM webhook_events \
             WHERE ($1 IS NULL OR id = $1) AND ($2 IS NULL OR platform = $2) \
             AND ($3 IS NULL OR received_at >= $3) AND ($4 IS NULL OR received_at < $4) \
             AND ($5 OR status <> 'PROCESSED') AND ($6 IS NULL OR id > $6) \
             ORDER BY id LIMIT $7",
        )
        .bind(filter.id)
        .bind(filter.platform.map(Platform::as_str))
        .bind(filter.since)
        .bind(filter.until)
        .bind(filter.include_processed)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }
}
