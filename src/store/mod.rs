//! Storage: a small trait per area (identity, organizations, connections, ingest, outbound,
//! inbox, events, maintenance), each implemented for PostgreSQL and SQLite; [`Store`] is all of
//! them together, picked by the database URL scheme. Transactions live inside the store;
//! callers never hold a connection. A component that needs one area holds only that trait.
//!
//! The SQL is in `sql/`, a file per area. Both dialects run the same statements (`$n`
//! placeholders work in both), so `sql/` is compiled once inside each backend module against
//! that backend's driver: every query is typed against a concrete database, and what differs
//! (connecting, transaction start, locks, error codes, the queue table) is in `postgres.rs` and
//! `sqlite.rs`, imported by name at the top of `sql/mod.rs`. docs/architecture.md has the
//! storage design.

mod connections;
mod error;
mod events;
mod identity;
mod inbox;
mod ingest;
mod maintenance;
mod organizations;
mod outbound;
mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

pub use connections::*;
pub use error::{Constraint, StoreError};
pub use events::*;
pub use identity::*;
pub use inbox::*;
pub use ingest::*;
pub use maintenance::*;
pub use organizations::*;
pub use outbound::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::config::DatabaseUrl;

pub type StoreResult<T> = Result<T, StoreError>;

/// Connects to the database named by `url`, runs the embedded migrations, and returns the store.
pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    Ok(match url {
        DatabaseUrl::Postgres(url) => Arc::new(PgStore::connect(url, max_connections).await?),
        DatabaseUrl::Sqlite(url) => Arc::new(SqliteStore::connect(url, max_connections).await?),
    })
}

/// Every area of the store, and the database itself.
#[async_trait]
pub trait Store:
    IdentityStore
    + OrganizationStore
    + ConnectionStore
    + IngestStore
    + OutboundStore
    + InboxStore
    + EventStore
    + MaintenanceStore
    + Send
    + Sync
    + 'static
{
    /// Which backend this is ("postgres" or "sqlite"), for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Runs the embedded migrations (idempotent).
    async fn migrate(&self) -> StoreResult<()>;

    /// A cheap round trip to the database, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;

    /// The pool the job queue shares with the store, so that jobs are pushed inside the
    /// store's own transactions.
    fn queue_pool(&self) -> QueuePool;
}

/// The database pool behind the store, for the job queue (apalis) to run on.
#[derive(Clone)]
pub enum QueuePool {
    Postgres(sqlx::PgPool),
    /// With a signal for each row inserted into the queue table (SQLite has no LISTEN/NOTIFY;
    /// an update hook on every pooled connection stands in for it).
    Sqlite {
        pool: sqlx::SqlitePool,
        inserts: tokio::sync::broadcast::Sender<()>,
    },
}
