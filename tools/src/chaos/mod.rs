//! `snorq-tools chaos`: the delivery guarantees under faults (docs/architecture.md, "Sends
//! that stall"). The real `snorq serve` and a `snorq worker` run against the platform
//! simulator (which answers some sends late or cuts the connection after accepting them),
//! under a steady load of customer webhooks and agent replies. Mid-load the service is
//! SIGKILLed and restarted, a worker is SIGKILLed during platform calls and restarted, and on
//! PostgreSQL (a server of the run's own) the database is restarted. Then it checks, and
//! prints the counts:
//! - every webhook answered 200 is stored exactly once;
//! - every reply the API accepted was accepted by the platform exactly once, or is failed with
//!   its reason (never accepted twice);
//! - nothing is left pending once the sweep has run, and the processes recovered by themselves
//!   (a reply made after the faults is sent).
//!
//! Loopback only; about a minute per backend.

mod postgres;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use snorq_connectors::Platform;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::simulator::payloads::{self, Said};
use crate::simulator::record::Record;
use crate::simulator::webhooks::Delivery;
use crate::simulator::{
    Accounts, FailureMix, Population, Secrets, Simulator, SimulatorConfig, WebhookTarget,
};

#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// The backends to run on, in turn: sqlite, postgres.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    pub backends: Vec<String>,
    /// The service binary (default: `snorq` beside this program).
    #[arg(long)]
    pub snorq: Option<PathBuf>,
    /// Seconds of load; the faults happen at fixed points within it.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Customer messages (webhooks) per second.
    #[arg(long, default_value_t = 10.0)]
    pub webhook_rate: f64,
    /// Agent replies per second.
    #[arg(long, default_value_t = 5.0)]
    pub reply_rate: f64,
}

/// What the simulated platforms get wrong: answers that come too late or not at all after
/// the send was accepted, and plain server errors (retried).
const FAULTS: [&str; 3] = ["slow-accept=0.04", "reset-after-accept=0.04", "server-error=0.05"];
/// Sends claimed and not answered yet (docs/architecture.md, "Sends that stall").
const IN_FLIGHT: &str = "SELECT COUNT(*) FROM messages WHERE direction = 'OUTBOUND' AND status = 'PENDING' \
     AND next_attempt_at IS NULL AND unconfirmed_until IS NULL AND last_attempt_at IS NOT NULL";
/// Customers per platform.
const CUSTOMERS: usize = 8;
/// The platforms customers write on and agents reply on: those whose sends can be confirmed
/// by the platform's word (docs/api.md, "Delivery guarantees").
const PLATFORMS: [Platform; 2] = [Platform::WhatsApp, Platform::Facebook];

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let snorq = match &args.snorq {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("snorq"),
    };
    if !snorq.exists() {
        bail!(
            "{} not found: build the service first (cargo build -p snorq) or pass --snorq",
            snorq.display()
        );
    }
    let mut failed = Vec::new();
    for backend in &args.backends {
        let postgres = match backend.as_str() {
            "sqlite" => false,
            "postgres" => true,
            other => bail!("unknown backend {other:?}: expected sqlite or postgres"),
        };
        let started = Instant::now();
        let report = Run::start(&snorq, postgres, &args).await?.go(&args).await?;
        println!(
            "chaos on {backend} ({:.0} s):\n{}",
            started.elapsed().as_secs_f64(),
            report.summary()
        );
        for violation in &report.violations {
            println!("  VIOLATION: {violation}");
        }
        if !report.violations.is_empty() {
            failed.push(backend.clone());
        }
    }
    if !failed.is_empty() {
        bail!("the delivery guarantees did not hold on {}", failed.join(", "));
    }
    Ok(())
}

/// A free loopback port (bound, then released for the process that will listen on it).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The database the processes share, as the run sees it (for its checks).
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Db {
    async fn count(&self, sql: &'static str) -> anyhow::Result<i64> {
        Ok(match self {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await?,
        })
    }

    async fn strings(&self, sql: &'static str) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
            Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await?,
        })
    }
}

