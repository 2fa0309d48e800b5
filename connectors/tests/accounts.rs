//! Account calls against a local fake: `/me`, `/me/accounts` paging, webhook subscriptions,
//! Graph `debug_token` and TikTok `token_info`.

mod common;

use chrono::DateTime;
use common::{TOKEN, assert_no_token, client_for, graph_error, token};
use serde_json::json;
use snorq_connectors::{ApiError, ErrorClass, MetaApp, Platform, Secret, TikTokApp};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockBuilder, MockServer, ResponseTemplate};

const PAGE_ID: &str = "108765432109876";
const WABA_ID: &str = "102290129340398";
const SUBSCRIBED_FIELDS: &str = "messages,message_deliveries,message_reads,message_echoes,\
                                 messaging_postbacks,message_reactions,messaging_referrals";

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn meta_app() -> MetaApp {
    MetaApp {
        app_id: "1517776481860111".into(),
        app_secret: Secret::new("meta-app-secret"),
    }
}

fn tiktok_app() -> TikTokApp {
    TikTokApp {
        app_id: "7312345678901234567".into(),
        app_secret: Secret::new("tiktok-app-secret"),
    }
}

/// Fails if the token or an app secret shows in the error's Display or Debug.
fn assert_no_secret(error: &ApiError) {
    assert_no_token(error);
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("meta-app-secret") && !shown.contains("tiktok-app-secret"),
        "secret leaked: {shown}"
    );
}

#[tokio::test]
async fn me() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v24.0/me"))
        .and(query_param("fields", "id,name"))
        .and(query_param_is_missing("access_token"))
        .and(header("authorization", bearer().as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": 10229012934039812_u64, "name": "Ada"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let user = client_for(&server.uri())
        .meta_me(Platform::Facebook, &token())
        .await
        .unwrap();
    assert_eq!(user.id, "10229012934039812");
    assert_eq!(user.name.as_deref(), Some("Ada"));
}

#[tokio::test]
async fn me_without_an_id_is_unreadable() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "Ada"})))
        .mount(&server)
        .await;
    let error = client_for(&server.uri())
        .meta_me(Platform::WhatsApp, &token())
        .await
        .unwrap_err();
    assert_eq!(
        (error.platform, error.class),
        (Platform::WhatsApp, ErrorClass::Permanent)
    );
}

#[tokio::test]
async fn pages_follow_the_after_cursor_on_our_host() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v24.0/me/accounts"))
        .and(query_param("fields", "id,name,access_token"))
        .and(query_param("limit", "100"))
        .and(query_param_is_missing("after"))
        .and(query_param_is_missing("access_token"))
        .and(header("authorization", bearer().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"id": PAGE_ID, "name": "Acme Store", "access_token": "EAAG-page-1", "tasks": ["MESSAGING"]},
                // No token: the user has no task on this Page.
                {"id": "108765432100000", "name": "Read only"},
                "not an object",
                {"id": 108765432111111_u64, "access_token": "EAAG-page-2"}
            ],
            "paging": {
                "cursors": {"before": "CURSOR0", "after": "CURSOR1"},
                // Never followed verbatim: another host, with the token in the query.
                "next": format!("https://evil.example/v24.0/me/accounts?access_token={TOKEN}&after=CURSOR1")
            }
        })))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v24.0/me/accounts"))
        .and(query_param("fields", "id,name,access_token"))
        .and(query_param("after", "CURSOR1"))
        .and(query_param_is_missing("access_token"))
        .and(header("authorization", bearer().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "108765432122222", "name": "Acme Outlet", "access_token": "EAAG-page-3"}],
            // The last page: a cursor but no `next`.
            "paging": {"cursors": {"before": "CURSOR1", "after": "CURSOR2"}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let pages = client_for(&server.uri()).meta_pages(&token()).await.unwrap();
    let summary: Vec<_> = pages
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_deref(), p.access_token.expose()))
        .collect();
    assert_eq!(
        summary,
        [
            (PAGE_ID, Some("Acme Store"), "EAAG-page-1"),
            ("108765432111111", None, "EAAG-page-2"),
            ("108765432122222", Some("Acme Outlet"), "EAAG-page-3"),
        ]
    );
    let shown = format!("{pages:?}");
    assert!(!shown.contains("EAAG-page"), "{shown}");
    server.verify().await;
}

