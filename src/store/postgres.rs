//! The PostgreSQL store (production).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use snorq_connectors::Platform;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::*;
use crate::domain::MessageStatus;
use crate::queue::{QueuedJob, SEND_QUEUE, SendJob, send_task};

const BACKEND: &str = "postgres";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
const LOCK_ORGANIZATION: &str = "SELECT plan FROM organizations WHERE id = $1 FOR UPDATE";
/// Finished apalis jobs: done, killed, or failed with no attempts left.
const DELETE_FINISHED_JOBS: &str = "DELETE FROM apalis.jobs WHERE job_type = $1 AND done_at < $2 \
     AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
/// `YYYY-MM-DDTHH` of a timestamp column, in UTC.
const HOUR_BUCKET: &str = "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')";

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

type Db = Postgres;
type DbConn = sqlx::PgConnection;
type Backend = PgStore;

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(db_error)?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Our migrations, then apalis's (schema `apalis`, with its own ledger there).
async fn run_migrations(pool: &PgPool) -> StoreResult<()> {
    MIGRATOR.run(pool).await?;
    apalis_postgres::PostgresStorage::setup(pool)
        .await
        .map_err(queue_error)
}

/// apalis stores `done_at` as a timestamp here.
fn job_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t
}

/// Pushes send jobs on the caller's connection (inside its transaction).
async fn push_send_jobs(conn: &mut DbConn, jobs: &[QueuedJob]) -> StoreResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let tasks = jobs.iter().map(send_task).collect();
    apalis_postgres::queries::push_tasks(conn, SEND_QUEUE, tasks)
        .await
        .map_err(queue_error)
}

fn queue_error(err: apalis_postgres::Error) -> StoreError {
    match err {
        apalis_postgres::Error::Database(err) => db_error(err),
        other => StoreError::Database(sqlx::Error::Protocol(other.to_string())),
    }
}

impl PgStore {
    fn queue(&self) -> QueuePool {
        QueuePool::Postgres(self.pool.clone())
    }
}

async fn begin_write(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
    pool.begin().await.map_err(db_error)
}

fn db_error(err: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &err
        && let Some(code) = db.code()
    {
        if is_unavailable(&code) {
            return StoreError::Unavailable(err);
        }
        // Serialization failure, deadlock, statement cancelled: the same work may succeed again.
        if matches!(code.as_ref(), "40001" | "40P01" | "57014") {
            return StoreError::Transient(err);
        }
    }
    StoreError::from_sqlx(err, |db| {
        db.constraint()
            .map_or(Constraint::Other, Constraint::from_postgres)
    })
}

/// SQLSTATEs that mean "try again later" rather than "this request is wrong": connection
/// failures (class 08), shutdown and startup (57P01-57P03), no connections left (53300), the
/// database not accepting connections (55000) or gone (3D000).
fn is_unavailable(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "55000" | "3D000")
}

include!("shared_sql.rs");
include!("outbound_sql.rs");
