//! What the simulator did: every send it answered, and counters of webhooks, sends and token
//! calls. Served at `/_simulator/sends` and `/_simulator/stats`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use snorq_connectors::Platform;

/// Sends kept in memory; the oldest are dropped first.
const KEPT_SENDS: usize = 10_000;

/// One call to a simulated send API.
#[derive(Debug, Clone, Serialize)]
pub struct SendRecord {
    /// Increases by one per send.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub platform: Platform,
    /// The business account the send came from (phone_number_id, Page id, business id).
    pub account_id: String,
    /// WhatsApp phone, Messenger PSID or TikTok conversation id.
    pub recipient: String,
    /// `text`, `image`, ... as the platform's request named it.
    pub content_type: String,
    pub text: Option<String>,
    /// The service's correlation value (WhatsApp `biz_opaque_callback_data`, Messenger
    /// `metadata`).
    pub correlation: Option<String>,
    /// `accepted`, or the injected failure (`rate-limited`, `window-closed`, ...).
    pub outcome: String,
    /// An injected failure of the answer only (`slow-accept`, `reset-after-accept`: accepted all
    /// the same), or of the whole send (then equal to `outcome`).
    pub answer: Option<String>,
    /// The id the platform answered with (accepted sends).
    pub message_id: Option<String>,
    /// The follow-up webhooks the service took, in order: `sent`, `delivered`, `echo`, `read`.
    pub webhooks: Vec<String>,
}

/// Counters by group (`webhooks`, `sends`, `tokens`), then by what was counted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Per platform: webhooks `accepted` by the service, `rejected` (4xx) or `failed` (no
    /// answer, 429 or 5xx after retries).
    pub webhooks: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per platform: sends by outcome.
    pub sends: BTreeMap<String, BTreeMap<String, u64>>,
    /// Per token endpoint: calls by outcome.
    pub tokens: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Stats {
    fn bump(group: &mut BTreeMap<String, BTreeMap<String, u64>>, key: &str, what: &str) {
        *group
            .entry(key.to_owned())
            .or_default()
            .entry(what.to_owned())
            .or_default() += 1;
    }

    /// How many of `group[key]` had outcome `what`.
    pub fn count(group: &BTreeMap<String, BTreeMap<String, u64>>, key: &str, what: &str) -> u64 {
        group.get(key).and_then(|g| g.get(what)).copied().unwrap_or(0)
    }

    fn total(group: &BTreeMap<String, BTreeMap<String, u64>>) -> u64 {
        group.values().flat_map(|g| g.values()).sum()
    }

    /// One line for the end of a run.
    pub fn summary(&self) -> String {
        let sends_accepted: u64 = self.sends.values().filter_map(|g| g.get("accepted")).sum();
        let webhooks_accepted: u64 = self.webhooks.values().filter_map(|g| g.get("accepted")).sum();
        format!(
            "{} webhooks posted ({} accepted), {} sends answered ({} accepted, {} failed on purpose), {} token calls",
            Self::total(&self.webhooks),
            webhooks_accepted,
            Self::total(&self.sends),
            sends_accepted,
            Self::total(&self.sends) - sends_accepted,
            Self::total(&self.tokens),
        )
    }
}

#[derive(Default)]
pub struct Record {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sends: VecDeque<SendRecord>,
    next_seq: u64,
    stats: Stats,
}

impl Record {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only counters behind: keep going.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a send (its `seq` is assigned here) and counts it.
    pub fn send(&self, mut send: SendRecord) -> SendRecord {
        let mut inner = self.lock();
        inner.next_seq += 1;
        send.seq = inner.next_seq;
        Stats::bump(&mut inner.stats.sends, send.platform.as_str(), &send.outcome);
        if inner.sends.len() == KEPT_SENDS {
            inner.sends.pop_front();
        }
        inner.sends.push_back(send.clone());
        send
    }

    /// Notes that the service took the follow-up `label` of send `seq` (if still kept).
    pub fn note(&self, seq: u64, label: &str) {
        let mut inner = self.lock();
        let Some(first) = inner.sends.front().map(|s| s.seq) else {
            return;
        };
        // Kept sends have consecutive numbers.
        let index = seq.checked_sub(first).and_then(|i| usize::try_from(i).ok());
        if let Some(send) = index.and_then(|i| inner.sends.get_mut(i)) {
            send.webhooks.push(label.to_owned());
        }
    }

    pub fn webhook(&self, platform: Platform, outcome: &str) {
        Stats::bump(&mut self.lock().stats.webhooks, platform.as_str(), outcome);
    }

    pub fn token_call(&self, endpoint: &str, outcome: &str) {
        Stats::bump(&mut self.lock().stats.tokens, endpoint, outcome);
    }

    /// The kept sends, oldest first, optionally of one platform and after `after` (a `seq`).
    pub fn sends(&self, platform: Option<Platform>, after: u64) -> Vec<SendRecord> {
        self.lock()
            .sends
            .iter()
            .filter(|s| s.seq > after && platform.is_none_or(|p| s.platform == p))
            .cloned()
            .collect()
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(platform: Platform, outcome: &str) -> SendRecord {
        SendRecord {
            seq: 0,
            at: Utc::now(),
            platform,
            account_id: "a".into(),
            recipient: "r".into(),
            content_type: "text".into(),
            text: Some("hi".into()),
            correlation: None,
            outcome: outcome.into(),
            answer: None,
            message_id: None,
            webhooks: Vec::new(),
        }
    }

    #[test]
    fn sends_are_numbered_filtered_and_counted() {
        let record = Record::default();
        record.send(send(Platform::WhatsApp, "accepted"));
        record.send(send(Platform::TikTok, "rate-limited"));
        record.send(send(Platform::WhatsApp, "window-closed"));
        record.webhook(Platform::Facebook, "accepted");
        let seqs = |sends: Vec<SendRecord>| sends.iter().map(|s| s.seq).collect::<Vec<_>>();
        assert_eq!(seqs(record.sends(None, 0)), [1, 2, 3]);
        assert_eq!(seqs(record.sends(Some(Platform::WhatsApp), 0)), [1, 3]);
        assert_eq!(seqs(record.sends(None, 2)), [3]);
        record.note(3, "delivered");
        record.note(9, "delivered");
        assert_eq!(record.sends(None, 2)[0].webhooks, ["delivered"]);
        assert!(record.sends(None, 0)[0].webhooks.is_empty());
        let stats = record.stats();
        assert_eq!(Stats::count(&stats.sends, "whatsapp", "window-closed"), 1);
        assert_eq!(
            stats.summary(),
            "1 webhooks posted (1 accepted), 3 sends answered (1 accepted, 2 failed on purpose), 0 token calls"
        );
    }

    #[test]
    fn only_the_newest_sends_are_kept() {
        let record = Record::default();
        for _ in 0..KEPT_SENDS + 5 {
            record.send(send(Platform::TikTok, "accepted"));
        }
        let kept = record.sends(None, 0);
        assert_eq!(kept.len(), KEPT_SENDS);
        assert_eq!(kept[0].seq, 6);
        record.note(5, "dropped");
        record.note(7, "read");
        assert_eq!(record.sends(None, 6)[0].webhooks, ["read"]);
        assert_eq!(
            Stats::count(&record.stats().sends, "tiktok", "accepted"),
            (KEPT_SENDS + 5) as u64
        );
    }
}
