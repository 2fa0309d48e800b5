//! A message's content has one JSON shape whichever way it travels: a customer's message from a
//! webhook, a reply in the request, the reply as the API answers it, the messages and sends
//! APIs, and rows stored in the older shapes. Every served content is checked against the
//! OpenAPI document's schema.

use crate::common;

use common::outbound::{SEND_PATH, WhatsAppAccepts, platform_answers, setup};
use common::{Backend, str_of};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Validates values against a schema of the served OpenAPI document (by component name).
struct Schemas(Value);

impl Schemas {
    async fn of(app: &common::TestApp) -> Self {
        let doc: Value = app
            .http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Schemas(doc)
    }

    fn errors(&self, component: &str, value: &Value) -> Vec<String> {
        let schema = json!({
            "$ref": format!("#/components/schemas/{component}"),
            "components": self.0["components"],
        });
        let validator = jsonschema::validator_for(&schema).expect("the document's schemas compile");
        validator.iter_errors(value).map(|e| e.to_string()).collect()
    }

    fn check(&self, component: &str, value: &Value) {
        let errors = self.errors(component, value);
        assert!(
            errors.is_empty(),
            "{value} does not match {component}: {errors:?}"
        );
    }
}

async fn one_shape_in_every_direction(backend: Backend) {
    let s = setup(backend).await;
    platform_answers(&s.platform, WhatsAppAccepts, None).await;
    let schemas = Schemas::of(&s.app).await;
    let messages = format!("/api/v1/orgs/{}/conversations/{}/messages", s.org, s.conversation);
    // The schema is specific: each kind has its own shape.
    for wrong in [
        json!({"kind": "text"}),
        json!({"kind": "text", "text": 5}),
        json!({"kind": "hologram"}),
        json!({"kind": "location", "latitude": "north", "longitude": 1}),
        json!({"text": "no kind"}),
    ] {
        assert!(
            !schemas.errors("MessageContent", &wrong).is_empty(),
            "{wrong} passed"
        );
    }

    // The customer's text, from the webhook.
    let page = listed(&s.app, &messages, &s.token).await;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["content"], json!({"kind": "text", "text": "hello?"}));

    // Replies: the content given is the content answered, listed and sent.
    let image = json!({"kind": "image", "url": "https://cdn.example.com/a.png", "caption": "this one"});
    let (status, sent_image) = s.app.post(&messages, &s.token, json!({"content": image})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent_image}");
    assert_eq!(sent_image["content"], image);
    let text = json!({"kind": "text", "text": "on its way"});
    let (status, sent_text) = s.app.post(&messages, &s.token, json!({"content": text})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent_text}");
    assert_eq!(sent_text["content"], text);
    // `text` is shorthand for the same thing.
    let (status, short) = s.app.post(&messages, &s.token, json!({"text": "thanks"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{short}");
    assert_eq!(short["content"], json!({"kind": "text", "text": "thanks"}));
    for sent in [&sent_image, &sent_text, &short] {
        let sent = s.wait_status(&str_of(&sent["id"]), "sent").await;
        schemas.check("SendBody", &sent);
    }
    let image_call = s
        .platform_calls()
        .await
        .into_iter()
        .find(|c| c["type"] == "image")
        .expect("the image reached the platform");
    assert_eq!(image_call["image"]["link"], "https://cdn.example.com/a.png");
    assert_eq!(image_call["image"]["caption"], "this one");

    let page = listed(&s.app, &messages, &s.token).await;
    let contents: Vec<&Value> = page.iter().map(|m| &m["content"]).collect();
    assert!(
        contents.contains(&&image) && contents.contains(&&text),
        "{contents:?}"
    );
    for message in &page {
        schemas.check("MessageBody", message);
        schemas.check("MessageContent", &message["content"]);
    }

    // Rows written in the older shapes (inbound text said `body`, replies had no `kind`) read
    // exactly as before.
    let before = page.clone();
    s.app
        .db
        .execute(r#"UPDATE messages SET content = '{"kind": "text", "body": "hello?"}' WHERE direction = 'INBOUND'"#)
        .await;
    s.app
        .db
        .execute(
            r#"UPDATE messages SET content = '{"text": "on its way"}' WHERE direction = 'OUTBOUND' AND content_type = 'text' AND CAST(content AS TEXT) LIKE '%on its way%'"#,
        )
        .await;
    s.app
        .db
        .execute(
            r#"UPDATE messages SET content = '{"url": "https://cdn.example.com/a.png", "caption": "this one"}' WHERE content_type = 'image'"#,
        )
        .await;
    let after = listed(&s.app, &messages, &s.token).await;
    let shapes = |page: &[Value]| page.iter().map(|m| m["content"].clone()).collect::<Vec<_>>();
    assert_eq!(shapes(&after), shapes(&before));

    // What cannot be sent says so, and nothing is stored.
    for (content, field) in [
        (
            json!({"kind": "reaction", "target_message_id": "wamid.1", "emoji": "👍"}),
            "content.kind",
        ),
        (json!({"kind": "image", "id": "1013859600285441"}), "content.id"),
        (
            json!({"kind": "file", "url": "ftp://example.com/a.pdf"}),
            "content.url",
        ),
    ] {
        let (status, body) = s.app.post(&messages, &s.token, json!({"content": content})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let (status, body) = s
        .app
        .post(
            &messages,
            &s.token,
            json!({"text": "a", "content": {"kind": "text", "text": "b"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(listed(&s.app, &messages, &s.token).await.len(), 4);
    assert!(
        s.platform
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == SEND_PATH)
            .count()
            == 3
    );
}

async fn listed(app: &common::TestApp, path: &str, token: &str) -> Vec<Value> {
    let (status, page) = app.get(path, token).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

backend_tests!(one_shape_in_every_direction);
