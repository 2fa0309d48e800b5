//! Connecting accounts through OAuth, refreshing TikTok tokens, checking connections and
//! Meta's deauthorize callback, on both backends, against a fake platform (wiremock): every
//! flow end to end, and its failures (denied consent, bad code, bad / expired / reused state,
//! token endpoint 5xx, dead refresh token, two processes refreshing at once, forged signature).

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use snorq::crypto::SecretField;
use snorq_connectors::verify::meta_signed_request;
use uuid::Uuid;
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::{Backend, META_SECRET, TestApp, assert_problem, str_of, with_webhook_secrets};

const PUBLIC_URL: &str = "http://snorq.test";
const META_APP_ID: &str = "1517776481860111";
const TIKTOK_APP_ID: &str = "7312345678901234567";
const OPEN_ID: &str = "tt-open-id-1";
const TT_TOKEN: &str = "/open_api/v1.3/tt_user/oauth2/token/";
const TT_REFRESH: &str = "/open_api/v1.3/tt_user/oauth2/refresh_token/";
const TT_INFO: &str = "/open_api/v1.3/tt_user/token_info/get/";
const META_TOKEN: &str = "/v24.0/oauth/access_token";

struct Setup {
    app: TestApp,
    platform: MockServer,
    owner: String,
    org: String,
    /// Does not follow redirects: the callback's 303 is what is checked.
    browser: reqwest::Client,
}

async fn setup(backend: Backend) -> Setup {
    setup_with(backend, |_| {}).await
}

async fn setup_with(backend: Backend, configure: impl FnOnce(&mut snorq::config::RawConfig)) -> Setup {
    let platform = MockServer::start().await;
    let uri = platform.uri();
    let app = TestApp::spawn_with(backend, |c| {
        with_webhook_secrets(c);
        c.graph_base_url = Some(uri.clone());
        c.tiktok_base_url = Some(uri.clone());
        c.facebook_dialog_base_url = Some(uri.clone());
        c.tiktok_authorize_url = Some(format!("{uri}/v2/auth/authorize/"));
        c.public_url = Some(PUBLIC_URL.into());
        c.facebook_app_id = Some(META_APP_ID.into());
        c.whatsapp_app_id = Some(META_APP_ID.into());
        c.tiktok_app_id = Some(TIKTOK_APP_ID.into());
        c.send_timeout_secs = 3;
        // The tests run the refresh passes themselves.
        c.token_refresh_interval_secs = 3600;
        configure(c);
    })
    .await;
    let (owner, _) = app.signup("owner@example.com").await;
    let org = app.create_org(&owner, "Acme").await;
    // The admin's browser: it starts the flows (keeping the binding cookie) and follows them.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    Setup {
        app,
        platform,
        owner,
        org,
        browser,
    }
}

/// Where a callback sent the browser: its status and the return URL's query.
enum Answer {
    Redirect(HashMap<String, String>),
    Problem(StatusCode, Value),
}

impl Answer {
    fn redirect(self) -> HashMap<String, String> {
        match self {
            Answer::Redirect(query) => query,
            Answer::Problem(status, body) => panic!("expected a redirect, got {status}: {body}"),
        }
    }

    fn problem(self, expected: StatusCode, code: &str) {
        match self {
            Answer::Problem(status, body) => assert_problem(status, &body, expected, code),
            Answer::Redirect(query) => panic!("expected {expected}, got a redirect with {query:?}"),
        }
    }
}

impl Setup {
    async fn start(&self, platform: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.start_in(&self.org, platform, token, body).await
    }

