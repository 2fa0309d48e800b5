//! `snorq bench-inbox`: read latency of the team inbox (issue 6) on a large organization.
//!
//! Seeds (once; `--reseed` to start over) one organization with `--conversations` conversations
//! and `--messages` messages, plus `--other-orgs` small organizations of the same shape, with raw
//! multi-row INSERTs on the service's own pool (the count and search triggers run as they do in
//! production). Then serves the service in-process on a random local port and, per scenario,
//! runs `--clients` concurrent HTTP clients flat out for `--seconds` (after a warm-up), and
//! reports requests/s and latency percentiles. Any non-200 answer fails the run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::types::Json;
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

use super::ingest::percentile;
use crate::app::App;
use crate::config::Config;
use crate::domain::{self, Plan};
use crate::server;
use crate::store::QueuePool;

#[derive(Debug, Clone, Args)]
pub struct InboxBenchArgs {
    /// Conversations of the big organization.
    #[arg(long, default_value_t = 100_000)]
    pub conversations: usize,
    /// Messages of the big organization (spread unevenly, at least one per conversation).
    #[arg(long, default_value_t = 2_000_000)]
    pub messages: usize,
    /// Further organizations sharing the tables.
    #[arg(long, default_value_t = 3)]
    pub other_orgs: usize,
    /// Conversations of each further organization (20 messages each on average).
    #[arg(long, default_value_t = 2_000)]
    pub other_conversations: usize,
    /// Concurrent HTTP clients per scenario.
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// Pause of each client between its requests (0: flat out, which measures saturation:
    /// latency is then mostly queueing, clients / throughput).
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// Unmeasured seconds before each scenario's measurement.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Delete the benchmark organizations and seed again.
    #[arg(long)]
    pub reseed: bool,
    /// Only these scenarios (comma-separated: list, label, unread, search, search-rare, messages).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Marks each scenario whose p99 is above this many milliseconds as MISSED.
    #[arg(long)]
    pub goal_p99_ms: Option<f64>,
}

const SLUG: &str = "bench-inbox";
const PASSWORD: &str = "bench-inbox password";
/// Found in ~0.5% of messages.
const SEARCH_WORD: &str = "refund";
/// Order numbers `4521NN` appear in ~0.05% of messages; one of them is searched.
const RARE_WORD: &str = "452117";
const LABELS: [(&str, &str, f64); 5] = [
    ("vip", "#d4a017", 0.03),
    ("billing", "#1f77b4", 0.10),
    ("support", "#2ca02c", 0.20),
    ("sales", "#9467bd", 0.08),
    ("follow-up", "#ff7f0e", 0.05),
];
/// Conversations per seeding transaction (~5,000 messages).
const CONVERSATIONS_PER_TX: usize = 250;
/// Rows per INSERT statement (16 columns: within SQLite's 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 1_000;

