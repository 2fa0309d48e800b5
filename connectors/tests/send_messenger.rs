//! Messenger sends against a local fake: the exact request, and every classified error code.

mod common;

use common::{TOKEN, assert_no_token, client_for, graph_error, token};
use serde_json::json;
use snorq_connectors::{ErrorClass, MessagingType, OutboundContent, OutboundMessage, Platform, SendReceipt};
use wiremock::matchers::{body_json, header, method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PAGE_ID: &str = "108765432109876";
const PSID: &str = "24681357913572468";
const PATH: &str = "/v24.0/108765432109876/messages";

async fn expect_body(server: &MockServer, body: serde_json::Value) {
    server.reset().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(query_param_is_missing("access_token"))
        .and(body_json(body))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"recipient_id": PSID, "message_id": "m_SENT"})),
        )
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn text_reply_with_metadata() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    expect_body(
        &server,
        json!({
            "recipient": {"id": PSID},
            "messaging_type": "RESPONSE",
            "message": {"text": "Yes, size M is in stock.", "metadata": "outbound:8f14e45f"}
        }),
    )
    .await;
    // Messenger's Send API has no quoting: reply_to is left out of the request.
    let message = OutboundMessage::text(PSID, "Yes, size M is in stock.")
        .correlation("outbound:8f14e45f")
        .reply_to("m_QUOTED");
    let receipt = client
        .send(Platform::Facebook, PAGE_ID, &token(), &message)
        .await
        .unwrap();
    assert_eq!(
        receipt,
        SendReceipt {
            message_id: "m_SENT".into(),
            recipient_id: Some(PSID.into())
        }
    );
}

#[tokio::test]
async fn human_agent_tag_and_update() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    expect_body(
        &server,
        json!({
            "recipient": {"id": PSID},
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "message": {"text": "Sorry for the wait!"}
        }),
    )
    .await;
    let message =
        OutboundMessage::text(PSID, "Sorry for the wait!").messaging_type(MessagingType::HumanAgent);
    client
        .send(Platform::Facebook, PAGE_ID, &token(), &message)
        .await
        .unwrap();
    server.verify().await;

    expect_body(
        &server,
        json!({
            "recipient": {"id": PSID},
            "messaging_type": "UPDATE",
            "message": {"text": "Your order shipped."}
        }),
    )
    .await;
    let message = OutboundMessage::text(PSID, "Your order shipped.").messaging_type(MessagingType::Update);
    client
        .send(Platform::Facebook, PAGE_ID, &token(), &message)
        .await
        .unwrap();
}

#[tokio::test]
async fn media_attachments_by_url() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let cases = [
        (
            OutboundContent::Image {
                url: "https://cdn.example/a.jpg".into(),
                caption: None,
            },
            "image",
        ),
        (
            OutboundContent::Video {
                url: "https://cdn.example/a.jpg".into(),
                caption: None,
            },
            "video",
        ),
        (
            OutboundContent::Audio {
                url: "https://cdn.example/a.jpg".into(),
            },
            "audio",
        ),
        (
            OutboundContent::File {
                url: "https://cdn.example/a.jpg".into(),
                filename: None,
                caption: None,
            },
            "file",
        ),
    ];
    for (content, kind) in cases {
        expect_body(
            &server,
            json!({
                "recipient": {"id": PSID},
                "messaging_type": "RESPONSE",
                "message": {"attachment": {"type": kind, "payload": {"url": "https://cdn.example/a.jpg", "is_reusable": false}}}
            }),
        )
        .await;
        let receipt = client
            .send(
                Platform::Facebook,
                PAGE_ID,
                &token(),
                &OutboundMessage::new(PSID, content),
            )
            .await
            .unwrap();
        assert_eq!(receipt.message_id, "m_SENT");
        server.verify().await;
    }
}

#[tokio::test]
async fn captions_are_refused_without_a_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::new(
        PSID,
        OutboundContent::Image {
            url: "https://cdn.example/a.jpg".into(),
            caption: Some("hi".into()),
        },
    );
    let error = client
        .send(Platform::Facebook, PAGE_ID, &token(), &message)
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::InvalidRequest);
}

/// docs/platforms.md, "Messenger error codes" (+ "Generic Graph error codes").
const ERROR_TABLE: &[(i64, Option<i64>, u16, ErrorClass)] = &[
    (1200, None, 500, ErrorClass::Transient),
    (1, Some(99), 500, ErrorClass::Transient),
    (1, Some(1357046), 500, ErrorClass::Transient),
    (2, None, 500, ErrorClass::Transient),
    (2, Some(2018344), 400, ErrorClass::Permanent),
    (4, None, 400, ErrorClass::RateLimited),
    (4, Some(2018354), 400, ErrorClass::Permanent),
    (17, None, 400, ErrorClass::RateLimited),
    (32, None, 400, ErrorClass::RateLimited),
    (80006, None, 400, ErrorClass::RateLimited),
    (613, None, 400, ErrorClass::RateLimited),
    (10, Some(2018278), 400, ErrorClass::WindowClosed),
    (10, Some(2018065), 400, ErrorClass::WindowClosed),
    (10, Some(2018108), 400, ErrorClass::WindowClosed),
    (100, Some(2018001), 400, ErrorClass::RecipientUnavailable),
    (100, None, 400, ErrorClass::InvalidRequest),
    (190, None, 400, ErrorClass::Auth),
    (200, None, 403, ErrorClass::Permanent),
    (230, None, 400, ErrorClass::Permanent),
    (10, None, 400, ErrorClass::Permanent),
    (10, Some(2534041), 400, ErrorClass::Permanent),
    (551, Some(1545041), 400, ErrorClass::RecipientUnavailable),
    (368, None, 400, ErrorClass::Permanent),
];

#[tokio::test]
async fn every_error_code_is_classified() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::text(PSID, "hello");
    for &(code, subcode, status, class) in ERROR_TABLE {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(PATH))
            .respond_with(ResponseTemplate::new(status).set_body_json(graph_error(code, subcode, "failure")))
            .mount(&server)
            .await;
        let error = client
            .send(Platform::Facebook, PAGE_ID, &token(), &message)
            .await
            .unwrap_err();
        assert_eq!(error.class, class, "code {code}/{subcode:?}");
        assert_eq!((error.code, error.subcode), (Some(code), subcode));
        assert_eq!(error.http_status, Some(status));
        assert_eq!(error.platform, Platform::Facebook);
        assert_eq!(error.message, "failure");
        assert_no_token(&error);
    }
}
