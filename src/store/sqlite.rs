//! The SQLite store: the embedded default, so the service runs with no database server.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use snorq_connectors::Platform;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::*;
use crate::domain::MessageStatus;

const BACKEND: &str = "sqlite";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
// SQLite has no row locks; BEGIN IMMEDIATE (see `begin_write`) already serializes writers.
const LOCK_ORGANIZATION: &str = "SELECT plan FROM organizations WHERE id = $1";

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

type Db = Sqlite;
type DbConn = sqlx::SqliteConnection;
type Backend = SqliteStore;

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(db_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Ok(SqliteStore { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// Takes the write lock up front: a deferred transaction that reads and then writes can fail
/// with SQLITE_BUSY when another writer got there in between, instead of waiting.
async fn begin_write(pool: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
    pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_error)
}

fn db_error(err: sqlx::Error) -> StoreError {
    // SQLITE_BUSY and SQLITE_LOCKED (with their extended codes) after busy_timeout: another
    // process holds the write lock; the caller should retry, not fail.
    if let sqlx::Error::Database(db) = &err
        && db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| matches!(code & 0xff, 5 | 6))
    {
        return StoreError::Unavailable(err);
    }
    StoreError::from_sqlx(err, |db| Constraint::from_sqlite(db.message()))
}

include!("shared_sql.rs");