pub async fn run(config: Config, args: InboxBenchArgs) -> anyhow::Result<()> {
    if args.messages < args.conversations {
        bail!("--messages must be at least --conversations (every conversation has a message)");
    }
    let mut config = config;
    config.workers = false;
    let app = server::bootstrap(&config).await?;
    let backend = app.store.backend();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = {
        let (app, config) = (app.clone(), config.clone());
        tokio::spawn(async move {
            server::run(app, &config, listener, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients * 2)
        .timeout(Duration::from_secs(30))
        .build()?;
    let api = Api {
        client: client.clone(),
        base: base.clone(),
    };

    let pool = app.store.queue_pool();
    let owner = api.session(&owner_email(0)).await?;
    let seeded = is_seeded(&pool, &args).await?;
    if args.reseed || !seeded {
        if args.reseed || org_by_slug(&pool, SLUG).await?.is_some() {
            let started = Instant::now();
            delete_bench_orgs(&pool).await?;
            eprintln!(
                "deleted the previous benchmark data in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        seed_all(&app, &api, &pool, &args).await?;
    } else {
        eprintln!("{backend}: reusing the seeded organizations (--reseed to start over)");
    }
    index_for_search(&app, &pool).await?;
    let org = org_by_slug(&pool, SLUG)
        .await?
        .context("the benchmark organization is missing")?;
    let labels = api.get(&owner.token, &format!("/orgs/{org}/labels")).await?;
    let vip = labels["items"]
        .as_array()
        .and_then(|items| items.iter().find(|l| l["name"] == "vip"))
        .and_then(|l| l["id"].as_str())
        .context("no vip label")?
        .to_owned();
    let conversations = Arc::new(conversation_ids(&pool, org).await?);

    println!(
        "{backend}: {} conversations, {} messages in the big organization; {} clients (think {} ms), {} s per scenario after {} s warm-up",
        args.conversations, args.messages, args.clients, args.think_ms, args.seconds, args.warmup
    );
    let list = format!("{base}/orgs/{org}/conversations?limit=50");
    let scenarios: Vec<(&str, UrlFn)> = vec![
        ("list", fixed(list.clone())),
        ("label", fixed(format!("{list}&label={vip}"))),
        ("unread", fixed(format!("{list}&unread=true"))),
        ("search", fixed(format!("{list}&q={SEARCH_WORD}"))),
        ("search-rare", fixed(format!("{list}&q={RARE_WORD}"))),
        ("messages", {
            let base = format!("{base}/orgs/{org}/conversations");
            Arc::new(move |rng: &mut StdRng| {
                let id = conversations[rng.random_range(0..conversations.len())];
                format!("{base}/{id}/messages?limit=50")
            })
        }),
    ];
    println!(
        "{:<12} {:>7} {:>9} {:>9} {:>9} {:>9} {:>7}  goal",
        "scenario", "items", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    let mut failures = Vec::new();
    for (name, url) in scenarios {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        let items = api
            .sample(&owner.token, &url(&mut StdRng::seed_from_u64(7)))
            .await?;
        let result = measure(&client, &owner.token, url, &args).await;
        let p99 = percentile(&result.micros, 99.0);
        let goal = match args.goal_p99_ms {
            Some(goal) if p99 > goal => format!("MISSED (p99 < {goal} ms)"),
            Some(goal) => format!("met (p99 < {goal} ms)"),
            None => String::new(),
        };
        println!(
            "{:<12} {:>7} {:>9.0} {:>9.1} {:>9.1} {:>9.1} {:>7}  {goal}",
            name,
            items,
            result.per_second,
            percentile(&result.micros, 50.0),
            p99,
            percentile(&result.micros, 100.0),
            result.errors
        );
        if let Some(error) = &result.first_error {
            eprintln!("  first error: {error}");
        }
        if result.errors > 0 {
            failures.push(format!("{name}: {} failed requests", result.errors));
        }
    }
    let _ = stop.send(());
    served.await??;
    if !failures.is_empty() {
        bail!("{backend}: {}", failures.join("; "));
    }
    Ok(())
}

fn owner_email(org_index: usize) -> String {
    if org_index == 0 {
        "bench-inbox@example.com".to_owned()
    } else {
        format!("bench-inbox-{org_index}@example.com")
    }
}

fn org_slug(org_index: usize) -> String {
    if org_index == 0 {
        SLUG.to_owned()
    } else {
        format!("{SLUG}-other-{org_index}")
    }
}

// --- the API client ---

struct Api {
    client: reqwest::Client,
    base: String,
}

struct Session {
    token: String,
    user_id: Uuid,
}

impl Api {
    /// Logs in, signing up first when the account does not exist yet.
    async fn session(&self, email: &str) -> anyhow::Result<Session> {
        let login = self
            .client
            .post(format!("{}/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await?;
        if login.status().is_success() {
            let body: Value = login.json().await?;
            return Ok(Session {
                token: body["token"].as_str().context("no token")?.to_owned(),
                user_id: body["user"]["id"]
                    .as_str()
                    .and_then(|id| Uuid::parse_str(id).ok())
                    .context("no user id")?,
            });
        }
        let (token, user_id) =
            super::signup_and_login(&self.client, &self.base, email, "Bench inbox", PASSWORD).await?;
        Ok(Session { token, user_id })
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    async fn get(&self, token: &str, path: &str) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {text}");
        }
        Ok(serde_json::from_str(&text)?)
    }

    /// Items on one page of `url` (a full URL), to show what a scenario returns.
    async fn sample(&self, token: &str, url: &str) -> anyhow::Result<usize> {
        let path = url.strip_prefix(&self.base).unwrap_or(url);
        let page = self.get(token, path).await?;
        Ok(page["items"].as_array().map_or(0, Vec::len))
    }
}

// --- measuring ---

type UrlFn = Arc<dyn Fn(&mut StdRng) -> String + Send + Sync>;

fn fixed(url: String) -> UrlFn {
    Arc::new(move |_| url.clone())
}

struct Measured {
    /// Sorted latencies of the measured window, in microseconds.
    micros: Vec<u64>,
    per_second: f64,
    errors: u64,
    first_error: Option<String>,
}

async fn measure(client: &reqwest::Client, token: &str, url: UrlFn, args: &InboxBenchArgs) -> Measured {
    let start = Instant::now() + Duration::from_secs(args.warmup);
    let end = start + Duration::from_secs(args.seconds);
    let think = Duration::from_millis(args.think_ms);
    let mut tasks = Vec::new();
    for lane in 0..args.clients {
        let (client, token, url) = (client.clone(), token.to_owned(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(lane as u64);
            let mut micros = Vec::new();
            let (mut errors, mut first_error) = (0u64, None);
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let outcome = match client.get(url(&mut rng)).bearer_auth(&token).send().await {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(_) if status == reqwest::StatusCode::OK => Ok(()),
                            Ok(body) => Err(format!("{status} {}", String::from_utf8_lossy(&body))),
                            Err(err) => Err(err.to_string()),
                        }
                    }
                    Err(err) => Err(err.to_string()),
                };
                if sent >= start {
                    micros.push(sent.elapsed().as_micros() as u64);
                }
                if let Err(err) = outcome {
                    errors += 1;
                    first_error.get_or_insert(err);
                }
                if think > Duration::ZERO {
                    tokio::time::sleep(think).await;
                }
            }
            (micros, errors, first_error)
        }));
    }
    let mut measured = Measured {
        micros: Vec::new(),
        per_second: 0.0,
        errors: 0,
        first_error: None,
    };
    for task in tasks {
        match task.await {
            Ok((micros, errors, first_error)) => {
                measured.micros.extend(micros);
                measured.errors += errors;
                if measured.first_error.is_none() {
                    measured.first_error = first_error;
                }
            }
            Err(err) => {
                measured.errors += 1;
                measured.first_error.get_or_insert(err.to_string());
            }
        }
    }
    measured.micros.sort_unstable();
    measured.per_second = measured.micros.len() as f64 / args.seconds.max(1) as f64;
    measured
}

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

async fn org_by_slug(queue: &QueuePool, slug: &str) -> anyhow::Result<Option<Uuid>> {
    let sql = "SELECT id FROM organizations WHERE slug = $1";
    Ok(on_pool!(queue, |pool, Db| sqlx::query_scalar(sql)
        .bind(slug)
        .fetch_optional(pool)
        .await?))
}

async fn conversation_count(queue: &QueuePool, org: Uuid) -> anyhow::Result<i64> {
    let sql = "SELECT CAST(COUNT(*) AS BIGINT) FROM conversations WHERE organization_id = $1";
    Ok(on_pool!(queue, |pool, Db| sqlx::query_scalar(sql)
        .bind(org)
        .fetch_one(pool)
        .await?))
}

async fn conversation_ids(queue: &QueuePool, org: Uuid) -> anyhow::Result<Vec<Uuid>> {
    let sql = "SELECT id FROM conversations WHERE organization_id = $1";
    Ok(on_pool!(queue, |pool, Db| sqlx::query_scalar(sql)
        .bind(org)
        .fetch_all(pool)
        .await?))
}

/// Whether every benchmark organization exists with its full set of conversations (a seeding
/// that was interrupted leaves one short, and is done again).
async fn is_seeded(queue: &QueuePool, args: &InboxBenchArgs) -> anyhow::Result<bool> {
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

async fn delete_bench_orgs(queue: &QueuePool) -> anyhow::Result<()> {
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
async fn analyze(queue: &QueuePool) -> anyhow::Result<()> {
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
async fn index_for_search(app: &Arc<App>, queue: &QueuePool) -> anyhow::Result<()> {
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

struct OrgSeed {
    org: Uuid,
    connection: Uuid,
    owner: Uuid,
    labels: Vec<(Uuid, f64)>,
}

async fn seed_all(app: &Arc<App>, api: &Api, queue: &QueuePool, args: &InboxBenchArgs) -> anyhow::Result<()> {
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
async fn create_org(app: &Arc<App>, api: &Api, index: usize) -> anyhow::Result<OrgSeed> {
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
    crate::app::orgs::set_plan(app, org_id, Plan::Business).await?;
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

struct ConversationRow {
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

struct MessageRow {
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
struct Batch {
    conversations: Vec<ConversationRow>,
    messages: Vec<MessageRow>,
    /// (conversation, label, the conversation's last_message_at)
    labels: Vec<(Uuid, Uuid, DateTime<Utc>)>,
}

/// Seeds one organization's conversations and messages; returns the rows inserted.
async fn seed_org(
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
fn message_counts(rng: &mut StdRng, conversations: usize, messages: usize) -> Vec<usize> {
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

const FIRST_NAMES: [&str; 24] = [
    "Ana", "Bruno", "Carla", "Diego", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kemal", "Lena",
    "Marta", "Nadia", "Omar", "Paula", "Quentin", "Rosa", "Samir", "Tomas", "Ulla", "Vera", "Wen", "Yara",
];
const LAST_NAMES: [&str; 20] = [
    "Almeida", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nguyen", "Okafor", "Petrov", "Rossi", "Silva", "Tanaka", "Weber",
];
/// Message words; none starts with the searched words.
const WORDS: [&str; 64] = [
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

fn message_body(rng: &mut StdRng) -> String {
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
fn id_at(at: DateTime<Utc>) -> Uuid {
    let micros = at.timestamp_micros().max(0) as u64;
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        micros / 1_000_000,
        (micros % 1_000_000) as u32 * 1_000,
    ))
}

fn generate_conversation(
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
            (json!({"kind": "text", "body": body}), "DELIVERED")
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

async fn insert_batch(queue: &QueuePool, org: &OrgSeed, batch: &Batch) -> anyhow::Result<()> {
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
async fn seed_connection(app: &App, org_id: Uuid, number: &str) -> anyhow::Result<Uuid> {
    use crate::crypto::SecretField;
    use crate::store::{Connection, PlatformColumn};
    let now = domain::now();
    let id = domain::new_id();
    let connection = Connection {
        id,
        organization_id: org_id,
        platform: PlatformColumn(snorq_connectors::Platform::WhatsApp),
        platform_user_id: number.to_owned(),
        name: Some("Bench".into()),
        status: crate::domain::ConnectionStatus::Active,
        access_token_enc: Some(
            app.vault
                .encrypt(SecretField::ConnectionAccessToken, id, "bench")?,
        ),
        refresh_token_enc: None,
        token_fingerprint: Some(crate::crypto::tokens::fingerprint("bench")),
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
