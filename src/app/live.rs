//! Live events (`GET .../events`): each client follows its organization's event log from an id
//! on, reading only below the store's horizon (every smaller id is settled), so "everything
//! after the last id I saw" has no gaps, also after a reconnect (`Last-Event-ID`) and across
//! processes sharing the database.
//!
//! One pump per process, woken by the store's event signal (commits here, and on PostgreSQL
//! notifications from every process) and polling every [`PUMP_INTERVAL`] in case a signal was
//! lost, takes the horizon, asks which organizations have new events and wakes only their streams. A stream checks every [`ACCESS_RECHECK`] that its caller may still
//! read the organization (session or key live, still a member), and ends with a final
//! `stream.closed` item when not. Streams are counted per user and per organization.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;
use uuid::Uuid;

use crate::store::{EventHorizon, EventRecord, EventStore};

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

/// How often a process looks for new events without a signal (a signal lost with a database
/// connection, or, on SQLite, a commit by another process).
pub const PUMP_INTERVAL: Duration = Duration::from_millis(250);
/// Least time between two looks: under a stream of commits, one look covers many of them.
const PUMP_MIN_GAP: Duration = Duration::from_millis(5);
/// A client rereads its organization's log at least this often (a wake-up can be missed when
/// another organization's commit overtook this one's).
const RECHECK: Duration = Duration::from_secs(1);
/// How often a stream checks that its caller still has access.
pub const ACCESS_RECHECK: Duration = Duration::from_secs(2);
const BATCH: i64 = 500;

/// What a stream yields: events, then possibly why it ended.
#[derive(Debug)]
pub enum LiveItem {
    /// The first item: where the stream starts (the id to resume after).
    Opened {
        after: i64,
    },
    Event(EventRecord),
    /// The caller lost access (`access_revoked`): the last item of the stream.
    Closed {
        reason: &'static str,
    },
}

/// Wakes the live clients of this process when their organization's log grows, counts them,
/// and ends their streams when the process shuts down.
pub struct EventPump {
    started: OnceLock<()>,
    /// One channel per organization with streams open here.
    orgs: Arc<Mutex<HashMap<Uuid, watch::Sender<i64>>>>,
    /// The newest horizon the pump has taken (streams read below it).
    horizon: Arc<AtomicI64>,
    counts: Arc<Mutex<Counts>>,
    closing: watch::Sender<bool>,
}

#[derive(Default)]
struct Counts {
    per_user: HashMap<Uuid, usize>,
    per_org: HashMap<Uuid, usize>,
}

impl Default for EventPump {
    fn default() -> Self {
        EventPump {
            started: OnceLock::new(),
            orgs: Arc::default(),
            horizon: Arc::default(),
            counts: Arc::default(),
            closing: watch::channel(false).0,
        }
    }
}

/// Holds a stream's place in the per-user and per-organization counts until it is dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    user: Uuid,
    org: Uuid,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let Counts { per_user, per_org } = &mut *counts;
        release(per_user, self.user);
        release(per_org, self.org);
    }
}

fn release(counts: &mut HashMap<Uuid, usize>, key: Uuid) {
    if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

impl EventPump {
    /// Ends every stream: a graceful shutdown waits for open responses, and a live stream would
    /// otherwise never finish.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Open streams of this process (for tests and metrics).
    pub fn open_streams(&self) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.per_org.values().sum()
    }

    fn take_slot(&self, user: Uuid, org: Uuid, per_user: usize, per_org: usize) -> AppResult<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.per_user.get(&user).copied().unwrap_or(0) >= per_user {
            return Err(AppError::TooManyStreams(
                "too many live-event streams open for this user; close one first",
            ));
        }
        if counts.per_org.get(&org).copied().unwrap_or(0) >= per_org {
            return Err(AppError::TooManyStreams(
                "too many live-event streams open for this organization; close one first",
            ));
        }
        *counts.per_user.entry(user).or_default() += 1;
        *counts.per_org.entry(org).or_default() += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            user,
            org,
        })
    }

    /// A receiver that changes when `org` has new events (the newest id), starting the pump on
    /// first use. Only that organization's events wake it.
    pub fn subscribe(&self, store: Arc<dyn EventStore>, org: Uuid) -> watch::Receiver<i64> {
        self.started.get_or_init(|| {
            tokio::spawn(pump(store, Arc::downgrade(&self.orgs), self.horizon.clone()));
        });
        let mut orgs = self.orgs.lock().unwrap_or_else(|p| p.into_inner());
        orgs.entry(org).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// The newest horizon the pump has taken ([`EventHorizon::NONE`] before its first look).
    fn horizon(&self) -> EventHorizon {
        EventHorizon::new(self.horizon.load(Ordering::Acquire))
    }
}

type OrgChannels = Mutex<HashMap<Uuid, watch::Sender<i64>>>;

/// Runs until the [`EventPump`] is dropped.
async fn pump(store: Arc<dyn EventStore>, orgs: Weak<OrgChannels>, published: Arc<AtomicI64>) {
    let mut signal = store.event_signal();
    let mut seen = None;
    loop {
        let Some(orgs) = orgs.upgrade() else { return };
        // Only when someone listens; the pump stays when all streams are gone (it is cheap).
        let listening = {
            let mut orgs = orgs.lock().unwrap_or_else(|p| p.into_inner());
            orgs.retain(|_, tx| tx.receiver_count() > 0);
            !orgs.is_empty()
        };
        // Before the look: a commit signalled while it runs makes another look follow at once.
        signal.borrow_and_update();
        match look(store.as_ref(), &orgs, &published, listening, seen).await {
            Ok(newest) => seen = Some(newest),
            Err(err) => tracing::warn!(error = %err, "live events: cannot read the event log"),
        }
        drop(orgs);
        tokio::time::sleep(PUMP_MIN_GAP).await;
        let _ = tokio::time::timeout(PUMP_INTERVAL, signal.changed()).await;
    }
}

