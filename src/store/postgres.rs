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

const BACKEND: &str = "postgres";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
const LOCK_ORGANIZATION: &str = "SELECT plan FROM organizations WHERE id = $1 FOR UPDATE";

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
