//! Webhook bodies as each platform sends them (shapes from docs/platforms.md,
//! "WhatsApp inbound messages", "WhatsApp statuses", "Messenger inbound events" and
//! "TikTok event envelope"): customers' messages, receipts for the business's messages, and
//! echoes.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use snorq_connectors::Platform;

/// The simulated business accounts: where customers write to.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub whatsapp: WhatsAppAccount,
    /// The Messenger Page id.
    pub facebook_page_id: String,
    /// The TikTok business account's `open_id`.
    pub tiktok_business_id: String,
    /// The TikTok app (`client_key` of every TikTok webhook).
    pub tiktok_app_id: String,
    /// The Meta app (`app_id` of Messenger echoes).
    pub meta_app_id: String,
}

#[derive(Debug, Clone)]
pub struct WhatsAppAccount {
    pub phone_number_id: String,
    pub waba_id: String,
    pub display_phone_number: String,
}

impl Accounts {
    /// These accounts, with `account_id` as the one of `platform` (receipts of a send come
    /// from the account that sent it).
    pub fn with_account(&self, platform: Platform, account_id: &str) -> Accounts {
        let mut accounts = self.clone();
        let slot = match platform {
            Platform::WhatsApp => &mut accounts.whatsapp.phone_number_id,
            Platform::Facebook => &mut accounts.facebook_page_id,
            Platform::TikTok => &mut accounts.tiktok_business_id,
        };
        account_id.clone_into(slot);
        accounts
    }

    /// The account id the service routes by (`phone_number_id`, Page id, `open_id`).
    pub fn account_id(&self, platform: Platform) -> &str {
        match platform {
            Platform::WhatsApp => &self.whatsapp.phone_number_id,
            Platform::Facebook => &self.facebook_page_id,
            Platform::TikTok => &self.tiktok_business_id,
        }
    }
}

/// A simulated customer on one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub platform: Platform,
    /// WhatsApp phone (`wa_id`), Messenger PSID or TikTok user id.
    pub id: String,
    pub name: String,
    /// TikTok username.
    pub username: String,
    /// The TikTok thread id (the send API's recipient); the customer id elsewhere.
    pub thread: String,
}

/// What a customer sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Said {
    Text(String),
    /// An image at `url` (Messenger) or with media id `id` (WhatsApp, TikTok).
    Image {
        id: String,
        url: String,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: String,
    },
    /// A reaction to the business's message `message_id`.
    Reaction {
        message_id: String,
        emoji: String,
    },
}

impl Said {
    pub fn kind(&self) -> &'static str {
        match self {
            Said::Text(_) => "text",
            Said::Image { .. } => "image",
            Said::Location { .. } => "location",
            Said::Reaction { .. } => "reaction",
        }
    }

    /// Whether the platform's webhooks carry this kind of message: TikTok's direct messages
    /// have no locations or reactions (docs/platforms.md, "TikTok event envelope").
    pub fn supported_on(kind: &str, platform: Platform) -> bool {
        platform != Platform::TikTok || matches!(kind, "text" | "image")
    }
}

/// A receipt for a message the business sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    Sent,
    Delivered,
    Read,
}

impl Receipt {
    pub fn as_str(self) -> &'static str {
        match self {
            Receipt::Sent => "sent",
            Receipt::Delivered => "delivered",
            Receipt::Read => "read",
        }
    }
}

fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A customer's message; `None` when the platform has no such message kind.
pub fn inbound(
    accounts: &Accounts,
    customer: &Customer,
    message_id: &str,
    at: DateTime<Utc>,
    said: &Said,
) -> Option<Value> {
    if !Said::supported_on(said.kind(), customer.platform) {
        return None;
    }
    Some(match customer.platform {
        Platform::WhatsApp => whatsapp_message(&accounts.whatsapp, customer, message_id, at, said),
        Platform::Facebook => messenger_message(accounts, customer, message_id, at, said),
        Platform::TikTok => tiktok_message(accounts, customer, message_id, at, said)?,
    })
}

fn whatsapp_value(account: &WhatsAppAccount, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({
        "display_phone_number": account.display_phone_number,
        "phone_number_id": account.phone_number_id,
    });
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": account.waba_id, "changes": [{"field": "messages", "value": value}]}],
    })
}

