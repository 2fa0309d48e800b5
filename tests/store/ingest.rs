//! Ingest through the `Store` trait, on both backends: receipts before their message, status
//! order, a bad event in a batch, watermarks.

use crate::common;

use std::sync::Arc;

use chrono::{Duration, Utc};
use common::{Backend, TestDb};
use serde_json::json;
use snorq::domain::{self, ConnectionStatus, MessageStatus, Plan};
use snorq::store::*;
use snorq_connectors::Platform;
use sqlx::types::Json;

const ACCOUNT: &str = "15550001111";

async fn connected_store(backend: Backend) -> (TestDb, Arc<dyn Store>) {
    let (db, store, _) = connected_store_with(backend, 5).await;
    (db, store)
}

/// A store with `max_connections`, an organization (returned) and its WhatsApp connection.
async fn connected_store_with(
    backend: Backend,
    max_connections: u32,
) -> (TestDb, Arc<dyn Store>, uuid::Uuid) {
    let db = TestDb::new(backend).await;
    let store = snorq::store::connect(&db.url, max_connections)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let owner = store
        .insert_user(&NewUser {
            id: domain::new_id(),
            email: "o@example.com".into(),
            email_normalized: "o@example.com".into(),
            name: "O".into(),
            password_hash: None,
            created_at: domain::now(),
        })
        .await
        .unwrap();
    let org = store
        .insert_organization(&NewOrganization {
            id: domain::new_id(),
            name: "Org".into(),
            slug: "org".into(),
            plan: Plan::Free,
            owner_id: owner.id,
            created_at: domain::now(),
        })
        .await
        .unwrap();
    let now = domain::now();
    store
        .insert_connection(&Connection {
            id: domain::new_id(),
            organization_id: org.id,
            platform: PlatformColumn(Platform::WhatsApp),
            platform_user_id: ACCOUNT.into(),
            name: None,
            status: ConnectionStatus::Active,
            access_token_enc: None,
            refresh_token_enc: None,
            token_fingerprint: None,
            access_token_expires_at: None,
            refresh_token_expires_at: None,
            settings: Json(json!({})),
            last_error: None,
            granted_by_external_id: None,
            failure_count: 0,
            last_checked_at: None,
            last_refreshed_at: None,
            created_at: now,
            updated_at: now,
            granted_at: None,
        })
        .await
        .unwrap();
    (db, store, org.id)
}

fn message(external_id: &str, author: Author, minutes_ago: i64) -> IngestEvent {
    message_in("5511999", external_id, author, minutes_ago)
}

fn message_in(customer: &str, external_id: &str, author: Author, minutes_ago: i64) -> IngestEvent {
    IngestEvent::Message(IncomingMessage {
        platform: Platform::WhatsApp,
        account_id: ACCOUNT.into(),
        conversation_key: customer.into(),
        author,
        contact_id: customer.into(),
        contact_name: Some("Customer".into()),
        contact_username: None,
        external_id: external_id.into(),
        correlation: None,
        timestamp: Utc::now() - Duration::minutes(minutes_ago),
        content_type: "text".into(),
        content: json!({"kind": "text", "body": external_id}),
        preview: format!("preview {external_id}"),
        media_url: None,
    })
}

fn receipt(external_id: &str, status: MessageStatus) -> IngestEvent {
    IngestEvent::Receipt(IncomingReceipt {
        platform: Platform::WhatsApp,
        account_id: ACCOUNT.into(),
        external_id: external_id.into(),
        correlation: None,
        status,
        timestamp: Utc::now(),
        error_code: (status == MessageStatus::Failed).then(|| "131026".into()),
        error_message: (status == MessageStatus::Failed).then(|| "Message undeliverable".into()),
    })
}

fn webhook(events: Vec<IngestEvent>) -> IncomingWebhook {
    IncomingWebhook {
        id: domain::new_id(),
        platform: Platform::WhatsApp,
        body: b"{}".to_vec(),
        received_at: domain::now(),
        events: Ok(events),
    }
}

async fn ingest(store: &Arc<dyn Store>, events: Vec<IngestEvent>) -> IngestOutcome {
    store.ingest(&[webhook(events)]).await.unwrap().remove(0)
}

async fn status_of(db: &TestDb, external_id: &str) -> String {
    db.rows(&format!(
        "SELECT status FROM messages WHERE external_id = '{external_id}'"
    ))
    .await
    .pop()
    .unwrap_or_default()
}

