//! `snorq-tools bench-send`: outbound throughput through the real queue. Starts the platform
//! simulator's send APIs in-process (answering after a configurable delay), seeds an organization with
//! conversations on the configured database, queues replies through the same use case as the
//! API, runs the send workers, and reports sends per second and enqueue-to-sent percentiles.
//!
//! Two phases: a backlog (queue everything, then start the workers: pure queue throughput), and
//! a fixed offered rate with the workers running (latency).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use snorq_connectors::Platform;
use tokio::net::TcpListener;
use uuid::Uuid;

use super::ingest::percentile;
use crate::simulator::payloads::{self, Customer, Said};
use crate::simulator::{Accounts, Simulator, SimulatorConfig, Stats, WhatsAppAccount};
use snorq::app::orgs::OrgAccess;
use snorq::app::replies::{self, ReplyRequest};
use snorq::app::{App, ingest};
use snorq::config::Config;
use snorq::domain::{self, Role};
use snorq::store::{Membership, NewOrganization, NewUser, SendFilter, SendStatusFilter};
use snorq::{server, worker};

#[derive(Debug, Clone, Args)]
pub struct SendBenchArgs {
    /// Replies to send in the backlog phase.
    #[arg(long, default_value_t = 20_000)]
    pub messages: usize,
    /// Offered rate (replies per second) of the latency phase; 0 skips it.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Length of the latency phase.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Sends in flight (the worker's concurrency).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// How long the fake platform takes to answer each send.
    #[arg(long, default_value_t = 0)]
    pub platform_latency_ms: u64,
    /// Conversations the replies are spread over.
    #[arg(long, default_value_t = 200)]
    pub conversations: usize,
    /// Outcome transactions in flight (default: the service's, 1).
    #[arg(long)]
    pub outcome_writers: Option<usize>,
    /// Print the send metrics (timings of loading, calling, recording) at the end.
    #[arg(long)]
    pub show_metrics: bool,
}

const BENCH_WABA: &str = "100000000000009";