/// A WhatsApp customer's message (the benchmarks' webhooks too).
pub fn whatsapp_message(
    account: &WhatsAppAccount,
    customer: &Customer,
    message_id: &str,
    at: DateTime<Utc>,
    said: &Said,
) -> Value {
    let mut message = json!({
        "from": customer.id,
        "id": message_id,
        "timestamp": at.timestamp().to_string(),
        "type": said.kind(),
    });
    match said {
        Said::Text(body) => message["text"] = json!({"body": body}),
        Said::Image { id, .. } => {
            message["image"] = json!({"id": id, "mime_type": "image/png", "sha256": hex_digest(id), "caption": "Like this one"});
        }
        Said::Location {
            latitude,
            longitude,
            name,
        } => {
            message["location"] = json!({"latitude": latitude, "longitude": longitude, "name": name});
        }
        Said::Reaction { message_id, emoji } => {
            message["reaction"] = json!({"message_id": message_id, "emoji": emoji});
        }
    }
    whatsapp_value(
        account,
        json!({
            "contacts": [{"profile": {"name": customer.name}, "wa_id": customer.id}],
            "messages": [message],
        }),
    )
}

fn hex_digest(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn messenger_entry(accounts: &Accounts, at: DateTime<Utc>, event: Value) -> Value {
    json!({
        "object": "page",
        "entry": [{"id": accounts.facebook_page_id, "time": millis(at), "messaging": [event]}],
    })
}

fn messenger_message(
    accounts: &Accounts,
    customer: &Customer,
    message_id: &str,
    at: DateTime<Utc>,
    said: &Said,
) -> Value {
    let mut event = json!({
        "sender": {"id": customer.id},
        "recipient": {"id": accounts.facebook_page_id},
        "timestamp": millis(at),
    });
    match said {
        Said::Text(text) => event["message"] = json!({"mid": message_id, "text": text}),
        Said::Image { url, .. } => {
            event["message"] =
                json!({"mid": message_id, "attachments": [{"type": "image", "payload": {"url": url}}]});
        }
        // The older shape (Messenger no longer shares native locations; docs/platforms.md,
        // "Messenger inbound events").
        Said::Location {
            latitude,
            longitude,
            name,
        } => {
            event["message"] = json!({"mid": message_id, "attachments": [{
                "type": "location", "title": name,
                "payload": {"coordinates": {"lat": latitude, "long": longitude}},
            }]});
        }
        Said::Reaction {
            message_id: target,
            emoji,
        } => {
            event["reaction"] = json!({"reaction": "love", "emoji": emoji, "action": "react", "mid": target});
        }
    }
    messenger_entry(accounts, at, event)
}

/// `content` is a JSON string inside the envelope (docs/platforms.md, "TikTok event envelope").
fn tiktok_envelope(accounts: &Accounts, event: &str, at: DateTime<Utc>, content: Value) -> Value {
    json!({
        "client_key": accounts.tiktok_app_id,
        "event": event,
        "create_time": at.timestamp(),
        "user_openid": accounts.tiktok_business_id,
        "content": content.to_string(),
    })
}

fn tiktok_message(
    accounts: &Accounts,
    customer: &Customer,
    message_id: &str,
    at: DateTime<Utc>,
    said: &Said,
) -> Option<Value> {
    let mut content = json!({
        "message_id": message_id,
        "conversation_id": customer.thread,
        "timestamp": millis(at),
        "from": customer.username,
        "from_user": {"id": customer.id, "role": "personal_account"},
        "to": "demo_shop",
        "to_user": {"id": accounts.tiktok_business_id, "role": "business_account"},
        "unique_identifier": customer.id,
    });
    match said {
        Said::Text(body) => {
            content["type"] = json!("text");
            content["text"] = json!({"body": body});
        }
        Said::Image { id, .. } => {
            content["type"] = json!("image");
            content["image"] = json!({"media_id": id});
        }
        Said::Location { .. } | Said::Reaction { .. } => return None,
    }
    Some(tiktok_envelope(accounts, "im_receive_msg", at, content))
}

/// The business's message `message_id` to `customer` was sent / delivered / read. WhatsApp
/// reports each message; Messenger reports watermarks (delivered with the message ids); TikTok
/// reports only reads, as a watermark (docs/platforms.md, "TikTok event envelope"). `None`:
/// the platform has no such receipt.
pub fn receipt(
    accounts: &Accounts,
    customer: &Customer,
    message_id: &str,
    correlation: Option<&str>,
    at: DateTime<Utc>,
    receipt: Receipt,
) -> Option<Value> {
    match customer.platform {
        Platform::WhatsApp => {
            let mut status = json!({
                "id": message_id,
                "status": receipt.as_str(),
                "timestamp": at.timestamp().to_string(),
                "recipient_id": customer.id,
                "pricing": {"billable": false, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"},
            });
            if let Some(correlation) = correlation {
                status["biz_opaque_callback_data"] = json!(correlation);
            }
            Some(whatsapp_value(&accounts.whatsapp, json!({"statuses": [status]})))
        }
        Platform::Facebook => {
            let event = json!({
                "sender": {"id": customer.id},
                "recipient": {"id": accounts.facebook_page_id},
                "timestamp": millis(at),
            });
            let mut event = event;
            match receipt {
                Receipt::Sent => return None,
                Receipt::Delivered => {
                    event["delivery"] = json!({"mids": [message_id], "watermark": millis(at)})
                }
                Receipt::Read => event["read"] = json!({"watermark": millis(at)}),
            }
            Some(messenger_entry(accounts, at, event))
        }
        Platform::TikTok => match receipt {
            Receipt::Sent | Receipt::Delivered => None,
            Receipt::Read => Some(tiktok_envelope(
                accounts,
                "im_mark_read_msg",
                at,
                json!({
                    "conversation_id": customer.thread,
                    "read": {"last_read_timestamp": millis(at)},
                    "from_user": {"id": customer.id},
                }),
            )),
        },
    }
}

/// The platform echoing the business's own text message back (Messenger `message_echoes`,
/// TikTok `im_send_msg`); WhatsApp has no echoes.
pub fn echo(
    accounts: &Accounts,
    customer: &Customer,
    message_id: &str,
    correlation: Option<&str>,
    at: DateTime<Utc>,
    text: &str,
) -> Option<Value> {
    match customer.platform {
        Platform::WhatsApp => None,
        Platform::Facebook => {
            let mut message =
                json!({"is_echo": true, "app_id": accounts.meta_app_id, "mid": message_id, "text": text});
            if let Some(correlation) = correlation {
                message["metadata"] = json!(correlation);
            }
            Some(messenger_entry(
                accounts,
                at,
                json!({
                    "sender": {"id": accounts.facebook_page_id},
                    "recipient": {"id": customer.id},
                    "timestamp": millis(at),
                    "message": message,
                }),
            ))
        }
        Platform::TikTok => Some(tiktok_envelope(
            accounts,
            "im_send_msg",
            at,
            json!({
                "message_id": message_id,
                "conversation_id": customer.thread,
                "timestamp": millis(at),
                "type": "text",
                "text": {"body": text},
                "from": "demo_shop",
                "from_user": {"id": accounts.tiktok_business_id, "role": "business_account"},
                "to": customer.username,
                "to_user": {"id": customer.id, "role": "personal_account"},
            }),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use snorq_connectors::{Content, DeliveryStatus, Direction, Event, WatermarkKind, parse};

    use super::*;

    pub(crate) fn accounts() -> Accounts {
        Accounts {
            whatsapp: WhatsAppAccount {
                phone_number_id: "106540352242922".into(),
                waba_id: "102290129340398".into(),
                display_phone_number: "15550100".into(),
            },
            facebook_page_id: "108765432109876".into(),
            tiktok_business_id: "-000SIMbusiness".into(),
            tiktok_app_id: "sim-tiktok-app".into(),
            meta_app_id: "sim-meta-app".into(),
        }
    }

    fn customer(platform: Platform) -> Customer {
        Customer {
            platform,
            id: "15550001234".into(),
            name: "Ana Souza".into(),
            username: "ana.souza".into(),
            thread: if platform == Platform::TikTok {
                "sim-thread-1".into()
            } else {
                "15550001234".into()
            },
        }
    }

    fn one_event(platform: Platform, body: &Value) -> Event {
        let events = parse(platform, body.to_string().as_bytes()).expect("parses");
        assert_eq!(events.len(), 1, "{body}");
        events.into_iter().next().unwrap()
    }

    fn said_kinds() -> Vec<Said> {
        vec![
            Said::Text("Do you ship to Brazil?".into()),
            Said::Image {
                id: "901".into(),
                url: "http://sim/media/901.png".into(),
            },
            Said::Location {
                latitude: -23.5,
                longitude: -46.6,
                name: "Avenida Paulista".into(),
            },
            Said::Reaction {
                message_id: "ours-1".into(),
                emoji: "\u{2764}".into(),
            },
        ]
    }

    /// Every message kind each platform supports parses into the customer's message, of that
    /// kind, routed to the simulated account.
    #[test]
    fn customers_messages_parse_as_their_kind() {
        let accounts = accounts();
        let at = chrono::DateTime::from_timestamp(1_767_225_600, 0).unwrap();
        for platform in [Platform::WhatsApp, Platform::Facebook, Platform::TikTok] {
            let customer = customer(platform);
            for said in said_kinds() {
                let Some(body) = inbound(&accounts, &customer, "mid-1", at, &said) else {
                    assert!(!Said::supported_on(said.kind(), platform));
                    continue;
                };
                let Event::Message(message) = one_event(platform, &body) else {
                    panic!("{platform} {}: not a message: {body}", said.kind());
                };
                assert_eq!(message.direction, Direction::Inbound);
                assert_eq!(message.account_id, accounts.account_id(platform));
                assert_eq!(message.contact.id, customer.id);
                assert_eq!(message.conversation_key, customer.thread);
                assert_eq!(message.timestamp, at);
                assert_eq!(message.content.kind(), said.kind(), "{platform}");
                match (&said, &message.content) {
                    (Said::Text(text), Content::Text { body }) => assert_eq!(text, body),
                    (Said::Location { latitude, .. }, Content::Location { latitude: got, .. }) => {
                        assert_eq!(latitude, got)
                    }
                    (Said::Reaction { emoji, .. }, Content::Reaction { emoji: got, .. }) => {
                        assert_eq!(Some(emoji), got.as_ref())
                    }
                    (Said::Image { .. }, Content::Image(_)) => {}
                    (said, content) => panic!("{platform}: {said:?} became {content:?}"),
                }
                if platform != Platform::Facebook || said.kind() != "reaction" {
                    assert_eq!(message.message_id, "mid-1");
                }
            }
        }
    }

    #[test]
    fn receipts_and_echoes_parse() {
        let accounts = accounts();
        let at = chrono::DateTime::from_timestamp(1_767_225_700, 0).unwrap();
        let whatsapp = customer(Platform::WhatsApp);
        for (receipt, status) in [
            (Receipt::Sent, DeliveryStatus::Sent),
            (Receipt::Delivered, DeliveryStatus::Delivered),
            (Receipt::Read, DeliveryStatus::Read),
        ] {
            let body = super::receipt(&accounts, &whatsapp, "wamid.ours", Some("corr"), at, receipt).unwrap();
            let Event::Status(got) = one_event(Platform::WhatsApp, &body) else {
                panic!("not a status: {body}");
            };
            assert_eq!((got.status, got.message_id.as_str()), (status, "wamid.ours"));
            assert_eq!(got.correlation.as_deref(), Some("corr"));
        }
        let messenger = customer(Platform::Facebook);
        for (receipt, kind) in [
            (Receipt::Delivered, WatermarkKind::Delivered),
            (Receipt::Read, WatermarkKind::Read),
        ] {
            let body = super::receipt(&accounts, &messenger, "m_ours", None, at, receipt).unwrap();
            let Event::Watermark(got) = one_event(Platform::Facebook, &body) else {
                panic!("not a watermark: {body}");
            };
            assert_eq!((got.kind, got.watermark), (kind, at));
        }
        let tiktok = customer(Platform::TikTok);
        assert!(super::receipt(&accounts, &tiktok, "t1", None, at, Receipt::Delivered).is_none());
        let body = super::receipt(&accounts, &tiktok, "t1", None, at, Receipt::Read).unwrap();
        let Event::Watermark(got) = one_event(Platform::TikTok, &body) else {
            panic!("not a watermark: {body}");
        };
        assert_eq!(
            (got.kind, got.conversation_key.as_str()),
            (WatermarkKind::Read, "sim-thread-1")
        );

        assert!(echo(&accounts, &whatsapp, "w", None, at, "hi").is_none());
        for (customer, correlation) in [(&messenger, Some("corr")), (&tiktok, None)] {
            let body = echo(&accounts, customer, "ours-9", correlation, at, "Thanks!").unwrap();
            let Event::Message(got) = one_event(customer.platform, &body) else {
                panic!("not a message: {body}");
            };
            assert_eq!(got.direction, Direction::Echo);
            assert_eq!(got.message_id, "ours-9");
            assert_eq!(got.contact.id, customer.id);
            assert_eq!(got.correlation.as_deref(), correlation);
        }
    }
}