    /// Starts a flow from the admin's browser (which keeps the `snorq_connect` cookie).
    async fn start_in(
        &self,
        org: &str,
        platform: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let path = format!("/api/v1/orgs/{org}/connections/oauth/{platform}/start");
        let mut request = self.browser.post(self.app.url(&path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("start");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A started flow's state (as the owner).
    async fn state(&self, platform: &str) -> String {
        let (status, body) = self.start(platform, &self.owner, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        str_of(&body["state"])
    }

    async fn callback(&self, platform: &str, query: &[(&str, &str)]) -> Answer {
        let mut url = url::Url::parse(&self.app.url(&format!("/oauth/{platform}/callback"))).unwrap();
        url.query_pairs_mut().extend_pairs(query);
        let response = self.browser.get(url).send().await.expect("callback");
        let status = response.status();
        if status == StatusCode::SEE_OTHER {
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            let url = url::Url::parse(&location).expect("absolute return URL");
            assert!(
                location.starts_with(&format!("{PUBLIC_URL}/dashboard/connections?")),
                "{location}"
            );
            return Answer::Redirect(url.query_pairs().into_owned().collect());
        }
        Answer::Problem(status, response.json().await.unwrap_or(Value::Null))
    }

    async fn connections(&self) -> Vec<Value> {
        let (status, body) = self
            .app
            .get(&format!("/api/v1/orgs/{}/connections", self.org), &self.owner)
            .await;
        assert_eq!(status, StatusCode::OK);
        body["items"].as_array().unwrap().clone()
    }

    async fn connection_count(&self) -> i64 {
        self.app
            .db
            .count("SELECT COUNT(*) FROM platform_connections")
            .await
    }

    /// The connection's token in clear, read from the database like the workers do.
    async fn stored_token(&self, id: &str, field: SecretField) -> String {
        let column = match field {
            SecretField::ConnectionAccessToken => "access_token_enc",
            SecretField::ConnectionRefreshToken => "refresh_token_enc",
        };
        let envelope = self
            .app
            .db
            .rows(&format!(
                "SELECT {column} FROM platform_connections WHERE {}",
                id_condition(self.app.db.backend(), id)
            ))
            .await;
        let envelope = envelope.first().expect("the connection");
        self.app
            .app
            .vault
            .decrypt(field, Uuid::parse_str(id).unwrap(), envelope)
            .expect("decrypts for its row")
    }

    async fn event_kinds(&self) -> Vec<String> {
        self.app
            .db
            .rows("SELECT kind FROM events WHERE kind LIKE 'connection.%' ORDER BY id")
            .await
    }

    async fn requests_to(&self, route: &str) -> Vec<wiremock::Request> {
        self.platform
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == route)
            .collect()
    }

    /// Connects the TikTok account through the whole flow; the connection's id.
    async fn connect_tiktok(&self, access: &str, refresh: &str) -> String {
        let _guard = tiktok_tokens(TT_TOKEN, access, refresh)
            .mount_as_scoped(&self.platform)
            .await;
        let state = self.state("tiktok").await;
        let query = self
            .callback("tiktok", &[("code", "c1"), ("state", &state)])
            .await
            .redirect();
        assert_eq!(query["status"], "connected", "{query:?}");
        query["connection_ids"].clone()
    }
}

/// `id = '<uuid>'` on either backend (SQLite keeps ids as 16-byte blobs).
fn id_condition(backend: Backend, id: &str) -> String {
    match backend {
        Backend::Postgres => format!("id = '{id}'"),
        Backend::Sqlite => format!("hex(id) = '{}'", id.replace('-', "").to_uppercase()),
    }
}

fn tiktok_ok(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"code": 0, "message": "OK", "request_id": "r1", "data": data}))
}

fn tiktok_error(code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"code": code, "message": message, "request_id": "r2", "data": {}}))
}

fn tiktok_token_body(access: &str, refresh: &str) -> Value {
    json!({
        "access_token": access, "expires_in": 86400, "refresh_token": refresh,
        "refresh_token_expires_in": 31536000, "open_id": OPEN_ID,
        "scope": "user.info.basic,message.list.send", "token_type": "Bearer"
    })
}

fn tiktok_tokens(route: &str, access: &str, refresh: &str) -> Mock {
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(tiktok_ok(tiktok_token_body(access, refresh)))
}

fn graph_error(status: u16, code: i64, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbC"}
    }))
}

async fn tiktok_connect_end_to_end(backend: Backend) {
    let s = setup(backend).await;
    let (status, started) = s.start("tiktok", &s.owner, None).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let authorize = url::Url::parse(&str_of(&started["authorize_url"])).unwrap();
    assert_eq!(authorize.path(), "/v2/auth/authorize/");
    let params: HashMap<String, String> = authorize.query_pairs().into_owned().collect();
    assert_eq!(params["client_key"], TIKTOK_APP_ID);
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["state"], str_of(&started["state"]));
    assert_eq!(
        params["redirect_uri"],
        format!("{PUBLIC_URL}/oauth/tiktok/callback")
    );
    assert!(params["scope"].contains("message.list.send"));

    Mock::given(method("POST"))
        .and(path(TT_TOKEN))
        .and(body_partial_json(json!({
            "client_id": TIKTOK_APP_ID, "grant_type": "authorization_code", "auth_code": "c1",
            "redirect_uri": format!("{PUBLIC_URL}/oauth/tiktok/callback"),
        })))
        .respond_with(tiktok_ok(tiktok_token_body("tt-access-1", "tt-refresh-1")))
        .expect(1)
        .mount(&s.platform)
        .await;
    let state = str_of(&started["state"]);
    let query = s
        .callback("tiktok", &[("code", "c1"), ("state", &state)])
        .await
        .redirect();
    assert_eq!(
        (query["status"].as_str(), query["platform"].as_str()),
        ("connected", "tiktok")
    );
    let id = query["connection_ids"].clone();

    let connections = s.connections().await;
    assert_eq!(connections.len(), 1);
    let c = &connections[0];
    assert_eq!(
        (str_of(&c["id"]), str_of(&c["platform_user_id"])),
        (id.clone(), OPEN_ID.to_owned())
    );
    assert_eq!(
        (c["status"].as_str(), c["has_refresh_token"].as_bool()),
        (Some("active"), Some(true))
    );
    let expires: chrono::DateTime<chrono::Utc> = str_of(&c["access_token_expires_at"]).parse().unwrap();
    let in_a_day = chrono::Utc::now() + chrono::Duration::hours(24);
    assert!((expires - in_a_day).num_seconds().abs() < 60, "{expires}");
    assert!(!c.to_string().contains("tt-access-1") && !c.to_string().contains("tt-refresh-1"));
    assert_eq!(
        s.stored_token(&id, SecretField::ConnectionAccessToken).await,
        "tt-access-1"
    );
    assert_eq!(
        s.stored_token(&id, SecretField::ConnectionRefreshToken).await,
        "tt-refresh-1"
    );
    assert_eq!(s.event_kinds().await, ["connection.created"]);

    // Used once: the same state again is refused and the platform is not called again.
    s.callback("tiktok", &[("code", "c1"), ("state", &state)])
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_state");
    assert_eq!(s.connection_count().await, 1);
}

