//! Database errors mapped to domain errors by constraint name (PostgreSQL) or by the columns
//! SQLite names in its message. The names are defined in `migrations/`.

/// The unique constraints callers care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constraint {
    UserEmail,
    OrganizationSlug,
    Membership,
    ConnectionOrgAccount,
    ConnectionLiveAccount,
    MessageIdempotencyKey,
    LabelName,
    Invitation,
    Other,
}

impl Constraint {
    /// From a PostgreSQL constraint or unique-index name.
    pub fn from_postgres(name: &str) -> Self {
        match name {
            "users_email_key" => Constraint::UserEmail,
            "organizations_slug_key" => Constraint::OrganizationSlug,
            "organization_members_pkey" => Constraint::Membership,
            "platform_connections_org_account_key" => Constraint::ConnectionOrgAccount,
            "platform_connections_live_account_key" => Constraint::ConnectionLiveAccount,
            "messages_org_idempotency_key" => Constraint::MessageIdempotencyKey,
            "labels_org_name_key" => Constraint::LabelName,
            "invitations_org_email_key" => Constraint::Invitation,
            _ => Constraint::Other,
        }
    }

    /// From SQLite's message, "UNIQUE constraint failed: table.col, table.col".
    pub fn from_sqlite(message: &str) -> Self {
        let columns = message.split_once(": ").map_or("", |(_, cols)| cols);
        match columns {
            "users.email_normalized" => Constraint::UserEmail,
            "organizations.slug" => Constraint::OrganizationSlug,
            "organization_members.organization_id, organization_members.user_id" => Constraint::Membership,
            "platform_connections.organization_id, platform_connections.platform, platform_connections.platform_user_id" => {
                Constraint::ConnectionOrgAccount
            }
            "platform_connections.platform, platform_connections.platform_user_id" => {
                Constraint::ConnectionLiveAccount
            }
            "messages.organization_id, messages.idempotency_key" => Constraint::MessageIdempotencyKey,
            "labels.organization_id, labels.name" => Constraint::LabelName,
            "invitations.organization_id, invitations.email_normalized" => Constraint::Invitation,
            _ => Constraint::Other,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated: {0:?}")]
    Conflict(Constraint),
    #[error("the plan allows {limit} members")]
    PlanLimit { limit: i64 },
    #[error("not found")]
    NotFound,
    /// The database could not be reached (pool timeout, connection refused, shutting down).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Worth retrying as is: a deadlock, a serialization failure, a cancelled statement.
    #[error("transient database error: {0}")]
    Transient(#[source] sqlx::Error),
    /// The service cannot start on this database: what happened, said once, with what to do.
    #[error("{0}")]
    CannotConnect(String),
    /// The row changed since it was read (optimistic concurrency).
    #[error("changed meanwhile")]
    Stale,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The same kind of error without its source, for when several waiters share one failure
    /// (only the kind decides what they answer).
    pub fn kind_copy(&self) -> StoreError {
        match self {
            StoreError::Conflict(c) => StoreError::Conflict(*c),
            StoreError::PlanLimit { limit } => StoreError::PlanLimit { limit: *limit },
            StoreError::NotFound => StoreError::NotFound,
            StoreError::Stale => StoreError::Stale,
            StoreError::Unavailable(_) => StoreError::Unavailable(sqlx::Error::PoolTimedOut),
            StoreError::Transient(_) => StoreError::Transient(sqlx::Error::PoolTimedOut),
            other => StoreError::Database(sqlx::Error::Protocol(other.to_string())),
        }
    }

    /// Classifies a driver error; `constraint` names the violated unique constraint, per backend.
    pub(super) fn from_sqlx(
        err: sqlx::Error,
        constraint: impl Fn(&dyn sqlx::error::DatabaseError) -> Constraint,
    ) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(constraint(db.as_ref()))
            }
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(err),
            _ => StoreError::Database(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_messages_map_to_the_same_constraints_as_postgres_names() {
        assert_eq!(
            Constraint::from_sqlite("UNIQUE constraint failed: users.email_normalized"),
            Constraint::from_postgres("users_email_key")
        );
        assert_eq!(
            Constraint::from_sqlite(
                "UNIQUE constraint failed: platform_connections.platform, platform_connections.platform_user_id"
            ),
            Constraint::ConnectionLiveAccount
        );
        assert_eq!(
            Constraint::from_sqlite(
                "UNIQUE constraint failed: messages.organization_id, messages.idempotency_key"
            ),
            Constraint::from_postgres("messages_org_idempotency_key")
        );
        assert_eq!(Constraint::from_sqlite("something else"), Constraint::Other);
    }
}
