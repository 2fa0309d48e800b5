//! Seeding the benchmark's organizations straight into the database: conversations, messages,
//! labels and search words in bulk, far faster than through the API.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::types::Json;
use tokio::time::Instant;
use uuid::Uuid;

use snorq::app::App;
use snorq::domain::{self, Plan};
use snorq::store::QueuePool;

use super::{
    Api, CONVERSATIONS_PER_TX, InboxBenchArgs, LABELS, ROWS_PER_STATEMENT, SEARCH_WORD, SLUG, org_slug,
    owner_email,
};

// --- database helpers (both backends) ---

/// Runs `$body` with `$pool` bound to the backend's pool and `Db` to its database type.
macro_rules! on_pool {
    ($queue:expr, |$pool:ident, $db:ident| $body:expr) => {
        match $queue {
            QueuePool::Postgres($pool) => {
                #[allow(dead_code)]
                type $db = sqlx::Postgres;
                $body
            }
            QueuePool::Sqlite { pool: $pool, .. } => {
                #[allow(dead_code)]
                type $db = sqlx::Sqlite;
                $body
            }
        }
    };
}

pub(super) async fn org_by_slug(queue: &QueuePool, slug: &str) -> anyhow::Result<Option<Uuid>> {
    let sql = "SELECT id FROM organizations WHERE slug = $1";
    Ok(on_pool!(queue, |pool, Db| sqlx::query_scalar(sql)
        .bind(slug)
        .fetch_optional(pool)
        .await?))
}

pub(super) async fn conversation_count(queue: &QueuePool, org: Uuid) -> anyhow::Result<i64> {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM conversations WHERE organization_id = $1";
    Ok(on_pool!(queue, |pool, Db| sqlx::query_scalar(sql)
        .bind(org)
        .fetch_one(pool)
        .await?))
}

pub(super) async fn conversation_ids(queue: &QueuePool, org: Uuid) -> anyhow::Result<Vec<Uuid>> {
    let sql = "SELECT id FROM conversations WHERE organization_id = $1";
    Ok(on_pool!(queue, |pool, Db| sqlx::query_scalar(sql)
        .bind(org)
        .fetch_all(pool)
        .await?))
}

