//! The stalled-send sweep (docs/architecture.md, "Sends that stall"): claims whose worker never
//! recorded an outcome, unconfirmed sends whose window ended, and pending sends whose job never
//! ran. Every change is conditional on the state it read, so processes sweeping at once, a late
//! outcome and the platform's word cannot overwrite one another.

use chrono::{DateTime, Utc};
use serde_json::json;
use snorq_connectors::Platform;
use uuid::Uuid;

use super::events::{LiveEvents, insert_live_events, live};
use super::outbound::ATTEMPT_ABANDONED;
use super::{Backend, Db, DbConn, QUEUE_BEHIND, begin_write, db_error, job_time, push_send_jobs};
use crate::domain::SendStatus;
use crate::domain::delivery::{
    MAX_REQUEUES, REASON_OUTCOME_UNKNOWN, REASON_STALLED, confirms_by_correlation,
};
use crate::queue::SEND_QUEUE;
use crate::queue::{QueuedJob, SendJob};
use crate::store::{StoreResult, SweepPolicy, SweepReport};

const ABANDONED_MESSAGE: &str = "no outcome was recorded for this attempt (its worker stopped or lost the \
     database during the platform call); the platform may have accepted it";
const WINDOW_ENDED_MESSAGE: &str = "the platform neither confirmed nor denied this send in time; it may \
     have reached the customer. Retrying asks for confirmation";
const STALLED_MESSAGE: &str = "its send job never ran, though it was queued again several times";

pub(super) async fn sweep(store: &Backend, policy: &SweepPolicy) -> StoreResult<SweepReport> {
    let mut tx = begin_write(&store.pool).await?;
    let mut events = LiveEvents::new();
    let mut report = SweepReport::default();
    abandoned_claims(&mut tx, policy, &mut events, &mut report).await?;
    ended_windows(&mut tx, policy, &mut events, &mut report).await?;
    stalled_sends(&mut tx, policy, &mut events, &mut report).await?;
    let written = insert_live_events(&mut tx, &events, policy.now).await?;
    tx.commit().await.map_err(db_error)?;
    written.announce(&store.events);
    Ok(report)
}

fn updated(
    events: &mut LiveEvents,
    org: Uuid,
    conversation: Uuid,
    message: Uuid,
    status: SendStatus,
    reason: Option<&str>,
) {
    live(
        events,
        org,
        "message.updated",
        json!({"conversation_id": conversation, "message_id": message, "status": status, "failure_reason": reason}),
    );
}

