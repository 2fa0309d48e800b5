//! The SQL both backends run, a module per area. This module is compiled once inside each
//! backend (`postgres.rs` and `sqlite.rs` declare it), so every statement is typed against that
//! backend's driver. Placeholders are `$n` (both drivers accept them); everything else here is
//! SQL both dialects run unchanged. What differs is defined by the backend and imported here:
//! the store type and its pool (`Backend`, `Db`, `DbConn`), starting a write transaction
//! (`begin_write`: SQLite takes the write lock up front), mapping errors to named constraints
//! (`db_error`), row locks (`FOR_UPDATE`, `LOCK_ORGANIZATION`), the event log's horizon (`EVENTS_INSERT`,
//! `event_horizon`), lists of ids
//! (`push_any_of`), the queue table (`push_send_jobs`, `DELETE_FINISHED_JOBS`, `QUEUE_BEHIND`,
//! `job_time`) and
//! a few expressions (`HOUR_BUCKET`, `compact_conversation_counts`).

#[macro_use]
mod columns;
mod batch_locks;
mod connections;
mod events;
mod identity;
mod inbox;
mod ingest;
mod maintenance;
mod messages;
mod organizations;
mod outbound;
mod receipts;
mod search;
mod sweep;

use super::{
    BACKEND, Backend, DELETE_FINISHED_JOBS, Db, DbConn, EVENTS_INSERT, FOR_UPDATE, HOUR_BUCKET,
    LOCK_ORGANIZATION, QUEUE_BEHIND, ROW_LOCKS, begin_write, compact_conversation_counts, db_error,
    event_horizon, job_time, lock_conversation_rows, push_any_of, push_send_jobs, run_migrations,
};
use async_trait::async_trait;

use crate::store::{QueuePool, Store, StoreResult};

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
}
