//! The PostgreSQL store (production).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use tokio::sync::{mpsc, watch};

use super::{Constraint, EventSignal, QueuePool, StoreError, StoreResult};
use crate::queue::{QueuedJob, SEND_QUEUE, send_task};

const BACKEND: &str = "postgres";
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// Concurrent writers lock rows: ingest batches take theirs in one order up front (`sql/batch_locks.rs`).
const ROW_LOCKS: bool = true;
/// Locks the rows a SELECT reads until commit (SQLite: the write transaction already does).
const FOR_UPDATE: &str = " FOR UPDATE";
const LOCK_ORGANIZATION: &str = "SELECT plan FROM organizations WHERE id = $1 FOR UPDATE";

/// ` column = ANY(ids)`: one statement text for any number of ids, so it is prepared once.
fn push_any_of(query: &mut sqlx::QueryBuilder<Db>, column: &str, ids: &[Uuid]) {
    query
        .push(format!(" {column} = ANY("))
        .push_bind(ids.to_vec())
        .push(")");
}
/// Finished apalis jobs: done, killed, or failed with no attempts left.
/// Whether the send queue has jobs due before `$2` that no worker has taken yet (a backlog).
const QUEUE_BEHIND: &str = "SELECT EXISTS (SELECT 1 FROM apalis.jobs WHERE job_type = $1 AND status = 'Pending' \
     AND run_at < $2)";
const DELETE_FINISHED_JOBS: &str = "DELETE FROM apalis.jobs WHERE job_type = $1 AND done_at < $2 \
     AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";
/// `YYYY-MM-DDTHH` of a timestamp column, in UTC.
const HOUR_BUCKET: &str = "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')";

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    events: EventSignal,
    /// Set once the notification listener runs.
    listening: Arc<OnceLock<()>>,
}

