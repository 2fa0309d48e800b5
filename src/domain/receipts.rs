//! The rules of receipts, as plain functions: where a message's status goes when the platform
//! reports on it. The store applies them inside its ingest transaction; its SQL guard
//! ([`status_rank_sql`]) is generated from the same ranks, so the two cannot disagree.
//!
//! - Statuses only move forward: pending, sent, delivered, read; `failed` is terminal.
//! - Receipts may arrive in any order, and before the message they describe (the platform's
//!   webhook can overtake the send's own response): those wait, and the message settles at the
//!   highest status among them when it appears.
//! - A read or delivery watermark ("everything up to this time") covers every outbound message
//!   created at or before it that was sent; a message that appears later (an echo) is checked
//!   against the conversation's watermarks.

use chrono::{DateTime, Utc};

use super::MessageStatus;

/// The status a message at `current` moves to when the platform reports `incoming`; `None`
/// when it stays (a receipt older than what is known, or a failed message).
pub fn advance(current: MessageStatus, incoming: MessageStatus) -> Option<MessageStatus> {
    (incoming.rank() > current.rank()).then_some(incoming)
}

/// Where a message at `current` ends once every receipt that waited for it is applied, in
/// whatever order they came; `None` when none moves it.
pub fn settle(
    current: MessageStatus,
    waiting: impl IntoIterator<Item = MessageStatus>,
) -> Option<MessageStatus> {
    let highest = waiting.into_iter().max_by_key(|s| s.rank())?;
    advance(current, highest)
}

/// What to do with a batch's receipts, decided in memory: the messages that move (each to the
/// highest status reported for it, if that is forward) and the receipts whose message is not
/// known yet (kept until it is).
#[derive(Debug, PartialEq)]
pub struct ReceiptPlan<K, R> {
    /// (message, the status it moves to, the receipt that says so).
    pub advances: Vec<(K, MessageStatus, R)>,
    /// Receipts for messages not stored yet.
    pub waiting: Vec<(K, MessageStatus, R)>,
}

/// Plans a batch of receipts against the known messages' current statuses (`known`, by the
/// receipt's key: the message's platform id in its organization).
pub fn plan<K, R>(
    known: &std::collections::HashMap<K, MessageStatus>,
    receipts: impl IntoIterator<Item = (K, MessageStatus, R)>,
) -> ReceiptPlan<K, R>
where
    K: std::hash::Hash + Eq + Clone,
{
    let mut highest: std::collections::HashMap<K, (MessageStatus, R)> = std::collections::HashMap::new();
    let mut waiting = Vec::new();
    for (key, status, receipt) in receipts {
        if !known.contains_key(&key) {
            waiting.push((key, status, receipt));
            continue;
        }
        match highest.get(&key) {
            Some((best, _)) if best.rank() >= status.rank() => {}
            _ => {
                highest.insert(key, (status, receipt));
            }
        }
    }
    let advances = highest
        .into_iter()
        .filter_map(|(key, (status, receipt))| {
            let next = advance(known[&key], status)?;
            Some((key, next, receipt))
        })
        .collect();
    ReceiptPlan { advances, waiting }
}

/// What the conversation's watermarks say about an outbound message created at `created_at`:
/// read if the read watermark reaches it, else delivered if the delivery watermark does.
pub fn watermark_status(
    created_at: DateTime<Utc>,
    delivered: Option<DateTime<Utc>>,
    read: Option<DateTime<Utc>>,
) -> Option<MessageStatus> {
    if read.is_some_and(|w| created_at <= w) {
        Some(MessageStatus::Read)
    } else if delivered.is_some_and(|w| created_at <= w) {
        Some(MessageStatus::Delivered)
    } else {
        None
    }
}

/// Whether a watermark moves this outbound message: created at or before it, and already sent
/// (a pending message has not reached the platform yet; a failed one never will).
pub fn watermark_covers(status: MessageStatus, created_at: DateTime<Utc>, watermark: DateTime<Utc>) -> bool {
    created_at <= watermark && matches!(status, MessageStatus::Sent | MessageStatus::Delivered)
}

