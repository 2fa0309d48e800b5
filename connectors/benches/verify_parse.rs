//! Verify + parse throughput per platform, on the small fixture webhooks (and one 50-message
//! WhatsApp batch). Run: `cargo bench -p snorq-connectors --bench verify_parse`.

use std::time::Duration;

use chrono::DateTime;
use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use snorq_connectors::verify::{
    meta_signature_header, tiktok_signature_header, verify_meta_signature, verify_tiktok_signature,
};
use snorq_connectors::{Platform, parse};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/webhooks");
const SECRET: &[u8] = b"bench_app_secret";
const TIKTOK_TIMESTAMP: i64 = 1_767_226_201;

fn main() {
    divan::main();
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("fixture")
}

fn verify_and_parse(bencher: Bencher, platform: Platform, body: Vec<u8>) {
    let now = DateTime::from_timestamp(TIKTOK_TIMESTAMP + 1, 0).expect("time");
    let header = match platform {
        Platform::TikTok => tiktok_signature_header(SECRET, TIKTOK_TIMESTAMP, &body),
        _ => meta_signature_header(SECRET, &body),
    };
    bencher.counter(ItemsCount::new(1usize)).bench(|| {
        let body = black_box(body.as_slice());
        let verified = match platform {
            Platform::TikTok => {
                verify_tiktok_signature(SECRET, Some(&header), body, now, Duration::from_secs(300))
            }
            _ => verify_meta_signature(SECRET, Some(&header), body),
        };
        assert!(verified.is_ok());
        parse(platform, body).expect("parses")
    });
}

/// One webhook = signature check + parse into events.
#[divan::bench]
fn whatsapp_text(bencher: Bencher) {
    verify_and_parse(bencher, Platform::WhatsApp, fixture("whatsapp_text.json"));
}

#[divan::bench]
fn whatsapp_status(bencher: Bencher) {
    verify_and_parse(
        bencher,
        Platform::WhatsApp,
        fixture("whatsapp_status_delivered.json"),
    );
}

#[divan::bench]
fn messenger_text(bencher: Bencher) {
    verify_and_parse(bencher, Platform::Facebook, fixture("messenger_text.json"));
}

#[divan::bench]
fn tiktok_message(bencher: Bencher) {
    verify_and_parse(bencher, Platform::TikTok, fixture("tiktok_message.json"));
}

/// A 50-message WhatsApp batch (one POST), counted per webhook.
#[divan::bench]
fn whatsapp_batch_of_50(bencher: Bencher) {
    let message = r#"{"from":"5511987654321","id":"wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFDNBQjQ1Q0Q2RTdGODkwMTIzNDU2AA==","timestamp":"1767225600","type":"text","text":{"body":"Hi! Is my order #1042 on its way?"}}"#;
    let messages = vec![message; 50].join(",");
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"310245987654321","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15550001111","phone_number_id":"204512345678901"}},"contacts":[{{"profile":{{"name":"Ana Souza"}},"wa_id":"5511987654321"}}],"messages":[{messages}]}},"field":"messages"}}]}}]}}"#
    );
    verify_and_parse(bencher, Platform::WhatsApp, body.into_bytes());
}

/// The fallback path: one malformed message forces the element-by-element parse.
#[divan::bench]
fn whatsapp_text_malformed(bencher: Bencher) {
    let body = String::from_utf8(fixture("whatsapp_text.json"))
        .expect("utf-8")
        .replace(
            r#""text": {
                  "body": "Hi! Is my order #1042 on its way?"
                }"#,
            r#""text": 42"#,
        );
    assert!(body.contains(r#""text": 42"#));
    verify_and_parse(bencher, Platform::WhatsApp, body.into_bytes());
}

/// The parts on their own.
#[divan::bench]
fn parse_only_whatsapp_text(bencher: Bencher) {
    let body = fixture("whatsapp_text.json");
    bencher
        .counter(ItemsCount::new(1usize))
        .bench(|| parse(Platform::WhatsApp, black_box(&body)).expect("parses"));
}

#[divan::bench]
fn verify_only_whatsapp_text(bencher: Bencher) {
    let body = fixture("whatsapp_text.json");
    let header = meta_signature_header(SECRET, &body);
    bencher
        .counter(ItemsCount::new(1usize))
        .bench(|| verify_meta_signature(SECRET, Some(&header), black_box(&body)));
}