async fn a_receipt_before_its_message_is_applied_when_the_message_appears(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    let outcome = ingest(&store, vec![receipt("wamid.out.1", MessageStatus::Read)]).await;
    assert_eq!((outcome.status, outcome.applied), (WebhookStatus::Processed, 1));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM pending_receipts").await,
        1,
        "kept, not dropped"
    );
    // The message appears (our send, echoed); the waiting receipt applies and is forgotten.
    ingest(&store, vec![message("wamid.out.1", Author::Business, 1)]).await;
    assert_eq!(status_of(&db, "wamid.out.1").await, "READ");
    assert_eq!(db.count("SELECT COUNT(*) FROM pending_receipts").await, 0);
}

async fn statuses_only_move_forward_and_failed_is_terminal(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    ingest(
        &store,
        vec![
            message("wamid.a", Author::Business, 5),
            message("wamid.b", Author::Business, 5),
        ],
    )
    .await;
    assert_eq!(status_of(&db, "wamid.a").await, "SENT");
    ingest(&store, vec![receipt("wamid.a", MessageStatus::Read)]).await;
    ingest(&store, vec![receipt("wamid.a", MessageStatus::Delivered)]).await;
    assert_eq!(
        status_of(&db, "wamid.a").await,
        "READ",
        "delivered after read does not move it back"
    );

    ingest(&store, vec![receipt("wamid.b", MessageStatus::Failed)]).await;
    ingest(&store, vec![receipt("wamid.b", MessageStatus::Read)]).await;
    assert_eq!(status_of(&db, "wamid.b").await, "FAILED");
    let error = db
        .rows("SELECT error_code, error_message FROM messages WHERE external_id = 'wamid.b'")
        .await;
    assert_eq!(error, vec!["131026|Message undeliverable"]);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM events WHERE kind = 'message.updated'")
            .await,
        2
    );
}

async fn one_bad_event_does_not_poison_the_batch(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    // A receipt for an unknown message with an absurd id violates a CHECK when it is kept:
    // that event fails inside its savepoint, the others are applied.
    let bad = receipt(&"x".repeat(600), MessageStatus::Delivered);
    let outcomes = store
        .ingest(&[
            webhook(vec![
                message("wamid.1", Author::Customer, 3),
                bad,
                message("wamid.2", Author::Customer, 2),
            ]),
            webhook(vec![message("wamid.3", Author::Customer, 1)]),
        ])
        .await
        .unwrap();
    assert_eq!(
        (outcomes[0].status, outcomes[0].applied, outcomes[0].failed),
        (WebhookStatus::Failed, 2, 1)
    );
    assert!(
        outcomes[0].reasons[0].starts_with("receipt event failed"),
        "{:?}",
        outcomes[0].reasons
    );
    assert_eq!(outcomes[1].status, WebhookStatus::Processed);
    assert_eq!(db.count("SELECT COUNT(*) FROM messages").await, 3);
    assert_eq!(db.count("SELECT unread_count FROM conversations").await, 3);
    let rows = db.rows("SELECT status FROM webhook_events ORDER BY status").await;
    assert_eq!(rows, vec!["FAILED", "PROCESSED"]);
}

async fn conversations_keep_the_newest_preview_and_exact_unread_counts(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    ingest(&store, vec![message("wamid.new", Author::Customer, 1)]).await;
    // An older message arriving late does not overwrite the preview.
    ingest(&store, vec![message("wamid.old", Author::Customer, 30)]).await;
    let row = db.rows("SELECT preview, contact_name FROM conversations").await;
    assert_eq!(row, vec!["preview wamid.new|Customer"]);
    assert_eq!(db.count("SELECT unread_count FROM conversations").await, 2);
    // Our own message (an echo) is not unread and does not open the reply window.
    let before = db
        .rows("SELECT CAST(last_inbound_at AS TEXT) FROM conversations")
        .await;
    ingest(&store, vec![message("wamid.echo", Author::Business, 0)]).await;
    assert_eq!(db.count("SELECT unread_count FROM conversations").await, 2);
    assert_eq!(
        db.rows("SELECT CAST(last_inbound_at AS TEXT) FROM conversations")
            .await,
        before
    );
    assert_eq!(
        db.rows("SELECT preview FROM conversations").await,
        vec!["preview wamid.echo"]
    );
}