/// Claims older than the deadline: a pending message with no next attempt and no window is
/// claimed, since `last_attempt_at` (every outcome sets one of the three). Its attempt gets an
/// `abandoned` row, and the send awaits the platform's word or fails at once.
async fn abandoned_claims(
    conn: &mut DbConn,
    policy: &SweepPolicy,
    events: &mut LiveEvents,
    report: &mut SweepReport,
) -> StoreResult<()> {
    type Open = (Uuid, i32, Uuid, Uuid, String, DateTime<Utc>);
    let open: Vec<Open> = sqlx::query_as(concat!(
        "SELECT m.id, m.attempts, m.organization_id, m.conversation_id, c.platform, m.last_attempt_at \
         FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE ",
        in_flight!(),
        " AND m.last_attempt_at < $1 ORDER BY m.last_attempt_at LIMIT $2"
    ))
    .bind(policy.abandoned_before)
    .bind(policy.limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    for (message_id, attempt, org, conversation, platform, started_at) in open {
        let confirmable = platform.parse::<Platform>().is_ok_and(confirms_by_correlation);
        let mut update = sqlx::QueryBuilder::<Db>::new("UPDATE messages SET ");
        if confirmable {
            update
                .push("unconfirmed_until = ")
                .push_bind(policy.now + policy.confirm_window);
        } else {
            update
                .push("status = 'FAILED', failure_reason = ")
                .push_bind(REASON_OUTCOME_UNKNOWN);
        }
        update
            .push(", error_message = ")
            .push_bind(ABANDONED_MESSAGE)
            .push(", updated_at = ")
            .push_bind(policy.now)
            .push(" WHERE id = ")
            .push_bind(message_id)
            .push(" AND attempts = ")
            .push_bind(attempt)
            .push(" AND status = 'PENDING' AND next_attempt_at IS NULL AND unconfirmed_until IS NULL");
        let moved = update
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        if moved.rows_affected() == 0 {
            continue; // the outcome, the platform's word or another sweeper came first
        }
        sqlx::query(
            "INSERT INTO send_attempts (id, organization_id, message_id, attempt, started_at, finished_at, \
             outcome, error_message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (message_id, attempt) DO NOTHING",
        )
        .bind(crate::domain::new_id())
        .bind(org)
        .bind(message_id)
        .bind(attempt)
        .bind(started_at)
        .bind(policy.now)
        .bind(ATTEMPT_ABANDONED)
        .bind(ABANDONED_MESSAGE)
        .execute(&mut *conn)
        .await
        .map_err(db_error)?;
        if confirmable {
            report.unconfirmed += 1;
            updated(
                events,
                org,
                conversation,
                message_id,
                SendStatus::Unconfirmed,
                None,
            );
        } else {
            report.outcome_unknown += 1;
            let reason = Some(REASON_OUTCOME_UNKNOWN);
            updated(events, org, conversation, message_id, SendStatus::Failed, reason);
        }
    }
    Ok(())
}

/// Unconfirmed sends whose window ended without the platform's word: failed, outcome unknown.
async fn ended_windows(
    conn: &mut DbConn,
    policy: &SweepPolicy,
    events: &mut LiveEvents,
    report: &mut SweepReport,
) -> StoreResult<()> {
    let ended: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(
        "UPDATE messages SET status = 'FAILED', failure_reason = $2, unconfirmed_until = NULL, \
         error_message = $3, updated_at = $1 \
         WHERE id IN (SELECT id FROM messages WHERE unconfirmed_until IS NOT NULL AND unconfirmed_until < $1 \
         ORDER BY unconfirmed_until LIMIT $4) AND status = 'PENDING' \
         RETURNING id, organization_id, conversation_id",
    )
    .bind(policy.now)
    .bind(REASON_OUTCOME_UNKNOWN)
    .bind(WINDOW_ENDED_MESSAGE)
    .bind(policy.limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    for (id, org, conversation) in ended {
        report.outcome_unknown += 1;
        updated(
            events,
            org,
            conversation,
            id,
            SendStatus::Failed,
            Some(REASON_OUTCOME_UNKNOWN),
        );
    }
    // A stale deadline on a send the platform settled meanwhile means nothing; clear it so the
    // index stays small.
    sqlx::query(
        "UPDATE messages SET unconfirmed_until = NULL \
         WHERE unconfirmed_until IS NOT NULL AND unconfirmed_until < $1 AND status <> 'PENDING'",
    )
    .bind(policy.now)
    .execute(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Pending sends due long ago and not claimed, while the queue is not behind: their job was
/// lost or given up by the queue. A new job (a new round of retries); after [`MAX_REQUEUES`] of
/// those, failed as stalled. A job that was only slow finds the send claimed by the new one (or
/// the other way round) and does nothing.
async fn stalled_sends(
    conn: &mut DbConn,
    policy: &SweepPolicy,
    events: &mut LiveEvents,
    report: &mut SweepReport,
) -> StoreResult<()> {
    // Behind the queue's backlog a lost job cannot be told from one still waiting its turn:
    // nothing counts as stalled until the workers catch up.
    let behind: bool = sqlx::query_scalar(QUEUE_BEHIND)
        .bind(SEND_QUEUE)
        .bind(job_time(policy.stalled_before))
        .fetch_one(&mut *conn)
        .await
        .map_err(db_error)?;
    if behind {
        return Ok(());
    }
    type Stalled = (Uuid, Uuid, Uuid, i32, i32, DateTime<Utc>);
    let stalled: Vec<Stalled> = sqlx::query_as(
        "SELECT id, organization_id, conversation_id, attempts, requeues, next_attempt_at FROM messages \
         WHERE status = 'PENDING' AND next_attempt_at IS NOT NULL AND next_attempt_at < $1 \
         AND direction = 'OUTBOUND' ORDER BY next_attempt_at LIMIT $2",
    )
    .bind(policy.stalled_before)
    .bind(policy.limit)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_error)?;
    let mut jobs = Vec::new();
    for (id, org, conversation, attempts, requeues, due) in stalled {
        let give_up = requeues >= MAX_REQUEUES;
        let mut update = sqlx::QueryBuilder::<Db>::new("UPDATE messages SET ");
        if give_up {
            update
                .push("status = 'FAILED', next_attempt_at = NULL, failure_reason = ")
                .push_bind(REASON_STALLED)
                .push(", error_message = ")
                .push_bind(STALLED_MESSAGE);
        } else {
            update
                .push("requeues = requeues + 1, next_attempt_at = ")
                .push_bind(policy.now);
        }
        update
            .push(", updated_at = ")
            .push_bind(policy.now)
            .push(" WHERE id = ")
            .push_bind(id)
            .push(" AND status = 'PENDING' AND attempts = ")
            .push_bind(attempts)
            .push(" AND next_attempt_at = ")
            .push_bind(due);
        let changed = update
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
        if changed.rows_affected() == 0 {
            continue;
        }
        if give_up {
            report.stalled += 1;
            updated(
                events,
                org,
                conversation,
                id,
                SendStatus::Failed,
                Some(REASON_STALLED),
            );
        } else {
            report.requeued += 1;
            jobs.push(QueuedJob {
                job: SendJob::new_round(id, attempts),
                delay: std::time::Duration::ZERO,
            });
        }
    }
    push_send_jobs(conn, &jobs).await
}
