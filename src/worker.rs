//! The send worker: apalis pulls send jobs from the queue tables (in the service's own
//! database) and hands each to [`Delivery`]. Runs inside `snorq serve` or alone as
//! `snorq worker`; any number of processes may share one PostgreSQL (jobs are leased with
//! `FOR UPDATE SKIP LOCKED`).
//!
//! What apalis 1.0 needs around it (docs/architecture.md, "The queue (apalis 1.0)"): an
//! explicit queue name; a Monitor that restarts a worker whose backend died on a database error
//! (with a growing pause, so a database outage is not hammered); an interval poll beside
//! notifications, because delayed jobs (our retries) are never notified; a unique worker name
//! per incarnation, so jobs a dead incarnation held are recognised as orphaned and handed out
//! again; and our own cleanup of finished jobs.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::*;
use futures::StreamExt;

use crate::app::App;
use crate::app::delivery::{Delivered, Delivery, DeliverySettings};
use crate::config::OutboundConfig;
use crate::domain;
use crate::queue::{RetrySchedule, SEND_QUEUE, SendJob};
use crate::store::{QueuePool, Store, SweepPolicy};

/// A worker silent for this many heartbeats (default 6 × 5 s) is dead and its jobs go back to
/// the queue. Keep it longer than a send may take (the platform call times out first).
const MISSED_HEARTBEATS: usize = 6;
/// How often finished jobs and stale receipts are cleaned up.
const CLEANUP_EVERY: Duration = Duration::from_secs(600);
/// Receipts for messages we never learn about (sent by other tools) are kept this long: Meta
/// redelivers for up to 7 days.
const PENDING_RECEIPT_RETENTION: chrono::Duration = chrono::Duration::days(8);

/// Runs the send workers until `shutdown` resolves, then lets running sends finish.
pub async fn run(
    app: Arc<App>,
    config: OutboundConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = snorq_connectors::Client::new(config.platforms.clone()).context("platform HTTP client")?;
    let delivery = Arc::new(Delivery::new(
        app.store.clone(),
        app.vault.clone(),
        client,
        DeliverySettings {
            schedule: RetrySchedule::new(config.retry_delays.clone()),
            rates: config.rates,
            max_batch: config.concurrency.max(1),
            writers: config.outcome_writers,
            confirm_window: config.confirm_window,
        },
    ));
    let sweeper = tokio::spawn(sweep(app.store.clone(), SweepSettings::of(&config)));
    let janitor = tokio::spawn(clean_up(
        app.store.clone(),
        delivery.clone(),
        config.job_retention,
        config.event_retention,
    ));
    let refresher = tokio::spawn(refresh_tokens(app.clone()));
    // One name per process and incarnation: a restarted worker must not inherit the jobs its
    // predecessor held (they are orphaned, and the heartbeat check hands them out again).
    let instance = domain::new_id().simple().to_string();
    let instance = instance[instance.len() - 8..].to_owned();
    let monitor = Monitor::new()
        .should_restart(|worker, error| {
            tracing::warn!(worker = %worker.name(), %error, "send worker stopped; restarting it");
            true
        })
        .shutdown_timeout(Duration::from_secs(30));
    tracing::info!(concurrency = config.concurrency, "send workers starting");
    let monitor = match app.store.queue_pool() {
        QueuePool::Postgres(pool) => monitor.register(move |restarts| {
            let queue = apalis_postgres::Config::default()
                .queue(SEND_QUEUE)
                .batch_size(config.concurrency * 2)
                .lock_tasks(false)
                .heartbeat_interval(config.heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS);
            let backend = apalis_postgres::PostgresStorage::<SendJob>::new(&pool)
                .with_config(queue)
                .with_pubsub()
                .poll_with_interval(config.poll_interval)
                .before_start(move |_| pause_before(restarts));
            WorkerBuilder::new(format!("snorq-send-{instance}-{restarts}"))
                .backend(backend)
                .data(delivery.clone())
                .concurrency(config.concurrency)
                .parallelize(tokio::spawn)
                .catch_panic()
                .build(deliver)
        }),
        QueuePool::Sqlite { pool, inserts } => monitor.register(move |restarts| {
            let queue = apalis_sqlite::Config::default()
                .queue(SEND_QUEUE)
                .batch_size(config.concurrency * 2)
                .lock_tasks(false)
                .heartbeat_interval(config.heartbeat)
                .missed_heartbeats(MISSED_HEARTBEATS);
            let notified = futures::stream::unfold(inserts.subscribe(), |mut rx| async move {
                // Lagging behind only means several inserts happened: one wake-up covers them.
                match rx.recv().await {
                    Ok(()) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
                }
            })
            .boxed();
            let backend = apalis_sqlite::SqliteStorage::<SendJob>::new(&pool)
                .with_config(queue)
                .poll_with_stream(notified)
                .poll_with_interval(config.poll_interval)
                .before_start(move |_| pause_before(restarts));
            WorkerBuilder::new(format!("snorq-send-{instance}-{restarts}"))
                .backend(backend)
                .data(delivery.clone())
                .concurrency(config.concurrency)
                .parallelize(tokio::spawn)
                .catch_panic()
                .build(deliver)
        }),
    };
    let result = monitor.run_with_signal(async move {
        shutdown.await;
        Ok(())
    });
    let result = result.await;
    janitor.abort();
    refresher.abort();
    sweeper.abort();
    result.context("send workers")
}

