//! Accounts through the real HTTP server: signup, login, logout, me, and the HTTP conventions
//! (problem+json, body limits, request ids, metrics, health).

mod common;

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

async fn logins_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.login_attempts_per_minute = 3).await;
    app.signup("ana@example.com").await;
    let body = json!({"email": "ana@example.com", "password": "wrong password"});
    for _ in 0..3 {
        let (status, _) = app
            .call(Method::POST, "/api/v1/auth/login", None, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let response = app
        .send(Method::POST, "/api/v1/auth/login", None, Some(body))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    // Even the right password waits now.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ana@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

async fn signup_validates_and_can_be_switched_off(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.signup("ana@example.com").await;
    let signup = |body: serde_json::Value| app.call(Method::POST, "/api/v1/auth/signup", None, Some(body));

    let (status, body) =
        signup(json!({"email": "ANA@example.com", "name": "A", "password": "long enough"})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["field"], "email");

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
    logins_are_rate_limited,
    signup_validates_and_can_be_switched_off,
    http_conventions,
    health_readiness_and_metrics,
);
