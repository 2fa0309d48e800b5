//! Live events (`GET .../events`): each client follows its organization's event log from an id
//! on. Ids of one organization become visible in order (the store makes sure), so "everything
//! after the last id I saw" has no gaps, also after a reconnect (`Last-Event-ID`) and across
//! processes sharing the database. One poll per process (the newest id, every
//! [`PUMP_INTERVAL`]) wakes the clients; they read only their own organization.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;
use uuid::Uuid;

use crate::store::{EventRecord, Store};

use super::orgs::OrgAccess;
use super::{App, AppResult};

/// How often a process looks for new events written by anyone.
pub const PUMP_INTERVAL: Duration = Duration::from_millis(100);
/// A client rereads its organization's log at least this often (a wake-up can be missed when
/// another organization's commit overtook this one's).
const RECHECK: Duration = Duration::from_secs(1);
const BATCH: i64 = 500;

/// Wakes every live client of this process when the event log grows, and ends their streams
/// when the process shuts down.
pub struct EventPump {
    newest: OnceLock<watch::Receiver<i64>>,
    closing: watch::Sender<bool>,
}

impl Default for EventPump {
    fn default() -> Self {
        EventPump {
            newest: OnceLock::new(),
            closing: watch::channel(false).0,
        }
    }
}

impl EventPump {
    /// Ends every stream: a graceful shutdown waits for open responses, and a live stream would
    /// otherwise never finish.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn subscribe(&self, store: &Arc<dyn Store>) -> watch::Receiver<i64> {
        self.newest
            .get_or_init(|| {
                let (tx, rx) = watch::channel(0);
                tokio::spawn(pump(store.clone(), tx));
                rx
            })
            .clone()
    }
}

async fn pump(store: Arc<dyn Store>, tx: watch::Sender<i64>) {
    let mut interval = tokio::time::interval(PUMP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        match store.latest_event_id().await {
            Ok(newest) => {
                tx.send_if_modified(|seen| {
                    let changed = *seen != newest;
                    *seen = newest;
                    changed
                });
            }
            Err(err) => tracing::warn!(error = %err, "live events: cannot read the event log"),
        }
    }
}

/// The organization's events after `last_event_id` (or from now on), as they are written.
pub async fn follow(
    app: &App,
    access: &OrgAccess,
    last_event_id: Option<i64>,
) -> AppResult<impl Stream<Item = EventRecord> + Send + use<>> {
    let org_id = access.org_id();
    let start = match last_event_id {
        Some(id) => id,
        None => app.store.latest_org_event_id(org_id).await?,
    };
    let wake = app.live.subscribe(&app.store);
    let state = Follow {
        store: app.store.clone(),
        org_id,
        last: start,
        buffered: std::collections::VecDeque::new(),
        wake,
        closing: app.live.closing.subscribe(),
    };
    Ok(futures::stream::unfold(state, |mut state| async move {
        let event = state.next().await?;
        Some((event, state))
    }))
}

struct Follow {
    store: Arc<dyn Store>,
    org_id: Uuid,
    last: i64,
    buffered: std::collections::VecDeque<EventRecord>,
    wake: watch::Receiver<i64>,
    closing: watch::Receiver<bool>,
}

impl Follow {
    /// The next event; `None` once the process is shutting down.
    async fn next(&mut self) -> Option<EventRecord> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(event) = self.buffered.pop_front() {
                self.last = event.id;
                return Some(event);
            }
            match self.store.events_after(self.org_id, self.last, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    self.buffered.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "live events: read failed; retrying"),
            }
            // Nothing new: wait for a wake-up, or recheck anyway.
            tokio::select! {
                woken = tokio::time::timeout(RECHECK, self.wake.changed()) => match woken {
                    Ok(Ok(())) | Err(_) => {}
                    // The pump is gone: poll on the recheck interval alone.
                    Ok(Err(_)) => tokio::time::sleep(RECHECK).await,
                },
                () = closed(&mut self.closing) => return None,
            }
        }
    }
}

/// Resolves once the process is shutting down (the guard `wait_for` returns is not `Send`, so
/// it must not outlive this function).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closing| *closing).await;
}