pub async fn run(config: Config, args: SendBenchArgs) -> anyhow::Result<()> {
    let metrics = snorq::telemetry::metrics();
    let tag = domain::new_id().simple().to_string();
    let phone_number_id = format!(
        "9{}",
        &tag[..14]
            .bytes()
            .map(|b| (b % 10).to_string())
            .collect::<String>()
    );
    let platform = simulated_platform(args.platform_latency_ms, &phone_number_id).await?;
    let calls = || Stats::count(&platform.stats().sends, "whatsapp", "accepted");
    let mut config = config;
    config.outbound.platforms = snorq_connectors::ClientConfig::with_base_url(platform.url());
    config.outbound.concurrency = args.concurrency;
    config.outbound.rates = snorq::queue::SendRates {
        whatsapp: 0,
        facebook: 0,
        tiktok: 0,
    };
    config.outbound.poll_interval = Duration::from_millis(100);
    if let Some(writers) = args.outcome_writers {
        config.outbound.outcome_writers = writers.max(1);
    }
    let app = server::bootstrap(&config).await?;
    let (access, conversations) = seed(&app, &tag, &phone_number_id, args.conversations).await?;
    eprintln!(
        "backend {}, {} conversations, {} in flight, platform answers in {} ms",
        app.store.backend(),
        conversations.len(),
        args.concurrency,
        args.platform_latency_ms
    );

    // Phase 1: a backlog, drained by the workers.
    let started = Instant::now();
    enqueue(&app, &access, &conversations, args.messages, None).await?;
    let queued_in = started.elapsed();
    eprintln!(
        "queued {} replies in {:.1} s ({:.0}/s through the reply use case)",
        args.messages,
        queued_in.as_secs_f64(),
        args.messages as f64 / queued_in.as_secs_f64()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(worker::run(app.clone(), config.outbound.clone(), async {
        let _ = stopped.await;
    }));
    let drain = Instant::now();
    wait_until_sent(&app, access.org_id()).await?;
    let drained_in = drain.elapsed();
    println!(
        "backlog: {} sends in {:.2} s = {:.0} sends/s ({} platform calls)",
        args.messages,
        drained_in.as_secs_f64(),
        args.messages as f64 / drained_in.as_secs_f64(),
        calls()
    );

    // Phase 2: a fixed offered rate; latency from the reply's creation to its recorded send.
    if args.rate > 0 {
        let count = (u64::from(args.rate) * args.seconds) as usize;
        let since = domain::now();
        let offered = Instant::now();
        enqueue(&app, &access, &conversations, count, Some(args.rate)).await?;
        wait_until_sent(&app, access.org_id()).await?;
        let latencies = latencies_since(&app, access.org_id(), since).await?;
        println!(
            "steady {} replies/s for {:.1} s: enqueue->sent p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} sends)",
            args.rate,
            offered.elapsed().as_secs_f64(),
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            percentile(&latencies, 100.0),
            latencies.len()
        );
    }
    let _ = stop.send(());
    workers.await??;
    if args.show_metrics {
        for line in metrics.render().lines().filter(|l| {
            l.starts_with("send_") && (l.contains("_sum") || l.contains("_count") || l.contains("quantile"))
        }) {
            println!("{line}");
        }
    }
    Ok(())
}

/// The platform simulator's send APIs, answering everything after `latency_ms`; its WhatsApp
/// account is the bench's number (so the connection's proof passes).
async fn simulated_platform(latency_ms: u64, phone_number_id: &str) -> anyhow::Result<Simulator> {
    let accounts = Accounts {
        whatsapp: WhatsAppAccount {
            phone_number_id: phone_number_id.to_owned(),
            waba_id: BENCH_WABA.to_owned(),
            display_phone_number: String::new(),
        },
        facebook_page_id: String::new(),
        tiktok_business_id: String::new(),
        tiktok_app_id: String::new(),
        meta_app_id: String::new(),
    };
    let mut config = SimulatorConfig::new(accounts, None, 0.0);
    config.latency = Duration::from_millis(latency_ms);
    Simulator::start(TcpListener::bind("127.0.0.1:0").await?, config).await
}

/// An organization with a WhatsApp connection and `count` conversations whose customers just
/// wrote (so the reply window is open).
async fn seed(
    app: &Arc<App>,
    tag: &str,
    phone_number_id: &str,
    count: usize,
) -> anyhow::Result<(OrgAccess, Vec<Uuid>)> {
    let now = domain::now();
    let user = app
        .store
        .insert_user(&NewUser {
            id: domain::new_id(),
            email: format!("bench-{tag}@example.com"),
            email_normalized: format!("bench-{tag}@example.com"),
            name: "Bench".into(),
            password_hash: None,
            created_at: now,
        })
        .await?;
    let org = app
        .store
        .insert_organization(&NewOrganization {
            id: domain::new_id(),
            name: "Bench".into(),
            slug: format!("bench-{tag}"),
            plan: snorq::domain::Plan::Business,
            owner_id: user.id,
            created_at: now,
        })
        .await?;
    let phone_number_id = phone_number_id.to_owned();
    let access = OrgAccess {
        user_id: user.id,
        membership: Membership {
            organization: org.clone(),
            role: Role::Owner,
        },
        token_hash: None,
    };
    snorq::app::connections::create(
        app,
        &access,
        snorq::app::connections::NewConnection {
            platform: Platform::WhatsApp,
            platform_user_id: phone_number_id.clone(),
            name: Some("bench".into()),
            waba_id: Some(BENCH_WABA.to_owned()),
            credentials: snorq::app::connections::Credentials {
                access_token: "bench-token".into(),
                refresh_token: None,
                access_token_expires_at: None,
                refresh_token_expires_at: None,
            },
        },
    )
    .await?;
    let account = WhatsAppAccount {
        phone_number_id: phone_number_id.clone(),
        waba_id: BENCH_WABA.to_owned(),
        display_phone_number: "1".to_owned(),
    };
    for i in 0..count {
        let customer = Customer {
            platform: Platform::WhatsApp,
            id: format!("1555{i:07}"),
            name: "Customer".to_owned(),
            username: String::new(),
            thread: format!("1555{i:07}"),
        };
        let said = Said::Text("hi".to_owned());
        let body =
            payloads::whatsapp_message(&account, &customer, &format!("wamid.bench.{tag}.{i}"), now, &said);
        let webhook = ingest::prepare(Platform::WhatsApp, body.to_string().into_bytes(), now);
        app.ingestor.submit(webhook).await?;
    }
    let ids = app.store.conversation_ids(org.id).await?;
    if ids.len() != count {
        bail!("expected {count} conversations, found {}", ids.len());
    }
    Ok((access, ids))
}

/// Queues `count` replies round-robin over the conversations, flat out (8 at a time) or at
/// `rate` per second.
async fn enqueue(
    app: &Arc<App>,
    access: &OrgAccess,
    conversations: &[Uuid],
    count: usize,
    rate: Option<u32>,
) -> anyhow::Result<()> {
    let lanes = 8;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (app, access, conversations) = (app.clone(), access.clone(), conversations.to_vec());
        tasks.push(tokio::spawn(async move {
            let mut i = lane;
            while i < count {
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate));
                    tokio::time::sleep_until(due.into()).await;
                }
                let conversation = conversations[i % conversations.len()];
                let request = ReplyRequest::text(format!("reply {i}"));
                replies::reply(&app, &access, conversation, request).await?;
                i += lanes;
            }
            Ok::<_, snorq::app::AppError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn wait_until_sent(app: &App, org_id: Uuid) -> anyhow::Result<()> {
    let pending = SendFilter {
        organizations: vec![org_id],
        status: Some(SendStatusFilter::Pending),
        ..SendFilter::default()
    };
    loop {
        if app.store.sends(&pending, None, 1).await?.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Microseconds from each reply's creation to the end of its successful platform call.
async fn latencies_since(
    app: &App,
    org_id: Uuid,
    since: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<u64>> {
    let sent = SendFilter {
        organizations: vec![org_id],
        status: Some(SendStatusFilter::Sent),
        since: Some(since),
        ..SendFilter::default()
    };
    let mut latencies = Vec::new();
    let mut before = None;
    loop {
        let page = app.store.sends(&sent, before, 1000).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        latencies.extend(page.iter().filter_map(|s| {
            let done = s.last_attempt_at?;
            u64::try_from((done - s.created_at).num_microseconds()?).ok()
        }));
    }
    latencies.sort_unstable();
    Ok(latencies)
}