/// Whether every benchmark organization exists with its full set of conversations (a seeding
/// that was interrupted leaves one short, and is done again).
pub(super) async fn is_seeded(queue: &QueuePool, args: &InboxBenchArgs) -> anyhow::Result<bool> {
    for index in 0..=args.other_orgs {
        let expected = if index == 0 {
            args.conversations
        } else {
            args.other_conversations
        };
        match org_by_slug(queue, &org_slug(index)).await? {
            Some(org) if conversation_count(queue, org).await? == expected as i64 => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

pub(super) async fn delete_bench_orgs(queue: &QueuePool) -> anyhow::Result<()> {
    let pattern = format!("{SLUG}%");
    on_pool!(queue, |pool, Db| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "DELETE FROM conversation_counts WHERE organization_id IN \
             (SELECT id FROM organizations WHERE slug LIKE $1)",
        )
        .bind(&pattern)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM organizations WHERE slug LIKE $1")
            .bind(&pattern)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    });
    Ok(())
}

/// Planner statistics after the bulk load (and, on PostgreSQL, the visibility map).
pub(super) async fn analyze(queue: &QueuePool) -> anyhow::Result<()> {
    match queue {
        QueuePool::Postgres(pool) => {
            sqlx::query(
                "VACUUM (ANALYZE) conversations, messages, conversation_labels, labels, conversation_counts, \
                 conversation_terms",
            )
            .execute(pool)
            .await?;
        }
        QueuePool::Sqlite { pool, .. } => {
            sqlx::query("ANALYZE").execute(pool).await?;
            sqlx::query("PRAGMA optimize").execute(pool).await?;
        }
    }
    Ok(())
}

/// Indexes for search what is not indexed yet (all of it after seeding, as after an upgrade).
pub(super) async fn index_for_search(app: &Arc<App>, queue: &QueuePool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut indexed = 0;
    loop {
        let n = app.store.index_for_search(500).await?;
        indexed += n;
        if n == 0 {
            break;
        }
    }
    if indexed > 0 {
        eprintln!(
            "indexed {indexed} conversations for search in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        analyze(queue).await?;
    }
    Ok(())
}

// --- seeding ---

pub(super) struct OrgSeed {
    org: Uuid,
    connection: Uuid,
    owner: Uuid,
    labels: Vec<(Uuid, f64)>,
}

pub(super) async fn seed_all(
    app: &Arc<App>,
    api: &Api,
    queue: &QueuePool,
    args: &InboxBenchArgs,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut rows = 0usize;
    for index in 0..=args.other_orgs {
        let (conversations, messages) = if index == 0 {
            (args.conversations, args.messages)
        } else {
            (args.other_conversations, args.other_conversations * 20)
        };
        let org = create_org(app, api, index).await?;
        let org_started = Instant::now();
        rows += seed_org(queue, &org, index, conversations, messages).await?;
        eprintln!(
            "seeded {} ({conversations} conversations, {messages} messages) in {:.1} s",
            org_slug(index),
            org_started.elapsed().as_secs_f64()
        );
    }
    let folded = app.store.compact_conversation_counts().await?;
    let analyzing = Instant::now();
    analyze(queue).await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "seeded {rows} rows in {seconds:.1} s ({:.0} rows/s; {folded} count rows; analyze {:.1} s)",
        rows as f64 / seconds,
        analyzing.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The organization, its WhatsApp connection and labels, through the API.
pub(super) async fn create_org(app: &Arc<App>, api: &Api, index: usize) -> anyhow::Result<OrgSeed> {
    let owner = api.session(&owner_email(index)).await?;
    let slug = org_slug(index);
    let org = api
        .post(
            &owner.token,
            "/orgs",
            json!({"name": format!("Bench inbox {index}"), "slug": slug}),
        )
        .await?;
    let org_id = org["id"]
        .as_str()
        .and_then(|id| Uuid::parse_str(id).ok())
        .context("no org id")?;
    snorq::app::orgs::set_plan(app, org_id, Plan::Business).await?;
    // Stored directly: the API would ask a platform to prove the token, and the inbox
    // benchmark measures reading, not connecting.
    let connection = seed_connection(app, org_id, &format!("9{:014}", 4_521_000 + index)).await?;
    let mut labels = Vec::new();
    for (name, color, share) in LABELS {
        let label = api
            .post(
                &owner.token,
                &format!("/orgs/{org_id}/labels"),
                json!({"name": name, "color": color}),
            )
            .await?;
        let id = label["id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
            .context("no label id")?;
        labels.push((id, share));
    }
    Ok(OrgSeed {
        org: org_id,
        connection,
        owner: owner.user_id,
        labels,
    })
}

pub(super) struct ConversationRow {
    id: Uuid,
    external_id: String,
    contact_name: String,
    status: &'static str,
    assignee: Option<Uuid>,
    preview: String,
    last_message_at: DateTime<Utc>,
    last_inbound_at: Option<DateTime<Utc>>,
    unread_count: i32,
    created_at: DateTime<Utc>,
}

pub(super) struct MessageRow {
    id: Uuid,
    conversation_id: Uuid,
    inbound: bool,
    external_id: String,
    content: Value,
    status: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Default)]
pub(super) struct Batch {
    conversations: Vec<ConversationRow>,
    messages: Vec<MessageRow>,
    /// (conversation, label, the conversation's last_message_at)
    labels: Vec<(Uuid, Uuid, DateTime<Utc>)>,
}

/// Seeds one organization's conversations and messages; returns the rows inserted.
pub(super) async fn seed_org(
    queue: &QueuePool,
    org: &OrgSeed,
    index: usize,
    conversations: usize,
    messages: usize,
) -> anyhow::Result<usize> {
    let mut rng = StdRng::seed_from_u64(0x5eed + index as u64);
    let counts = message_counts(&mut rng, conversations, messages);
    let now = domain::now();
    let mut rows = 0;
    let mut next_report = conversations / 10;
    for (first, chunk) in counts.chunks(CONVERSATIONS_PER_TX).enumerate() {
        let first = first * CONVERSATIONS_PER_TX;
        let mut batch = Batch::default();
        for (offset, &count) in chunk.iter().enumerate() {
            generate_conversation(&mut rng, &mut batch, org, index, first + offset, count, now);
        }
        rows += batch.conversations.len() + batch.messages.len() + batch.labels.len();
        insert_batch(queue, org, &batch).await?;
        if first + chunk.len() >= next_report && conversations >= 10_000 {
            eprintln!("  {} / {conversations} conversations", first + chunk.len());
            next_report += conversations / 10;
        }
    }
    Ok(rows)
}

/// Messages per conversation: `messages` in all, at least one each, uneven (a few long
/// threads, many short ones).
pub(super) fn message_counts(rng: &mut StdRng, conversations: usize, messages: usize) -> Vec<usize> {
    let average = messages / conversations;
    let mut counts: Vec<usize> = (0..conversations)
        .map(|i| average + usize::from(i < messages % conversations))
        .collect();
    for _ in 0..conversations * 2 {
        let (from, to) = (
            rng.random_range(0..conversations),
            rng.random_range(0..conversations),
        );
        if counts[from] > 1 {
            let moved = rng.random_range(1..=(counts[from] - 1).min(average.max(1)));
            counts[from] -= moved;
            counts[to] += moved;
        }
    }
    counts
}

pub(super) const FIRST_NAMES: [&str; 24] = [
    "Ana", "Bruno", "Carla", "Diego", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal", "Lena",
    "Marta", "Nadia", "Omar", "Paula", "Quentin", "Rosa", "Samir", "Tomas", "Ulla", "Vera", "Wen", "Yara",
];
pub(super) const LAST_NAMES: [&str; 20] = [
    "Almeida", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nguyen", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber",
];
/// Message words; none starts with the searched words.
pub(super) const WORDS: [&str; 64] = [
    "hi",
    "hello",
    "thanks",
    "please",
    "can",
    "you",
    "help",
    "me",
    "with",
    "my",
    "the",
    "a",
    "package",
    "delivery",
    "when",
    "will",
    "it",
    "arrive",
    "today",
    "tomorrow",
    "is",
    "there",
    "any",
    "update",
    "on",
    "account",
    "password",
    "login",
    "problem",
    "works",
    "now",
    "great",
    "price",
    "discount",
    "size",
    "color",
    "available",
    "stock",
    "store",
    "open",
    "hours",
    "address",
    "change",
    "invoice",
    "payment",
    "card",
    "failed",
    "again",
    "sorry",
    "for",
    "wait",
    "checking",
    "team",
    "back",
    "soon",
    "ok",
    "perfect",
    "shipping",
    "cost",
    "return",
    "exchange",
    "item",
    "broken",
    "photo",
];

pub(super) fn message_body(rng: &mut StdRng) -> String {
    let length = rng.random_range(3..=16);
    let mut words: Vec<String> = (0..length)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())].to_owned())
        .collect();
    if rng.random_bool(0.005) {
        let at = rng.random_range(0..=words.len());
        words.insert(at, SEARCH_WORD.to_owned());
    }
    if rng.random_bool(0.0005) {
        let at = rng.random_range(0..=words.len());
        words.insert(at, format!("order 4521{:02}", rng.random_range(0..100)));
    }
    words.join(" ")
}

