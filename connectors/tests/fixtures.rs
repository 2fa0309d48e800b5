//! Every shared fixture and every pywa sample parses into the expected events, counted so that
//! nothing is dropped.

mod common;

use chrono::{DateTime, Utc};
use common::{describe_all, fixture};
use serde_json::Value;
use snorq_connectors::{
    Content, DeliveryStatus, Direction, ErrorClass, Event, Platform, WatermarkKind, classify, parse,
};

fn parse_fixture(platform: Platform, name: &str) -> Vec<Event> {
    parse(platform, &fixture(&format!("webhooks/{name}"))).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn at_seconds(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap()
}

fn at_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap()
}

fn only_message(events: &[Event]) -> &snorq_connectors::InboundMessage {
    match events {
        [Event::Message(m)] => m,
        other => panic!("expected one message, got {other:?}"),
    }
}

#[test]
fn shared_fixtures_yield_the_expected_event_kinds() {
    let expected: &[(Platform, &str, &[&str])] = &[
        (Platform::WhatsApp, "whatsapp_text.json", &["message:text"]),
        (Platform::WhatsApp, "whatsapp_image.json", &["message:image"]),
        (
            Platform::WhatsApp,
            "whatsapp_location.json",
            &["message:location"],
        ),
        (
            Platform::WhatsApp,
            "whatsapp_reaction.json",
            &["message:reaction"],
        ),
        (
            Platform::WhatsApp,
            "whatsapp_status_delivered.json",
            &["status:delivered"],
        ),
        (
            Platform::WhatsApp,
            "whatsapp_status_failed.json",
            &["status:failed"],
        ),
        (
            Platform::WhatsApp,
            "whatsapp_batch_two_messages.json",
            &["message:text", "message:text"],
        ),
        (Platform::Facebook, "messenger_text.json", &["message:text"]),
        (Platform::Facebook, "messenger_image.json", &["message:image"]),
        (
            Platform::Facebook,
            "messenger_delivery_read.json",
            &["watermark:delivered", "watermark:read"],
        ),
        (Platform::Facebook, "messenger_echo.json", &["echo:text"]),
        // Instagram shares Messenger's envelope but is not a connected platform.
        (Platform::Facebook, "instagram_text.json", &["ignored"]),
        (Platform::TikTok, "tiktok_message.json", &["message:text"]),
        (Platform::TikTok, "tiktok_mark_read.json", &["watermark:read"]),
    ];
    let on_disk = std::fs::read_dir(common::fixture_path("webhooks"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(on_disk, expected.len(), "every fixture file has an expectation");
    for (platform, name, kinds) in expected {
        let events = parse_fixture(*platform, name);
        assert_eq!(describe_all(&events), *kinds, "{name}");
        for event in &events {
            assert_eq!(event_platform(event), *platform, "{name}");
        }
    }
}

fn event_platform(event: &Event) -> Platform {
    match event {
        Event::Message(m) => m.platform,
        Event::Status(s) => s.platform,
        Event::Watermark(w) => w.platform,
        Event::Ignored(i) => i.platform,
    }
}

#[test]
fn whatsapp_text_fields() {
    let events = parse_fixture(Platform::WhatsApp, "whatsapp_text.json");
    let m = only_message(&events);
    assert_eq!(m.account_id, "204512345678901");
    assert_eq!(m.conversation_key, "5511987654321");
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.contact.id, "5511987654321");
    assert_eq!(m.contact.phone.as_deref(), Some("5511987654321"));
    assert_eq!(m.contact.name.as_deref(), Some("Ana Souza"));
    assert_eq!(
        m.message_id,
        "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFDNBQjQ1Q0Q2RTdGODkwMTIzNDU2AA=="
    );
    assert_eq!(m.timestamp, at_seconds(1_767_225_600));
    assert_eq!(
        m.content,
        Content::Text {
            body: "Hi! Is my order #1042 on its way?".into()
        }
    );
    assert_eq!(events[0].account_id(), Some("204512345678901"));
}

#[test]
fn whatsapp_image_reply_location_and_reaction_fields() {
    let events = parse_fixture(Platform::WhatsApp, "whatsapp_image.json");
    let m = only_message(&events);
    let Content::Image(media) = &m.content else {
        panic!("{:?}", m.content)
    };
    assert_eq!(media.id.as_deref(), Some("1187345529912034"));
    assert_eq!(media.caption.as_deref(), Some("This is the damaged box"));
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
    assert!(
        media
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://lookaside.fbsbx.com/")
    );
    assert_eq!(
        m.reply_to.as_deref(),
        Some("wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjRBRjdCMzlEQUU4OTJBMTE4RTUA")
    );

    let events = parse_fixture(Platform::WhatsApp, "whatsapp_location.json");
    let Content::Location {
        latitude,
        longitude,
        name,
        address,
        url,
    } = &only_message(&events).content
    else {
        panic!()
    };
    assert_eq!((*latitude, *longitude), (-23.561414, -46.655881));
    assert_eq!(name.as_deref(), Some("Pickup point"));
    assert!(address.as_deref().unwrap().starts_with("Av. Paulista"));
    assert!(url.is_some());

    let events = parse_fixture(Platform::WhatsApp, "whatsapp_reaction.json");
    assert_eq!(
        only_message(&events).content,
        Content::Reaction {
            target_message_id: "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjRBRjdCMzlEQUU4OTJBMTE4RTUA".into(),
            emoji: Some("\u{1f44d}".into()),
        }
    );
}

#[test]
fn whatsapp_statuses() {
    let events = parse_fixture(Platform::WhatsApp, "whatsapp_status_delivered.json");
    let [Event::Status(s)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(s.status, DeliveryStatus::Delivered);
    assert_eq!(s.account_id, "204512345678901");
    assert_eq!(
        s.message_id,
        "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjRBRjdCMzlEQUU4OTJBMTE4RTUA"
    );
    assert_eq!(s.timestamp, at_seconds(1_767_225_605));
    assert_eq!(s.recipient_id.as_deref(), Some("5511987654321"));
    assert!(s.error.is_none());

    let events = parse_fixture(Platform::WhatsApp, "whatsapp_status_failed.json");
    let [Event::Status(s)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(s.status, DeliveryStatus::Failed);
    let error = s.error.as_ref().unwrap();
    assert_eq!(error.code, Some(131026));
    assert_eq!(error.title.as_deref(), Some("Message undeliverable"));
    assert_eq!(error.details.as_deref(), Some("Message Undeliverable."));
    assert_eq!(
        classify::classify_whatsapp(error.code.unwrap(), None),
        ErrorClass::RecipientUnavailable
    );
}

#[test]
fn whatsapp_batch_joins_contacts_by_wa_id() {
    let events = parse_fixture(Platform::WhatsApp, "whatsapp_batch_two_messages.json");
    let names: Vec<_> = events
        .iter()
        .map(|e| match e {
            Event::Message(m) => (m.contact.id.as_str(), m.contact.name.as_deref()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            ("5511987654321", Some("Ana Souza")),
            ("919812345678", Some("Rahul Mehta"))
        ]
    );
}

#[test]
fn messenger_fields() {
    let events = parse_fixture(Platform::Facebook, "messenger_text.json");
    let m = only_message(&events);
    assert_eq!(m.account_id, "108765432109876");
    assert_eq!(m.conversation_key, "24681357913572468");
    assert_eq!(m.contact.id, "24681357913572468");
    assert_eq!(m.timestamp, at_millis(1_767_225_600_321));
    assert!(m.message_id.starts_with("m_Zk3x9QmN2b"));

    let events = parse_fixture(Platform::Facebook, "messenger_image.json");
    let Content::Image(media) = &only_message(&events).content else {
        panic!()
    };
    assert!(
        media
            .url
            .as_deref()
            .unwrap()
            .starts_with("https://scontent.xx.fbcdn.net/")
    );

    let events = parse_fixture(Platform::Facebook, "messenger_echo.json");
    let m = only_message(&events);
    assert_eq!(m.direction, Direction::Echo);
    assert_eq!(
        m.contact.id, "24681357913572468",
        "the customer is the echo's recipient"
    );
    assert_eq!(
        m.correlation.as_deref(),
        Some("outbound:8f14e45f-ceea-467e-a9c6-5a0f4b1c2d3e")
    );
    assert_eq!(m.sender_app_id.as_deref(), Some("1517776481860111"));

    let events = parse_fixture(Platform::Facebook, "messenger_delivery_read.json");
    let [Event::Watermark(delivery), Event::Watermark(read)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(delivery.kind, WatermarkKind::Delivered);
    assert_eq!(delivery.watermark, at_millis(1_767_225_790_000));
    assert_eq!(delivery.message_ids.len(), 1);
    assert_eq!(delivery.conversation_key, "24681357913572468");
    assert_eq!(read.kind, WatermarkKind::Read);
    assert_eq!(read.timestamp, at_millis(1_767_225_811_990));
    assert_eq!(read.account_id, "108765432109876");
}

#[test]
fn tiktok_fields() {
    let events = parse_fixture(Platform::TikTok, "tiktok_message.json");
    let m = only_message(&events);
    assert_eq!(m.account_id, "-000AcMeStOrEbUsInEsS0penId987654321");
    assert_eq!(m.conversation_key, "MS4wLjABAAAAexampleOpaqueConversationId0001");
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.contact.id, "-000xYzAbCdEfGhIjKlMnOpQrStUvWxYz12345");
    assert_eq!(m.contact.username.as_deref(), Some("ana.souza.shop.fan"));
    assert_eq!(m.message_id, "7456789012345678901");
    assert_eq!(m.timestamp, at_millis(1_767_226_200_123));
    assert_eq!(
        m.content,
        Content::Text {
            body: "Hi! Do you ship to Brazil?".into()
        }
    );

    let events = parse_fixture(Platform::TikTok, "tiktok_mark_read.json");
    let [Event::Watermark(w)] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(w.kind, WatermarkKind::Read);
    assert_eq!(w.watermark, at_millis(1_767_226_300_456));
    assert_eq!(w.timestamp, at_seconds(1_767_226_300));
    assert_eq!(w.contact_id, "-000xYzAbCdEfGhIjKlMnOpQrStUvWxYz12345");
}

#[test]
fn fixtures_parsed_as_another_platform_never_panic_and_yield_no_messages() {
    let names = [
        "whatsapp_text.json",
        "messenger_text.json",
        "tiktok_message.json",
        "instagram_text.json",
    ];
    for name in names {
        let body = fixture(&format!("webhooks/{name}"));
        for platform in Platform::ALL {
            let own = name.starts_with(match platform {
                Platform::WhatsApp => "whatsapp",
                Platform::Facebook => "messenger",
                Platform::TikTok => "tiktok",
            });
            if own {
                continue;
            }
            // An error (not this platform's envelope) is as acceptable as ignored events.
            if let Ok(events) = parse(platform, &body) {
                assert!(
                    events.iter().all(|e| matches!(e, Event::Ignored(_))),
                    "{name} as {platform}: {events:?}"
                );
            }
        }
    }
}

/// Every pywa sample, by file and sample name, with the events it must yield.
const PYWA_EXPECTED: &[(&str, &str, &[&str])] = &[
    ("account_update.json", "*", &["ignored"]),
    ("call_connect.json", "*", &["ignored"]),
    (
        "call_permission_update.json",
        "*",
        &["message:unsupported:call_permission_reply"],
    ),
    ("call_status.json", "call_status", &["ignored"]),
    ("call_terminate.json", "call_terminate", &["ignored"]),
    ("callback_button.json", "*", &["message:button_reply"]),
    ("callback_selection.json", "*", &["message:list_reply"]),
    ("deleted_message.json", "revoke", &["message:unsupported:revoke"]),
    ("edited_message.json", "image", &["message:unsupported:edit"]),
    ("flow_completion.json", "*", &["message:unsupported:nfm_reply"]),
    ("message.json", "text", &["message:text"]),
    ("message.json", "image", &["message:image"]),
    ("message.json", "media_with_url", &["message:image"]),
    ("message.json", "video", &["message:video"]),
    ("message.json", "document", &["message:file"]),
    ("message.json", "audio", &["message:audio"]),
    ("message.json", "voice", &["message:audio"]),
    ("message.json", "static_sticker", &["message:sticker"]),
    ("message.json", "animated_sticker", &["message:sticker"]),
    ("message.json", "reaction", &["message:reaction"]),
    ("message.json", "unreaction_empty", &["message:reaction"]),
    ("message.json", "unreaction_no_emoji", &["message:reaction"]),
    ("message.json", "current_location", &["message:location"]),
    ("message.json", "chosen_location", &["message:location"]),
    ("message.json", "contacts", &["message:contacts"]),
    ("message.json", "order", &["message:unsupported:order"]),
    (
        "message.json",
        "unsupported",
        &["message:unsupported:unsupported"],
    ),
    (
        "message.json",
        "unsupported_with_type",
        &["message:unsupported:pool"],
    ),
    ("message.json", "reply", &["message:text"]),
    ("message.json", "forwarded", &["message:text"]),
    ("message.json", "forwarded_many_times", &["message:text"]),
    // A message whose body WhatsApp could not render, plus the change-level error about it.
    (
        "message.json",
        "interactive_message_with_err",
        &["message:unsupported:interactive", "ignored"],
    ),
    ("message.json", "referral", &["message:text"]),
    ("message_status.json", "sent", &["status:sent"]),
    ("message_status.json", "delivered", &["status:delivered"]),
    ("message_status.json", "read", &["status:read"]),
    ("message_status.json", "played", &["status:played"]),
    ("message_status.json", "failed", &["status:failed"]),
    ("message_status.json", "with_tracker", &["status:sent"]),
    ("message_status.json", "group", &["status:read"]),
    ("outgoing_message.json", "text", &["echo:text"]),
    ("outgoing_message.json", "delete", &["echo:unsupported:revoke"]),
    ("outgoing_message.json", "edit", &["echo:unsupported:edit"]),
    ("system.json", "*", &["message:unsupported:system"]),
    ("template_category_update.json", "*", &["ignored"]),
    ("template_components_update.json", "*", &["ignored"]),
    ("template_quality_update.json", "*", &["ignored"]),
    ("template_status_update.json", "*", &["ignored"]),
    ("user_marketing_preferences.json", "*", &["ignored"]),
];

/// Each pywa file is an object of named samples; each sample is one webhook body.
fn pywa_samples(file: &str) -> Vec<(String, Vec<u8>)> {
    let document: Value = serde_json::from_slice(&fixture(&format!("pywa/{file}"))).unwrap();
    document
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, body)| (name.clone(), serde_json::to_vec(body).unwrap()))
        .collect()
}

fn pywa_events(file: &str, sample: &str) -> Vec<Event> {
    let (_, body) = pywa_samples(file)
        .into_iter()
        .find(|(name, _)| name == sample)
        .unwrap_or_else(|| panic!("no sample {file}/{sample}"));
    parse(Platform::WhatsApp, &body).unwrap()
}

#[test]
fn every_pywa_sample_yields_the_expected_events() {
    let mut files: Vec<String> = std::fs::read_dir(common::fixture_path("pywa"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut checked = 0;
    let mut events_total = 0;
    for file in &files {
        for (sample, body) in pywa_samples(file) {
            let expected = PYWA_EXPECTED
                .iter()
                .find(|(f, s, _)| f == file && (*s == sample || *s == "*"))
                .unwrap_or_else(|| panic!("no expectation for {file}/{sample}"));
            let events = parse(Platform::WhatsApp, &body).unwrap_or_else(|e| panic!("{file}/{sample}: {e}"));
            assert_eq!(describe_all(&events), expected.2, "{file}/{sample}");
            checked += 1;
            events_total += events.len();
        }
    }
    assert_eq!(checked, 74, "all pywa samples were checked");
    assert_eq!(events_total, 75);
}

#[test]
fn pywa_details() {
    let voice = pywa_events("message.json", "voice");
    assert!(matches!(
        &only_message(&voice).content,
        Content::Audio { voice: true, .. }
    ));
    let audio = pywa_events("message.json", "audio");
    assert!(matches!(
        &only_message(&audio).content,
        Content::Audio { voice: false, .. }
    ));

    let unreaction = pywa_events("message.json", "unreaction_empty");
    assert!(matches!(
        &only_message(&unreaction).content,
        Content::Reaction { emoji: None, .. }
    ));

    let contacts = pywa_events("message.json", "contacts");
    let Content::Contacts { cards } = &only_message(&contacts).content else {
        panic!()
    };
    assert_eq!(cards.len(), 3);
    assert_eq!(cards[0].name.as_deref(), Some("Chandler Bing"));
    assert_eq!(cards[0].phones, ["+1 555-555-5555"]);

    let document = pywa_events("message.json", "document");
    let Content::File(media) = &only_message(&document).content else {
        panic!()
    };
    assert_eq!(media.filename.as_deref(), Some("filename.pdf"));
    assert_eq!(media.caption.as_deref(), Some("caption"));

    let text = pywa_events("message.json", "text");
    let contact = &only_message(&text).contact;
    assert_eq!(contact.scoped_user_id.as_deref(), Some("US.13491208655302741918"));
    assert_eq!(contact.name.as_deref(), Some("Test Name"));

    let button = pywa_events("callback_button.json", "quick_reply");
    assert_eq!(
        only_message(&button).content,
        Content::ButtonReply {
            id: Some("callback_data".into()),
            title: "title".into()
        }
    );
    let list = pywa_events("callback_selection.json", "description");
    assert!(matches!(
        &only_message(&list).content,
        Content::ListReply {
            description: Some(_),
            ..
        }
    ));

    let tracker = pywa_events("message_status.json", "with_tracker");
    let [Event::Status(s)] = tracker.as_slice() else {
        panic!()
    };
    assert_eq!(s.correlation.as_deref(), Some("some data"));

    let failed = pywa_events("message_status.json", "failed");
    let [Event::Status(s)] = failed.as_slice() else {
        panic!()
    };
    assert_eq!(s.error.as_ref().and_then(|e| e.code), Some(130472));

    let echo = pywa_events("outgoing_message.json", "text");
    let m = only_message(&echo);
    assert_eq!(m.direction, Direction::Echo);
    assert_eq!(m.contact.scoped_user_id.as_deref(), Some("<BSUID>"));

    let ignored = pywa_events("template_status_update.json", "approved");
    let [Event::Ignored(i)] = ignored.as_slice() else {
        panic!()
    };
    assert!(
        i.reason.contains("message_template_status_update"),
        "{}",
        i.reason
    );

    let with_error = pywa_events("message.json", "interactive_message_with_err");
    let Event::Ignored(i) = &with_error[1] else {
        panic!()
    };
    assert!(i.reason.contains("131000"), "{}", i.reason);
}
