//! WhatsApp sends against a local fake: the exact request, and every classified error code.

mod common;

use std::time::Duration;

use common::{TOKEN, assert_no_token, client_for, graph_error, token};
use serde_json::json;
use snorq_connectors::{
    Client, ClientConfig, ErrorClass, OutboundContent, OutboundMessage, Platform, SendReceipt,
};
use wiremock::matchers::{body_json, header, method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PHONE_NUMBER_ID: &str = "204512345678901";
const PATH: &str = "/v24.0/204512345678901/messages";

fn accepted(wamid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "+5511987654321", "wa_id": "5511987654321"}],
        "messages": [{"id": wamid}]
    }))
}

async fn expect_body(server: &MockServer, body: serde_json::Value) {
    server.reset().await;
    Mock::given(method("POST"))
        .and(path(PATH))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .and(header("content-type", "application/json"))
        .and(query_param_is_missing("access_token"))
        .and(body_json(body))
        .respond_with(accepted("wamid.OK"))
        .expect(1)
        .mount(server)
        .await;
}

async fn send(
    client: &Client,
    message: &OutboundMessage,
) -> Result<SendReceipt, snorq_connectors::SendError> {
    client
        .send(Platform::WhatsApp, PHONE_NUMBER_ID, &token(), message)
        .await
}

#[tokio::test]
async fn text_with_reply_and_correlation() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    expect_body(
        &server,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "+5511987654321",
            "type": "text",
            "text": {"body": "Your order shipped today.", "preview_url": false},
            "context": {"message_id": "wamid.QUOTED"},
            "biz_opaque_callback_data": "outbound:42"
        }),
    )
    .await;
    let message = OutboundMessage::text("+5511987654321", "Your order shipped today.")
        .reply_to("wamid.QUOTED")
        .correlation("outbound:42");
    let receipt = send(&client, &message).await.unwrap();
    assert_eq!(
        receipt,
        SendReceipt {
            message_id: "wamid.OK".into(),
            recipient_id: Some("5511987654321".into())
        }
    );
}

#[tokio::test]
async fn plain_text_and_media_by_link() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let base = |kind: &str, object: serde_json::Value| {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "5511987654321",
            "type": kind,
        });
        body[kind] = object;
        body
    };
    let cases = [
        (
            OutboundContent::Text { body: "Hi".into() },
            base("text", json!({"body": "Hi", "preview_url": false})),
        ),
        (
            OutboundContent::Image {
                url: "https://cdn.example/a.jpg".into(),
                caption: Some("Invoice".into()),
            },
            base(
                "image",
                json!({"link": "https://cdn.example/a.jpg", "caption": "Invoice"}),
            ),
        ),
        (
            OutboundContent::Video {
                url: "https://cdn.example/v.mp4".into(),
                caption: None,
            },
            base("video", json!({"link": "https://cdn.example/v.mp4"})),
        ),
        (
            OutboundContent::Audio {
                url: "https://cdn.example/a.ogg".into(),
            },
            base("audio", json!({"link": "https://cdn.example/a.ogg"})),
        ),
        (
            OutboundContent::File {
                url: "https://cdn.example/i.pdf".into(),
                filename: Some("invoice.pdf".into()),
                caption: Some("Your invoice".into()),
            },
            base(
                "document",
                json!({"link": "https://cdn.example/i.pdf", "caption": "Your invoice", "filename": "invoice.pdf"}),
            ),
        ),
    ];
    for (content, body) in cases {
        expect_body(&server, body).await;
        let receipt = send(&client, &OutboundMessage::new("5511987654321", content))
            .await
            .unwrap();
        assert_eq!(receipt.message_id, "wamid.OK");
        server.verify().await;
    }
}

/// docs/platforms.md, "WhatsApp error codes" (+ "Generic Graph error codes"), with the HTTP
/// status Meta lists.
const ERROR_TABLE: &[(i64, u16, ErrorClass)] = &[
    (0, 401, ErrorClass::Auth),
    (190, 401, ErrorClass::Auth),
    (3, 500, ErrorClass::Permanent),
    (10, 403, ErrorClass::Permanent),
    (200, 403, ErrorClass::Permanent),
    (4, 429, ErrorClass::RateLimited),
    (80007, 429, ErrorClass::RateLimited),
    (130429, 429, ErrorClass::RateLimited),
    (131048, 429, ErrorClass::RateLimited),
    (131056, 429, ErrorClass::RateLimited),
    (133016, 429, ErrorClass::RateLimited),
    (131064, 400, ErrorClass::RateLimited),
    (1, 400, ErrorClass::Transient),
    (2, 503, ErrorClass::Transient),
    (131000, 500, ErrorClass::Transient),
    (131016, 503, ErrorClass::Transient),
    (131057, 500, ErrorClass::Transient),
    (131052, 400, ErrorClass::Transient),
    (131053, 400, ErrorClass::Transient),
    (33, 400, ErrorClass::InvalidRequest),
    (100, 400, ErrorClass::InvalidRequest),
    (131008, 400, ErrorClass::InvalidRequest),
    (131009, 400, ErrorClass::InvalidRequest),
    (131021, 400, ErrorClass::InvalidRequest),
    (131026, 400, ErrorClass::RecipientUnavailable),
    (131030, 400, ErrorClass::Permanent),
    (131031, 403, ErrorClass::Permanent),
    (131042, 400, ErrorClass::Permanent),
    (131044, 400, ErrorClass::Permanent),
    (131045, 400, ErrorClass::Permanent),
    (131047, 400, ErrorClass::WindowClosed),
    (131049, 400, ErrorClass::Permanent),
    (131050, 400, ErrorClass::RecipientUnavailable),
    (131051, 400, ErrorClass::InvalidRequest),
    (131062, 400, ErrorClass::Permanent),
    (131063, 400, ErrorClass::Permanent),
    (131037, 400, ErrorClass::Permanent),
    (132000, 400, ErrorClass::InvalidRequest),
    (132001, 400, ErrorClass::InvalidRequest),
    (132015, 400, ErrorClass::Permanent),
    (132016, 400, ErrorClass::Permanent),
    (132068, 400, ErrorClass::Permanent),
    (132069, 400, ErrorClass::RateLimited),
    (135000, 400, ErrorClass::Permanent),
    (368, 403, ErrorClass::Permanent),
    (130472, 400, ErrorClass::RecipientUnavailable),
    (130497, 403, ErrorClass::Permanent),
    (137000, 400, ErrorClass::InvalidRequest),
];

