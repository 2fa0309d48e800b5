//! `snorq-tools bench-ingest`: a load generator for webhook ingest. It posts correctly signed WhatsApp
//! webhooks (one message each, spread over many conversations, a share of them duplicates), flat
//! out or at a fixed rate, retries what did not get a 200 as a platform would, reports
//! throughput and time-to-200 percentiles, and can then check the database holds exactly the
//! acknowledged messages, once each.
//!
//! Latency is measured from each request's scheduled start, so a stalled server shows up in the
//! percentiles instead of silently lowering the offered rate.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use snorq_connectors::Platform;
use snorq_connectors::verify::meta_signature_header;
use tokio::sync::Mutex;

use crate::simulator::WhatsAppAccount;
use crate::simulator::payloads::{self, Customer, Said};
use snorq::config::DatabaseUrl;

#[derive(Debug, Clone, Args)]
pub struct IngestBenchArgs {
    /// Base URL of the running service.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// The WhatsApp app secret the service is configured with.
    #[arg(long, env = "SNORQ_WHATSAPP_APP_SECRET")]
    pub secret: String,
    /// The phone_number_id to post for; `--setup` connects it through the API first.
    #[arg(long, default_value = "100000000000001")]
    pub phone_number_id: String,
    /// The number's WhatsApp Business Account: connecting it asks the platform (the simulator
    /// in benches/ingest.sh) whether the token reaches the number through it.
    #[arg(long, default_value = "100000000000002")]
    pub waba_id: String,
    /// Sign up, create an organization and connect the number before the run.
    #[arg(long)]
    pub setup: bool,
    /// Webhooks to deliver (each gets a 200 in the end, or the run reports it).
    #[arg(long, default_value_t = 20_000)]
    pub count: usize,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Offered rate in webhooks per second; flat out when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Distinct conversations the messages are spread over.
    #[arg(long, default_value_t = 5_000)]
    pub conversations: usize,
    /// Share of webhooks that repeat an earlier message (redeliveries).
    #[arg(long, default_value_t = 0.05)]
    pub duplicates: f64,
    /// Give up on a webhook that has not had a 200 after this many seconds of retries.
    #[arg(long, default_value_t = 120)]
    pub give_up_after_secs: u64,
    /// Afterwards, check this database holds each acknowledged message exactly once.
    #[arg(long)]
    pub check_database: Option<String>,
    /// Tag of this run's message ids (default: the start time).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Also follow the organization's live events on this server (another process on the same
    /// database) and report each message's latency from its 200 to the client. Needs `--setup`
    /// (for the token) and `--check-database` (to match events to messages).
    #[arg(long, requires = "setup", requires = "check_database")]
    pub live_from: Option<String>,
    /// Print the acknowledgements of every second, and (with `--rate`) how long throughput
    /// stayed below the offered rate after a dip (an outage) began.
    #[arg(long)]
    pub timeline: bool,
}

#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u64>,
    acked: HashSet<String>,
    /// When each message's first 200 arrived.
    acked_at: HashMap<String, Instant>,
    /// 200s per second since the start.
    per_second: Vec<u64>,
    retries: u64,
    gave_up: u64,
}

pub async fn run(args: IngestBenchArgs) -> anyhow::Result<()> {
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| chrono::Utc::now().format("%H%M%S%3f").to_string());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let live = match (args.setup, &args.live_from) {
        (false, _) => None,
        (true, None) => {
            setup(&client, &args).await?;
            None
        }
        (true, Some(live_from)) => {
            let (token, org_id) = setup(&client, &args).await?;
            Some(super::live::follow(&client, live_from, &org_id, &token).await?)
        }
    };
    let plan: Arc<Vec<usize>> = Arc::new(message_plan(args.count, args.duplicates));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, args, plan, tally, next, run_id) = (
            client.clone(),
            args.clone(),
            plan.clone(),
            tally.clone(),
            next.clone(),
            run_id.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&message) = plan.get(i) else { break };
                let scheduled = match args.rate {
                    Some(rate) => started + Duration::from_secs_f64(i as f64 / rate),
                    None => Instant::now(),
                };
                tokio::time::sleep_until(scheduled.into()).await;
                deliver(&client, &args, &run_id, message, (started, scheduled), &tally).await;
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let elapsed = started.elapsed();
    let mut tally = Arc::try_unwrap(tally)
        .map_err(|_| anyhow::anyhow!("workers still running"))?
        .into_inner();
    tally.latencies_us.sort_unstable();
    let done = tally.latencies_us.len();
    println!(
        "run {run_id}: {done} webhooks acknowledged in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {:.0} webhooks/s",
        done as f64 / elapsed.as_secs_f64()
    );
    println!(
        "time to 200: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        percentile(&tally.latencies_us, 50.0),
        percentile(&tally.latencies_us, 99.0),
        percentile(&tally.latencies_us, 99.9),
        percentile(&tally.latencies_us, 100.0)
    );
    println!(
        "distinct messages acknowledged: {}, retried deliveries: {}, given up: {}",
        tally.acked.len(),
        tally.retries,
        tally.gave_up
    );
    if args.timeline {
        print_timeline(&tally.per_second, args.rate);
    }
    if let Some(url) = &args.check_database {
        check_database(url, &run_id, &tally.acked).await?;
    }
    if let (Some((arrivals, follower)), Some(url)) = (live, &args.check_database) {
        // The last events are on their way.
        tokio::time::sleep(Duration::from_secs(2)).await;
        follower.abort();
        super::live::report(url, &run_id, &tally.acked_at, &arrivals).await?;
    }
    if tally.gave_up > 0 {
        bail!("{} webhooks never got a 200", tally.gave_up);
    }
    Ok(())
}

