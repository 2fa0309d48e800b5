//! Accounts through the real HTTP server: signup, login, logout, me, and the HTTP conventions
//! (problem+json, body limits, request ids, metrics, health).

use crate::common;

use common::{Backend, TestApp, assert_problem, str_of};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn signup_login_me_logout(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (signup_token, user_id) = app.signup("Ana@Example.com").await;

    let (status, me) = app.get("/api/v1/me", &signup_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (str_of(&me["id"]), str_of(&me["email"])),
        (user_id.clone(), "Ana@Example.com".to_owned())
    );
    assert!(me.get("password_hash").is_none());

    // Email matching is case-insensitive; a new, different token comes back.
    let (status, login) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ana@EXAMPLE.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = str_of(&login["token"]);
    assert_ne!(token, signup_token);
    assert_eq!(str_of(&login["user"]["id"]), user_id);
    assert!(token.starts_with("snq_") && token.len() > 40);

    let (status, _) = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/me", &token).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    // Logging out one session leaves the other alone.
    assert_eq!(app.get("/api/v1/me", &signup_token).await.0, StatusCode::OK);
}

async fn login_failures_look_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ana@example.com").await;
    let attempt = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await
        }
    };
    let (s1, wrong_password) = attempt("ana@example.com", "not the password").await;
    let (s2, unknown_email) = attempt("nobody@example.com", "not the password").await;
    assert_problem(
        s1,
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(
        (s1, &wrong_password),
        (s2, &unknown_email),
        "same answer whether or not the account exists"
    );
}

