//! Inbox test support: organizations with a WhatsApp number each, and customers writing to them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{TestApp, str_of};

/// An organization, its owner's token and its WhatsApp number.
pub struct Org {
    pub id: String,
    pub token: String,
    pub user_id: String,
    pub number: String,
}

/// Signs up `email`, creates an organization and connects the WhatsApp `number` to it.
pub async fn org_with_number(app: &TestApp, email: &str, number: &str) -> Org {
    let (token, user_id) = app.signup(email).await;
    let id = app.create_org(&token, &format!("Org of {email}")).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/orgs/{id}/connections"),
            &token,
            super::connection_body("whatsapp", number),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Org {
        id,
        token,
        user_id,
        number: number.to_owned(),
    }
}

/// A WhatsApp text from `customer` (named `name`) to `number`, sent `age_secs` ago.
pub fn text_webhook(
    number: &str,
    customer: &str,
    name: &str,
    message_id: &str,
    text: &str,
    age_secs: i64,
) -> Value {
    let timestamp = chrono::Utc::now().timestamp() - age_secs;
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
    "field": "messages",
    "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": number},
        "contacts": [{"profile": {"name": name}, "wa_id": customer}],
        "messages": [{"from": customer, "id": message_id, "timestamp": timestamp.to_string(),
                      "type": "text", "text": {"body": text}}]
    }}]}]})
}

/// Posts a signed WhatsApp webhook to `url` (from a task that has no `TestApp`); asserts 200.
pub async fn post_signed(http: &reqwest::Client, url: &str, body: &Value) {
    let body = body.to_string();
    let signature =
        snorq_connectors::verify::meta_signature_header(super::META_SECRET.as_bytes(), body.as_bytes());
    let response = http
        .post(url)
        .header("X-Hub-Signature-256", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status(), StatusCode::OK);
}

/// Customers write concurrently: `senders` tasks, each posting the messages `message(sender, i)`
/// for i in 0..`each` (customer, message id), one after the other, `pause` apart.
pub fn customers_write_concurrently(
    app: &TestApp,
    number: &str,
    senders: usize,
    each: usize,
    pause: std::time::Duration,
    message: impl Fn(usize, usize) -> (String, String) + Send + Sync + Clone + 'static,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..senders)
        .map(|sender| {
            let (url, number, message) = (app.url("/webhooks/whatsapp"), number.to_owned(), message.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for i in 0..each {
                    let (customer, id) = message(sender, i);
                    post_signed(
                        &http,
                        &url,
                        &text_webhook(&number, &customer, "C", &id, "more", 0),
                    )
                    .await;
                    tokio::time::sleep(pause).await;
                }
            })
        })
        .collect()
}

impl Org {
    /// A customer writes; the webhook is accepted.
    pub async fn customer_says(
        &self,
        app: &TestApp,
        customer: &str,
        name: &str,
        message_id: &str,
        text: &str,
        age_secs: i64,
    ) {
        let body = text_webhook(&self.number, customer, name, message_id, text, age_secs);
        let (status, answer) = app.deliver("whatsapp", body.to_string().as_bytes()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.id)
    }

    /// GET of an org-scoped path as the owner; asserts 200.
    pub async fn get_ok(&self, app: &TestApp, rest: &str) -> Value {
        let (status, body) = app.get(&self.path(rest), &self.token).await;
        assert_eq!(status, StatusCode::OK, "GET {rest}: {body}");
        body
    }

    /// The ids of a conversation listing (`query` starts with `?` or is empty).
    pub async fn conversation_ids(&self, app: &TestApp, query: &str) -> Vec<String> {
        let page = self.get_ok(app, &format!("/conversations{query}")).await;
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| str_of(&c["id"]))
            .collect()
    }

    /// The conversation with this customer.
    pub async fn conversation_of(&self, app: &TestApp, customer: &str) -> String {
        let page = self.get_ok(app, "/conversations?status=all&limit=100").await;
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|c| c["contact"]["external_id"] == customer)
            .map(|c| str_of(&c["id"]))
            .unwrap_or_else(|| panic!("no conversation with {customer}: {page}"))
    }
}
