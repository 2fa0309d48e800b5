//! Property tests: no input makes a parser panic; batches keep every element; one malformed
//! element does not spoil the others; large ids keep every digit; signatures reject any change.

mod common;

use chrono::DateTime;
use proptest::prelude::*;
use serde_json::{Value, json};
use snorq_connectors::verify::{
    meta_signature_header, tiktok_signature_header, verify_meta_signature, verify_tiktok_signature,
};
use snorq_connectors::{Content, Event, Platform, SignatureError, parse};

/// Keys the parsers look for, so generated documents reach deep into them.
const KEYS: &[&str] = &[
    "object",
    "entry",
    "id",
    "changes",
    "field",
    "value",
    "metadata",
    "phone_number_id",
    "contacts",
    "wa_id",
    "profile",
    "name",
    "messages",
    "statuses",
    "errors",
    "message_echoes",
    "from",
    "to",
    "timestamp",
    "type",
    "text",
    "body",
    "image",
    "audio",
    "voice",
    "location",
    "latitude",
    "longitude",
    "reaction",
    "emoji",
    "message_id",
    "interactive",
    "button_reply",
    "context",
    "status",
    "code",
    "messaging",
    "standby",
    "sender",
    "recipient",
    "message",
    "mid",
    "is_echo",
    "attachments",
    "payload",
    "url",
    "delivery",
    "read",
    "watermark",
    "mids",
    "postback",
    "event",
    "content",
    "user_openid",
    "create_time",
    "conversation_id",
    "from_user",
    "to_user",
    "last_read_timestamp",
];

const WORDS: &[&str] = &[
    "whatsapp_business_account",
    "page",
    "instagram",
    "messages",
    "text",
    "image",
    "audio",
    "reaction",
    "interactive",
    "button_reply",
    "list_reply",
    "unsupported",
    "sent",
    "delivered",
    "read",
    "failed",
    "played",
    "im_receive_msg",
    "im_send_msg",
    "im_mark_read_msg",
    "1767225600",
    "",
    "unreact",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 96, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner.clone()), 0..7)
                .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
            // TikTok's content is JSON inside a string.
            inner.prop_map(|v| Value::String(v.to_string())),
        ]
    })
}

fn platform() -> impl Strategy<Value = Platform> {
    prop::sample::select(Platform::ALL.to_vec())
}

fn fixture_names() -> Vec<&'static str> {
    vec![
        "whatsapp_text.json",
        "whatsapp_image.json",
        "whatsapp_status_failed.json",
        "whatsapp_batch_two_messages.json",
        "messenger_image.json",
        "messenger_delivery_read.json",
        "messenger_echo.json",
        "tiktok_message.json",
        "tiktok_mark_read.json",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(platform in platform(), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(platform, &body);
    }

    #[test]
    fn arbitrary_json_never_panics(platform in platform(), document in json_value()) {
        let body = serde_json::to_vec(&document).unwrap();
        if let Ok(events) = parse(platform, &body) {
            // An object envelope always yields at least one event: nothing vanishes silently.
            prop_assert!(!events.is_empty());
        }
    }

    #[test]
    fn arbitrary_envelopes_never_panic(platform in platform(), entries in prop::collection::vec(json_value(), 0..4), event in json_value()) {
        let body = match platform {
            Platform::WhatsApp => json!({"object": "whatsapp_business_account", "entry": entries}),
            Platform::Facebook => json!({"object": "page", "entry": entries}),
            Platform::TikTok => json!({"event": "im_receive_msg", "user_openid": "b", "content": event.to_string()}),
        };
        let events = parse(platform, &serde_json::to_vec(&body).unwrap()).unwrap();
        prop_assert!(!events.is_empty());
    }

    #[test]
    fn mutated_fixtures_never_panic(
        index in 0..9usize,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    ) {
        let name = fixture_names()[index];
        let mut body = common::fixture(&format!("webhooks/{name}"));
        for (at, byte, op) in edits {
            if body.is_empty() { break; }
            let i = at.index(body.len());
            match op {
                0 => body[i] = byte,
                1 => body.insert(i, byte),
                _ => { body.remove(i); }
            }
        }
        for platform in Platform::ALL {
            let _ = parse(platform, &body);
        }
    }
}

