//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use snorq_connectors::{Content, Direction, Event};

/// The project's fixtures directory (`fixtures/` at the workspace root, inside the repository).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(FIXTURES).join(relative)
}

pub fn fixture(relative: &str) -> Vec<u8> {
    let path = fixture_path(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A compact description of an event for count-and-kind assertions:
/// `message:text`, `echo:image`, `message:unsupported:order`, `status:read`,
/// `watermark:delivered`, `ignored`.
pub fn describe(event: &Event) -> String {
    match event {
        Event::Message(m) => {
            let direction = match m.direction {
                Direction::Inbound => "message",
                Direction::Echo => "echo",
            };
            match &m.content {
                Content::Unsupported { platform_type } => {
                    format!("{direction}:unsupported:{platform_type}")
                }
                content => format!("{direction}:{}", content.kind()),
            }
        }
        Event::Status(s) => format!("status:{}", s.status.as_str()),
        Event::Watermark(w) => format!("watermark:{}", format!("{:?}", w.kind).to_lowercase()),
        Event::Ignored(_) => "ignored".to_owned(),
    }
}

pub fn describe_all(events: &[Event]) -> Vec<String> {
    events.iter().map(describe).collect()
}

use snorq_connectors::{Client, ClientConfig, Secret};

pub const TOKEN: &str = "EAAtest-token-that-must-never-leak";

pub fn token() -> Secret {
    Secret::new(TOKEN)
}

/// A client whose every host is the fake server.
pub fn client_for(base_url: &str) -> Client {
    Client::new(ClientConfig::with_base_url(base_url)).unwrap()
}

/// Fails if the token shows in the error's Display or Debug.
pub fn assert_no_token<T: std::fmt::Debug + std::fmt::Display>(value: &T) {
    let shown = format!("{value} {value:?}");
    assert!(!shown.contains(TOKEN), "token leaked: {shown}");
}

/// A Graph error body.
pub fn graph_error(code: i64, subcode: Option<i64>, message: &str) -> serde_json::Value {
    let mut error = serde_json::json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": format!("details of {code}")},
        "fbtrace_id": "AbC123"
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = subcode.into();
    }
    serde_json::json!({ "error": error })
}

/// A local URL where nothing listens (a port we bound and released).
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}