#[tokio::test]
async fn pages_stop_after_twenty_requests() {
    let server = MockServer::start().await;
    // A cursor that changes forever: paging must still end.
    Mock::given(method("GET"))
        .and(path("/v24.0/me/accounts"))
        .respond_with(|request: &wiremock::Request| {
            let n = request
                .url
                .query_pairs()
                .find(|(k, _)| k == "after")
                .and_then(|(_, v)| v.parse::<u32>().ok())
                .unwrap_or(0);
            ResponseTemplate::new(200).set_body_json(json!({
                "data": [{"id": format!("{}", 1000 + n), "access_token": "EAAG-page"}],
                "paging": {"cursors": {"after": format!("{}", n + 1)}, "next": "https://x"}
            }))
        })
        .expect(20)
        .mount(&server)
        .await;
    let pages = client_for(&server.uri()).meta_pages(&token()).await.unwrap();
    assert_eq!(pages.len(), 20);
    server.verify().await;
}

#[tokio::test]
async fn pages_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(
            190,
            Some(463),
            &format!("token {TOKEN} expired"),
        )))
        .mount(&server)
        .await;
    let error = client_for(&server.uri()).meta_pages(&token()).await.unwrap_err();
    assert_eq!(
        (error.platform, error.class, error.code, error.subcode),
        (Platform::Facebook, ErrorClass::Auth, Some(190), Some(463))
    );
    assert_no_secret(&error);

    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
        .mount(&server)
        .await;
    let error = client_for(&server.uri()).meta_pages(&token()).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::Permanent);
}

#[tokio::test]
async fn subscribe_page() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v24.0/{PAGE_ID}/subscribed_apps")))
        .and(query_param("subscribed_fields", SUBSCRIBED_FIELDS))
        .and(query_param_is_missing("access_token"))
        .and(header("authorization", bearer().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&server)
        .await;
    client_for(&server.uri())
        .meta_subscribe_page(PAGE_ID, &token())
        .await
        .unwrap();
}

#[tokio::test]
async fn subscribe_page_failures() {
    let server = MockServer::start().await;
    let client = client_for(&server.uri());
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": false})))
        .mount(&server)
        .await;
    let error = client.meta_subscribe_page(PAGE_ID, &token()).await.unwrap_err();
    assert_eq!(
        (error.platform, error.class, error.http_status),
        (Platform::Facebook, ErrorClass::Permanent, Some(200))
    );

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(
            190,
            None,
            &format!("Error validating access token {TOKEN}"),
        )))
        .mount(&server)
        .await;
    let error = client.meta_subscribe_page(PAGE_ID, &token()).await.unwrap_err();
    assert_eq!((error.class, error.code), (ErrorClass::Auth, Some(190)));
    assert_no_secret(&error);

    // An id that would change the path never reaches the platform.
    server.reset().await;
    let error = client
        .meta_subscribe_page("1/../messages", &token())
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::InvalidRequest);
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn subscribe_waba() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v24.0/{WABA_ID}/subscribed_apps")))
        .and(query_param_is_missing("access_token"))
        .and(header("authorization", bearer().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": "true"})))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    client.whatsapp_subscribe_waba(WABA_ID, &token()).await.unwrap();

    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": false})))
        .mount(&server)
        .await;
    let error = client
        .whatsapp_subscribe_waba(WABA_ID, &token())
        .await
        .unwrap_err();
    assert_eq!(
        (error.platform, error.class),
        (Platform::WhatsApp, ErrorClass::Permanent)
    );
    let error = client.whatsapp_subscribe_waba("", &token()).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::InvalidRequest);
}

#[tokio::test]
async fn waba_phone_numbers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/v24.0/{WABA_ID}/phone_numbers")))
        .and(header("authorization", bearer().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"id": "106540352242922", "display_phone_number": "+1 555-0100", "verified_name": "Acme"},
                {"display_phone_number": "no id"},
                {"id": "106540352242923"}
            ],
            "paging": {"cursors": {"before": "a", "after": "b"}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let numbers = client.whatsapp_phone_numbers(WABA_ID, &token()).await.unwrap();
    assert_eq!(numbers, ["106540352242922", "106540352242923"]);

    server.reset().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).set_body_json(graph_error(
            190,
            None,
            "Error validating access token",
        )))
        .mount(&server)
        .await;
    let error = client
        .whatsapp_phone_numbers(WABA_ID, &token())
        .await
        .unwrap_err();
    assert_eq!(
        (error.platform, error.class),
        (Platform::WhatsApp, ErrorClass::Auth)
    );
    assert_no_secret(&error);
    let error = client.whatsapp_phone_numbers("../x", &token()).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::InvalidRequest);
}

