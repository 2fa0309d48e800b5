// The `Store` implementation shared by both backends, included by `postgres.rs` and
// `sqlite.rs`. Each includer defines:
//   type Backend  - the store struct, with a `pool: sqlx::Pool<Db>` field
//   fn begin_write(&Pool<Db>)  - starts a write transaction (SQLite: BEGIN IMMEDIATE)
//   fn db_error(sqlx::Error) -> StoreError  - maps errors, naming constraints
//   const LOCK_ORGANIZATION  - SELECT that locks an organization row for the transaction
//   const BACKEND, and MIGRATOR.
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
macro_rules! connection_columns {
    () => {
        "id, organization_id, platform, platform_user_id, name, status, access_token_enc, \
         refresh_token_enc, token_fingerprint, access_token_expires_at, refresh_token_expires_at, \
         settings, last_error, created_at, updated_at"
    };
}

#[async_trait]
impl Store for Backend {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
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
        // Lock the organization so that concurrent adds cannot both pass the seat check.
        let plan: Option<String> = sqlx::query_scalar(LOCK_ORGANIZATION)
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let plan = plan
            .as_deref()
            .and_then(crate::domain::Plan::from_db)
            .ok_or(StoreError::NotFound)?;
        let seats: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM organization_members WHERE organization_id = $1")
                .bind(org_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
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

    async fn insert_connection(&self, c: &Connection) -> StoreResult<Connection> {
        sqlx::query_as(concat!(
            "INSERT INTO platform_connections (id, organization_id, platform, platform_user_id, name, status, \
             access_token_enc, refresh_token_enc, token_fingerprint, access_token_expires_at, \
             refresh_token_expires_at, settings, last_error, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING ",
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
        .bind(c.created_at)
        .bind(c.updated_at)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)
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

    async fn save_connection(&self, c: &Connection) -> StoreResult<Connection> {
        sqlx::query_as(concat!(
            "UPDATE platform_connections SET name = $3, status = $4, access_token_enc = $5, \
             refresh_token_enc = $6, token_fingerprint = $7, access_token_expires_at = $8, \
             refresh_token_expires_at = $9, settings = $10, last_error = $11, updated_at = $12 \
             WHERE organization_id = $1 AND id = $2 RETURNING ",
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
        .bind(c.updated_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or(StoreError::NotFound)
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
            "UPDATE platform_connections SET access_token_enc = $4, refresh_token_enc = $5 \
             WHERE id = $1 \
             AND ((access_token_enc IS NULL AND $2 IS NULL) OR access_token_enc = $2) \
             AND ((refresh_token_enc IS NULL AND $3 IS NULL) OR refresh_token_enc = $3)",
        )
        .bind(old.id)
        .bind(&old.access_token_enc)
        .bind(&old.refresh_token_enc)
        .bind(&new.access_token_enc)
        .bind(&new.refresh_token_enc)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(updated.rows_affected() == 1)
    }
}
