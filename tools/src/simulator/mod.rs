//! A platform simulator: plays WhatsApp, Messenger and TikTok for the service, with no
//! account at any of them.
//!
//! - **Customers** write to the service: signed webhooks (text, image, location, reaction) at
//!   a steady rate, to `{target}/webhooks/{platform}`.
//! - **The platforms' APIs** answer the service's sends and token calls ([`platform`]), with a
//!   configured share of failures ([`failures`]), and keep a record of every send.
//! - **Receipts** follow each accepted send, as webhooks: WhatsApp statuses, Messenger echoes
//!   and delivery/read watermarks, TikTok echoes and read watermarks.
//!
//! `snorq-tools simulate` runs it beside a service; `snorq-tools demo` runs both in one process.

pub mod command;
pub mod customers;
pub mod failures;
pub mod payloads;
pub mod platform;
pub mod receipts;
pub mod record;
pub mod webhooks;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use snorq_connectors::Platform;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use customers::Population;
pub use failures::{FailureKind, FailureMix, FailureRule};
pub use payloads::{Accounts, WhatsAppAccount};
pub use record::{SendRecord, Stats};
pub use webhooks::{Secrets, WebhookTarget};

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub accounts: Accounts,
    /// The service's base URL for webhooks, and the secrets to sign them; `None` plays only
    /// the platforms' APIs.
    pub target: Option<(String, Secrets)>,
    /// Customer messages per second over all platforms (0: none).
    pub rate: f64,
    /// Customers per platform.
    pub customers: usize,
    /// The platforms customers write on, in turn.
    pub platforms: Vec<Platform>,
    pub failures: FailureMix,
    /// How long the send APIs take to answer.
    pub latency: Duration,
    /// `Retry-After` of injected rate limits.
    pub retry_after: Duration,
    /// How long an injected timeout holds the request before answering 504.
    pub hold: Duration,
    /// From an accepted send to its delivery receipt.
    pub receipt_delay: Duration,
    /// The share of delivered messages that customers read, and how long after delivery.
    pub read_share: f64,
    pub read_delay: Duration,
    /// From an accepted send to its echo (Messenger, TikTok). TikTok echoes carry no
    /// correlation value: one that overtook the send's recorded outcome would be stored twice.
    pub echo_delay: Duration,
}

impl SimulatorConfig {
    /// Customers at `rate` on every platform, no failures, receipts within a few seconds.
    pub fn new(accounts: Accounts, target: Option<(String, Secrets)>, rate: f64) -> Self {
        SimulatorConfig {
            accounts,
            target,
            rate,
            customers: 12,
            platforms: vec![Platform::WhatsApp, Platform::Facebook, Platform::TikTok],
            failures: FailureMix::none(),
            latency: Duration::ZERO,
            retry_after: Duration::from_secs(2),
            hold: Duration::from_secs(60),
            receipt_delay: Duration::from_millis(500),
            read_share: 0.7,
            read_delay: Duration::from_secs(3),
            echo_delay: Duration::from_secs(1),
        }
    }
}

/// What the simulator's tasks share.
pub struct Shared {
    config: SimulatorConfig,
    record: record::Record,
    population: Population,
    target: Option<WebhookTarget>,
    /// The simulator's base URL (images point at it).
    url: String,
    /// Keeps ids apart between runs.
    tag: String,
    next_id: AtomicU64,
    /// Failures asked for one send at a time (`fail_next`), before the configured shares.
    scripted: Mutex<HashMap<Platform, VecDeque<FailureKind>>>,
    /// Platforms whose receipts could not be signed (no secret), warned about once.
    unsigned_warned: Mutex<Vec<Platform>>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn new(
        config: SimulatorConfig,
        target: Option<WebhookTarget>,
        url: String,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
        Shared {
            population: Population::new(config.customers, &tag),
            config,
            record: record::Record::default(),
            target,
            url,
            tag,
            next_id: AtomicU64::new(1),
            scripted: Mutex::new(HashMap::new()),
            unsigned_warned: Mutex::new(Vec::new()),
            stop,
        }
    }