/// A UUIDv7 of the given time (ids sort like creation times, as the service's do).
pub(super) fn id_at(at: DateTime<Utc>) -> Uuid {
    let micros = at.timestamp_micros().max(0) as u64;
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        micros / 1_000_000,
        (micros % 1_000_000) as u32 * 1_000,
    ))
}

pub(super) fn generate_conversation(
    rng: &mut StdRng,
    batch: &mut Batch,
    org: &OrgSeed,
    index: usize,
    number: usize,
    count: usize,
    now: DateTime<Utc>,
) {
    const DAY_MICROS: i64 = 86_400 * 1_000_000;
    let last = now - chrono::Duration::microseconds(rng.random_range(0..90 * DAY_MICROS));
    // Times from the newest backwards: 20 s to 3 h between messages.
    let mut times = Vec::with_capacity(count);
    let mut at = last;
    for _ in 0..count {
        times.push(at);
        at -= chrono::Duration::microseconds(rng.random_range(20_000_000..3 * 3_600_000_000));
    }
    times.reverse();
    let roll: f64 = rng.random();
    let (status, unread) = if roll < 0.10 {
        ("OPEN", rng.random_range(1..=3).min(count))
    } else if roll < 0.25 {
        ("CLOSED", 0)
    } else {
        ("OPEN", 0)
    };
    let created_at = times[0];
    let id = id_at(created_at);
    let phone = format!("{}{:08}", 1_555 + index, number);
    let mut preview = String::new();
    let mut last_inbound_at = None;
    for (k, &at) in times.iter().enumerate() {
        // The customer starts; the unread tail is the customer's.
        let inbound = k == 0 || k + unread >= count || rng.random_bool(0.5);
        let body = message_body(rng);
        let (content, status) = if inbound {
            last_inbound_at = Some(at);
            (json!({"kind": "text", "text": body}), "DELIVERED")
        } else {
            (
                json!({"text": body}),
                if rng.random_bool(0.7) { "READ" } else { "DELIVERED" },
            )
        };
        let message_id = id_at(at);
        batch.messages.push(MessageRow {
            id: message_id,
            conversation_id: id,
            inbound,
            external_id: format!("wamid.{}", message_id.simple()),
            content,
            status,
            created_at: at,
            updated_at: at + chrono::Duration::seconds(if inbound { 0 } else { 5 }),
        });
        if k + 1 == count {
            preview = body;
        }
    }
    for &(label, share) in &org.labels {
        if rng.random_bool(share) {
            batch.labels.push((id, label, last));
        }
    }
    batch.conversations.push(ConversationRow {
        id,
        external_id: phone,
        contact_name: format!(
            "{} {}",
            FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
            LAST_NAMES[rng.random_range(0..LAST_NAMES.len())]
        ),
        status,
        assignee: rng.random_bool(0.3).then_some(org.owner),
        preview,
        last_message_at: last,
        last_inbound_at,
        unread_count: unread as i32,
        created_at,
    });
}