async fn facebook_connects_one_connection_per_page(backend: Backend) {
    let s = setup(backend).await;
    let redirect = format!("{PUBLIC_URL}/oauth/facebook/callback");
    Mock::given(method("GET"))
        .and(path(META_TOKEN))
        .and(query_param("code", "fb-code"))
        .and(query_param("redirect_uri", redirect.as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"access_token": "short-user", "token_type": "bearer", "expires_in": 3600}),
            ),
        )
        .mount(&s.platform)
        .await;
    Mock::given(method("GET"))
        .and(path(META_TOKEN))
        .and(query_param("grant_type", "fb_exchange_token"))
        .and(query_param("fb_exchange_token", "short-user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "long-user", "token_type": "bearer", "expires_in": 5184000}),
        ))
        .mount(&s.platform)
        .await;
    Mock::given(method("GET"))
        .and(path("/v24.0/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "10000123", "name": "Ana"})))
        .mount(&s.platform)
        .await;
    Mock::given(method("GET"))
        .and(path("/v24.0/me/accounts"))
        .and(query_param("after", "cursor-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [{"id": "300", "name": "Third Page", "access_token": "page-token-300"}],
            "paging": {"cursors": {"before": "b", "after": "cursor-3"}}
        })))
        .mount(&s.platform)
        .await;
    Mock::given(method("GET"))
        .and(path("/v24.0/me/accounts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [
                {"id": "100", "name": "First Page", "access_token": "page-token-100"},
                {"id": "200", "name": "Second Page", "access_token": "page-token-200"}
            ],
            "paging": {"cursors": {"before": "a", "after": "cursor-2"}, "next": "https://graph.facebook.com/v24.0/me/accounts?after=cursor-2"}
        })))
        .with_priority(10)
        .mount(&s.platform)
        .await;
    for page in ["100", "200", "300"] {
        Mock::given(method("POST"))
            .and(path(format!("/v24.0/{page}/subscribed_apps")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
            .mount(&s.platform)
            .await;
    }
    let (status, started) = s.start("facebook", &s.owner, None).await;
    assert_eq!(status, StatusCode::OK);
    let dialog = url::Url::parse(&str_of(&started["authorize_url"])).unwrap();
    assert_eq!(dialog.path(), "/v24.0/dialog/oauth");
    let query = s
        .callback(
            "facebook",
            &[("code", "fb-code"), ("state", &str_of(&started["state"]))],
        )
        .await
        .redirect();
    assert_eq!(query["status"], "connected");
    assert_eq!(query["connection_ids"].split(',').count(), 3);
    let mut pages: Vec<(String, String)> = s
        .connections()
        .await
        .iter()
        .map(|c| (str_of(&c["platform_user_id"]), str_of(&c["name"])))
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            ("100", "First Page"),
            ("200", "Second Page"),
            ("300", "Third Page")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // Each stores its Page token (never the user's), bound to its own row.
    for id in query["connection_ids"].split(',') {
        let token = s.stored_token(id, SecretField::ConnectionAccessToken).await;
        assert!(token.starts_with("page-token-"), "{token}");
    }
    assert_eq!(s.requests_to("/v24.0/100/subscribed_apps").await.len(), 1);

    // Only the chosen Pages: reconnecting Page 200 alone updates its connection in place.
    let (status, started) = s
        .start("facebook", &s.owner, Some(json!({"page_ids": ["200"]})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let query = s
        .callback(
            "facebook",
            &[("code", "fb-code"), ("state", &str_of(&started["state"]))],
        )
        .await
        .redirect();
    assert_eq!(query["connection_ids"].split(',').count(), 1);
    assert_eq!(s.connection_count().await, 3);
    assert_eq!(s.requests_to("/v24.0/200/subscribed_apps").await.len(), 2);
    assert_eq!(s.requests_to("/v24.0/100/subscribed_apps").await.len(), 1);

    // Finding 1: another organization's admin granted the same Pages: they are live here, so
    // the flow neither subscribes nor stores them there.
    let (other, _) = s.app.signup("other-admin@example.com").await;
    let other_org = s.app.create_org(&other, "Other").await;
    let (status, started) = s.start_in(&other_org, "facebook", &other, None).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let query = s
        .callback(
            "facebook",
            &[("code", "fb-code"), ("state", &str_of(&started["state"]))],
        )
        .await
        .redirect();
    assert_eq!(query["error"], "already_connected", "{query:?}");
    for (page, calls) in [("100", 1), ("200", 2), ("300", 1)] {
        assert_eq!(
            s.requests_to(&format!("/v24.0/{page}/subscribed_apps"))
                .await
                .len(),
            calls
        );
    }
    assert_eq!(s.connection_count().await, 3);
}

async fn whatsapp_embedded_signup_connects_the_number(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("GET"))
        .and(path(META_TOKEN))
        .and(query_param("code", "es-code"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "system-user-token", "token_type": "bearer"})),
        )
        .mount(&s.platform)
        .await;
    Mock::given(method("POST"))
        .and(path("/v24.0/waba-77/subscribed_apps"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .expect(1)
        .mount(&s.platform)
        .await;
    Mock::given(method("GET"))
        .and(path("/v24.0/waba-77/phone_numbers"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "204512345678901"}]})))
        .mount(&s.platform)
        .await;
    // A number the granted token does not reach (someone else's) is refused.
    let state = s.state("whatsapp").await;
    let query = s
        .callback(
            "whatsapp",
            &[
                ("code", "es-code"),
                ("state", &state),
                ("waba_id", "waba-77"),
                ("phone_number_id", "999999999999999"),
            ],
        )
        .await
        .redirect();
    assert_eq!(
        (query["status"].as_str(), query["error"].as_str()),
        ("error", "invalid_request")
    );
    assert!(s.requests_to("/v24.0/waba-77/subscribed_apps").await.is_empty());
    assert_eq!(s.connection_count().await, 0);
    // Without the number the page reported, nothing is exchanged or stored.
    let state = s.state("whatsapp").await;
    let query = s
        .callback(
            "whatsapp",
            &[("code", "es-code"), ("state", &state), ("waba_id", "waba-77")],
        )
        .await
        .redirect();
    assert_eq!(
        (query["status"].as_str(), query["error"].as_str()),
        ("error", "invalid_request")
    );
    assert_eq!(s.connection_count().await, 0);

    let state = s.state("whatsapp").await;
    let query = s
        .callback(
            "whatsapp",
            &[
                ("code", "es-code"),
                ("state", &state),
                ("waba_id", "waba-77"),
                ("phone_number_id", "204512345678901"),
            ],
        )
        .await
        .redirect();
    assert_eq!(query["status"], "connected", "{query:?}");
    let exchange = s.requests_to(META_TOKEN).await;
    assert_eq!(exchange.len(), 2, "the refused number's flow and this one");
    assert!(
        exchange
            .iter()
            .all(|e| e.url.query_pairs().all(|(k, _)| k != "redirect_uri")),
        "Embedded Signup passes no redirect_uri"
    );
    let c = &s.connections().await[0];
    assert_eq!(
        (str_of(&c["platform_user_id"]), c["status"].as_str()),
        ("204512345678901".into(), Some("active"))
    );
    let settings = s
        .app
        .db
        .rows("SELECT CAST(settings AS TEXT) FROM platform_connections")
        .await;
    assert!(settings[0].contains("waba-77"), "{settings:?}");
}