/// The rank of a `status` column as SQL (`CASE status WHEN 'PENDING' THEN 0 ... END`), built
/// from [`MessageStatus::rank`], for conditional updates that must hold under concurrency.
pub fn status_rank_sql() -> String {
    let arms: String = MessageStatus::ALL
        .iter()
        .map(|s| format!(" WHEN '{}' THEN {}", s.as_db(), s.rank()))
        .collect();
    format!("(CASE status{arms} END)")
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;
    use MessageStatus::*;

    #[test]
    fn statuses_only_move_forward_and_failed_is_final() {
        assert_eq!(advance(Sent, Delivered), Some(Delivered));
        assert_eq!(advance(Pending, Read), Some(Read));
        assert_eq!(advance(Read, Delivered), None);
        assert_eq!(advance(Delivered, Delivered), None);
        assert_eq!(advance(Failed, Read), None);
        assert_eq!(advance(Read, Failed), Some(Failed));
    }

    #[test]
    fn watermarks_cover_what_was_sent_before_them() {
        let t = Utc::now();
        assert_eq!(watermark_status(t, Some(t), None), Some(Delivered));
        assert_eq!(watermark_status(t, Some(t), Some(t)), Some(Read));
        assert_eq!(watermark_status(t, Some(t - Duration::seconds(1)), None), None);
        assert_eq!(watermark_status(t, None, None), None);
        assert!(watermark_covers(Sent, t, t));
        assert!(!watermark_covers(Pending, t, t));
        assert!(!watermark_covers(Failed, t, t));
        assert!(!watermark_covers(Read, t, t));
        assert!(!watermark_covers(Sent, t, t - Duration::seconds(1)));
    }

    #[test]
    fn the_sql_rank_is_the_domain_rank() {
        assert_eq!(
            status_rank_sql(),
            "(CASE status WHEN 'PENDING' THEN 0 WHEN 'SENT' THEN 1 WHEN 'DELIVERED' THEN 2 \
             WHEN 'READ' THEN 3 WHEN 'FAILED' THEN 4 END)"
        );
    }

    #[test]
    fn a_batch_moves_each_known_message_once_and_keeps_the_rest_waiting() {
        let known = std::collections::HashMap::from([("a", Sent), ("b", Read), ("c", Failed)]);
        let mut plan = plan(
            &known,
            [
                ("a", Delivered, 1),
                ("a", Read, 2),
                ("a", Delivered, 3),
                ("b", Delivered, 4),
                ("c", Read, 5),
                ("z", Delivered, 6),
                ("z", Read, 7),
            ],
        );
        plan.advances.sort_by_key(|(k, _, _)| *k);
        assert_eq!(plan.advances, vec![("a", Read, 2)]);
        assert_eq!(plan.waiting, vec![("z", Delivered, 6), ("z", Read, 7)]);
    }

    fn status() -> impl Strategy<Value = MessageStatus> {
        prop::sample::select(MessageStatus::ALL.to_vec())
    }

    proptest! {
        /// Receipts applied one by one, in any order, end where `settle` says.
        #[test]
        fn any_order_of_receipts_ends_at_the_same_status(
            start in status(),
            receipts in prop::collection::vec(status(), 0..8),
        ) {
            let mut one_by_one = start;
            for r in &receipts {
                if let Some(next) = advance(one_by_one, *r) {
                    one_by_one = next;
                }
            }
            let mut reversed = start;
            for r in receipts.iter().rev() {
                if let Some(next) = advance(reversed, *r) {
                    reversed = next;
                }
            }
            prop_assert_eq!(one_by_one, reversed);
            prop_assert_eq!(settle(start, receipts.iter().copied()).unwrap_or(start), one_by_one);
            // Planned as a batch: the same end.
            let known = std::collections::HashMap::from([((), start)]);
            let planned = plan(&known, receipts.iter().map(|r| ((), *r, ())));
            let end = planned.advances.first().map_or(start, |(_, s, _)| *s);
            prop_assert_eq!(end, one_by_one);
        }
    }
}