/// A restarted worker waits a little longer each time (up to 30 s) before registering again.
fn pause_before<E>(restarts: usize) -> impl Future<Output = Result<(), E>> + Send + 'static {
    let pause = Duration::from_millis(500).saturating_mul(u32::try_from(restarts).unwrap_or(u32::MAX));
    async move {
        if restarts > 0 {
            tokio::time::sleep(pause.min(Duration::from_secs(30))).await;
        }
        Ok(())
    }
}

/// The job handler. An `Err` (the database failed us) leaves the job to apalis to hand out
/// again; everything the platform answered is an `Ok` with its outcome recorded.
async fn deliver(job: SendJob, delivery: Data<Arc<Delivery>>) -> Result<(), BoxDynError> {
    match delivery.run(job).await {
        Ok(Delivered::Recorded(outcome)) => {
            tracing::debug!(message_id = %job.message_id, attempt = job.attempt, outcome, "send attempt recorded");
            Ok(())
        }
        Ok(Delivered::Skipped(why)) => {
            tracing::debug!(message_id = %job.message_id, attempt = job.attempt, why, "send job skipped");
            Ok(())
        }
        Err(err) => {
            tracing::warn!(message_id = %job.message_id, error = %err, "send job failed; it will run again");
            Err(Box::new(err))
        }
    }
}

/// When the stalled-send sweep runs and what it counts as stalled.
#[derive(Debug, Clone, Copy)]
struct SweepSettings {
    every: Duration,
    stall_after: Duration,
    /// An attempt open this long was abandoned: longer than any call may take, plus the stall.
    abandon_after: Duration,
    confirm_window: chrono::Duration,
}

impl SweepSettings {
    fn of(config: &OutboundConfig) -> Self {
        SweepSettings {
            every: (config.stall_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(30)),
            stall_after: config.stall_after,
            abandon_after: config.platforms.timeout + config.stall_after,
            confirm_window: config.confirm_window,
        }
    }
}

/// Settles sends that stalled (docs/architecture.md, "Sends that stall"): abandoned attempts,
/// unconfirmed sends past their window, pending sends whose job never ran. Every worker process
/// runs it; the store makes concurrent passes safe.
async fn sweep(store: Arc<dyn Store>, settings: SweepSettings) {
    let mut every = tokio::time::interval(settings.every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let since = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1));
    loop {
        every.tick().await;
        let now = domain::now();
        let policy = SweepPolicy {
            now,
            abandoned_before: now - since(settings.abandon_after),
            stalled_before: now - since(settings.stall_after),
            confirm_window: settings.confirm_window,
            limit: 500,
        };
        match store.sweep_sends(&policy).await {
            Ok(done) if done.total() > 0 => tracing::info!(
                unconfirmed = done.unconfirmed,
                outcome_unknown = done.outcome_unknown,
                requeued = done.requeued,
                stalled = done.stalled,
                "stalled sends settled"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "stalled-send sweep failed; will try again"),
        }
    }
}

/// Refreshes TikTok tokens before they expire, every `token_refresh_interval_secs`. Several
/// processes may run this: each connection is claimed by one of them.
async fn refresh_tokens(app: Arc<App>) {
    let mut every = tokio::time::interval(app.settings.token_refresh.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(err) = crate::app::token_refresh::run_once(&app).await {
            tracing::warn!(error = %err, "token refresh pass failed; will try again");
        }
    }
}

async fn clean_up(
    store: Arc<dyn Store>,
    delivery: Arc<Delivery>,
    job_retention: chrono::Duration,
    event_retention: chrono::Duration,
) {
    let mut every = tokio::time::interval(CLEANUP_EVERY);
    loop {
        every.tick().await;
        let now = domain::now();
        match store
            .cleanup(now - job_retention, now - PENDING_RECEIPT_RETENTION)
            .await
        {
            Ok(done) if done.finished_jobs + done.pending_receipts > 0 => tracing::info!(
                finished_jobs = done.finished_jobs,
                pending_receipts = done.pending_receipts,
                "cleaned up"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "cleanup failed; will try again"),
        }
        match crate::app::retention::run(&*store, now, event_retention).await {
            Ok(done) if done.messages + done.events + done.indexed > 0 => tracing::info!(
                messages = done.messages,
                events = done.events,
                indexed_for_search = done.indexed,
                "retention: deleted what is past its time"
            ),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "retention failed; will try again"),
        }
        delivery.pacer().shrink();
    }
}