pub(super) async fn insert_batch(queue: &QueuePool, org: &OrgSeed, batch: &Batch) -> anyhow::Result<()> {
    on_pool!(queue, |pool, Db| {
        let mut tx = pool.begin().await?;
        for chunk in batch.conversations.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO conversations (id, organization_id, platform_connection_id, platform, external_id, \
                 contact_external_id, contact_name, status, assignee_id, preview, last_message_at, \
                 last_inbound_at, unread_count, created_at, updated_at, search_indexed) ",
            );
            insert.push_values(chunk, |mut row, c| {
                row.push_bind(c.id)
                    .push_bind(org.org)
                    .push_bind(org.connection)
                    .push_bind("whatsapp")
                    .push_bind(&c.external_id)
                    .push_bind(&c.external_id)
                    .push_bind(&c.contact_name)
                    .push_bind(c.status)
                    .push_bind(c.assignee)
                    .push_bind(&c.preview)
                    .push_bind(c.last_message_at)
                    .push_bind(c.last_inbound_at)
                    .push_bind(c.unread_count)
                    .push_bind(c.created_at)
                    .push_bind(c.last_message_at)
                    // Indexed for search below, as an upgraded database is.
                    .push_bind(false);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for chunk in batch.messages.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO messages (id, organization_id, conversation_id, direction, external_id, content_type, \
                 content, status, attempts, sender_user_id, platform_timestamp, last_attempt_at, created_at, \
                 updated_at) ",
            );
            insert.push_values(chunk, |mut row, m| {
                row.push_bind(m.id)
                    .push_bind(org.org)
                    .push_bind(m.conversation_id)
                    .push_bind(if m.inbound { "INBOUND" } else { "OUTBOUND" })
                    .push_bind(&m.external_id)
                    .push_bind("text")
                    .push_bind(Json(&m.content))
                    .push_bind(m.status)
                    .push_bind(i32::from(!m.inbound))
                    .push_bind((!m.inbound).then_some(org.owner))
                    .push_bind(m.inbound.then_some(m.created_at))
                    .push_bind((!m.inbound).then_some(m.updated_at))
                    .push_bind(m.created_at)
                    .push_bind(m.updated_at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for chunk in batch.labels.chunks(ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO conversation_labels (organization_id, conversation_id, label_id, last_message_at) ",
            );
            insert.push_values(chunk, |mut row, (conversation, label, last)| {
                row.push_bind(org.org)
                    .push_bind(*conversation)
                    .push_bind(*label)
                    .push_bind(*last);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
    });
    Ok(())
}

/// A WhatsApp connection written straight to the store (its token encrypted as the service does).
pub(super) async fn seed_connection(app: &App, org_id: Uuid, number: &str) -> anyhow::Result<Uuid> {
    use snorq::crypto::SecretField;
    use snorq::store::{Connection, PlatformColumn};
    let now = domain::now();
    let id = domain::new_id();
    let connection = Connection {
        id,
        organization_id: org_id,
        platform: PlatformColumn(snorq_connectors::Platform::WhatsApp),
        platform_user_id: number.to_owned(),
        name: Some("Bench".into()),
        status: snorq::domain::ConnectionStatus::Active,
        access_token_enc: Some(
            app.vault
                .encrypt(SecretField::ConnectionAccessToken, id, "bench")?,
        ),
        refresh_token_enc: None,
        token_fingerprint: Some(snorq::crypto::tokens::fingerprint("bench")),
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
        granted_at: Some(now),
    };
    Ok(app.store.insert_connection(&connection).await?.id)
}
