//! The SQLite store: the embedded default, so the service runs with no database server.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::{Constraint, EventSignal, QueuePool, StoreError, StoreResult};
use crate::queue::{QueuedJob, SEND_QUEUE, send_task};

const BACKEND: &str = "sqlite";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
/// Finished apalis jobs: done, killed, or failed with no attempts left (`done_at` is epoch
/// seconds here).
/// Whether the send queue has jobs due before `$2` that no worker has taken yet (a backlog).
const QUEUE_BEHIND: &str = "SELECT EXISTS (SELECT 1 FROM Jobs WHERE job_type = $1 AND status = 'Pending' \
     AND run_at < $2)";
const DELETE_FINISHED_JOBS: &str = "DELETE FROM Jobs WHERE job_type = $1 AND done_at < $2 \
     AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
/// `YYYY-MM-DDTHH` of a timestamp column (stored as RFC 3339 text in UTC).
const HOUR_BUCKET: &str = "substr(started_at, 1, 13)";
// SQLite has no row locks; BEGIN IMMEDIATE (see `begin_write`) already serializes writers.
/// One writer at a time: nothing to order.
const ROW_LOCKS: bool = false;
/// Locks the rows a SELECT reads until commit (SQLite: the write transaction already does).
const FOR_UPDATE: &str = "";
const LOCK_ORGANIZATION: &str = "SELECT plan FROM organizations WHERE id = $1";

/// ` column IN (ids)` (SQLite has no arrays).
fn push_any_of(query: &mut sqlx::QueryBuilder<Db>, column: &str, ids: &[Uuid]) {
    query.push(format!(" {column} IN ("));
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    query.push(")");
}

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Fires when a job is inserted into apalis's `Jobs` table, to wake idle workers.
    job_inserts: tokio::sync::broadcast::Sender<()>,
    /// This process's commits of events (SQLite has no LISTEN/NOTIFY; another process sharing
    /// the file is seen by polling).
    events: EventSignal,
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
            .foreign_keys(true)
            // Reads come from the OS page cache through a memory map instead of a read() per
            // page, and each connection keeps 16 MiB of pages (the default is 2 MiB): inbox
            // reads over millions of messages depend on it (docs/benchmarks.md, "Inbox benchmark").
            .pragma("mmap_size", "1073741824")
            .pragma("cache_size", "-16384");
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        }
        let (job_inserts, _) = tokio::sync::broadcast::channel(16);
        let hook = job_inserts.clone();
        let pool = SqlitePoolOptions::new()
            .after_connect(move |conn, _| {
                let hook = hook.clone();
                Box::pin(async move {
                    let mut handle = conn.lock_handle().await?;
                    handle.set_update_hook(move |event| {
                        if event.operation == sqlx::sqlite::SqliteOperation::Insert && event.table == "Jobs" {
                            let _ = hook.send(());
                        }
                    });
                    Ok(())
                })
            })
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        Ok(SqliteStore {
            pool,
            job_inserts,
            events: EventSignal::new(None),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn queue(&self) -> QueuePool {
        QueuePool::Sqlite {
            pool: self.pool.clone(),
            inserts: self.job_inserts.clone(),
        }
    }
}

/// Ours and apalis's migrations share `_sqlx_migrations` in one file, so they run as one
/// migrator (each alone would find the other's versions and refuse). apalis's own `setup()` is
/// not used: it would also switch one pooled connection to `synchronous = OFF`.
async fn run_migrations(pool: &SqlitePool) -> StoreResult<()> {
    let mut migrations: Vec<_> = MIGRATOR.iter().cloned().collect();
    migrations.extend(apalis_sqlite::SqliteStorage::migrations().iter().cloned());
    sqlx::migrate::Migrator::with_migrations(migrations)
        .run(pool)
        .await?;
    Ok(())
}

/// apalis stores `done_at` as epoch seconds here.
fn job_time(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// Pushes send jobs on the caller's connection (inside its transaction).
async fn push_send_jobs(conn: &mut DbConn, jobs: &[QueuedJob]) -> StoreResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let tasks: Vec<_> = jobs.iter().map(send_task).collect();
    apalis_sqlite::queries::push_tasks(conn, SEND_QUEUE, &tasks)
        .await
        .map_err(|err| match err {
            apalis_sqlite::Error::Database(err) => db_error(err),
            other => StoreError::Database(sqlx::Error::Protocol(other.to_string())),
        })
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

/// One writer at a time (BEGIN IMMEDIATE): ids already become visible in commit order, so
/// nothing needs marking and every committed event is below the horizon.
const EVENTS_INSERT: (&str, &str) = (
    "INSERT INTO events (organization_id, kind, payload, created_at, conversation_id, message_id) ",
    "",
);

async fn event_horizon(_pool: &SqlitePool) -> StoreResult<i64> {
    Ok(i64::MAX)
}

impl SqliteStore {
    fn follow_events(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }
}

/// Never called: SQLite has one writer at a time, so ingest batches lock nothing
/// (`ROW_LOCKS` is false).
async fn lock_conversation_rows(
    _conn: &mut DbConn,
    _threads: &[(Uuid, String)],
    _named: &[(Uuid, String)],
    _ours: &[Uuid],
) -> StoreResult<Vec<(Uuid, Uuid, String)>> {
    Err(StoreError::Database(sqlx::Error::Protocol(
        "SQLite serializes writers; row locks are never taken".into(),
    )))
}

/// Folds the count deltas into one row per (organization, assignee); the write transaction
/// keeps every other writer out meanwhile.
async fn compact_conversation_counts(pool: &SqlitePool) -> StoreResult<u64> {
    let mut tx = begin_write(pool).await?;
    let totals: Vec<(Uuid, Option<Uuid>, i64, i64)> = sqlx::query_as(
        "SELECT organization_id, assignee_id, sum(open_count), sum(unread_count) FROM conversation_counts \
         GROUP BY organization_id, assignee_id \
         HAVING sum(open_count) <> 0 OR sum(unread_count) <> 0",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_error)?;
    sqlx::query("DELETE FROM conversation_counts")
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    for chunk in totals.chunks(200) {
        let mut insert = sqlx::QueryBuilder::<Db>::new("INSERT INTO conversation_counts ");
        insert.push_values(chunk, |mut row, (org, assignee, open, unread)| {
            row.push_bind(*org)
                .push_bind(*assignee)
                .push_bind(*open)
                .push_bind(*unread);
        });
        insert.build().execute(&mut *tx).await.map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(totals.len() as u64)
}

/// The SQL of every area, compiled against this backend's driver (the other backend compiles the
/// same module against its own: every statement is checked against a concrete database type,
/// which generic sqlx code over both could only do with a bound per bound type and row).
#[expect(
    clippy::duplicate_mod,
    reason = "the same SQL is compiled once per backend, on purpose"
)]
#[path = "sql/mod.rs"]
mod sql;