/// A WhatsApp message of a random kind (known or not) with a numeric-looking id.
fn whatsapp_message() -> impl Strategy<Value = (Value, &'static str)> {
    let kinds = prop::sample::select(vec![
        ("text", "text"),
        ("image", "image"),
        ("video", "video"),
        ("document", "file"),
        ("sticker", "sticker"),
        ("location", "location"),
        ("order", "unsupported"),
        ("some_future_type", "unsupported"),
    ]);
    (kinds, any::<u64>(), 1_000_000_000i64..4_000_000_000).prop_map(|((kind, expected), id, ts)| {
        let mut message = json!({
            "from": "5511987654321",
            "id": format!("wamid.{id}"),
            "timestamp": ts.to_string(),
            "type": kind,
            "unknown_field": {"nested": [1, 2, {"x": null}]},
        });
        message[kind] = match kind {
            "text" => json!({"body": "hello"}),
            "location" => json!({"latitude": 1.5, "longitude": -2.25}),
            _ => json!({"id": id, "mime_type": "x/y"}),
        };
        (message, expected)
    })
}

proptest! {
    #[test]
    fn whatsapp_batches_keep_every_message_and_status(
        changes in prop::collection::vec(
            (prop::collection::vec(whatsapp_message(), 0..5), 0..4usize),
            1..4,
        ),
        broken_at in any::<prop::sample::Index>(),
        break_one in any::<bool>(),
    ) {
        let mut expected_kinds = Vec::new();
        // (change, message) -> position of that message's event.
        let mut positions = Vec::new();
        let mut change_values = Vec::new();
        for (c, (messages, status_count)) in changes.iter().enumerate() {
            let statuses: Vec<Value> = (0..*status_count)
                .map(|i| json!({"id": format!("wamid.s{i}"), "status": "read", "timestamp": 1767225600, "recipient_id": "1"}))
                .collect();
            for (m, (_, kind)) in messages.iter().enumerate() {
                positions.push(((c, m), expected_kinds.len()));
                expected_kinds.push(format!("message:{kind}"));
            }
            expected_kinds.extend(std::iter::repeat_n("status:read".to_owned(), *status_count));
            if messages.is_empty() && *status_count == 0 {
                expected_kinds.push("ignored".to_owned());
            }
            change_values.push(json!({
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"phone_number_id": "204512345678901"},
                    "contacts": [{"wa_id": "5511987654321", "profile": {"name": "Ana"}}],
                    "messages": messages.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
                    "statuses": statuses,
                }
            }));
        }
        let mut body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": change_values}]});
        // Break one message: its `text`/media object becomes a number. The message is still
        // reported (as unsupported) and its neighbours are unaffected.
        if break_one && !positions.is_empty() {
            let ((c, m), index) = positions[broken_at.index(positions.len())];
            let message = &mut body["entry"][0]["changes"][c]["value"]["messages"][m];
            let kind = message["type"].as_str().unwrap().to_owned();
            message[kind.as_str()] = json!(5);
            message["context"] = json!("not an object");
            expected_kinds[index] = "message:unsupported".to_owned();
        }
        let events = parse(Platform::WhatsApp, &serde_json::to_vec(&body).unwrap()).unwrap();
        let kinds: Vec<String> = events
            .iter()
            .map(|e| common::describe(e).split(':').take(2).collect::<Vec<_>>().join(":"))
            .collect();
        prop_assert_eq!(kinds, expected_kinds);
        for event in &events {
            if let Event::Message(m) = event {
                prop_assert_eq!(&m.contact.name, &Some("Ana".to_owned()));
                prop_assert!(m.message_id.starts_with("wamid."));
            }
        }
    }

    #[test]
    fn messenger_batches_keep_every_event(kinds in prop::collection::vec(0..6u8, 1..12)) {
        let events: Vec<Value> = kinds.iter().enumerate().map(|(i, kind)| {
            let mut event = json!({"sender": {"id": "2468"}, "recipient": {"id": "1087"}, "timestamp": 1767225600000i64 + i as i64});
            match kind {
                0 => event["message"] = json!({"mid": format!("m_{i}"), "text": "hi"}),
                1 => event["message"] = json!({"mid": format!("m_{i}"), "attachments": [{"type": "image", "payload": {"url": "https://x"}}, {"type": "fallback"}]}),
                2 => event["delivery"] = json!({"mids": ["m_1"], "watermark": 1767225600000i64}),
                3 => event["read"] = json!({"watermark": 1767225600000i64}),
                4 => event["reaction"] = json!({"mid": "m_1", "action": "react", "emoji": "\u{2764}"}),
                _ => event["optin"] = json!({"ref": "x"}),
            }
            event
        }).collect();
        let body = json!({"object": "page", "entry": [{"id": "1087", "time": 1, "messaging": events}]});
        let parsed = parse(Platform::Facebook, &serde_json::to_vec(&body).unwrap()).unwrap();
        prop_assert_eq!(parsed.len(), kinds.len());
        for (event, kind) in parsed.iter().zip(&kinds) {
            let expected = match kind {
                0 => "message:text",
                1 => "message:image",
                2 => "watermark:delivered",
                3 => "watermark:read",
                4 => "message:reaction",
                _ => "ignored",
            };
            prop_assert_eq!(common::describe(event), expected);
            if let (Event::Message(m), 1) = (event, kind) {
                prop_assert_eq!(m.extra_content.len(), 1);
            }
        }
    }

    #[test]
    fn large_numeric_ids_keep_every_digit(message_id in any::<u64>(), app_id in any::<u64>()) {
        let content = format!(
            r#"{{"message_id":{message_id},"conversation_id":"c","type":"text","timestamp":1767226200123,"from_user":{{"id":"u"}},"to_user":{{"id":"b"}},"text":{{"body":"x"}}}}"#
        );
        let body = json!({"event": "im_receive_msg", "create_time": 1, "user_openid": "b", "content": content});
        let events = parse(Platform::TikTok, &serde_json::to_vec(&body).unwrap()).unwrap();
        let [Event::Message(m)] = events.as_slice() else { panic!("{events:?}") };
        prop_assert_eq!(&m.message_id, &message_id.to_string());

        let body = format!(
            r#"{{"object":"page","entry":[{{"id":{app_id},"messaging":[{{"sender":{{"id":{app_id}}},"recipient":{{"id":"u"}},"timestamp":1767225600000,"message":{{"mid":"m","is_echo":true,"app_id":{app_id},"text":"x"}}}}]}}]}}"#
        );
        let events = parse(Platform::Facebook, body.as_bytes()).unwrap();
        let [Event::Message(m)] = events.as_slice() else { panic!("{events:?}") };
        prop_assert_eq!(&m.account_id, &app_id.to_string());
        prop_assert_eq!(m.sender_app_id.clone(), Some(app_id.to_string()));
        let is_text = matches!(&m.content, Content::Text { .. });
        prop_assert!(is_text);
    }

    #[test]
    fn meta_signatures_reject_any_changed_byte(
        secret in prop::collection::vec(any::<u8>(), 1..64),
        body in prop::collection::vec(any::<u8>(), 1..256),
        at in any::<prop::sample::Index>(),
        flip in 1..=255u8,
    ) {
        let header = meta_signature_header(&secret, &body);
        prop_assert_eq!(verify_meta_signature(&secret, Some(&header), &body), Ok(()));
        let mut tampered = body.clone();
        tampered[at.index(body.len())] ^= flip;
        prop_assert_eq!(verify_meta_signature(&secret, Some(&header), &tampered), Err(SignatureError::Mismatch));
    }

    #[test]
    fn tiktok_signatures_hold_only_within_the_tolerance(
        body in prop::collection::vec(any::<u8>(), 0..256),
        timestamp in 1_000_000_000i64..4_000_000_000,
        skew in -1000i64..1000,
        tolerance in 0u64..600,
    ) {
        let header = tiktok_signature_header(b"secret", timestamp, &body);
        let now = DateTime::from_timestamp(timestamp + skew, 0).unwrap();
        let result = verify_tiktok_signature(b"secret", Some(&header), &body, now, std::time::Duration::from_secs(tolerance));
        if skew.unsigned_abs() <= tolerance {
            prop_assert_eq!(result, Ok(()));
        } else {
            let stale = matches!(result, Err(SignatureError::StaleTimestamp { .. }));
            prop_assert!(stale);
        }
    }

    #[test]
    fn signature_headers_of_any_shape_never_panic(header in ".{0,200}", body in prop::collection::vec(any::<u8>(), 0..64)) {
        let now = DateTime::from_timestamp(1_767_226_201, 0).unwrap();
        let _ = verify_meta_signature(b"s", Some(&header), &body);
        let _ = verify_tiktok_signature(b"s", Some(&header), &body, now, std::time::Duration::from_secs(300));
    }
}
