//! Retention: FREE organizations keep 30 days of message history (PRO and BUSINESS keep
//! everything); the live event log keeps `event_retention_hours` (at least 24). Runs in the
//! workers' janitor, and once with `snorq retention`. The same pass indexes for search the
//! conversations written before the search index existed (after upgrading).

use chrono::{DateTime, Utc};

use crate::domain::Plan;
use crate::store::{MaintenanceStore, Retention, StoreResult};

/// Messages deleted per statement (short transactions; ingest keeps going meanwhile).
const CHUNK: i64 = 5_000;

/// Conversations indexed for search per transaction (those written before the index existed).
const INDEX_CHUNK: i64 = 500;

/// How long each plan keeps messages (`None`: forever).
pub fn history_days(plan: Plan) -> Option<i64> {
    match plan {
        Plan::Free => Some(30),
        Plan::Pro | Plan::Business => None,
    }
}

/// One pass: deletes what is past its retention as of `now`, and folds the inbox counters.
pub async fn run(
    store: &dyn MaintenanceStore,
    now: DateTime<Utc>,
    event_retention: chrono::Duration,
) -> StoreResult<Retention> {
    let mut done = Retention::default();
    for plan in [Plan::Free, Plan::Pro, Plan::Business] {
        let Some(days) = history_days(plan) else {
            continue;
        };
        let before = now - chrono::Duration::days(days);
        loop {
            let deleted = store.delete_messages_before(plan, before, CHUNK).await?;
            done.messages += deleted;
            if deleted < CHUNK as u64 {
                break;
            }
        }
    }
    done.events = store.delete_events_before(now - event_retention).await?;
    loop {
        let indexed = store.index_for_search(INDEX_CHUNK).await?;
        done.indexed += indexed;
        if indexed < INDEX_CHUNK as u64 {
            break;
        }
    }
    // Connect flows last 10 minutes; a day later their states are only clutter.
    store
        .delete_oauth_states_before(now - chrono::Duration::days(1))
        .await?;
    store.compact_conversation_counts().await?;
    Ok(done)
}