/// One look at the log: the horizon (published for the streams before any is woken, so that a
/// woken stream reads below it), then (when streams listen here) whose organizations have new
/// events below it. Returns the newest id seen.
async fn look(
    store: &dyn EventStore,
    orgs: &OrgChannels,
    published: &AtomicI64,
    listening: bool,
    seen: Option<i64>,
) -> crate::store::StoreResult<i64> {
    let horizon = store.event_horizon().await?;
    published.fetch_max(horizon.below(), Ordering::AcqRel);
    let seen = match seen {
        Some(seen) if listening => seen,
        _ => return store.latest_event_id(horizon).await,
    };
    let newest = store.newest_event_ids_after(seen, horizon).await?;
    let orgs = orgs.lock().unwrap_or_else(|p| p.into_inner());
    let mut latest = seen;
    for (org, id) in newest {
        latest = latest.max(id);
        if let Some(tx) = orgs.get(&org) {
            tx.send_replace(id);
        }
    }
    Ok(latest)
}

/// The organization's events after `last_event_id` (or from now on), as they are written, for
/// as long as the caller keeps access. `RateLimited` (429) beyond the stream limits.
pub async fn follow(
    app: Arc<App>,
    access: &OrgAccess,
    last_event_id: Option<i64>,
) -> AppResult<impl Stream<Item = LiveItem> + Send + use<>> {
    let org_id = access.org_id();
    let security = &app.settings.security;
    let slot = app.live.take_slot(
        access.user_id,
        org_id,
        security.live_streams_per_user,
        security.live_streams_per_org,
    )?;
    let horizon = app.store.event_horizon().await?;
    let start = match last_event_id {
        Some(id) => id,
        None => app.store.latest_org_event_id(org_id, horizon).await?,
    };
    let wake = app.live.subscribe(app.store.clone(), org_id);
    let closing = app.live.closing.subscribe();
    let state = Follow {
        app,
        token_hash: access.token_hash.clone(),
        org_id,
        last: start,
        horizon,
        buffered: std::collections::VecDeque::new(),
        wake,
        closing,
        next_access_check: tokio::time::Instant::now() + ACCESS_RECHECK,
        ended: false,
        opened: false,
        _slot: slot,
    };
    Ok(futures::stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    }))
}

struct Follow {
    app: Arc<App>,
    token_hash: Option<String>,
    org_id: Uuid,
    last: i64,
    /// The newest horizon this stream knows (its own at opening, then the pump's).
    horizon: EventHorizon,
    buffered: std::collections::VecDeque<EventRecord>,
    wake: watch::Receiver<i64>,
    closing: watch::Receiver<bool>,
    next_access_check: tokio::time::Instant,
    ended: bool,
    opened: bool,
    _slot: Slot,
}

impl Follow {
    /// The next item; `None` once the stream is over.
    async fn next(&mut self) -> Option<LiveItem> {
        if !self.opened {
            self.opened = true;
            return Some(LiveItem::Opened { after: self.last });
        }
        loop {
            if self.ended || *self.closing.borrow() {
                return None;
            }
            if tokio::time::Instant::now() >= self.next_access_check {
                self.next_access_check = tokio::time::Instant::now() + ACCESS_RECHECK;
                if !self.still_allowed().await {
                    self.ended = true;
                    return Some(LiveItem::Closed {
                        reason: "access_revoked",
                    });
                }
            }
            if let Some(event) = self.buffered.pop_front() {
                self.last = event.id;
                return Some(LiveItem::Event(event));
            }
            self.horizon = self.horizon.max(self.app.live.horizon());
            match self
                .app
                .store
                .events_after(self.org_id, self.last, self.horizon, BATCH)
                .await
            {
                Ok(events) if !events.is_empty() => {
                    self.buffered.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "live events: read failed; retrying"),
            }
            // Nothing new: wait for a wake-up, the next access check, or recheck anyway.
            let until = (tokio::time::Instant::now() + RECHECK).min(self.next_access_check);
            tokio::select! {
                woken = tokio::time::timeout_at(until, self.wake.changed()) => {
                    if let Ok(Err(_)) = woken {
                        // The pump is gone: poll on the recheck interval alone.
                        tokio::time::sleep_until(until).await;
                    }
                },
                () = closed(&mut self.closing) => return None,
            }
        }
    }

    /// Whether the credential that opened the stream still reads this organization. A database
    /// hiccup is not a verdict: the stream goes on and asks again.
    async fn still_allowed(&self) -> bool {
        let Some(token_hash) = self.token_hash.clone() else {
            return true;
        };
        match super::orgs::access_by_hash(&self.app, token_hash, self.org_id).await {
            Ok(_) => true,
            Err(AppError::Unavailable | AppError::Internal(_)) => true,
            Err(_) => false,
        }
    }
}

/// Resolves once the process is shutting down (the guard `wait_for` returns is not `Send`, so
/// it must not outlive this function).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}
