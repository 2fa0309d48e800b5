//! Token calls against a local fake: TikTok refresh and code exchange, Meta code exchange.

mod common;

use common::{assert_no_token, client_for};
use serde_json::json;
use snorq_connectors::{ErrorClass, MetaApp, Platform, Secret, TikTokApp};
use wiremock::matchers::{body_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn tiktok_app() -> TikTokApp {
    TikTokApp {
        app_id: "7312345678901234567".into(),
        app_secret: Secret::new("tiktok-app-secret"),
    }
}

fn meta_app() -> MetaApp {
    MetaApp {
        app_id: "1517776481860111".into(),
        app_secret: Secret::new("meta-app-secret"),
    }
}

fn tiktok_tokens() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "code": 0, "message": "OK", "request_id": "req",
        "data": {
            "access_token": "act.new-access", "expires_in": 86400,
            "refresh_token": "rft.new-refresh", "refresh_token_expires_in": 31536000,
            "open_id": "-000AcMeStOrEbUsInEsS0penId987654321",
            "scope": "message.list.read,message.list.send", "token_type": "Bearer"
        }
    }))
}

#[tokio::test]
async fn tiktok_refresh() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/open_api/v1.3/tt_user/oauth2/refresh_token/"))
        .and(body_json(json!({
            "client_id": "7312345678901234567",
            "client_secret": "tiktok-app-secret",
            "grant_type": "refresh_token",
            "refresh_token": "rft.old-refresh"
        })))
        .respond_with(tiktok_tokens())
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let tokens = client
        .tiktok_refresh_token(&tiktok_app(), &Secret::new("rft.old-refresh"))
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "act.new-access");
    assert_eq!(tokens.refresh_token.expose(), "rft.new-refresh");
    assert_eq!(tokens.expires_in, Some(chrono::Duration::hours(24)));
    assert_eq!(tokens.refresh_expires_in, Some(chrono::Duration::days(365)));
    assert_eq!(
        tokens.open_id.as_deref(),
        Some("-000AcMeStOrEbUsInEsS0penId987654321")
    );
    let shown = format!("{tokens:?}");
    assert!(
        !shown.contains("act.new-access") && !shown.contains("rft.new-refresh"),
        "{shown}"
    );
}

#[tokio::test]
async fn tiktok_code_exchange() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/open_api/v1.3/tt_user/oauth2/token/"))
        .and(body_json(json!({
            "client_id": "7312345678901234567",
            "client_secret": "tiktok-app-secret",
            "grant_type": "authorization_code",
            "auth_code": "code-123",
            "redirect_uri": "https://snorq.example/oauth/tiktok/callback"
        })))
        .respond_with(tiktok_tokens())
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let tokens = client
        .tiktok_exchange_code(
            &tiktok_app(),
            &Secret::new("code-123"),
            "https://snorq.example/oauth/tiktok/callback",
        )
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "act.new-access");
}

#[tokio::test]
async fn tiktok_dead_refresh_token_is_an_auth_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "code": 40107, "message": "refresh token rft.old-refresh is invalid", "request_id": "req"
        })))
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let error = client
        .tiktok_refresh_token(&tiktok_app(), &Secret::new("rft.old-refresh"))
        .await
        .unwrap_err();
    assert_eq!((error.class, error.code), (ErrorClass::Auth, Some(40107)));
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("rft.old-refresh"), "{shown}");
}

#[tokio::test]
async fn meta_code_exchange_and_long_lived_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v24.0/oauth/access_token"))
        .and(query_param("client_id", "1517776481860111"))
        .and(query_param("client_secret", "meta-app-secret"))
        .and(query_param("code", "AQB-code"))
        .and(query_param("redirect_uri", "https://snorq.example/cb"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "EAAG-business-token", "token_type": "bearer"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v24.0/oauth/access_token"))
        .and(query_param("grant_type", "fb_exchange_token"))
        .and(query_param("fb_exchange_token", "EAAG-short"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "EAAG-long", "token_type": "bearer", "expires_in": 5184000}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let token = client
        .meta_exchange_code(
            Platform::WhatsApp,
            &meta_app(),
            &Secret::new("AQB-code"),
            Some("https://snorq.example/cb"),
        )
        .await
        .unwrap();
    assert_eq!(token.access_token.expose(), "EAAG-business-token");
    assert_eq!(token.expires_in, None, "business tokens do not expire");
    let long = client
        .meta_exchange_long_lived(Platform::Facebook, &meta_app(), &Secret::new("EAAG-short"))
        .await
        .unwrap();
    assert_eq!(long.access_token.expose(), "EAAG-long");
    assert_eq!(long.expires_in, Some(chrono::Duration::days(60)));
    assert!(!format!("{long:?}").contains("EAAG-long"));
}

#[tokio::test]
async fn meta_exchange_errors_hide_the_secrets() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Invalid verification code format: AQB-code (secret meta-app-secret)",
            "type": "OAuthException", "code": 100, "error_subcode": 36009, "fbtrace_id": "x"
        }})))
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let error = client
        .meta_exchange_code(Platform::Facebook, &meta_app(), &Secret::new("AQB-code"), None)
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::InvalidRequest);
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("AQB-code") && !shown.contains("meta-app-secret"),
        "{shown}"
    );

    // A transport failure must not print the URL, whose query holds the app secret.
    let unreachable = client_for(&common::closed_port_url());
    let error = unreachable
        .meta_exchange_code(Platform::Facebook, &meta_app(), &Secret::new("AQB-code"), None)
        .await
        .unwrap_err();
    assert_eq!(error.class, ErrorClass::Transient);
    let shown = format!("{error} {error:?}");
    assert!(
        !shown.contains("meta-app-secret") && !shown.contains("AQB-code"),
        "{shown}"
    );
    assert_no_token(&error);
}