/// One backend's run: its processes, simulator and load.
struct Run {
    snorq: PathBuf,
    dir: tempfile::TempDir,
    postgres: Option<postgres::Postgres>,
    env: Vec<(&'static str, String)>,
    service_url: String,
    service: Child,
    worker: Child,
    simulator: Simulator,
    accounts: Accounts,
    target: Arc<WebhookTarget>,
    http: reqwest::Client,
    token: String,
    org: String,
}

impl Run {
    async fn start(snorq: &Path, postgres: bool, args: &ChaosArgs) -> anyhow::Result<Run> {
        let dir = tempfile::Builder::new().prefix("snorq-chaos-").tempdir()?;
        let postgres = postgres.then(postgres::Postgres::start).transpose()?;
        let service_url = format!("http://127.0.0.1:{}", free_port()?);
        let accounts = crate::demo::demo_accounts();
        let secrets = Secrets {
            whatsapp: Some(crate::demo::random_secret()),
            facebook: Some(crate::demo::random_secret()),
            tiktok: Some(crate::demo::random_secret()),
        };
        let mut config = SimulatorConfig::new(
            accounts.clone(),
            Some((service_url.clone(), secrets.clone())),
            0.0,
        );
        config.failures = FailureMix::new(
            FAULTS
                .iter()
                .map(|rule| rule.parse())
                .collect::<Result<_, String>>()
                .map_err(anyhow::Error::msg)?,
        )
        .map_err(anyhow::Error::msg)?;
        config.latency = Duration::from_millis(100);
        config.hold = Duration::from_secs(4);
        config.receipt_delay = Duration::from_millis(300);
        config.echo_delay = Duration::from_millis(300);
        config.read_share = 0.3;
        let simulator = Simulator::serve(TcpListener::bind("127.0.0.1:0").await?, config).await?;
        let secret = |s: &Option<secrecy::SecretString>| {
            s.as_ref()
                .map(|s| s.expose_secret().to_owned())
                .unwrap_or_default()
        };
        let mut env = vec![
            (
                "SNORQ_LISTEN",
                service_url.trim_start_matches("http://").to_owned(),
            ),
            (
                "SNORQ_ENCRYPTION_KEYS",
                snorq::crypto::EncryptionKey::generate_base64(),
            ),
            ("SNORQ_WHATSAPP_APP_SECRET", secret(&secrets.whatsapp)),
            ("SNORQ_FACEBOOK_APP_SECRET", secret(&secrets.facebook)),
            ("SNORQ_TIKTOK_APP_SECRET", secret(&secrets.tiktok)),
            ("SNORQ_GRAPH_BASE_URL", simulator.url().to_owned()),
            ("SNORQ_TIKTOK_BASE_URL", simulator.url().to_owned()),
            ("SNORQ_SEND_TIMEOUT_SECS", "2".to_owned()),
            ("SNORQ_SEND_STALL_SECS", "3".to_owned()),
            ("SNORQ_SEND_CONFIRM_WINDOW_SECS", "8".to_owned()),
            ("SNORQ_SEND_RETRY_DELAYS_SECS", "1,1,2,2".to_owned()),
            ("SNORQ_WORKER_HEARTBEAT_SECS", "1".to_owned()),
            ("SNORQ_QUEUE_POLL_INTERVAL_MS", "100".to_owned()),
            ("SNORQ_SEND_RATE_WHATSAPP", "0".to_owned()),
            ("SNORQ_SEND_RATE_FACEBOOK", "0".to_owned()),
            ("SNORQ_LOG", "warn".to_owned()),
        ];
        match &postgres {
            Some(pg) => env.push(("SNORQ_DATABASE_URL", pg.url())),
            None => env.push(("SNORQ_DATA_DIR", dir.path().display().to_string())),
        }
        let _ = args;
        let service = spawn(snorq, "serve", &env, dir.path())?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        wait_healthy(&http, &service_url).await?;
        // The worker starts after the service has migrated the database.
        let worker = spawn(snorq, "worker", &env, dir.path())?;
        let target = Arc::new(WebhookTarget::new(&service_url, secrets)?);
        let mut run = Run {
            snorq: snorq.to_owned(),
            dir,
            postgres,
            env,
            service_url,
            service,
            worker,
            simulator,
            accounts,
            target,
            http,
            token: String::new(),
            org: String::new(),
        };
        run.seed().await?;
        Ok(run)
    }

