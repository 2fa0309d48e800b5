//! The job dashboard over plain HTTP, on both backends: sign-in, who may use it, CSRF on every
//! form, organizations kept apart, retry and discard doing what the API does, and pages that
//! load nothing from elsewhere.

use crate::common;

use common::outbound::{SEND_PATH, Setup, graph_error, platform_answers, setup, setup_with};
use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use wiremock::Mock;
use wiremock::matchers::{method, path};

/// A browser-like client: keeps cookies, does not follow redirects (so tests see them).
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.url(""),
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let status = response.status();
        let body = response.text().await.unwrap();
        (status, location.unwrap_or(body))
    }

    async fn sign_in(&self, email: &str) -> String {
        let (_, page) = self.get("/dashboard/login").await;
        let csrf = csrf_in(&page);
        let (status, location) = self
            .post(
                "/dashboard/login",
                &[
                    ("email", email),
                    ("password", "correct horse battery"),
                    ("csrf", &csrf),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
        let (status, page) = self.get("/dashboard/sends?status=failed").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        csrf_in(&page)
    }
}

impl Browser {
    /// Signs in through the form; the `Set-Cookie` values of the answer.
    async fn sign_in_cookies(&self, email: &str) -> Vec<String> {
        let (_, page) = self.get("/dashboard/login").await;
        let response = self
            .http
            .post(format!("{}/dashboard/login", self.base))
            .form(&[
                ("email", email),
                ("password", "correct horse battery"),
                ("csrf", &csrf_in(&page)),
            ])
            .send()
            .await
            .unwrap();
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().to_owned())
            .collect()
    }
}

fn csrf_in(page: &str) -> String {
    let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[start..].split('"').next().unwrap().to_owned()
}

backend_tests!(
    sign_in_is_required_and_checked,
    only_owners_and_admins_get_in,
    failed_sends_are_listed_and_retried_with_csrf,
    another_organization_s_send_cannot_be_touched,
    pages_load_nothing_from_elsewhere,
    auth_failures_are_retried_from_the_connection_row,
    retrying_an_unknown_outcome_asks_to_confirm,
);

async fn failing_send(s: &Setup) -> String {
    platform_answers(
        &s.platform,
        graph_error(400, 131026, "Message undeliverable"),
        Some(1),
    )
    .await;
    let id = s.queued("will fail once").await;
    s.wait_status(&id, "failed").await;
    id
}