fn debug_token_mock() -> MockBuilder {
    Mock::given(method("GET"))
        .and(path("/v24.0/debug_token"))
        .and(query_param("input_token", TOKEN))
        .and(query_param("access_token", "1517776481860111|meta-app-secret"))
}

#[tokio::test]
async fn debug_token_valid() {
    let server = MockServer::start().await;
    debug_token_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "app_id": "1517776481860111", "type": "USER", "application": "Snorq",
            "data_access_expires_at": 1775001600, "expires_at": 1772409600, "is_valid": true,
            "scopes": ["pages_messaging"], "user_id": "10229012934039812"
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let info = client_for(&server.uri())
        .meta_debug_token(Platform::Facebook, &meta_app(), &token())
        .await
        .unwrap();
    assert!(info.is_valid);
    assert_eq!(info.expires_at, DateTime::from_timestamp(1_772_409_600, 0));
    assert_eq!(info.user_id.as_deref(), Some("10229012934039812"));
    assert_eq!(info.error_message, None);
}

#[tokio::test]
async fn debug_token_invalid_and_never_expiring() {
    let server = MockServer::start().await;
    debug_token_mock()
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": {
            "app_id": "1517776481860111", "is_valid": false, "expires_at": 0, "user_id": 0,
            "error": {"code": 190, "subcode": 460,
                      "message": format!("The session {TOKEN} has been invalidated because the user changed their password.")}
        }})))
        .expect(1)
        .mount(&server)
        .await;
    let info = client_for(&server.uri())
        .meta_debug_token(Platform::WhatsApp, &meta_app(), &token())
        .await
        .unwrap();
    assert!(!info.is_valid);
    assert_eq!(info.expires_at, None, "0 means never");
    let message = info.error_message.unwrap();
    assert!(message.contains("changed their password"), "{message}");
    assert!(!message.contains(TOKEN), "{message}");
}

#[tokio::test]
async fn debug_token_errors_hide_the_secrets() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(graph_error(
            190,
            None,
            &format!("Invalid OAuth access token 1517776481860111|meta-app-secret for {TOKEN}"),
        )))
        .mount(&server)
        .await;
    let error = client_for(&server.uri())
        .meta_debug_token(Platform::Facebook, &meta_app(), &token())
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Auth);
    assert_no_secret(&error);

    // A transport failure must not print the URL, whose query holds both secrets.
    let error = client_for(&common::closed_port_url())
        .meta_debug_token(Platform::Facebook, &meta_app(), &token())
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient);
    assert_no_secret(&error);
}

#[tokio::test]
async fn tiktok_token_info() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/open_api/v1.3/tt_user/token_info/get/"))
        .and(body_json(
            json!({"app_id": "7312345678901234567", "access_token": TOKEN}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 0, "message": "OK", "request_id": "req",
            "data": {
                "app_id": "7312345678901234567",
                "creator_id": "-000AcMeStOrEbUsInEsS0penId987654321",
                "scope": "user.info.basic,message.list.read,message.list.send"
            }
        })))
        .expect(1)
        .mount(&server)
        .await;
    let info = client_for(&server.uri())
        .tiktok_token_info(&tiktok_app(), &token())
        .await
        .unwrap();
    assert_eq!(
        info.open_id.as_deref(),
        Some("-000AcMeStOrEbUsInEsS0penId987654321")
    );
    assert_eq!(
        info.scope.as_deref(),
        Some("user.info.basic,message.list.read,message.list.send")
    );
}

#[tokio::test]
async fn tiktok_token_info_invalid_token_is_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 40105, "message": format!("Access token {TOKEN} is invalid"), "request_id": "req-9"
        })))
        .mount(&server)
        .await;
    let error = client_for(&server.uri())
        .tiktok_token_info(&tiktok_app(), &token())
        .await
        .unwrap_err();
    assert_eq!(
        (error.platform, error.class, error.code),
        (Platform::TikTok, ErrorClass::Auth, Some(40105))
    );
    assert_eq!(error.trace_id.as_deref(), Some("req-9"));
    assert_no_secret(&error);
}