/// Which message each webhook carries: mostly new ones, a share repeating an earlier one.
fn message_plan(count: usize, duplicates: f64) -> Vec<usize> {
    let mut plan = Vec::with_capacity(count);
    let mut fresh = 0;
    // A small deterministic generator keeps runs comparable.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..count {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let roll = (state % 10_000) as f64 / 10_000.0;
        if fresh > 0 && roll < duplicates {
            plan.push((state as usize / 7) % fresh);
        } else {
            plan.push(fresh);
            fresh += 1;
        }
    }
    plan
}

fn body(args: &IngestBenchArgs, run_id: &str, message: usize) -> Vec<u8> {
    let contact = format!("55{:011}", message % args.conversations.max(1));
    let account = WhatsAppAccount {
        phone_number_id: args.phone_number_id.clone(),
        waba_id: "BENCH".to_owned(),
        display_phone_number: "15550000000".to_owned(),
    };
    let customer = Customer {
        platform: Platform::WhatsApp,
        name: format!("Customer {contact}"),
        username: String::new(),
        id: contact.clone(),
        thread: contact,
    };
    let said = Said::Text(format!("benchmark message {message}"));
    let id = format!("wamid.bench.{run_id}.{message}");
    payloads::whatsapp_message(&account, &customer, &id, chrono::Utc::now(), &said)
        .to_string()
        .into_bytes()
}

