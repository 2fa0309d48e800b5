//! The platforms' account calls that prove a token reaches the account a connection claims,
//! played by wiremock with rules a test can steer through the ids and tokens it uses:
//!
//! - WhatsApp `GET /{waba}/phone_numbers`: the WABA `waba-<number>` holds `<number>`; any other
//!   WABA holds nothing. The token `rejected-token` is rejected (Graph 190).
//! - Facebook `GET /me`: the token `page-token:<page id>` is that Page's own token; any other
//!   token belongs to a user (`user-1`), not a Page.
//! - TikTok `token_info`: the token `tiktok-token:<open_id>` is that business account's.
//! - Graph `debug_token`: valid, managing the WABA `waba-<x>` for the token `wa-token:<x>`.
//!
//! Mounted at wiremock's default priority (mixing priorities with scoped mocks misroutes
//! requests after a scoped mock is dropped): a test that needs another answer on the same
//! server mounts its mock with `.with_priority(1)`, or mounts only what it needs.

use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const REJECTED_TOKEN: &str = "rejected-token";

/// The WABA id that holds `number` in this fake.
pub fn waba_of(number: &str) -> String {
    format!("waba-{number}")
}

/// A Page token for `page` in this fake.
pub fn page_token(page: &str) -> String {
    format!("page-token:{page}")
}

/// A TikTok token for `open_id` in this fake.
pub fn tiktok_token(open_id: &str) -> String {
    format!("tiktok-token:{open_id}")
}

fn bearer(request: &Request) -> Option<String> {
    request
        .headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

fn rejected() -> ResponseTemplate {
    ResponseTemplate::new(401).set_body_json(json!({"error": {
        "message": "Error validating access token", "type": "OAuthException", "code": 190}}))
}

struct PhoneNumbers;

impl Respond for PhoneNumbers {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if bearer(request).is_none_or(|t| t == REJECTED_TOKEN) {
            return rejected();
        }
        let waba = request.url.path().split('/').nth(2).unwrap_or_default();
        let data: Vec<Value> = waba
            .strip_prefix("waba-")
            .map(|number| vec![json!({"id": number})])
            .unwrap_or_default();
        ResponseTemplate::new(200).set_body_json(json!({ "data": data }))
    }
}

struct Me;

impl Respond for Me {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        match bearer(request) {
            None => rejected(),
            Some(t) if t == REJECTED_TOKEN => rejected(),
            Some(t) => match t.strip_prefix("page-token:") {
                Some(page) => ResponseTemplate::new(200).set_body_json(json!({"id": page, "name": "A Page"})),
                None => ResponseTemplate::new(200).set_body_json(json!({"id": "user-1", "name": "A User"})),
            },
        }
    }
}

struct DebugToken;

impl Respond for DebugToken {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let token = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "input_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let valid = token != REJECTED_TOKEN;
        let wabas: Vec<String> = token.strip_prefix("wa-token:").map(waba_of).into_iter().collect();
        ResponseTemplate::new(200).set_body_json(json!({"data": {
            "is_valid": valid, "expires_at": 0, "user_id": "system-user-1",
            "granular_scopes": [{"scope": "whatsapp_business_management", "target_ids": wabas}],
        }}))
    }
}

struct TikTokTokenInfo;

impl Respond for TikTokTokenInfo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let token = body["access_token"].as_str().unwrap_or_default();
        match token.strip_prefix("tiktok-token:") {
            Some(open_id) => ResponseTemplate::new(200).set_body_json(json!({
                "code": 0, "message": "OK", "request_id": "r1",
                "data": {"creator_id": open_id, "scope": "message.list.send"}})),
            None => ResponseTemplate::new(200).set_body_json(json!({
                "code": 40105, "message": "The access token is invalid", "request_id": "r1", "data": {}})),
        }
    }
}

/// Mounts WhatsApp's number lookup alone.
pub async fn mount_phone_numbers(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path_regex(r"^/v[0-9.]+/[^/]+/phone_numbers$"))
        .respond_with(PhoneNumbers)
        .mount(server)
        .await;
}

/// Mounts every account call on `server`.
pub async fn mount(server: &MockServer) {
    mount_phone_numbers(server).await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v[0-9.]+/me$"))
        .respond_with(Me)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/v[0-9.]+/debug_token$"))
        .respond_with(DebugToken)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/open_api/v1.3/tt_user/token_info/get/"))
        .respond_with(TikTokTokenInfo)
        .mount(server)
        .await;
}

/// A server answering only the account calls.
pub async fn start() -> MockServer {
    let server = MockServer::start().await;
    mount(&server).await;
    server
}
