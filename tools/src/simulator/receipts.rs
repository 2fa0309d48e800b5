//! What follows an accepted send, as the platform reports it: WhatsApp statuses (sent,
//! delivered, read), Messenger echoes and delivery / read watermarks, TikTok echoes and read
//! watermarks. Each is posted at its delay from the send, in time order.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Shared;
use super::payloads::{self, Receipt};
use super::record::SendRecord;
use super::webhooks::Delivery;

/// One follow-up webhook: when (after the send), what to call it in the record, the body.
struct FollowUp {
    after: Duration,
    label: &'static str,
    body: Value,
}

/// Remembers the send (customers react to it), then posts its follow-ups in the background.
pub(super) fn after_send(shared: &Arc<Shared>, sent: &SendRecord) {
    let Some(message_id) = sent.message_id.as_deref() else {
        return;
    };
    let customer = shared.population.recipient(sent.platform, &sent.recipient);
    shared.population.remember_reply(&customer, message_id);
    let Some(target) = &shared.target else {
        return;
    };
    if !target.can_sign(sent.platform) {
        shared.warn_once_unsigned(sent.platform);
        return;
    }
    let follow_ups = follow_ups(shared, sent, message_id, Utc::now(), rand::random::<f64>());
    let (shared, platform, seq) = (shared.clone(), sent.platform, sent.seq);
    tokio::spawn(async move {
        let mut waited = Duration::ZERO;
        for follow_up in follow_ups {
            if !shared.pause(follow_up.after.saturating_sub(waited)).await {
                return;
            }
            waited = follow_up.after;
            let Some(target) = &shared.target else {
                return;
            };
            if target.deliver(&shared.record, platform, &follow_up.body).await == Delivery::Accepted {
                shared.record.note(seq, follow_up.label);
            }
        }
    });
}

/// The follow-ups of `sent`, sorted by delay; `roll` (uniform in [0, 1)) decides whether the
/// customer reads it.
fn follow_ups(
    shared: &Shared,
    sent: &SendRecord,
    message_id: &str,
    now: DateTime<Utc>,
    roll: f64,
) -> Vec<FollowUp> {
    let config = &shared.config;
    // The receipts come from the account that sent, whichever the simulator's customers use.
    let accounts = config.accounts.with_account(sent.platform, &sent.account_id);
    let customer = shared.population.recipient(sent.platform, &sent.recipient);
    let correlation = sent.correlation.as_deref();
    let at = |delay: Duration| {
        chrono::Duration::from_std(delay)
            .ok()
            .and_then(|d| now.checked_add_signed(d))
            .unwrap_or(now)
    };
    let receipt = |after: Duration, label, kind| {
        payloads::receipt(&accounts, &customer, message_id, correlation, at(after), kind)
            .map(|body| FollowUp { after, label, body })
    };
    let read_after = config.receipt_delay.saturating_add(config.read_delay);
    let mut steps = vec![
        receipt(Duration::ZERO, "sent", Receipt::Sent),
        receipt(config.receipt_delay, "delivered", Receipt::Delivered),
        (roll < config.read_share)
            .then(|| receipt(read_after, "read", Receipt::Read))
            .flatten(),
    ];
    // Only text comes back as an echo here; platforms echo media too, which the service does not
    // need (its own send is matched by the message id).
    if sent.content_type == "text"
        && let Some(text) = sent.text.as_deref()
    {
        steps.push(
            payloads::echo(
                &accounts,
                &customer,
                message_id,
                correlation,
                at(config.echo_delay),
                text,
            )
            .map(|body| FollowUp {
                after: config.echo_delay,
                label: "echo",
                body,
            }),
        );
    }
    let mut steps: Vec<FollowUp> = steps.into_iter().flatten().collect();
    steps.sort_by_key(|s| s.after);
    steps
}

#[cfg(test)]
mod tests {
    use snorq_connectors::{Event, Platform, parse};