async fn watermarks_mark_earlier_outbound_messages(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    ingest(
        &store,
        vec![
            message("wamid.early", Author::Business, 10),
            message("wamid.late", Author::Business, 1),
            message("wamid.in", Author::Customer, 5),
        ],
    )
    .await;
    let watermark = IngestEvent::Watermark(IncomingWatermark {
        platform: Platform::WhatsApp,
        account_id: ACCOUNT.into(),
        conversation_key: "5511999".into(),
        status: MessageStatus::Read,
        watermark: Utc::now() - Duration::minutes(5),
        external_ids: vec![],
    });
    ingest(&store, vec![watermark]).await;
    assert_eq!(status_of(&db, "wamid.early").await, "READ");
    assert_eq!(status_of(&db, "wamid.late").await, "SENT");
    assert_eq!(
        status_of(&db, "wamid.in").await,
        "DELIVERED",
        "inbound messages are not touched"
    );
}

async fn unroutable_events_are_counted_and_replayable(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    let mut stray = message("wamid.stray", Author::Customer, 1);
    if let IngestEvent::Message(m) = &mut stray {
        m.account_id = "unknown-number".into();
    }
    let outcome = ingest(
        &store,
        vec![
            stray,
            IngestEvent::Ignored {
                reason: "template update".into(),
            },
        ],
    )
    .await;
    assert_eq!(
        (outcome.status, outcome.unroutable, outcome.applied),
        (WebhookStatus::Unroutable, 1, 1)
    );
    let listed = store
        .webhooks_for_replay(&ReplayFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let only_tiktok = ReplayFilter {
        platform: Some(Platform::TikTok),
        ..ReplayFilter::default()
    };
    assert!(
        store
            .webhooks_for_replay(&only_tiktok, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let future = ReplayFilter {
        since: Some(Utc::now() + Duration::hours(1)),
        ..ReplayFilter::default()
    };
    assert!(
        store
            .webhooks_for_replay(&future, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM messages").await, 0);
}

async fn delivery_ids_before_their_message_are_kept(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    let delivered = IngestEvent::Watermark(IncomingWatermark {
        platform: Platform::WhatsApp,
        account_id: ACCOUNT.into(),
        conversation_key: "5511999".into(),
        status: MessageStatus::Delivered,
        watermark: Utc::now(),
        external_ids: vec!["mid.early".into()],
    });
    ingest(&store, vec![delivered]).await;
    assert_eq!(db.count("SELECT COUNT(*) FROM pending_receipts").await, 1);
    ingest(&store, vec![message("mid.early", Author::Business, 1)]).await;
    assert_eq!(status_of(&db, "mid.early").await, "DELIVERED");
}

/// Property: whatever order receipts arrive in, and wherever the message itself lands among
/// them, the message ends at the highest-ranked status received (failed being terminal).
/// Cases come from proptest's generator with a fixed seed (each case awaits the database, so
/// the runner's synchronous `run` is not used and there is no shrinking).
async fn any_receipt_order_ends_at_the_highest_status(backend: Backend) {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let (db, store) = connected_store(backend).await;
    let statuses = prop::sample::select(vec![
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Read,
        MessageStatus::Failed,
    ]);
    let case = (prop::collection::vec(statuses, 1..8), 0usize..8);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    for i in 0..40 {
        let (receipts, message_at) = case.new_tree(&mut runner).unwrap().current();
        let id = format!("wamid.prop.{i}");
        let message_at = message_at.min(receipts.len());
        for (k, status) in receipts.iter().enumerate() {
            if k == message_at {
                ingest(&store, vec![message(&id, Author::Business, 1)]).await;
            }
            ingest(&store, vec![receipt(&id, *status)]).await;
        }
        if message_at == receipts.len() {
            ingest(&store, vec![message(&id, Author::Business, 1)]).await;
        }
        let expected = receipts.iter().max_by_key(|s| s.rank()).unwrap().as_db();
        assert_eq!(
            status_of(&db, &id).await,
            expected,
            "case {i}: {receipts:?}, message at {message_at}"
        );
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM pending_receipts").await,
        0,
        "every pending receipt was applied"
    );
}

/// Many receipts in one batch (spread over webhooks, for known messages and for messages not
/// stored yet) end where one at a time would: the batch is planned in memory and written with
/// one look-up, one update and one insert.
async fn receipts_in_one_batch_end_like_one_at_a_time(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    let cases: Vec<(String, Vec<MessageStatus>, bool)> = (0..30)
        .map(|i| {
            let receipts = match i % 5 {
                0 => vec![MessageStatus::Delivered, MessageStatus::Read],
                1 => vec![MessageStatus::Read, MessageStatus::Delivered, MessageStatus::Sent],
                2 => vec![MessageStatus::Failed, MessageStatus::Read],
                3 => vec![MessageStatus::Delivered],
                _ => vec![
                    MessageStatus::Sent,
                    MessageStatus::Delivered,
                    MessageStatus::Delivered,
                ],
            };
            (format!("wamid.batch.{i}"), receipts, i % 3 != 0)
        })
        .collect();
    for (id, _, known) in &cases {
        if *known {
            ingest(&store, vec![message(id, Author::Business, 1)]).await;
        }
    }
    // Interleaved: every case's first receipt, then every case's second, ...
    let mut events = Vec::new();
    for round in 0..3 {
        for (id, receipts, _) in &cases {
            if let Some(status) = receipts.get(round) {
                events.push(receipt(id, *status));
            }
        }
    }
    let webhooks: Vec<IncomingWebhook> = events.chunks(7).map(|c| webhook(c.to_vec())).collect();
    let outcomes = store.ingest(&webhooks).await.unwrap();
    assert!(outcomes.iter().all(|o| o.applied == o.events), "{outcomes:?}");
    for (id, _, known) in &cases {
        if !*known {
            ingest(&store, vec![message(id, Author::Business, 1)]).await;
        }
    }
    for (id, receipts, _) in &cases {
        let expected = receipts.iter().max_by_key(|s| s.rank()).unwrap().as_db();
        assert_eq!(status_of(&db, id).await, expected, "{id}: {receipts:?}");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM pending_receipts").await, 0);
}

async fn a_late_echo_is_marked_by_an_earlier_watermark(backend: Backend) {
    let (db, store) = connected_store(backend).await;
    ingest(&store, vec![message("wamid.customer", Author::Customer, 30)]).await;
    let read_until = IngestEvent::Watermark(IncomingWatermark {
        platform: Platform::WhatsApp,
        account_id: ACCOUNT.into(),
        conversation_key: "5511999".into(),
        status: MessageStatus::Read,
        watermark: Utc::now() - Duration::minutes(5),
        external_ids: vec![],
    });
    ingest(&store, vec![read_until]).await;
    // Echoes of our earlier (10 min ago) and later (1 min ago) messages arrive only now.
    ingest(
        &store,
        vec![
            message("wamid.before", Author::Business, 10),
            message("wamid.after", Author::Business, 1),
        ],
    )
    .await;
    assert_eq!(status_of(&db, "wamid.before").await, "READ");
    assert_eq!(status_of(&db, "wamid.after").await, "SENT");
}

/// Issue 21: writers no longer commit one at a time, so event ids commit out of order. Readers
/// that read below the horizon, and resume from any id they saw, still get every event once,
/// in increasing order.
async fn concurrent_writers_and_resuming_readers_see_every_event_once_in_order(backend: Backend) {
    use rand::Rng;
    let (db, store, org) = connected_store_with(backend, 24).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..25 {
                    let size = rand::rng().random_range(1..=4);
                    let batch: Vec<IncomingWebhook> = (0..size)
                        .map(|i| {
                            let customer = format!("55{}", rand::rng().random_range(0..200));
                            let id = format!("wamid.{w}.{round}.{i}");
                            webhook(vec![message_in(&customer, &id, Author::Customer, 1)])
                        })
                        .collect();
                    store.ingest(&batch).await.unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen: Vec<i64> = Vec::new();
                loop {
                    // Read whether or not the writers are done: the last read after they are
                    // finds everything.
                    let finished = done.load(std::sync::atomic::Ordering::Acquire);
                    let horizon = store.event_horizon().await.unwrap();
                    let last = seen.last().copied().unwrap_or(0);
                    let events = store.events_after(org, last, horizon, 50).await.unwrap();
                    for event in &events {
                        assert!(
                            event.id > *seen.last().unwrap_or(&0),
                            "ids went back: {seen:?} then {}",
                            event.id
                        );
                        seen.push(event.id);
                    }
                    // A client reconnecting with an id it saw gets exactly what followed it.
                    if !seen.is_empty() && rand::rng().random_bool(0.2) {
                        let from = rand::rng().random_range(0..seen.len());
                        let horizon = store.event_horizon().await.unwrap();
                        let replay = store.events_after(org, seen[from], horizon, 50).await.unwrap();
                        let replayed: Vec<i64> = replay.iter().map(|e| e.id).collect();
                        let expected: Vec<i64> =
                            seen[from + 1..].iter().copied().take(replayed.len()).collect();
                        assert_eq!(
                            replayed[..expected.len()],
                            expected[..],
                            "a resume from {} differs",
                            seen[from]
                        );
                    }
                    if finished && events.is_empty() {
                        return seen;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let horizon = store.event_horizon().await.unwrap();
    let all: Vec<i64> = store
        .events_after(org, 0, horizon, 100_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len() as i64, db.count("SELECT COUNT(*) FROM events").await);
    // 8 writers x 25 rounds, each message one `message.created` and a conversation event.
    assert!(all.len() >= 8 * 25 * 2, "only {} events", all.len());
    for reader in readers {
        assert_eq!(reader.await.unwrap(), all, "a reader missed or repeated events");
    }
}

/// Issue 21: after an outage, a backlog of webhooks arrives at once and batches of many writers
/// touch the same conversations and messages. Every batch locks its rows in one order, so none
/// waits on another in a cycle: no deadlock, and every message stored once.
async fn concurrent_batches_over_few_conversations_never_deadlock(backend: Backend) {
    use rand::Rng;
    use rand::seq::SliceRandom;
    let (db, store, _) = connected_store_with(backend, 20).await;
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..12 {
                    let mut batch: Vec<IncomingWebhook> = (0..24)
                        .map(|i| {
                            let mut rng = rand::rng();
                            let customer = format!("55{}", rng.random_range(0..6));
                            let event = match rng.random_range(0..4) {
                                0 => message_in(
                                    &customer,
                                    &format!("wamid.b{w}.{round}.{i}"),
                                    Author::Business,
                                    2,
                                ),
                                1 => receipt(
                                    &format!(
                                        "wamid.b{}.{}.{}",
                                        rng.random_range(0..16),
                                        round,
                                        rng.random_range(0..24)
                                    ),
                                    MessageStatus::Delivered,
                                ),
                                _ => message_in(
                                    &customer,
                                    &format!("wamid.c{w}.{round}.{i}"),
                                    Author::Customer,
                                    1,
                                ),
                            };
                            webhook(vec![event])
                        })
                        .collect();
                    batch.shuffle(&mut rand::rng());
                    for outcome in store.ingest(&batch).await.unwrap() {
                        assert_eq!(outcome.status, WebhookStatus::Processed, "{:?}", outcome.reasons);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let messages = db.count("SELECT COUNT(*) FROM messages").await;
    let distinct = db.count("SELECT COUNT(DISTINCT external_id) FROM messages").await;
    assert_eq!(messages, distinct, "a message was stored twice");
    assert!(messages > 16 * 12 * 24 / 2, "only {messages} messages");
    assert!(
        db.count("SELECT COUNT(DISTINCT conversation_id) FROM messages")
            .await
            <= 6
    );
    if let Some(name) = db.pg_name() {
        // The backends' statistics reach the shared counters when they end: close the pool.
        drop(store);
        let mut deadlocks = 0;
        for _ in 0..50 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let others = db
                .count(&format!(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ))
                .await;
            deadlocks = db
                .count(&format!(
                    "SELECT deadlocks FROM pg_stat_database WHERE datname = '{name}'"
                ))
                .await;
            if others == 0 {
                break;
            }
        }
        assert_eq!(
            deadlocks, 0,
            "PostgreSQL detected deadlocks between ingest batches"
        );
    }
}

backend_tests!(
    concurrent_writers_and_resuming_readers_see_every_event_once_in_order,
    concurrent_batches_over_few_conversations_never_deadlock,
    a_late_echo_is_marked_by_an_earlier_watermark,
    receipts_in_one_batch_end_like_one_at_a_time,
    any_receipt_order_ends_at_the_highest_status,
    delivery_ids_before_their_message_are_kept,
    a_receipt_before_its_message_is_applied_when_the_message_appears,
    statuses_only_move_forward_and_failed_is_terminal,
    one_bad_event_does_not_poison_the_batch,
    conversations_keep_the_newest_preview_and_exact_unread_counts,
    watermarks_mark_earlier_outbound_messages,
    unroutable_events_are_counted_and_replayable,
);
