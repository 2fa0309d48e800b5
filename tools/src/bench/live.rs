//! Live-event latency for `bench-ingest --live-from`: a client follows the organization's
//! event stream on another server process while webhooks go to the first, and each
//! `message.created` is timed from the moment its webhook got its 200 (sent after the commit) to
//! the moment the client read it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use snorq::config::DatabaseUrl;
use tokio::sync::Mutex;

/// When each event id arrived at the client.
pub type Arrivals = Arc<Mutex<HashMap<i64, Instant>>>;

/// Opens the stream and records arrivals in the background until the task is aborted.
pub async fn follow(
    client: &reqwest::Client,
    base: &str,
    org_id: &str,
    token: &str,
) -> anyhow::Result<(Arrivals, tokio::task::JoinHandle<()>)> {
    let response = client
        .get(format!(
            "{}/api/v1/orgs/{org_id}/events",
            base.trim_end_matches('/')
        ))
        .bearer_auth(token)
        .timeout(Duration::from_secs(24 * 3600))
        .send()
        .await?
        .error_for_status()
        .context("opening the live-event stream")?;
    let arrivals: Arrivals = Arc::default();
    let recorded = arrivals.clone();
    let task = tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut pending = String::new();
        let mut id: Option<i64> = None;
        while let Some(Ok(chunk)) = body.next().await {
            let now = Instant::now();
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let line = line.trim_end();
                if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim().parse().ok();
                } else if line == "event: message.created" || line == "event:message.created" {
                    if let Some(id) = id {
                        recorded.lock().await.insert(id, now);
                    }
                } else if line.is_empty() {
                    id = None;
                }
            }
        }
    });
    Ok((arrivals, task))
}

/// Matches arrivals to acknowledgements through the database (event id to message to platform
/// id) and prints the latency percentiles.
pub async fn report(
    database: &str,
    run_id: &str,
    acknowledged: &HashMap<String, Instant>,
    arrivals: &Arrivals,
) -> anyhow::Result<()> {
    let pattern = format!("wamid.bench.{run_id}.%");
    let sql = "SELECT e.id, m.external_id FROM events e JOIN messages m ON m.id = e.message_id \
               WHERE e.kind = 'message.created' AND m.external_id LIKE $1";
    let rows: Vec<(i64, String)> = match DatabaseUrl::parse(database)? {
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(&url).await?;
            sqlx::query_as(sql).bind(&pattern).fetch_all(&pool).await?
        }
        DatabaseUrl::Sqlite(url) => {
            let pool = sqlx::SqlitePool::connect(&url).await?;
            sqlx::query_as(sql).bind(&pattern).fetch_all(&pool).await?
        }
    };
    let arrivals = arrivals.lock().await;
    let mut latencies_us: Vec<u64> = Vec::with_capacity(rows.len());
    let mut missing = 0;
    for (event_id, external_id) in &rows {
        let Some(acked) = acknowledged.get(external_id) else {
            continue;
        };
        match arrivals.get(event_id) {
            // The event can reach the client before the 200 does: count that as 0.
            Some(arrived) => latencies_us.push(arrived.saturating_duration_since(*acked).as_micros() as u64),
            None => missing += 1,
        }
    }
    latencies_us.sort_unstable();
    println!(
        "live events: {} of {} message.created received on the other process; from the 200 to the \
         client: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies_us.len(),
        rows.len(),
        super::ingest::percentile(&latencies_us, 50.0),
        super::ingest::percentile(&latencies_us, 99.0),
        super::ingest::percentile(&latencies_us, 100.0),
    );
    if missing > 0 {
        bail!("{missing} events of acknowledged webhooks never reached the live client");
    }
    Ok(())
}
