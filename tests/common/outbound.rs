//! Outbound test support: a service whose platform APIs are a wiremock server, an organization
//! with a WhatsApp connection and a conversation the customer opened.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use snorq::config::RawConfig;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use super::{Backend, TestApp, str_of, with_webhook_secrets};

pub const WA_NUMBER: &str = "204512345678901";
pub const CUSTOMER: &str = "15551234567";
pub const TOKEN: &str = "wa-access-token-for-tests";

/// WhatsApp's send endpoint answering success with a message id derived from our correlation
/// value, so every message gets its own platform id.
pub struct WhatsAppAccepts;

/// The same, answering only after a delay (to time out, or to be killed mid-call).
pub struct WhatsAppAcceptsAfter(pub Duration);

impl Respond for WhatsAppAcceptsAfter {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        WhatsAppAccepts.respond(request).set_delay(self.0)
    }
}

impl Respond for WhatsAppAccepts {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let correlation = body["biz_opaque_callback_data"].as_str().unwrap_or("none");
        ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": format!("wamid.{correlation}")}],
        }))
    }
}

pub fn graph_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}
    }))
}

pub const SEND_PATH: &str = "/v24.0/204512345678901/messages";

/// A service whose platform APIs are `platform`, an organization with a WhatsApp connection,
/// and one conversation the customer opened `age` ago.
pub struct Setup {
    pub app: TestApp,
    pub platform: MockServer,
    pub token: String,
    pub org: String,
    pub conversation: String,
}

pub async fn setup(backend: Backend) -> Setup {
    setup_with(backend, Duration::ZERO, |_| {}).await
}

pub async fn setup_with(backend: Backend, age: Duration, configure: impl FnOnce(&mut RawConfig)) -> Setup {
    let platform = MockServer::start().await;
    super::accounts::mount(&platform).await;
    let uri = platform.uri();
    let app = TestApp::spawn_with(backend, |c| {
        with_webhook_secrets(c);
        c.graph_base_url = Some(uri.clone());
        c.tiktok_base_url = Some(uri);
        c.send_retry_delays_secs = vec![1, 1, 1];
        c.send_timeout_secs = 2;
        c.send_rate_whatsapp = 0;
        configure(c);
    })
    .await;
    let (token, _) = app.signup("agent@example.com").await;
    let org = app.create_org(&token, "Acme").await;
    let (status, body) = app
        .post(
            &format!("/api/v1/orgs/{org}/connections"),
            &token,
            json!({"platform": "whatsapp", "platform_user_id": WA_NUMBER, "access_token": TOKEN,
                   "waba_id": super::accounts::waba_of(WA_NUMBER)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    customer_writes(&app, "wamid.inbound-1", age).await;
    let conversation = app.db.uuids("SELECT id FROM conversations").await[0].to_string();
    Setup {
        app,
        platform,
        token,
        org,
        conversation,
    }
}

pub async fn customer_writes(app: &TestApp, id: &str, age: Duration) {
    customer_writes_from(app, CUSTOMER, id, age).await
}

/// A message from `customer` (a new conversation for a new customer).
pub async fn customer_writes_from(app: &TestApp, customer: &str, id: &str, age: Duration) {
    let timestamp = (chrono::Utc::now() - chrono::Duration::from_std(age).unwrap()).timestamp();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": WA_NUMBER},
        "contacts": [{"profile": {"name": "Customer"}, "wa_id": customer}],
        "messages": [{"from": customer, "id": id, "timestamp": timestamp.to_string(),
                      "type": "text", "text": {"body": "hello?"}}]
    }}]}]});
    let (status, answer) = app.deliver("whatsapp", body.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

impl Setup {
    pub async fn reply(&self, text: &str, key: Option<&str>) -> (StatusCode, Value, bool) {
        let mut request = self
            .app
            .http
            .post(self.app.url(&format!(
                "/api/v1/orgs/{}/conversations/{}/messages",
                self.org, self.conversation
            )))
            .bearer_auth(&self.token)
            .json(&json!({ "text": text }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let replayed = response.headers().contains_key("idempotent-replayed");
        (status, response.json().await.unwrap(), replayed)
    }

    /// Sends a reply and returns its message id (asserting the 202).
    pub async fn queued(&self, text: &str) -> String {
        let (status, body, _) = self.reply(text, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "pending");
        str_of(&body["id"])
    }

    pub async fn send(&self, id: &str) -> Value {
        let (status, body) = self
            .app
            .get(&format!("/api/v1/orgs/{}/sends/{id}", self.org), &self.token)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls the send until `done` holds (20 s at most).
    pub async fn wait_for(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let send = self.send(id).await;
            if done(&send) {
                return send;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("send {id} never became {what}: {}", self.send(id).await);
    }

    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        self.wait_for(id, status, |s| s["status"] == status).await
    }

    pub async fn platform_calls(&self) -> Vec<Value> {
        self.platform
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.url.path() == SEND_PATH)
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// The send endpoint answers `first` to the first `times` sends (all of them for `None`), then
/// accepts.
pub async fn platform_answers(platform: &MockServer, first: impl Respond + 'static, times: Option<u64>) {
    let mock = Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(first)
        .with_priority(1);
    match times {
        Some(n) => mock.up_to_n_times(n).mount(platform).await,
        None => mock.mount(platform).await,
    }
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(WhatsAppAccepts)
        .with_priority(2)
        .mount(platform)
        .await;
}