    use super::super::SimulatorConfig;
    use super::*;

    fn shared(read_share: f64) -> Shared {
        let mut config = SimulatorConfig::new(super::super::payloads::tests::accounts(), None, 0.0);
        config.read_share = read_share;
        Shared::new(
            config,
            None,
            "http://sim".into(),
            tokio::sync::watch::channel(false).1,
        )
    }

    fn sent(platform: Platform, account_id: &str, content_type: &str) -> SendRecord {
        SendRecord {
            seq: 1,
            at: Utc::now(),
            platform,
            account_id: account_id.into(),
            recipient: "someone".into(),
            content_type: content_type.into(),
            text: Some("Your order shipped".into()),
            correlation: Some("outbound:1".into()),
            outcome: "accepted".into(),
            answer: None,
            message_id: Some("ours-1".into()),
            webhooks: Vec::new(),
        }
    }

    fn labels(follow_ups: &[FollowUp]) -> Vec<&str> {
        follow_ups.iter().map(|f| f.label).collect()
    }

    #[test]
    fn each_platform_reports_what_it_reports_in_time_order() {
        let shared = shared(0.5);
        let now = Utc::now();
        let whatsapp = follow_ups(
            &shared,
            &sent(Platform::WhatsApp, "106540352242922", "text"),
            "ours-1",
            now,
            0.1,
        );
        assert_eq!(labels(&whatsapp), ["sent", "delivered", "read"]);
        let unread = follow_ups(
            &shared,
            &sent(Platform::WhatsApp, "106540352242922", "text"),
            "ours-1",
            now,
            0.9,
        );
        assert_eq!(
            labels(&unread),
            ["sent", "delivered"],
            "half of the customers read"
        );
        let messenger = follow_ups(
            &shared,
            &sent(Platform::Facebook, "108765432109876", "text"),
            "ours-1",
            now,
            0.1,
        );
        assert_eq!(labels(&messenger), ["delivered", "echo", "read"]);
        let tiktok = follow_ups(
            &shared,
            &sent(Platform::TikTok, "-000SIMbusiness", "text"),
            "ours-1",
            now,
            0.1,
        );
        assert_eq!(
            labels(&tiktok),
            ["echo", "read"],
            "TikTok has no delivery receipts"
        );
        let image = follow_ups(
            &shared,
            &sent(Platform::TikTok, "-000SIMbusiness", "image"),
            "ours-1",
            now,
            0.9,
        );
        assert!(image.is_empty());
        assert!(whatsapp.windows(2).all(|w| w[0].after <= w[1].after));
    }

    /// A send from another account (another number, another organization's Page) gets its
    /// receipts from that account, so the service routes them to the right connection.
    #[test]
    fn receipts_come_from_the_account_that_sent() {
        let shared = shared(1.0);
        for (platform, account) in [
            (Platform::WhatsApp, "999000111"),
            (Platform::Facebook, "555666777"),
            (Platform::TikTok, "-000another"),
        ] {
            for follow_up in follow_ups(
                &shared,
                &sent(platform, account, "text"),
                "ours-1",
                Utc::now(),
                0.0,
            ) {
                let events = parse(platform, follow_up.body.to_string().as_bytes()).unwrap();
                assert!(
                    events.iter().all(|e| e.account_id() == Some(account)),
                    "{platform} {}: {events:?}",
                    follow_up.label
                );
                assert!(
                    !events.iter().any(|e| matches!(e, Event::Ignored(_))),
                    "{events:?}"
                );
            }
        }
    }

    #[test]
    fn huge_delays_do_not_overflow() {
        let mut shared = shared(1.0);
        shared.config.receipt_delay = Duration::from_secs(u64::MAX / 4);
        let steps = follow_ups(
            &shared,
            &sent(Platform::WhatsApp, "1", "text"),
            "ours-1",
            Utc::now(),
            0.0,
        );
        assert_eq!(steps.len(), 3);
    }
}