async fn failures_store_nothing(backend: Backend) {
    let s = setup(backend).await;
    // Denied consent: no exchange at all.
    let state = s.state("tiktok").await;
    let query = s
        .callback(
            "tiktok",
            &[
                ("error", "access_denied"),
                ("error_description", "User denied"),
                ("state", &state),
            ],
        )
        .await
        .redirect();
    assert_eq!(
        (query["status"].as_str(), query["error"].as_str()),
        ("error", "access_denied")
    );
    assert!(s.requests_to(TT_TOKEN).await.is_empty());

    // A bad code (TikTok answers 200 with an error code); the token endpoint down.
    for (answer, reason) in [
        (
            tiktok_error(40110, "auth_code is invalid or used"),
            "exchange_failed",
        ),
        (ResponseTemplate::new(503), "platform_unavailable"),
    ] {
        let _exchange = Mock::given(method("POST"))
            .and(path(TT_TOKEN))
            .respond_with(answer)
            .mount_as_scoped(&s.platform)
            .await;
        let state = s.state("tiktok").await;
        let query = s
            .callback("tiktok", &[("code", "c1"), ("state", &state)])
            .await
            .redirect();
        assert_eq!(query["error"], reason);
    }
    let calls = s.requests_to(TT_TOKEN).await.len();

    // States that are not good: missing, garbage, tampered, another platform's, expired.
    let state = s.state("tiktok").await;
    let mut tampered = state.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let facebook_state = s.state("facebook").await;
    for query in [
        vec![("code", "c1")],
        vec![("code", "c1"), ("state", "garbage")],
        vec![("code", "c1"), ("state", tampered.as_str())],
        vec![("code", "c1"), ("state", facebook_state.as_str())],
    ] {
        s.callback("tiktok", &query)
            .await
            .problem(StatusCode::BAD_REQUEST, "invalid_state");
    }
    // Finding 2: an admin hands their consent link to another account's owner. That browser
    // lacks the cookie set when the flow started: refused, nothing exchanged or connected.
    let handed_over = s.state("tiktok").await;
    let elsewhere = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = url::Url::parse(&s.app.url("/oauth/tiktok/callback")).unwrap();
    url.query_pairs_mut()
        .extend_pairs([("code", "c1"), ("state", handed_over.as_str())]);
    let response = elsewhere.get(url.clone()).send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_state");
    assert!(str_of(&body["detail"]).contains("another browser"), "{body}");
    let another = s.state("tiktok").await;
    let mut url = url::Url::parse(&s.app.url("/oauth/tiktok/callback")).unwrap();
    url.query_pairs_mut()
        .extend_pairs([("code", "c1"), ("state", another.as_str())]);
    let forged_cookie = elsewhere
        .get(url)
        .header(
            "cookie",
            "snorq_connect=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(forged_cookie.status(), StatusCode::BAD_REQUEST);
    s.app
        .db
        .execute_at(
            "UPDATE oauth_states SET expires_at = $1",
            chrono::Utc::now() - chrono::Duration::seconds(1),
        )
        .await;
    s.callback("tiktok", &[("code", "c1"), ("state", &state)])
        .await
        .problem(StatusCode::BAD_REQUEST, "invalid_state");
    assert_eq!(
        s.requests_to(TT_TOKEN).await.len(),
        calls,
        "no exchange for a bad state"
    );
    assert_eq!(s.connection_count().await, 0);
    assert!(s.event_kinds().await.is_empty());
}

async fn only_admins_connect(backend: Backend) {
    let s = setup(backend).await;
    s.app.set_plan(&s.org, snorq::domain::Plan::Business).await;
    let (member, _) = s.app.signup("member@example.com").await;
    let (admin, admin_id) = s.app.signup("admin@example.com").await;
    s.app
        .add_member(&s.owner, &s.org, "member@example.com", "member")
        .await;
    s.app
        .add_member(&s.owner, &s.org, "admin@example.com", "admin")
        .await;
    let (status, body) = s.start("tiktok", &member, None).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (stranger, _) = s.app.signup("stranger@example.com").await;
    let (status, body) = s.start("tiktok", &stranger, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = s.start("myspace", &s.owner, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");

    // An admin demoted between start and callback connects nothing.
    let (status, started) = s.start("tiktok", &admin, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .app
        .patch(
            &format!("/api/v1/orgs/{}/members/{admin_id}", s.org),
            &s.owner,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let _tokens = tiktok_tokens(TT_TOKEN, "a", "r")
        .mount_as_scoped(&s.platform)
        .await;
    let query = s
        .callback("tiktok", &[("code", "c1"), ("state", &str_of(&started["state"]))])
        .await
        .redirect();
    assert_eq!(query["error"], "forbidden");
    assert_eq!(s.connection_count().await, 0);
}

/// Makes the connection's access token expire in `minutes`.
async fn expire_in(s: &Setup, id: &str, minutes: i64) {
    s.app
        .db
        .execute_at(
            &format!(
                "UPDATE platform_connections SET access_token_expires_at = $1 WHERE {}",
                id_condition(s.app.db.backend(), id)
            ),
            chrono::Utc::now() + chrono::Duration::minutes(minutes),
        )
        .await;
}

async fn refresh_pass(s: &Setup) -> snorq::app::token_refresh::RefreshReport {
    snorq::app::token_refresh::run_once(&s.app.app)
        .await
        .expect("refresh pass")
}

async fn connection_row(s: &Setup, id: &str) -> Value {
    let (status, body) = s
        .app
        .get(&format!("/api/v1/orgs/{}/connections/{id}", s.org), &s.owner)
        .await;
    assert_eq!(status, StatusCode::OK);
    body
}

async fn refresh_rotates_tokens(backend: Backend) {
    let s = setup(backend).await;
    let id = s.connect_tiktok("tt-access-1", "tt-refresh-1").await;
    // Not due (expires in 24 h; the window is 1 h): no call.
    assert_eq!(refresh_pass(&s).await, Default::default());
    assert!(s.requests_to(TT_REFRESH).await.is_empty());

    expire_in(&s, &id, 10).await;
    let first = Mock::given(method("POST"))
        .and(path(TT_REFRESH))
        .and(body_partial_json(json!({"grant_type": "refresh_token", "refresh_token": "tt-refresh-1", "client_id": TIKTOK_APP_ID})))
        .respond_with(tiktok_ok(tiktok_token_body("tt-access-2", "tt-refresh-2")))
        .expect(1)
        .mount_as_scoped(&s.platform)
        .await;
    assert_eq!(refresh_pass(&s).await.refreshed, 1);
    drop(first);
    assert_eq!(
        s.stored_token(&id, SecretField::ConnectionAccessToken).await,
        "tt-access-2"
    );
    assert_eq!(
        s.stored_token(&id, SecretField::ConnectionRefreshToken).await,
        "tt-refresh-2"
    );
    let c = connection_row(&s, &id).await;
    assert_eq!(c["status"], "active");
    assert!(!c["last_refreshed_at"].is_null());

    // The next refresh uses the rotated refresh token.
    expire_in(&s, &id, 5).await;
    let _second = Mock::given(method("POST"))
        .and(path(TT_REFRESH))
        .and(body_partial_json(json!({"refresh_token": "tt-refresh-2"})))
        .respond_with(tiktok_ok(tiktok_token_body("tt-access-3", "tt-refresh-3")))
        .expect(1)
        .mount_as_scoped(&s.platform)
        .await;
    assert_eq!(refresh_pass(&s).await.refreshed, 1);
    assert_eq!(
        s.stored_token(&id, SecretField::ConnectionRefreshToken).await,
        "tt-refresh-3"
    );
}

async fn dead_refresh_token_marks_expired(backend: Backend) {
    for code in [40107, 40103] {
        let s = setup(backend).await;
        let id = s.connect_tiktok("tt-access-1", "tt-refresh-1").await;
        expire_in(&s, &id, 10).await;
        let _dead = Mock::given(method("POST"))
            .and(path(TT_REFRESH))
            .respond_with(tiktok_error(code, "refresh_token is invalid or expired"))
            .expect(1)
            .mount_as_scoped(&s.platform)
            .await;
        assert_eq!(refresh_pass(&s).await.expired, 1);
        let c = connection_row(&s, &id).await;
        assert_eq!(c["status"], "expired");
        assert!(str_of(&c["last_error"]).contains("reconnect"), "{c}");
        assert_eq!(
            s.event_kinds().await,
            ["connection.created", "connection.updated"]
        );
        // Expired connections are not refreshed again.
        assert_eq!(refresh_pass(&s).await, Default::default());
    }
}

async fn transient_refresh_failures_back_off(backend: Backend) {
    let s = setup_with(backend, |c| {
        c.token_refresh_retry_delays_secs = vec![1];
        c.connection_error_threshold = 2;
    })
    .await;
    let id = s.connect_tiktok("tt-access-1", "tt-refresh-1").await;
    expire_in(&s, &id, 10).await;
    let down = Mock::given(method("POST"))
        .and(path(TT_REFRESH))
        .respond_with(ResponseTemplate::new(503))
        .mount_as_scoped(&s.platform)
        .await;
    assert_eq!(refresh_pass(&s).await.failed, 1);
    let c = connection_row(&s, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["failure_count"].as_i64()),
        (Some("active"), Some(1))
    );
    // Backing off: no call before the delay.
    assert_eq!(refresh_pass(&s).await, Default::default());
    assert_eq!(s.requests_to(TT_REFRESH).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(refresh_pass(&s).await.failed, 1);
    let c = connection_row(&s, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["failure_count"].as_i64()),
        (Some("error"), Some(2))
    );
    assert!(str_of(&c["last_error"]).contains("refresh failed"), "{c}");
    drop(down);
    // Recovers on the next success.
    let _up = tiktok_tokens(TT_REFRESH, "tt-access-2", "tt-refresh-2")
        .mount_as_scoped(&s.platform)
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(refresh_pass(&s).await.refreshed, 1);
    let c = connection_row(&s, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["failure_count"].as_i64()),
        (Some("active"), Some(0))
    );
    assert!(c["last_error"].is_null());
    assert_eq!(
        s.event_kinds().await,
        [
            "connection.created",
            "connection.updated",
            "connection.updated",
            "connection.updated"
        ]
    );
}

fn refresh_process(s: &Setup) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_snorq"))
        .args(["tokens", "refresh"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SNORQ_DATABASE_URL", s.app.db.url_string())
        .env("SNORQ_ENCRYPTION_KEYS", common::test_key())
        .env("SNORQ_TIKTOK_BASE_URL", s.platform.uri())
        .env("SNORQ_TIKTOK_APP_ID", TIKTOK_APP_ID)
        .env("SNORQ_TIKTOK_APP_SECRET", common::TIKTOK_SECRET)
        .env("SNORQ_PUBLIC_URL", PUBLIC_URL)
        .env("SNORQ_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start snorq tokens refresh")
}

async fn two_processes_refresh_once(backend: Backend) {
    let s = setup(backend).await;
    let id = s.connect_tiktok("tt-access-1", "tt-refresh-1").await;
    expire_in(&s, &id, 10).await;
    Mock::given(method("POST"))
        .and(path(TT_REFRESH))
        .respond_with(
            tiktok_ok(tiktok_token_body("tt-access-2", "tt-refresh-2")).set_delay(Duration::from_secs(2)),
        )
        .expect(1)
        .mount(&s.platform)
        .await;
    // The platform answers after 2 s (within the 3 s call timeout): the processes start and
    // look for due connections while the in-process pass holds the claim.
    let processes = [refresh_process(&s), refresh_process(&s)];
    let in_process = refresh_pass(&s).await;
    let mut outputs = vec![format!("{in_process:?}")];
    for process in processes {
        let output = tokio::task::spawn_blocking(move || process.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(output.status.success());
        outputs.push(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    assert_eq!(s.requests_to(TT_REFRESH).await.len(), 1, "{outputs:?}");
    assert_eq!(
        s.stored_token(&id, SecretField::ConnectionRefreshToken).await,
        "tt-refresh-2"
    );
    assert_eq!(connection_row(&s, &id).await["status"], "active");
}

async fn deauthorize_disconnects_what_the_user_granted(backend: Backend) {
    let s = setup(backend).await;
    // Two Pages granted by Meta user 10000123.
    for (route, body) in [
        ("/v24.0/me", json!({"id": "10000123"})),
        (
            "/v24.0/me/accounts",
            json!({"data": [{"id": "100", "name": "One", "access_token": "p100"}, {"id": "200", "name": "Two", "access_token": "p200"}]}),
        ),
        (META_TOKEN, json!({"access_token": "user-token"})),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&s.platform)
            .await;
    }
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
        .mount(&s.platform)
        .await;
    let state = s.state("facebook").await;
    let query = s
        .callback("facebook", &[("code", "c"), ("state", &state)])
        .await
        .redirect();
    assert_eq!(query["status"], "connected");
    let deauthorize = |body: String| {
        s.browser
            .post(s.app.url("/oauth/facebook/deauthorize"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let payload = json!({"algorithm": "HMAC-SHA256", "issued_at": chrono::Utc::now().timestamp(),
                         "user_id": "10000123"});
    // Finding 2: a deauthorize signed before the current grant (an old one replayed) is
    // verified but changes nothing.
    let replayed = meta_signed_request(
        META_SECRET.as_bytes(),
        &json!({"algorithm": "HMAC-SHA256", "issued_at": 1_700_000_000, "user_id": "10000123"}),
    );
    let response = deauthorize(format!("signed_request={replayed}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["disconnected"], 0);
    let forged = [
        meta_signed_request(b"not-the-app-secret", &payload),
        meta_signed_request(
            META_SECRET.as_bytes(),
            &json!({"algorithm": "HMAC-SHA1", "user_id": "10000123"}),
        ),
        {
            // Payload swapped after signing.
            let good = meta_signed_request(
                META_SECRET.as_bytes(),
                &json!({"algorithm": "HMAC-SHA256", "user_id": "999"}),
            );
            let (signature, _) = good.split_once('.').unwrap();
            let other = meta_signed_request(META_SECRET.as_bytes(), &payload);
            format!("{signature}.{}", other.split_once('.').unwrap().1)
        },
        "garbage".to_owned(),
    ];
    for signed in forged {
        let response = deauthorize(format!("signed_request={signed}")).await.unwrap();
        let status = response.status();
        assert_problem(
            status,
            &response.json().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
        );
    }
    let response = deauthorize("other=1".into()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let statuses = |cs: Vec<Value>| cs.iter().map(|c| str_of(&c["status"])).collect::<Vec<_>>();
    assert_eq!(statuses(s.connections().await), ["active", "active"]);

    // A Page uninstall (user 0, profile_id) disconnects that Page only.
    let page_only = meta_signed_request(
        META_SECRET.as_bytes(),
        &json!({"algorithm": "HMAC-SHA256", "user_id": "0", "profile_id": "200",
                "issued_at": chrono::Utc::now().timestamp()}),
    );
    let response = deauthorize(format!("signed_request={page_only}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["disconnected"], 1);

    let signed = meta_signed_request(META_SECRET.as_bytes(), &payload);
    let response = deauthorize(format!("signed_request={signed}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["disconnected"], 1);
    assert_eq!(statuses(s.connections().await), ["disconnected", "disconnected"]);
    assert_eq!(
        s.app
            .db
            .count("SELECT COUNT(*) FROM platform_connections WHERE access_token_enc IS NOT NULL")
            .await,
        0,
        "tokens erased"
    );
    let kinds = s.event_kinds().await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "connection.updated").count(),
        2,
        "{kinds:?}"
    );
    // TikTok has no such callback.
    let response = deauthorize(format!("signed_request={signed}")).await.unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap()["disconnected"],
        0,
        "idempotent"
    );
    let response = s
        .browser
        .post(s.app.url("/oauth/tiktok/deauthorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn checks_update_the_status_and_reconnecting_restores_it(backend: Backend) {
    let s = setup(backend).await;
    let debug_token = |body: Value| {
        Mock::given(method("GET"))
            .and(path("/v24.0/debug_token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": body})))
    };
    // A WhatsApp number connected with a token given by hand (its number proven by the fake).
    common::accounts::mount_phone_numbers(&s.platform).await;
    let (status, created) = s
        .app
        .post(
            &format!("/api/v1/orgs/{}/connections", s.org),
            &s.owner,
            common::connection_body("whatsapp", "204512345678901"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = str_of(&created["id"]);
    let shared = &s;
    let check = move |id: String| {
        let path = format!("/api/v1/orgs/{}/connections/{id}/check", shared.org);
        async move { shared.app.post(&path, &shared.owner, json!({})).await }
    };
    {
        let _invalid =
            debug_token(json!({"is_valid": false, "error": {"code": 190, "message": "Session has expired"}}))
                .mount_as_scoped(&s.platform)
                .await;
        let (status, c) = check(id.clone()).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(
            (c["status"].as_str(), str_of(&c["last_error"])),
            (Some("expired"), "Session has expired".into())
        );
        assert!(!c["last_checked_at"].is_null());
    }
    {
        let _down = Mock::given(method("GET"))
            .and(path("/v24.0/debug_token"))
            .respond_with(graph_error(500, 2, "Service temporarily unavailable"))
            .mount_as_scoped(&s.platform)
            .await;
        let (status, c) = check(id.clone()).await;
        assert_eq!(status, StatusCode::OK, "{c}");
        assert_eq!(
            (c["status"].as_str(), c["failure_count"].as_i64()),
            (Some("expired"), Some(1)),
            "{c}"
        );
    }
    {
        let _valid = debug_token(json!({"is_valid": true, "app_id": META_APP_ID, "expires_at": 0}))
            .mount_as_scoped(&s.platform)
            .await;
        let (_, c) = check(id.clone()).await;
        assert_eq!(
            (c["status"].as_str(), c["failure_count"].as_i64()),
            (Some("active"), Some(0))
        );
        assert!(c["last_error"].is_null());
    }
    let token = s
        .app
        .db
        .rows("SELECT kind, CAST(payload AS TEXT) FROM events WHERE kind LIKE 'connection.%' ORDER BY id")
        .await;
    assert_eq!(
        token.len(),
        4,
        "created, expired, failure message, active: {token:?}"
    );
    assert!(
        token[1].contains("expired") && token[3].contains("active"),
        "{token:?}"
    );

    // TikTok: a dead access token is refreshed on the spot by the check.
    let tiktok = s.connect_tiktok("tt-access-1", "tt-refresh-1").await;
    let _info = Mock::given(method("POST"))
        .and(path(TT_INFO))
        .and(body_partial_json(
            json!({"app_id": TIKTOK_APP_ID, "access_token": "tt-access-1"}),
        ))
        .respond_with(tiktok_error(40105, "access_token is invalid"))
        .mount_as_scoped(&s.platform)
        .await;
    let _refresh = tiktok_tokens(TT_REFRESH, "tt-access-2", "tt-refresh-2")
        .mount_as_scoped(&s.platform)
        .await;
    let (status, c) = check(tiktok.clone()).await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "active");
    assert_eq!(
        s.stored_token(&tiktok, SecretField::ConnectionAccessToken).await,
        "tt-access-2"
    );

    // An expired TikTok connection (dead refresh token) comes back through the connect flow:
    // same connection, active, error cleared.
    s.app
        .db
        .execute_at(
            &format!(
                "UPDATE platform_connections SET status = 'EXPIRED', last_error = 'dead', updated_at = $1 WHERE {}",
                id_condition(backend, &tiktok)
            ),
            chrono::Utc::now(),
        )
        .await;
    let again = s.connect_tiktok("tt-access-9", "tt-refresh-9").await;
    assert_eq!(again, tiktok);
    let c = connection_row(&s, &tiktok).await;
    assert_eq!(
        (c["status"].as_str(), c["last_error"].is_null()),
        (Some("active"), true)
    );
    assert_eq!(
        s.stored_token(&tiktok, SecretField::ConnectionAccessToken).await,
        "tt-access-9"
    );

    // Disconnected connections are not checked; members may not check.
    let (status, _) = s
        .app
        .delete(&format!("/api/v1/orgs/{}/connections/{id}", s.org), &s.owner)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = check(id.clone()).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    s.app.set_plan(&s.org, snorq::domain::Plan::Business).await;
    let (member, _) = s.app.signup("member@example.com").await;
    s.app
        .add_member(&s.owner, &s.org, "member@example.com", "member")
        .await;
    let (status, body) = s
        .app
        .post(
            &format!("/api/v1/orgs/{}/connections/{tiktok}/check", s.org),
            &member,
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

async fn not_configured_answers_503(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _) = app.signup("owner@example.com").await;
    let org = app.create_org(&owner, "Acme").await;
    for platform in ["tiktok", "facebook", "whatsapp"] {
        let (status, body) = app
            .post(
                &format!("/api/v1/orgs/{org}/connections/oauth/{platform}/start"),
                &owner,
                json!({}),
            )
            .await;
        assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE, "not_configured");
        assert!(
            str_of(&body["detail"]).contains(&format!("{platform}_app_id")),
            "{body}"
        );
    }
    let response = app
        .http
        .post(app.url("/oauth/facebook/deauthorize"))
        .body("signed_request=x.y")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

backend_tests!(
    tiktok_connect_end_to_end,
    facebook_connects_one_connection_per_page,
    whatsapp_embedded_signup_connects_the_number,
    failures_store_nothing,
    only_admins_connect,
    refresh_rotates_tokens,
    dead_refresh_token_marks_expired,
    transient_refresh_failures_back_off,
    two_processes_refresh_once,
    deauthorize_disconnects_what_the_user_granted,
    checks_update_the_status_and_reconnecting_restores_it,
    not_configured_answers_503,
);