/// Sends a login as if from `client` (the test server trusts 127.0.0.1 as its proxy).
async fn login_from(app: &TestApp, client: &str, email: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

/// Finding 4: failures from one address used to lock the account for everyone. Only failures
/// count, per (email, address) and per address: the attacker waits, the owner signs in.
async fn login_limits_slow_guessers_without_locking_out_owners(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.login_failures_per_pair = 3;
        c.login_failures_per_address = 20;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    app.signup("ana@example.com").await;
    let attacker = "198.51.100.7";
    for _ in 0..3 {
        let response = login_from(&app, attacker, "ana@example.com", "wrong password").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = login_from(&app, attacker, "ana@example.com", "wrong password").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    // The attacker's address waits even with the right password ...
    let response = login_from(&app, attacker, "ana@example.com", "correct horse battery").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    // ... but the owner, from her own address, is not locked out, again and again.
    for _ in 0..3 {
        let response = login_from(&app, "192.0.2.10", "ana@example.com", "correct horse battery").await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // One address spreading guesses over many emails waits too.
    for n in 0..20 {
        let email = format!("user{n}@example.com");
        assert_eq!(
            login_from(&app, "203.0.113.9", &email, "guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let response = login_from(&app, "203.0.113.9", "fresh@example.com", "guess").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // Without trusted proxies, X-Forwarded-For is not believed: changing it does not give an
    // attacker fresh tries.
    let direct = TestApp::spawn_with(backend, |c| c.login_failures_per_pair = 2).await;
    direct.signup("bo@example.com").await;
    for n in 0..2 {
        let response = login_from(&direct, &format!("198.51.100.{n}"), "bo@example.com", "wrong").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = login_from(&direct, "198.51.100.99", "bo@example.com", "wrong").await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// Finding 5: signups are limited per address, and password hashing runs on a bounded pool:
/// beyond its queue, 503 with Retry-After rather than unbounded memory.
async fn signups_are_limited_and_hashing_is_bounded(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.signups_per_hour = 2;
        c.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let signup_from = |client: &'static str, n: u32| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/api/v1/auth/signup"))
                .header("x-forwarded-for", client)
                .json(&json!({"email": format!("u{n}@example.com"), "name": "U", "password": "long enough"}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        signup_from("198.51.100.1", 1).await.status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        signup_from("198.51.100.1", 2).await.status(),
        StatusCode::ACCEPTED
    );
    let response = signup_from("198.51.100.1", 3).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        signup_from("198.51.100.2", 4).await.status(),
        StatusCode::ACCEPTED
    );

    // One hashing thread, no queue: of many signups at once, some are turned away with 503.
    let tight = TestApp::spawn_with(backend, |c| {
        c.password_hash_threads = Some(1);
        c.password_hash_queue = 0;
    })
    .await;
    let attempts = (0..12).map(|n| {
        let tight = &tight;
        async move {
            tight
                .send(
                    Method::POST,
                    "/api/v1/auth/signup",
                    None,
                    Some(json!({"email": format!("burst{n}@example.com"), "name": "B", "password": "long enough"})),
                )
                .await
        }
    });
    let responses = futures::future::join_all(attempts).await;
    let busy: Vec<_> = responses
        .iter()
        .filter(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        !busy.is_empty(),
        "twelve hashes at once through one thread and no queue"
    );
    assert!(busy.iter().all(|r| r.headers().contains_key("retry-after")));
    assert!(
        responses
            .iter()
            .all(|r| [StatusCode::ACCEPTED, StatusCode::SERVICE_UNAVAILABLE].contains(&r.status()))
    );
}

async fn signup_validates_and_can_be_switched_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ana@example.com").await;
    let signup = |body: serde_json::Value| app.call(Method::POST, "/api/v1/auth/signup", None, Some(body));

    // Finding 6: a registered email answers exactly as a new one, and changes nothing.
    let (taken_status, taken) =
        signup(json!({"email": "ANA@example.com", "name": "A", "password": "long enough"})).await;
    let (new_status, new) =
        signup(json!({"email": "new@example.com", "name": "N", "password": "long enough"})).await;
    assert_eq!((taken_status, &taken), (new_status, &new));
    assert_eq!(new_status, StatusCode::ACCEPTED);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ana@example.com", "password": "long enough"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the existing account keeps its password"
    );

    // Finding 8: a JSON array is not an object, and errors do not name Rust types.
    let (status, body) = signup(json!(["x@y.com", "N", "correct horse battery"])).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(!body["detail"].as_str().unwrap().contains("Body"), "{body}");
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "x@y.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "no account was created from the array"
    );
    // ... nor does a PATCH take an array for its object.
    let (token, _) = app.login("ana@example.com").await;
    let org = app.create_org(&token, "Acme").await;
    let (status, body) = app
        .patch(&format!("/api/v1/orgs/{org}"), &token, json!([null, null]))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "body");
    assert!(!body["detail"].as_str().unwrap().contains("struct"), "{body}");

    let (status, body) =
        signup(json!({"email": "not-an-email", "name": "A", "password": "long enough"})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "email");

    let (status, body) = signup(json!({"email": "b@example.com", "name": "B", "password": "short"})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "password");

    let (status, body) = signup(json!({"email": "b@example.com", "name": "B"})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "password");

    let (status, body) =
        signup(json!({"email": "b@example.com", "name": "B", "password": "long enough", "admin": true}))
            .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "admin");

    let closed = TestApp::spawn_with(backend, |c| c.signup_enabled = false).await;
    let (status, body) = closed
        .call(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({"email": "c@example.com", "name": "C", "password": "long enough"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "signup_disabled");
}

async fn http_conventions(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.max_body_bytes = 4096).await;

    // Missing and bogus tokens.
    let response = app.send(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let (status, body) = app.get("/api/v1/me", "snq_not-a-real-token").await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");

    // Malformed JSON, wrong content type, too large.
    let response = app
        .http
        .post(app.url("/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["code"],
        "malformed_json"
    );
    let response = app
        .http
        .post(app.url("/api/v1/auth/signup"))
        .body("email=a")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"email": "a@example.com", "name": "x".repeat(8000), "password": "long enough"});
    let (status, body) = app
        .call(Method::POST, "/api/v1/auth/signup", None, Some(huge))
        .await;
    assert_problem(status, &body, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Unknown routes and methods answer problem+json too.
    let (status, body) = app.call(Method::GET, "/api/v1/nothing-here", None, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.call(Method::DELETE, "/api/v1/auth/login", None, None).await;
    assert_problem(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // `GET /` answers a page that says where everything is.
    let response = app.send(Method::GET, "/", None, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    for link in ["/dashboard", "/docs", "/api/v1/openapi.json", "/readyz"] {
        assert!(
            page.contains(&format!("href=\"{link}\"")),
            "{link} missing: {page}"
        );
    }

    // Every response carries a request id; a caller's own id is kept.
    let response = app.send(Method::GET, "/healthz", None, None).await;
    assert!(response.headers().contains_key("x-request-id"));
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
}

async fn health_readiness_and_metrics(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(body["database"], expected);

    let metrics = app
        .send(Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total{"), "{metrics}");
    assert!(metrics.contains("route=\"/readyz\""), "{metrics}");
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );

    if backend == Backend::Postgres {
        // The database goes away: not ready, but still alive.
        app.db.drop_now();
        let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
        assert_problem(status, &body, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
        assert_eq!(
            app.call(Method::GET, "/healthz", None, None).await.0,
            StatusCode::OK
        );
    }
}

backend_tests!(
    signup_login_me_logout,
    login_failures_look_the_same,
    login_limits_slow_guessers_without_locking_out_owners,
    signups_are_limited_and_hashing_is_bounded,
    signup_validates_and_can_be_switched_off,
    http_conventions,
    health_readiness_and_metrics,
);