async fn deliver(
    client: &reqwest::Client,
    args: &IngestBenchArgs,
    run_id: &str,
    message: usize,
    (started, scheduled): (Instant, Instant),
    tally: &Mutex<Tally>,
) {
    let body = body(args, run_id, message);
    let signature = meta_signature_header(args.secret.as_bytes(), &body);
    let url = format!("{}/webhooks/whatsapp", args.target.trim_end_matches('/'));
    let give_up = scheduled + Duration::from_secs(args.give_up_after_secs);
    let mut backoff = Duration::from_millis(50);
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        if matches!(&sent, Ok(r) if r.status().is_success()) {
            let mut tally = tally.lock().await;
            tally.latencies_us.push(scheduled.elapsed().as_micros() as u64);
            let second = started.elapsed().as_secs() as usize;
            if tally.per_second.len() <= second {
                tally.per_second.resize(second + 1, 0);
            }
            tally.per_second[second] += 1;
            let id = format!("wamid.bench.{run_id}.{message}");
            tally.acked_at.entry(id.clone()).or_insert_with(Instant::now);
            tally.acked.insert(id);
            tally.retries += attempts - 1;
            return;
        }
        if Instant::now() > give_up {
            tally.lock().await.gave_up += 1;
            return;
        }
        // Like a platform: the same webhook again, later.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Signs up, creates an organization and connects the number: the token and the organization.
async fn setup(client: &reqwest::Client, args: &IngestBenchArgs) -> anyhow::Result<(String, String)> {
    let base = args.target.trim_end_matches('/');
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    let (token, _) = super::signup_and_login(
        client,
        &format!("{base}/api/v1"),
        &email,
        "Bench",
        "benchmark password",
    )
    .await?;
    let token = token.as_str();
    let org: serde_json::Value = client
        .post(format!("{base}/api/v1/orgs"))
        .bearer_auth(token)
        .json(&json!({"name": "Bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let org_id = org["id"].as_str().context("no org id")?;
    client
        .post(format!("{base}/api/v1/orgs/{org_id}/connections"))
        .bearer_auth(token)
        .json(
            &json!({"platform": "whatsapp", "platform_user_id": args.phone_number_id,
                      "waba_id": args.waba_id, "access_token": "bench"}),
        )
        .send()
        .await?
        .error_for_status()
        .context("connecting the benchmark number (already connected elsewhere?)")?;
    Ok((token.to_owned(), org_id.to_owned()))
}

fn print_timeline(per_second: &[u64], rate: Option<f64>) {
    let counts: Vec<String> = per_second.iter().map(u64::to_string).collect();
    println!("200s per second: {}", counts.join(" "));
    let Some(rate) = rate else { return };
    match recovery(per_second, rate) {
        Some((dip, back)) => println!(
            "dip: throughput fell below half the offered rate in second {dip}; back at the offered rate \
             (95%) from second {back}, {} s after the dip began",
            back - dip
        ),
        None => println!("dip: none (throughput never fell below half the offered rate)"),
    }
}

/// The first second below half the rate, and the first second from which throughput is at 95%
/// of it or more (a backlog drains above it) until the generator's last full second.
fn recovery(per_second: &[u64], rate: f64) -> Option<(usize, usize)> {
    // The last second is partial.
    let full = &per_second[..per_second.len().saturating_sub(1)];
    let dip = full.iter().position(|n| (*n as f64) < rate / 2.0)?;
    let back = (dip..full.len()).find(|&s| full[s..].iter().all(|n| *n as f64 >= rate * 0.95))?;
    Some((dip, back))
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Every acknowledged message stored exactly once; fails the run otherwise.
async fn check_database(url: &str, run_id: &str, acked: &HashSet<String>) -> anyhow::Result<()> {
    let pattern = format!("wamid.bench.{run_id}.%");
    let sql = "SELECT external_id, CAST(COUNT(*) AS BIGINT) FROM messages WHERE external_id LIKE $1 GROUP BY external_id";
    let rows: Vec<(String, i64)> = match DatabaseUrl::parse(url)? {
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(&url).await?;
            sqlx::query_as(sql).bind(&pattern).fetch_all(&pool).await?
        }
        DatabaseUrl::Sqlite(url) => {
            let pool = sqlx::SqlitePool::connect(&url).await?;
            sqlx::query_as(sql).bind(&pattern).fetch_all(&pool).await?
        }
    };
    let stored: HashSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();
    let duplicated = rows.iter().filter(|(_, n)| *n > 1).count();
    let missing = acked.iter().filter(|id| !stored.contains(id.as_str())).count();
    let unacknowledged = stored.iter().filter(|id| !acked.contains(**id)).count();
    println!(
        "database check: {} stored, {missing} acknowledged but missing, {duplicated} stored more than once, \
         {unacknowledged} stored but never acknowledged",
        stored.len()
    );
    if missing > 0 || duplicated > 0 {
        bail!("the database does not hold exactly the acknowledged messages");
    }
    println!("database check: OK (every acknowledged webhook stored exactly once)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_repeats_about_the_requested_share() {
        let plan = message_plan(10_000, 0.05);
        let distinct: HashSet<_> = plan.iter().collect();
        let repeats = plan.len() - distinct.len();
        assert!((300..=700).contains(&repeats), "{repeats}");
        // Every repeat refers to a message sent before it.
        let mut seen = HashSet::new();
        for m in &plan {
            assert!(*m <= seen.len());
            seen.insert(*m);
        }
    }

    #[test]
    fn recovery_is_measured_from_the_dip_to_the_offered_rate() {
        let seconds = [1000, 1000, 0, 0, 400, 2500, 1000, 990, 1000, 300];
        assert_eq!(recovery(&seconds, 1000.0), Some((2, 5)));
        assert_eq!(recovery(&[1000, 1000, 1000, 10], 1000.0), None);
        // Never back: no recovery second.
        assert_eq!(recovery(&[1000, 0, 500, 900, 10], 1000.0), None);
    }

    #[test]
    fn percentiles_of_sorted_samples() {
        let samples: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        assert_eq!(percentile(&samples, 50.0), 501.0);
        assert_eq!(percentile(&samples, 100.0), 1000.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }
}