    /// A platform message id in the platform's style (`wamid.`, `m_`, digits for TikTok).
    fn new_id(&self, platform: Platform, outbound: bool) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let side = if outbound { "OUT" } else { "IN" };
        match platform {
            Platform::WhatsApp => format!("wamid.SIM{side}{}{n:08}", self.tag),
            Platform::Facebook => format!("m_SIM{side}{}{n:08}", self.tag),
            Platform::TikTok => format!("7{}{}{n:010}", u8::from(outbound), self.tag_digits()),
        }
    }

    fn tag_digits(&self) -> String {
        self.tag.bytes().map(|b| char::from(b'0' + b % 10)).collect()
    }

    fn media_url(&self, id: &str) -> String {
        format!("{}/_simulator/media/{id}.png", self.url)
    }

    fn fail_next(&self, platform: Platform, kind: FailureKind) {
        lock(&self.scripted).entry(platform).or_default().push_back(kind);
    }

    /// The failure for a send on `platform`: a scripted one first, else a draw from the shares.
    fn failure_for_send(&self, platform: Platform) -> Option<FailureKind> {
        let scripted = lock(&self.scripted)
            .get_mut(&platform)
            .and_then(VecDeque::pop_front);
        scripted.or_else(|| self.config.failures.draw(failures::Api::Send(platform)))
    }

    fn warn_once_unsigned(&self, platform: Platform) {
        let mut warned = lock(&self.unsigned_warned);
        if !warned.contains(&platform) {
            warned.push(platform);
            tracing::warn!(%platform, "no {platform} app secret: the receipts of its sends are not posted");
        }
    }

    /// Waits `hold`, or less when the simulator stops.
    async fn hold(&self) {
        self.pause(self.config.hold).await;
    }

    /// Sleeps `delay`; false when the simulator stopped meanwhile.
    async fn pause(&self, delay: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => !*self.stop.borrow(),
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    /// One customer message on `platform`, posted.
    async fn customer_writes(&self, platform: Platform) {
        let Some(target) = &self.target else {
            return;
        };
        let next = {
            let mut rng = rand::rng();
            self.population
                .next_message(platform, &mut rng, |id| self.media_url(id))
        };
        let Some((customer, said)) = next else {
            return;
        };
        let message_id = self.new_id(platform, false);
        if let Some(body) =
            payloads::inbound(&self.config.accounts, &customer, &message_id, Utc::now(), &said)
        {
            target.deliver(&self.record, platform, &body).await;
        }
    }
}

/// A mutex whose holder cannot leave anything half-done: keep going after a panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Webhooks in flight at once; beyond it customers wait (the rate drops rather than piling up).
const IN_FLIGHT: usize = 32;

/// Customers write at `rate`, taking turns over the platforms, until the simulator stops.
async fn customer_traffic(shared: Arc<Shared>) {
    let rate = shared.config.rate;
    if shared.target.is_none() || shared.config.platforms.is_empty() || rate <= 0.0 {
        return;
    }
    // SimulationArgs keeps the rate within MIN_RATE..=MAX_RATE; clamp again for other callers.
    let period = Duration::from_secs_f64(1.0 / rate.clamp(MIN_RATE, MAX_RATE));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut stop = shared.stop.clone();
    for turn in 0usize.. {
        let permit = tokio::select! {
            permit = async {
                ticker.tick().await;
                in_flight.clone().acquire_owned().await
            } => permit,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok(permit) = permit else {
            return;
        };
        let platform = shared.config.platforms[turn % shared.config.platforms.len()];
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.customer_writes(platform).await;
            drop(permit);
        });
    }
}

/// Customer messages per second the simulator keeps to (when not 0).
pub const MIN_RATE: f64 = 0.001;
pub const MAX_RATE: f64 = 10_000.0;

/// A running simulator.
pub struct Simulator {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    customers: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Serves the platforms' APIs on `listener` and starts the customers.
    pub async fn start(listener: TcpListener, config: SimulatorConfig) -> anyhow::Result<Simulator> {
        let mut simulator = Simulator::serve(listener, config).await?;
        simulator.start_customers();
        Ok(simulator)
    }

    /// Starts the customers writing (once; [`start`](Self::start) does it at once).
    pub fn start_customers(&mut self) {
        if self.customers.is_none() {
            self.customers = Some(tokio::spawn(customer_traffic(self.shared.clone())));
        }
    }

    /// Serves the platforms' APIs on `listener`; no customer writes until
    /// [`start_customers`](Self::start_customers) (a service can connect its accounts first).
    pub async fn serve(listener: TcpListener, config: SimulatorConfig) -> anyhow::Result<Simulator> {
        let url = format!("http://{}", listener.local_addr()?);
        let target = match &config.target {
            Some((base_url, secrets)) => Some(WebhookTarget::new(base_url, secrets.clone())?),
            None => None,
        };
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, target, url, stopped.clone()));
        let router = platform::router(shared.clone());
        let mut shutdown = stopped;
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|s| *s).await;
                })
                .await
        });
        Ok(Simulator {
            shared,
            stop,
            server,
            customers: None,
        })
    }

    /// The base URL of the simulated platform APIs.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    pub fn sends(&self) -> Vec<SendRecord> {
        self.shared.record.sends(None, 0)
    }

    pub fn stats(&self) -> Stats {
        self.shared.record.stats()
    }

    /// The next send on `platform` fails with `kind`, whatever the shares say.
    pub fn fail_next(&self, platform: Platform, kind: FailureKind) {
        self.shared.fail_next(platform, kind);
    }

    /// A handle that stops the customers, the pending receipts and held requests at once (e.g.
    /// on Ctrl-C, before the service drains); [`Simulator::stop`] then finishes the rest.
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let stop = self.stop.clone();
        move || {
            stop.send_replace(true);
        }
    }

    /// Stops the customers first (no new webhooks), then the APIs; held requests end at once.
    pub async fn stop(self) -> Stats {
        self.stop.send_replace(true);
        if let Some(customers) = self.customers {
            let _ = customers.await;
        }
        match self.server.await {
            Ok(Err(error)) => tracing::warn!(%error, "the simulator's server failed"),
            Err(error) => tracing::warn!(%error, "the simulator's server panicked"),
            Ok(Ok(())) => {}
        }
        self.shared.record.stats()
    }
}
