//! `snorq-tools bench-signup`: bursts of concurrent signups against a running service, measuring its
//! resident memory (peak and settled, read from /proc) and how `/readyz` answers meanwhile.
//! Password hashing is the expensive part (19 MiB of working memory each): this shows that the
//! bounded hashing pool keeps memory flat and the service responsive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::ingest::percentile;

#[derive(Debug, Clone, Args)]
pub struct SignupBenchArgs {
    /// Base URL of the running service (signup open, its per-address limit raised).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// The service's process id, whose resident memory is sampled.
    #[arg(long)]
    pub pid: u32,
    /// How many bursts.
    #[arg(long, default_value_t = 3)]
    pub bursts: usize,
    /// Signups sent at once in each burst.
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// Seconds between bursts.
    #[arg(long, default_value_t = 2)]
    pub pause_secs: u64,
    /// Seconds after the last burst before the settled memory is read.
    #[arg(long, default_value_t = 10)]
    pub settle_secs: u64,
}

/// Resident memory of `pid` in MiB (VmRSS).
fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (is the service running?)"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

pub async fn run(args: SignupBenchArgs) -> anyhow::Result<()> {
    let base = args.target.trim_end_matches('/').to_owned();
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let cold = rss_mib(args.pid)?;
    // One signup first: the hashing threads take their working memory on first use.
    let warmup = client
        .post(format!("{base}/api/v1/auth/signup"))
        .json(&json!({"email": format!("warmup-{tag}@example.com"), "name": "Bench", "password": "benchmark password"}))
        .send()
        .await?;
    anyhow::ensure!(
        warmup.status().is_success(),
        "warm-up signup answered {}",
        warmup.status()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = rss_mib(args.pid)?;

    let stop = Arc::new(AtomicBool::new(false));
    let peak_kib = Arc::new(AtomicU64::new((baseline * 1024.0) as u64));
    let sampler = {
        let (stop, peak, pid) = (stop.clone(), peak_kib.clone(), args.pid);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mib) = rss_mib(pid) {
                    peak.fetch_max((mib * 1024.0) as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let prober = {
        let (stop, client, url) = (stop.clone(), client.clone(), format!("{base}/readyz"));
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => latencies.push(started.elapsed().as_micros() as u64),
                    _ => failures += 1,
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (latencies, failures)
        })
    };

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let started = Instant::now();
    for burst in 0..args.bursts {
        let calls = (0..args.concurrency).map(|n| {
            let client = client.clone();
            let url = format!("{base}/api/v1/auth/signup");
            let email = format!("burst-{tag}-{burst}-{n}@example.com");
            async move {
                client
                    .post(url)
                    .json(&json!({"email": email, "name": "Bench", "password": "benchmark password"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        for status in futures::future::join_all(calls).await {
            *statuses.entry(status).or_default() += 1;
        }
        if burst + 1 < args.bursts {
            tokio::time::sleep(Duration::from_secs(args.pause_secs)).await;
        }
    }
    let bursts_took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut latencies, probe_failures) = prober.await?;
    sampler.await?;
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let settled = rss_mib(args.pid)?;
    let peak = peak_kib.load(Ordering::Relaxed) as f64 / 1024.0;
    latencies.sort_unstable();

    println!(
        "{} bursts of {} concurrent signups in {:.1} s; answers: {}",
        args.bursts,
        args.concurrency,
        bursts_took.as_secs_f64(),
        statuses
            .iter()
            .map(|(status, n)| format!("{status}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "resident memory: cold {cold:.0} MiB, before the bursts {baseline:.0} MiB, peak {peak:.0} MiB, settled after {} s {settled:.0} MiB (settled - before: {:+.0} MiB)",
        args.settle_secs,
        settled - baseline
    );
    println!(
        "/readyz during the bursts: {} probes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} failed",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
        probe_failures
    );
    Ok(())
}
