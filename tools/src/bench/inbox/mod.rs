//! `snorq-tools bench-inbox`: read latency of the team inbox (issue 6) on a large organization.
//!
//! Seeds (once; `--reseed` to start over) one organization with `--conversations` conversations
//! and `--messages` messages, plus `--other-orgs` small organizations of the same shape, with raw
//! multi-row INSERTs on the service's own pool (the count and search triggers run as they do in
//! production). Then serves the service in-process on a random local port and, per scenario,
//! runs `--clients` concurrent HTTP clients flat out for `--seconds` (after a warm-up), and
//! reports requests/s and latency percentiles. Any non-200 answer fails the run.

mod seed;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;
use uuid::Uuid;

use super::ingest::percentile;
use seed::{conversation_ids, delete_bench_orgs, index_for_search, is_seeded, org_by_slug, seed_all};

use snorq::config::Config;
use snorq::server;

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