    async fn database(&self) -> anyhow::Result<Db> {
        Ok(match &self.postgres {
            Some(pg) => Db::Postgres(sqlx::PgPool::connect(&pg.url()).await?),
            None => {
                let path = self.dir.path().join("snorq.db");
                Db::Sqlite(sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await?)
            }
        })
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.service_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// An agent, an organization and a WhatsApp and a Messenger connection, through the API.
    async fn seed(&mut self) -> anyhow::Result<()> {
        let (email, password) = ("chaos@example.com", "chaos monkey business");
        let post = |path: &str, body: Value| {
            self.http
                .post(format!("{}{path}", self.service_url))
                .json(&body)
                .send()
        };
        post(
            "/api/v1/auth/signup",
            json!({"email": email, "name": "Chaos", "password": password}),
        )
        .await?
        .error_for_status()?;
        let login: Value = post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await?
        .error_for_status()?
        .json()
        .await?;
        self.token = login["token"].as_str().context("login token")?.to_owned();
        let (status, org) = self
            .api(
                reqwest::Method::POST,
                "/api/v1/orgs",
                Some(json!({"name": "Chaos Shop"})),
            )
            .await?;
        if status != 201 {
            bail!("create organization: {status} {org}");
        }
        self.org = org["id"].as_str().context("organization id")?.to_owned();
        for body in [
            json!({"platform": "whatsapp", "platform_user_id": self.accounts.whatsapp.phone_number_id,
                   "waba_id": self.accounts.whatsapp.waba_id, "access_token": "sim-whatsapp-access-token"}),
            json!({"platform": "facebook", "platform_user_id": self.accounts.facebook_page_id,
                   "access_token": "sim-facebook-access-token"}),
        ] {
            let path = format!("/api/v1/orgs/{}/connections", self.org);
            let (status, answer) = self.api(reqwest::Method::POST, &path, Some(body)).await?;
            if status != 201 {
                bail!("connect: {status} {answer}");
            }
        }
        Ok(())
    }

    async fn go(mut self, args: &ChaosArgs) -> anyhow::Result<Report> {
        let db = self.database().await?;
        let load = Load::new(self.accounts.clone(), self.target.clone());
        // Every customer writes once, so every conversation exists before the replies start.
        for customer in PLATFORMS.iter().flat_map(|p| load.population.all(*p).to_vec()) {
            if load.webhook(&customer).await != Delivery::Accepted {
                bail!("the service did not take a customer's first message");
            }
        }
        let (status, page) = self
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/orgs/{}/conversations?limit=100", self.org),
                None,
            )
            .await?;
        let conversations: Vec<String> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect();
        if status != 200 || conversations.len() != CUSTOMERS * PLATFORMS.len() {
            bail!("conversations: {status} {page}");
        }

        let stop = Arc::new(AtomicBool::new(false));
        let webhooks = tokio::spawn(load.clone().webhooks(args.webhook_rate, stop.clone()));
        let replies = tokio::spawn(load.clone().replies(
            ReplyClient {
                http: self.http.clone(),
                base: format!("{}/api/v1/orgs/{}/conversations", self.service_url, self.org),
                token: self.token.clone(),
            },
            conversations.clone(),
            args.reply_rate,
            stop.clone(),
        ));

        let length = Duration::from_secs(args.seconds);
        let began = Instant::now();
        let mut faults = Faults::default();
        tokio::time::sleep(length / 4).await;
        // The service, mid-load (its own workers are mid-call too).
        self.service.kill().await?;
        faults.service_kills += 1;
        self.service = spawn(&self.snorq, "serve", &self.env, self.dir.path())?;
        wait_healthy(&self.http, &self.service_url).await?;
        tokio::time::sleep((length / 2).saturating_sub(began.elapsed())).await;
        // A worker during platform calls: wait for attempts in flight.
        for _ in 0..60 {
            if db.count(IN_FLIGHT).await.unwrap_or(0) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        faults.calls_in_flight_at_worker_kill = db.count(IN_FLIGHT).await.unwrap_or(0);
        self.worker.kill().await?;
        faults.worker_kills += 1;
        self.worker = spawn(&self.snorq, "worker", &self.env, self.dir.path())?;
        if let Some(pg) = &self.postgres {
            tokio::time::sleep((length * 7 / 10).saturating_sub(began.elapsed())).await;
            pg.restart()?;
            faults.database_restarts += 1;
        }
        tokio::time::sleep(length.saturating_sub(began.elapsed())).await;
        stop.store(true, Ordering::SeqCst);
        webhooks.await?;
        replies.await?;

        // Recovered without a human: a reply made now is sent.
        let client = ReplyClient {
            http: self.http.clone(),
            base: format!("{}/api/v1/orgs/{}/conversations", self.service_url, self.org),
            token: self.token.clone(),
        };
        let last = client.reply(&conversations[0], "after the storm").await;
        let settle = Instant::now();
        let mut pending = i64::MAX;
        while settle.elapsed() < Duration::from_secs(120) {
            pending = db
                .count("SELECT COUNT(*) FROM messages WHERE direction = 'OUTBOUND' AND status = 'PENDING'")
                .await
                .unwrap_or(i64::MAX);
            if pending == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let mut report = Report {
            faults,
            settled_in: settle.elapsed(),
            left_pending: pending,
            ..Report::default()
        };
        self.check_webhooks(&db, &load, &mut report).await?;
        self.check_replies(&load, &mut report).await?;
        match last {
            Some(id) => {
                let (_, send) = self
                    .api(
                        reqwest::Method::GET,
                        &format!("/api/v1/orgs/{}/sends/{id}", self.org),
                        None,
                    )
                    .await?;
                if !matches!(send["status"].as_str(), Some("sent" | "delivered" | "read")) {
                    report
                        .violations
                        .push(format!("the reply made after the faults is not sent: {send}"));
                }
            }
            None => report
                .violations
                .push("the API did not accept a reply after the faults".into()),
        }
        if report.left_pending > 0 {
            report.violations.push(format!(
                "{} sends still pending after the sweep",
                report.left_pending
            ));
        }
        if !report.violations.is_empty() {
            println!("  logs: {}", self.dir.path().join("snorq.log").display());
            // Keep the logs for a look.
            let kept = self.dir.keep();
            println!("  kept {}", kept.display());
        }
        let _ = self.service.kill().await;
        let _ = self.worker.kill().await;
        let _ = self.simulator.stop().await;
        Ok(report)
    }

    async fn check_webhooks(&self, db: &Db, load: &Load, report: &mut Report) -> anyhow::Result<()> {
        let stored = db
            .strings("SELECT external_id FROM messages WHERE direction = 'INBOUND'")
            .await?;
        let mut times: HashMap<String, u64> = HashMap::new();
        for id in stored {
            *times.entry(id).or_default() += 1;
        }
        let taken = load.webhooks_taken.lock().map(|t| t.clone()).unwrap_or_default();
        report.webhooks_offered = load.webhooks_offered.load(Ordering::SeqCst);
        report.webhooks_taken = taken.len() as u64;
        for id in &taken {
            match times.get(id).copied().unwrap_or(0) {
                1 => report.webhooks_stored_once += 1,
                0 => report
                    .violations
                    .push(format!("webhook message {id} answered 200 but not stored")),
                n => report
                    .violations
                    .push(format!("webhook message {id} stored {n} times")),
            }
        }
        Ok(())
    }

    async fn check_replies(&self, load: &Load, report: &mut Report) -> anyhow::Result<()> {
        let mut acceptances: HashMap<String, u64> = HashMap::new();
        for send in self.simulator.sends() {
            if send.outcome == "accepted"
                && let Some(correlation) = send.correlation
            {
                *acceptances.entry(correlation).or_default() += 1;
            }
        }
        let ids = load.replies_taken.lock().map(|t| t.clone()).unwrap_or_default();
        report.replies_taken = ids.len() as u64;
        for id in ids {
            let (status, send) = self
                .api(
                    reqwest::Method::GET,
                    &format!("/api/v1/orgs/{}/sends/{id}", self.org),
                    None,
                )
                .await?;
            if status != 200 {
                report
                    .violations
                    .push(format!("reply {id}: the sends API answered {status}"));
                continue;
            }
            let accepted = acceptances.get(&format!("outbound:{id}")).copied().unwrap_or(0);
            report.platform_acceptances += accepted;
            let state = send["status"].as_str().unwrap_or("");
            let reason = send["failure_reason"].as_str();
            let confirmed_late = send["attempt_log"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| matches!(a["outcome"].as_str(), Some("unconfirmed" | "abandoned")));
            match (state, accepted, reason) {
                (_, 2.., _) => report
                    .violations
                    .push(format!("reply {id} accepted {accepted} times by the platform")),
                ("sent" | "delivered" | "read", 1, _) => {
                    report.sent_once += 1;
                    if confirmed_late {
                        report.confirmed_by_platform += 1;
                    }
                }
                ("sent" | "delivered" | "read", 0, _) => {
                    report.violations.push(format!(
                        "reply {id} is {state} but the platform never accepted it"
                    ));
                }
                ("failed", 1, Some("outcome_unknown")) => report.unknown_but_delivered += 1,
                ("failed", 0, Some(reason)) => {
                    *report.failed.entry(reason.to_owned()).or_default() += 1;
                }
                ("failed", _, reason) => report.violations.push(format!(
                    "reply {id} failed ({reason:?}) though the platform accepted it {accepted} time(s)"
                )),
                (state, _, _) => report.violations.push(format!("reply {id} left {state}")),
            }
        }
        Ok(())
    }
}

/// The service's API as an agent's client sees it: a reply is retried with the same
/// Idempotency-Key until the API answers (the service may be restarting).
#[derive(Clone)]
struct ReplyClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ReplyClient {
    /// The reply's id once the API accepted it; `None` if it never answered in time.
    async fn reply(&self, conversation: &str, text: &str) -> Option<String> {
        let key = uuid::Uuid::new_v4().to_string();
        for _ in 0..40 {
            let sent = self
                .http
                .post(format!("{}/{conversation}/messages", self.base))
                .bearer_auth(&self.token)
                .header("Idempotency-Key", &key)
                .json(&json!({"text": text}))
                .send()
                .await;
            if let Ok(response) = sent {
                let status = response.status();
                if status.is_success() {
                    let body: Value = response.json().await.ok()?;
                    return body["id"].as_str().map(str::to_owned);
                }
                if status.is_client_error() {
                    tracing::warn!(%status, "the API refused a reply");
                    return None;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }
}

/// The offered load and what the service took of it.
#[derive(Clone)]
struct Load {
    accounts: Accounts,
    target: Arc<WebhookTarget>,
    population: Arc<Population>,
    record: Arc<Record>,
    next: Arc<AtomicU64>,
    webhooks_offered: Arc<AtomicU64>,
    webhooks_taken: Arc<Mutex<Vec<String>>>,
    replies_taken: Arc<Mutex<Vec<String>>>,
}

impl Load {
    fn new(accounts: Accounts, target: Arc<WebhookTarget>) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        Load {
            accounts,
            target,
            population: Arc::new(Population::new(CUSTOMERS, &tag[..6])),
            record: Arc::new(Record::default()),
            next: Arc::new(AtomicU64::new(1)),
            webhooks_offered: Arc::new(AtomicU64::new(0)),
            webhooks_taken: Arc::new(Mutex::new(Vec::new())),
            replies_taken: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// One customer message, delivered as the platform does (retried on failure); its platform
    /// id is kept when the service answered 200.
    async fn webhook(&self, customer: &payloads::Customer) -> Delivery {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let id = match customer.platform {
            Platform::WhatsApp => format!("wamid.chaos-{n}"),
            _ => format!("m_chaos-{n}"),
        };
        let Some(body) = payloads::inbound(
            &self.accounts,
            customer,
            &id,
            chrono::Utc::now(),
            &Said::Text(format!("question {n}")),
        ) else {
            return Delivery::Failed;
        };
        self.webhooks_offered.fetch_add(1, Ordering::SeqCst);
        let delivered = self.target.deliver(&self.record, customer.platform, &body).await;
        if delivered == Delivery::Accepted
            && let Ok(mut taken) = self.webhooks_taken.lock()
        {
            taken.push(id);
        }
        delivered
    }

    async fn webhooks(self, rate: f64, stop: Arc<AtomicBool>) {
        let customers: Vec<payloads::Customer> = PLATFORMS
            .iter()
            .flat_map(|p| self.population.all(*p).to_vec())
            .collect();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            tick.tick().await;
            let load = self.clone();
            let customer = customers[i % customers.len()].clone();
            i += 1;
            tasks.spawn(async move { load.webhook(&customer).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn replies(
        self,
        client: ReplyClient,
        conversations: Vec<String>,
        rate: f64,
        stop: Arc<AtomicBool>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            tick.tick().await;
            let client = client.clone();
            let conversation = conversations[i % conversations.len()].clone();
            let taken = self.replies_taken.clone();
            i += 1;
            tasks.spawn(async move {
                if let Some(id) = client.reply(&conversation, &format!("answer {i}")).await
                    && let Ok(mut taken) = taken.lock()
                {
                    taken.push(id);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

#[derive(Debug, Default)]
struct Faults {
    service_kills: u32,
    worker_kills: u32,
    calls_in_flight_at_worker_kill: i64,
    database_restarts: u32,
}

#[derive(Debug, Default)]
struct Report {
    faults: Faults,
    webhooks_offered: u64,
    webhooks_taken: u64,
    webhooks_stored_once: u64,
    replies_taken: u64,
    platform_acceptances: u64,
    sent_once: u64,
    /// Sent, after an attempt whose outcome was unknown: the platform's word settled it.
    confirmed_by_platform: u64,
    /// Failed as outcome_unknown though the platform had accepted it (its word never came).
    unknown_but_delivered: u64,
    /// Failed without reaching the platform, by reason.
    failed: std::collections::BTreeMap<String, u64>,
    left_pending: i64,
    settled_in: Duration,
    violations: Vec<String>,
}

impl Report {
    fn summary(&self) -> String {
        let failed: Vec<String> = self.failed.iter().map(|(r, n)| format!("{r} {n}")).collect();
        format!(
            "  faults: service SIGKILLed {}, worker SIGKILLed {} ({} calls in flight), database restarted {}\n  \
             webhooks: {} offered, {} answered 200, {} stored exactly once\n  \
             replies: {} accepted by the API; {} accepted by the platform exactly once ({} of them settled by the \
             platform's word after an unknown outcome); {} failed outcome_unknown though delivered; failed before \
             the platform: {}; platform acceptances {}\n  \
             left pending: {} (settled {:.1} s after the load)",
            self.faults.service_kills,
            self.faults.worker_kills,
            self.faults.calls_in_flight_at_worker_kill,
            self.faults.database_restarts,
            self.webhooks_offered,
            self.webhooks_taken,
            self.webhooks_stored_once,
            self.replies_taken,
            self.sent_once,
            self.confirmed_by_platform,
            self.unknown_but_delivered,
            if failed.is_empty() {
                "none".to_owned()
            } else {
                failed.join(", ")
            },
            self.platform_acceptances,
            self.left_pending,
            self.settled_in.as_secs_f64(),
        )
    }
}

/// `snorq <command>` with the run's settings, its logs appended to `snorq.log` in `dir`.
fn spawn(snorq: &Path, command: &str, env: &[(&'static str, String)], dir: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("snorq.log"))?;
    let mut cmd = Command::new(snorq);
    cmd.arg(command)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {} {command}", snorq.display()))
}

async fn wait_healthy(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if let Ok(response) = http.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the service at {base} did not become ready")
}
