//! TikTok sends against a local fake: the exact request, and every classified error code
//! (TikTok answers errors with HTTP 200 and code != 0).

mod common;

use common::{TOKEN, assert_no_token, client_for, token};
use serde_json::json;
use snorq_connectors::{ErrorClass, OutboundContent, OutboundMessage, Platform, SendReceipt};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BUSINESS_ID: &str = "-000AcMeStOrEbUsInEsS0penId987654321";
const CONVERSATION: &str = "MS4wLjABAAAAexampleOpaqueConversationId0001";
// The trailing slash matters: without it TikTok answers 404.
const PATH: &str = "/open_api/v1.3/business/message/send/";

fn ok(message_id: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "code": 0, "message": "OK", "request_id": "req-1",
        "data": {"message": {"message_id": message_id}}
    }))
}

#[tokio::test]
async fn text_with_quote() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("access-token", TOKEN))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "business_id": BUSINESS_ID,
            "recipient_type": "CONVERSATION",
            "recipient": CONVERSATION,
            "message_type": "TEXT",
            "text": {"body": "Thanks! We ship to Brazil."},
            "referenced_message_info": {"referenced_message_id": "7456789012345678901"}
        })))
        // A 19-digit numeric id keeps every digit.
        .respond_with(ok(json!(7456789012345678902_u64)))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::text(CONVERSATION, "Thanks! We ship to Brazil.")
        .reply_to("7456789012345678901")
        .correlation("ignored by TikTok");
    let receipt = client
        .send(Platform::TikTok, BUSINESS_ID, &token(), &message)
        .await
        .unwrap();
    assert_eq!(
        receipt,
        SendReceipt {
            message_id: "7456789012345678902".into(),
            recipient_id: None
        }
    );
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests[0].headers.get("authorization").is_none(),
        "no Bearer header for TikTok"
    );
}

#[tokio::test]
async fn plain_text_has_no_quote() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(body_json(json!({
            "business_id": BUSINESS_ID,
            "recipient_type": "CONVERSATION",
            "recipient": CONVERSATION,
            "message_type": "TEXT",
            "text": {"body": "Hi"}
        })))
        .respond_with(ok(json!("7000000000000000001")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let receipt = client
        .send(
            Platform::TikTok,
            BUSINESS_ID,
            &token(),
            &OutboundMessage::text(CONVERSATION, "Hi"),
        )
        .await
        .unwrap();
    assert_eq!(receipt.message_id, "7000000000000000001");
}

#[tokio::test]
async fn media_by_url_is_refused_without_a_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok(json!("1")))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::new(
        CONVERSATION,
        OutboundContent::Image {
            url: "https://cdn.example/a.jpg".into(),
            caption: None,
        },
    );
    let error = client
        .send(Platform::TikTok, BUSINESS_ID, &token(), &message)
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::InvalidRequest);
}

/// docs/platforms.md, "TikTok error codes".
const ERROR_TABLE: &[(i64, ErrorClass)] = &[
    (40000, ErrorClass::InvalidRequest),
    (40002, ErrorClass::InvalidRequest),
    (40001, ErrorClass::Permanent),
    (40125, ErrorClass::Permanent),
    (40118, ErrorClass::Permanent),
    (40007, ErrorClass::Permanent),
    (40016, ErrorClass::RateLimited),
    (40100, ErrorClass::RateLimited),
    (40133, ErrorClass::RateLimited),
    (40050, ErrorClass::Permanent),
    (40102, ErrorClass::Auth),
    (40104, ErrorClass::Auth),
    (40105, ErrorClass::Auth),
    (40103, ErrorClass::Auth),
    (40107, ErrorClass::Auth),
    (40110, ErrorClass::Permanent),
    (40101, ErrorClass::Permanent),
    (40113, ErrorClass::Permanent),
    (40202, ErrorClass::Transient),
    (40902, ErrorClass::Transient),
    (40903, ErrorClass::Transient),
    (40913, ErrorClass::Transient),
    (40907, ErrorClass::InvalidRequest),
    (40908, ErrorClass::InvalidRequest),
    (40904, ErrorClass::InvalidRequest),
    (40064, ErrorClass::WindowClosed),
    (50000, ErrorClass::Transient),
    (50002, ErrorClass::Transient),
    (51305, ErrorClass::Transient),
    (60001, ErrorClass::Transient),
];

#[tokio::test]
async fn every_error_code_is_classified() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::text(CONVERSATION, "hello");
    for &(code, class) in ERROR_TABLE {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(PATH))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "code": code, "message": format!("error {code}"), "request_id": "req-9", "data": {}
            })))
            .mount(&server)
            .await;
        let error = client
            .send(Platform::TikTok, BUSINESS_ID, &token(), &message)
            .await
            .unwrap_err();
        assert_eq!(error.class, class, "code {code}");
        assert_eq!(error.code, Some(code));
        assert_eq!(error.http_status, Some(200));
        assert_eq!(error.platform, Platform::TikTok);
        assert_eq!(error.message, format!("error {code}"));
        assert_eq!(error.trace_id.as_deref(), Some("req-9"));
        assert_no_token(&error);
    }
}

#[tokio::test]
async fn http_failures_and_odd_successes() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::text(CONVERSATION, "hello");
    let cases = [
        (
            ResponseTemplate::new(500).set_body_string("oops"),
            ErrorClass::Transient,
        ),
        // Wrong path / method: TikTok answers 404 without an envelope.
        (ResponseTemplate::new(404), ErrorClass::Permanent),
        (
            ResponseTemplate::new(429).insert_header("retry-after", "60"),
            ErrorClass::RateLimited,
        ),
        // Success code without a message id: it may have gone out.
        (
            ResponseTemplate::new(200).set_body_json(json!({"code": 0, "message": "OK", "data": {}})),
            ErrorClass::OutcomeUnknown,
        ),
    ];
    for (response, class) in cases {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(response)
            .mount(&server)
            .await;
        let error = client
            .send(Platform::TikTok, BUSINESS_ID, &token(), &message)
            .await
            .unwrap_err();
        assert_eq!(error.class, class, "{error}");
        if class == ErrorClass::RateLimited {
            assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(60)));
        }
    }
}