async fn sign_in_is_required_and_checked(backend: Backend) {
    let s = setup(backend).await;
    let browser = Browser::new(&s.app);
    let (status, location) = browser.post("/dashboard/logout", &[("csrf", "x")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/dashboard/login");
    let response = browser
        .http
        .get(format!("{}/dashboard", browser.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // A login form posted without the form's own token (cross-site) is refused.
    let (status, _) = browser
        .post(
            "/dashboard/login",
            &[
                ("email", "agent@example.com"),
                ("password", "correct horse battery"),
                ("csrf", "forged"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A wrong password says so, and sets no session.
    let (_, page) = browser.get("/dashboard/login").await;
    let (status, page) = browser
        .post(
            "/dashboard/login",
            &[
                ("email", "agent@example.com"),
                ("password", "wrong password!!"),
                ("csrf", &csrf_in(&page)),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("incorrect"), "{page}");
    browser.sign_in("agent@example.com").await;
    let (status, _) = browser.get("/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    // The session cookie is HttpOnly and SameSite=Strict.
    let cookies = browser.sign_in_cookies("agent@example.com").await;
    let session = cookies
        .iter()
        .find(|c| c.starts_with("snorq_dashboard="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    // Finding 7: the cookie is the dashboard's own session, not an API token.
    let cookie_value = session["snorq_dashboard=".len()..].split(';').next().unwrap();
    let (status, _) = s.app.get("/api/v1/me", cookie_value).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a dashboard cookie is no bearer token"
    );
    let (status, _) = s.app.get("/api/v1/orgs", cookie_value).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // ... and an API token is no dashboard cookie.
    let (api_token, _) = {
        let (status, body) = s
            .app
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({"email": "agent@example.com", "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        (body["token"].as_str().unwrap().to_owned(), ())
    };
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/dashboard", browser.base))
        .header("cookie", format!("snorq_dashboard={api_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "sent to sign in");
    // Signing out (with the new session's form token) ends the session for real.
    let (_, page) = browser.get("/dashboard/sends?status=failed").await;
    let (status, _) = browser
        .post("/dashboard/logout", &[("csrf", &csrf_in(&page))])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = browser.get("/dashboard").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Served over https (`public_url`), every dashboard cookie is Secure.
    let https = TestApp::spawn_with(backend, |c| {
        common::with_webhook_secrets(c);
        c.public_url = Some("https://snorq.example.com".into());
    })
    .await;
    https.signup("agent@example.com").await;
    let browser = Browser::new(&https);
    let cookies = browser.sign_in_cookies("agent@example.com").await;
    assert!(
        cookies.iter().any(|c| c.starts_with("snorq_dashboard=")),
        "{cookies:?}"
    );
    assert!(cookies.iter().all(|c| c.contains("; Secure")), "{cookies:?}");
}

async fn only_owners_and_admins_get_in(backend: Backend) {
    let s = setup(backend).await;
    s.app.set_plan(&s.org, snorq::domain::Plan::Pro).await;
    s.app.signup("member@example.com").await;
    s.app
        .add_member(&s.token, &s.org, "member@example.com", "member")
        .await;
    let member = Browser::new(&s.app);
    let (_, page) = member.get("/dashboard/login").await;
    let (status, _) = member
        .post(
            "/dashboard/login",
            &[
                ("email", "member@example.com"),
                ("password", "correct horse battery"),
                ("csrf", &csrf_in(&page)),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, page) = member.get("/dashboard").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("owners and admins"), "{page}");
    // An admin gets in.
    s.app.signup("admin@example.com").await;
    s.app
        .add_member(&s.token, &s.org, "admin@example.com", "admin")
        .await;
    let admin = Browser::new(&s.app);
    admin.sign_in("admin@example.com").await;
}

async fn failed_sends_are_listed_and_retried_with_csrf(backend: Backend) {
    let s = setup(backend).await;
    let id = failing_send(&s).await;
    let browser = Browser::new(&s.app);
    let csrf = browser.sign_in("agent@example.com").await;
    let (_, page) = browser.get("/dashboard/sends?status=failed").await;
    assert!(page.contains(&format!("id=\"send-{id}\"")), "{page}");
    assert!(page.contains("131026") && page.contains("Message undeliverable"));
    let (_, filtered) = browser.get("/dashboard/sends?status=failed&error_code=999").await;
    assert!(!filtered.contains(&format!("send-{id}")));
    let retry = format!("/dashboard/sends/{}/{id}/retry", s.org);
    // Without the session's token: refused, nothing retried.
    let (status, _) = browser.post(&retry, &[("csrf", "guess")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(s.send(&id).await["status"], "failed");
    let (status, location) = browser
        .post(
            &retry,
            &[("csrf", &csrf), ("back", "/dashboard/sends?status=failed")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with("/dashboard/sends?status=failed&notice="),
        "{location}"
    );
    s.wait_status(&id, "sent").await;
    assert_eq!(s.platform_calls().await.len(), 2);
    // An open redirect through `back` is not possible.
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(graph_error(400, 131026, "Message undeliverable"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s.platform)
        .await;
    let id2 = s.queued("second").await;
    s.wait_status(&id2, "failed").await;
    let (_, location) = browser
        .post(
            &format!("/dashboard/sends/{}/{id2}/discard", s.org),
            &[("csrf", &csrf), ("back", "https://evil.example/")],
        )
        .await;
    assert!(location.starts_with("/dashboard/"), "{location}");
    assert_eq!(s.send(&id2).await["discarded"], true);
    // The overview shows the last day's outcomes: two failed attempts, one sent.
    let (_, overview) = browser.get("/dashboard").await;
    assert!(
        overview.contains("sent 1") && overview.contains("failed 2"),
        "{overview}"
    );
}

async fn another_organization_s_send_cannot_be_touched(backend: Backend) {
    let s = setup(backend).await;
    let id = failing_send(&s).await;
    let (other_token, _) = s.app.signup("other@example.com").await;
    s.app.create_org(&other_token, "Other").await;
    let other = Browser::new(&s.app);
    let csrf = other.sign_in("other@example.com").await;
    let (_, page) = other.get("/dashboard/sends?status=failed").await;
    assert!(!page.contains(&id));
    let (_, page) = other
        .get(&format!("/dashboard/sends?status=failed&org={}", s.org))
        .await;
    assert!(!page.contains(&id));
    let (status, _) = other
        .post(
            &format!("/dashboard/sends/{}/{id}/retry", s.org),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = other.get(&format!("/dashboard/sends/{}/{id}", s.org)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(s.send(&id).await["status"], "failed");
}

async fn pages_load_nothing_from_elsewhere(backend: Backend) {
    // An operator also sees webhooks that reached no organization.
    let s = setup_with(backend, std::time::Duration::ZERO, |c| {
        c.operator_emails = vec!["Agent@Example.com".into()];
    })
    .await;
    failing_send(&s).await;
    // An unroutable webhook, for the webhooks page.
    let body = json!({"object": "page", "entry": [{"id": "999999", "time": 1, "messaging": [
        {"sender": {"id": "1"}, "recipient": {"id": "999999"}, "timestamp": 1, "message": {"mid": "m_1", "text": "x"}}]}]});
    s.app.deliver("facebook", body.to_string().as_bytes()).await;
    let browser = Browser::new(&s.app);
    browser.sign_in("agent@example.com").await;
    for page in [
        "/dashboard",
        "/dashboard/sends?status=failed",
        "/dashboard/sends?status=pending",
        "/dashboard/webhooks",
        "/dashboard/connections",
        "/dashboard/assets/style.css",
    ] {
        let (status, html) = browser.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        if page == "/dashboard/webhooks" {
            assert!(
                html.contains("UNROUTABLE") && html.contains("no connection"),
                "{html}"
            );
        }
        for external in ["http://", "https://", "//cdn", "url("] {
            assert!(!html.contains(external), "{page} references {external}");
        }
    }
}

async fn auth_failures_are_retried_from_the_connection_row(backend: Backend) {
    let s = setup(backend).await;
    platform_answers(
        &s.platform,
        graph_error(400, 131026, "Message undeliverable"),
        Some(1),
    )
    .await;
    let undeliverable = s.queued("undeliverable").await;
    s.wait_status(&undeliverable, "failed").await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(graph_error(401, 190, "Error validating access token"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s.platform)
        .await;
    let dead_token = s.queued("sent on a dead token").await;
    assert_eq!(
        s.wait_status(&dead_token, "failed").await["failure_reason"],
        "auth"
    );
    let (_, list) = s
        .app
        .get(&format!("/api/v1/orgs/{}/connections", s.org), &s.token)
        .await;
    assert_eq!(list["items"][0]["status"], "expired");
    let connection = common::str_of(&list["items"][0]["id"]);

    let browser = Browser::new(&s.app);
    let csrf = browser.sign_in("agent@example.com").await;
    let (_, page) = browser.get("/dashboard/connections").await;
    assert!(
        page.contains("expired") && page.contains("Error validating access token"),
        "{page}"
    );
    assert!(
        !page.contains("Retry auth failures</button>"),
        "not before a reconnect"
    );
    // Reconnected with a fresh token: the row offers the retry, which takes only the sends
    // that failed on the dead token.
    let (status, _) = s
        .app
        .patch(
            &format!("/api/v1/orgs/{}/connections/{connection}", s.org),
            &s.token,
            json!({"access_token": "fresh-token"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = browser.get("/dashboard/connections").await;
    assert!(page.contains("Retry auth failures</button>"), "{page}");
    let form = [
        ("csrf", csrf.as_str()),
        ("org", s.org.as_str()),
        ("connection", connection.as_str()),
        ("reason", "auth"),
    ];
    let (status, location) = browser.post("/dashboard/sends/retry", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("reason=auth"), "{location}");
    s.wait_status(&dead_token, "sent").await;
    assert_eq!(s.send(&undeliverable).await["status"], "failed");
}

/// A send whose outcome is unknown may already have reached the customer: its Retry form asks
/// to confirm that it may arrive twice, and the server refuses it unconfirmed.
async fn retrying_an_unknown_outcome_asks_to_confirm(backend: Backend) {
    let s = setup(backend).await;
    let id = failing_send(&s).await;
    s.app
        .db
        .execute("UPDATE messages SET failure_reason = 'outcome_unknown' WHERE direction = 'OUTBOUND'")
        .await;
    let browser = Browser::new(&s.app);
    let csrf = browser.sign_in("agent@example.com").await;
    let (_, page) = browser.get("/dashboard/sends?status=failed").await;
    let row = &page[page.find(&format!("id=\"send-{id}\"")).expect("the send's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("name=\"confirm\"") && row.contains("required") && row.contains("may arrive twice"),
        "{row}"
    );
    let retry = format!("/dashboard/sends/{}/{id}/retry", s.org);
    let (status, body) = browser.post(&retry, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("may already have delivered"), "{body}");
    assert_eq!(s.send(&id).await["status"], "failed");
    let (status, location) = browser
        .post(&retry, &[("csrf", &csrf), ("confirm", "true")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    s.wait_status(&id, "sent").await;
    assert_eq!(s.platform_calls().await.len(), 2);
}