type Db = Postgres;
type DbConn = sqlx::PgConnection;
type Backend = PgStore;

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        // No JIT and no parallel workers: our statements are short index walks. A search over
        // many rows crossed the JIT cost threshold and spent 15 ms compiling, and a walk the
        // planner thought long started two workers: 15 ms against 1 ms (docs/benchmarks.md, "Inbox benchmark").
        let options = PgConnectOptions::from_str(url)
            .map_err(db_error)?
            .options([("jit", "off"), ("max_parallel_workers_per_gather", "0")]);
        probe(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(db_error)?;
        let (notify, requests) = mpsc::channel(1);
        tokio::spawn(notify_others(pool.clone(), requests));
        Ok(PgStore {
            pool,
            events: EventSignal::new(Some(notify)),
            listening: Arc::default(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// One connection before the pool: a pool only says that it timed out, while a person starting
/// the service needs to know why (refused, no such database, login refused) and what to do.
async fn probe(options: &PgConnectOptions) -> StoreResult<()> {
    use sqlx::{Connection, PgConnection};
    let (host, port) = (options.get_host(), options.get_port());
    let database = options.get_database().unwrap_or("postgres");
    let user = options.get_username();
    let attempt = tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(options)).await;
    let err = match attempt {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            return Ok(());
        }
        Ok(Err(err)) => err,
        Err(_) => {
            return Err(StoreError::CannotConnect(format!(
                "no answer from PostgreSQL at {host}:{port} within 5 s"
            )));
        }
    };
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    Err(StoreError::CannotConnect(match (&err, code.as_deref()) {
        (sqlx::Error::Io(io), _) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused at {host}:{port}: is PostgreSQL running there?")
        }
        (_, Some("3D000")) => format!(
            "database {database} does not exist at {host}:{port}; create it with \
             `createdb -h {host} -p {port} -U {user} {database}`"
        ),
        (_, Some("28P01" | "28000")) => {
            format!("PostgreSQL at {host}:{port} refused the login of user {user}")
        }
        _ => format!("cannot connect to PostgreSQL at {host}:{port}: {err}"),
    }))
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

// The event log's horizon (docs/architecture.md, "The event log"). A transaction about to
// append events first takes a shared advisory lock whose key is the next unallocated event id,
// and holds it until it ends; its own ids, allocated afterwards, are all at least that key.
// Nothing waits on these locks (all shared); they only make in-flight writers visible.
// A reader reads the sequence first, then the locks: an id below both was allocated before the
// lock read by a writer that had already ended then, so it has committed or never will.

/// Keys of the event writers' locks are `EVENT_WRITER_TAG + id`: well above any id, and above
/// every key sqlx's migration lock can take (below 2^62), so no other lock is mistaken for one.
/// (`EVENTS_INSERT` spells it out: 4611686018427387904.)
const EVENT_WRITER_TAG: i64 = 1 << 62;
/// The next event id the sequence hands out (`events.id` is a bigserial with the default
/// CACHE 1, so every allocation is visible here at once).
const NEXT_EVENT_ID: &str =
    "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM events_id_seq";

/// How events are inserted (the `VALUES` list goes between the two parts): the transaction
/// takes its writer lock in the same statement, before the first id is taken. The lock is in a
/// materialized CTE the rows are joined with, so the first row (and with it the first id, a
/// default computed on the joined row) exists only once the lock is held.
const EVENTS_INSERT: (&str, &str) = (
    "WITH writer AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(4611686018427387904 + \
     (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM events_id_seq))) \
     INSERT INTO events (organization_id, kind, payload, created_at, conversation_id, message_id) \
     SELECT v.* FROM writer CROSS JOIN (",
    ") AS v",
);

/// The lowest event id that may still commit: the sequence's next id, or the key of the oldest
/// writer still running. Two statements, in this order (one statement could read them in either).
async fn event_horizon(pool: &PgPool) -> StoreResult<i64> {
    let mut conn = pool.acquire().await.map_err(db_error)?;
    let next: i64 = sqlx::query_scalar(NEXT_EVENT_ID)
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    let oldest_writer: Option<i64> = sqlx::query_scalar(
        "SELECT min(((classid::int8 << 32) | objid::int8) - $1) FROM pg_locks \
         WHERE locktype = 'advisory' AND objsubid = 1 AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND ((classid::int8 << 32) | objid::int8) >= $1",
    )
    .bind(EVENT_WRITER_TAG)
    .fetch_one(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(oldest_writer.map_or(next, |oldest| oldest.min(next)))
}

/// The channel every process listens on; a notification carries nothing but "look again".
const EVENTS_CHANNEL: &str = "snorq_events";

/// Sends one NOTIFY per request, outside the writers' transactions: a NOTIFY inside one would
/// take PostgreSQL's global notification lock at its commit, serializing every writer's commit.
/// A NOTIFY is a transaction of its own; it is sent on a connection with `synchronous_commit`
/// off, since a notification needs no durability and each would otherwise wait for a WAL flush
/// of its own. At most one per [`NOTIFY_GAP`]: one covers every commit before it. Ends when the
/// store is dropped.
async fn notify_others(pool: PgPool, mut requests: mpsc::Receiver<()>) {
    let mut conn: Option<sqlx::PgConnection> = None;
    while requests.recv().await.is_some() {
        if let Err(err) = notify(&pool, &mut conn).await {
            // Sent again with the next commit; streams poll meanwhile.
            conn = None;
            tracing::debug!(error = %err, "live events: cannot notify other processes");
        }
        tokio::time::sleep(NOTIFY_GAP).await;
    }
}

const NOTIFY_GAP: Duration = Duration::from_millis(2);

/// The connection is taken out of the pool for good (detached): with `synchronous_commit` off
/// it must never serve another caller's writes.
async fn notify(pool: &PgPool, conn: &mut Option<sqlx::PgConnection>) -> Result<(), sqlx::Error> {
    let conn = match conn {
        Some(conn) => conn,
        None => {
            let mut fresh = pool.acquire().await?.detach();
            sqlx::query("SET synchronous_commit = off")
                .execute(&mut fresh)
                .await?;
            conn.insert(fresh)
        }
    };
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(EVENTS_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Turns notifications from any process into this process's event signal, for as long as
/// anyone here follows it. A lost connection is reconnected and counted as a signal (what was
/// sent meanwhile is gone).
async fn listen_for_events(pool: PgPool, signal: EventSignal) {
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            signal.bump();
            loop {
                listener.try_recv().await?;
                signal.bump();
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            () = signal.abandoned() => return,
            result = listening => {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "live events: listening for notifications failed; polling until it is back");
                }
            }
        }
        tokio::select! {
            () = signal.abandoned() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

impl PgStore {
    fn follow_events(&self) -> watch::Receiver<u64> {
        let receiver = self.events.subscribe();
        self.listening.get_or_init(|| {
            tokio::spawn(listen_for_events(self.pool.clone(), self.events.clone()));
        });
        receiver
    }
}

/// Finds and locks, in one statement and in id order, the conversations of these threads
/// ((connection, thread)), of the outbound messages these receipts name ((organization,
/// platform id)) and of these messages of ours: (id, connection, thread) of each.
async fn lock_conversation_rows(
    conn: &mut DbConn,
    threads: &[(Uuid, String)],
    named: &[(Uuid, String)],
    ours: &[Uuid],
) -> StoreResult<Vec<(Uuid, Uuid, String)>> {
    let (connections, keys): (Vec<Uuid>, Vec<&str>) = threads.iter().map(|(c, k)| (*c, k.as_str())).unzip();
    let (organizations, external_ids): (Vec<Uuid>, Vec<&str>) =
        named.iter().map(|(o, e)| (*o, e.as_str())).unzip();
    sqlx::query_as(
        "SELECT c.id, c.platform_connection_id, c.external_id FROM conversations c WHERE c.id IN ( \
           SELECT id FROM conversations \
             WHERE (platform_connection_id, external_id) IN (SELECT * FROM unnest($1::uuid[], $2::text[])) \
           UNION SELECT m.conversation_id FROM messages m \
             JOIN unnest($3::uuid[], $4::text[]) AS n (organization_id, external_id) \
             ON m.organization_id = n.organization_id AND m.external_id = n.external_id \
             WHERE m.direction = 'OUTBOUND' AND m.external_id IS NOT NULL \
           UNION SELECT conversation_id FROM messages WHERE id = ANY($5)) \
         ORDER BY c.id FOR UPDATE OF c",
    )
    .bind(connections)
    .bind(keys)
    .bind(organizations)
    .bind(external_ids)
    .bind(ours.to_vec())
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)
}

/// Folds the count deltas into one row per (organization, assignee), in one statement (rows
/// appended meanwhile are not in its snapshot and stay).
async fn compact_conversation_counts(pool: &PgPool) -> StoreResult<u64> {
    let folded = sqlx::query(
        "WITH gone AS (DELETE FROM conversation_counts RETURNING *) \
         INSERT INTO conversation_counts \
         SELECT organization_id, assignee_id, sum(open_count), sum(unread_count) FROM gone \
         GROUP BY organization_id, assignee_id \
         HAVING sum(open_count) <> 0 OR sum(unread_count) <> 0",
    )
    .execute(pool)
    .await
    .map_err(db_error)?;
    Ok(folded.rows_affected())
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_events_insert_marks_its_writer_with_the_tag_readers_look_for() {
        let tag = super::EVENT_WRITER_TAG.to_string();
        assert!(
            super::EVENTS_INSERT
                .0
                .contains(&format!("pg_advisory_xact_lock_shared({tag} +"))
        );
    }
}