#[tokio::test]
async fn every_error_code_is_classified() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::text("5511987654321", "hello");
    for &(code, status, class) in ERROR_TABLE {
        server.reset().await;
        Mock::given(method("POST"))
            .and(path(PATH))
            .respond_with(ResponseTemplate::new(status).set_body_json(graph_error(
                code,
                None,
                &format!("(#{code}) error {code}"),
            )))
            .mount(&server)
            .await;
        let error = send(&client, &message).await.unwrap_err();
        assert_eq!(error.class, class, "code {code}");
        assert_eq!(error.code, Some(code));
        assert_eq!(error.subcode, None);
        assert_eq!(error.http_status, Some(status));
        assert_eq!(error.platform, Platform::WhatsApp);
        assert_eq!(error.message, format!("(#{code}) error {code}"));
        assert_eq!(error.details, Some(format!("details of {code}")));
        assert_eq!(error.trace_id.as_deref(), Some("AbC123"));
        assert_no_token(&error);
    }
}

#[tokio::test]
async fn rate_limits_carry_retry_after() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "17")
                .set_body_json(graph_error(130429, None, "Rate limit hit")),
        )
        .mount(&server)
        .await;
    let error = send(&client, &OutboundMessage::text("1", "x")).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::RateLimited);
    assert_eq!(error.retry_after, Some(Duration::from_secs(17)));

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header(
                    "x-business-use-case-usage",
                    r#"{"310245987654321":[{"type":"whatsapp","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":3}]}"#,
                )
                .set_body_json(graph_error(80007, None, "Rate limit issues")),
        )
        .mount(&server)
        .await;
    let error = send(&client, &OutboundMessage::text("1", "x")).await.unwrap_err();
    assert_eq!(error.retry_after, Some(Duration::from_secs(180)));
}

#[tokio::test]
async fn responses_without_a_graph_error() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::text("1", "x");
    for (status, class) in [
        (502, ErrorClass::Transient),
        (429, ErrorClass::RateLimited),
        (401, ErrorClass::Auth),
        (404, ErrorClass::Permanent),
    ] {
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_string("<html>Bad gateway</html>"))
            .mount(&server)
            .await;
        let error = send(&client, &message).await.unwrap_err();
        assert_eq!(
            (error.class, error.http_status, error.code),
            (class, Some(status), None)
        );
    }
    // Accepted, but no id to record: never reported as success.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": []})))
        .mount(&server)
        .await;
    let error = send(&client, &message).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::OutcomeUnknown);
    assert!(error.message.contains("may have accepted"), "{}", error.message);
}

#[tokio::test]
async fn every_call_has_a_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted("wamid.LATE").set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let config = ClientConfig {
        timeout: Duration::from_millis(200),
        ..ClientConfig::with_base_url(&server.uri())
    };
    let client = Client::new(config).unwrap();
    let started = std::time::Instant::now();
    let error = send(&client, &OutboundMessage::text("1", "x")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    // The request was sent: the platform may still accept it, so it must not be repeated.
    assert_eq!(error.class, ErrorClass::OutcomeUnknown);
    assert_eq!(error.http_status, None);
    assert!(error.message.contains("no response within"), "{}", error.message);
}

#[tokio::test]
async fn unreachable_platform_is_transient() {
    let client = client_for(&common::closed_port_url());
    let error = send(&client, &OutboundMessage::text("1", "x")).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient);
    assert_no_token(&error);
}

#[tokio::test]
async fn the_token_never_shows() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    // A platform message that echoes the token back.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(graph_error(
            190,
            Some(463),
            &format!("Invalid OAuth access token - Cannot parse access token {TOKEN}"),
        )))
        .mount(&server)
        .await;
    let error = send(&client, &OutboundMessage::text("1", "x")).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Auth);
    assert!(error.message.contains("[redacted]"));
    assert_no_token(&error);
    let shown = format!("{:?} {:?} {client:?}", token(), Some(token()));
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[tokio::test]
async fn bad_input_is_refused_before_any_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(accepted("wamid.NO"))
        .expect(0)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let message = OutboundMessage::text("5511987654321", "hi");
    for account in ["", "204/../x", "204?access_token=1"] {
        let error = client
            .send(Platform::WhatsApp, account, &token(), &message)
            .await
            .unwrap_err();
        assert_eq!(error.class, ErrorClass::InvalidRequest, "{account}");
    }
    let error = send(&client, &OutboundMessage::text("", "hi")).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::InvalidRequest);
    let error = send(&client, &OutboundMessage::text("1", "  "))
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::InvalidRequest);
}
