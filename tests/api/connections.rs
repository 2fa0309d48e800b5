//! Platform connections through the real HTTP server: tokens go in and never come out, not in
//! responses and not as plaintext in the database.

use crate::common;

use common::{Backend, TestApp, assert_problem, str_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use snorq::crypto::SecretField;
use snorq::domain::Plan;

const ACCESS: &str = "EAAGm0PX4ZCpsBAsupersecretaccesstoken7f3a";
const REFRESH: &str = "rft.supersecretrefreshtoken9c1d";

fn whatsapp(account: &str) -> Value {
    json!({
        "platform": "whatsapp",
        "platform_user_id": account,
        "waba_id": common::accounts::waba_of(account),
        "name": "Support line",
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "access_token_expires_at": "2030-01-01T00:00:00Z"
    })
}

fn assert_no_token(body: &Value) {
    let text = body.to_string();
    assert!(
        !text.contains(ACCESS) && !text.contains(REFRESH),
        "a token leaked: {text}"
    );
}

async fn tokens_never_leave_in_clear(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = app.signup("owner@example.com").await;
    let org_id = app.create_org(&token, "Acme").await;
    let base = format!("/api/v1/orgs/{org_id}/connections");

    let (status, created) = app.post(&base, &token, whatsapp("106540352242922")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_no_token(&created);
    assert_eq!(created["platform"], "whatsapp");
    assert_eq!(created["status"], "active");
    assert_eq!(created["has_refresh_token"], true);
    assert!(str_of(&created["token_fingerprint"]).starts_with("sha256:"));
    let id = str_of(&created["id"]);

    let (status, shown) = app.get(&format!("{base}/{id}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_no_token(&shown);
    let (status, list) = app.get(&base, &token).await;
    assert_eq!(
        (status, list["items"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    assert_no_token(&list);

    // Stored encrypted, and the vault opens it for this row and field only.
    let connection = app
        .app
        .store
        .connection(org_id.parse().unwrap(), id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let sealed = connection.access_token_enc.clone().unwrap();
    assert!(sealed.starts_with("snorq1."));
    assert_eq!(
        app.app
            .vault
            .decrypt(SecretField::ConnectionAccessToken, connection.id, &sealed)
            .unwrap(),
        ACCESS
    );
    assert!(
        app.app
            .vault
            .decrypt(SecretField::ConnectionRefreshToken, connection.id, &sealed)
            .is_err()
    );

    // Not a byte of either token anywhere in the database (SQLite files / pg_dump).
    let raw = app.db.raw_contents();
    let contains = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The scan sees the data: the email and account id are stored in clear and are found.
    assert!(contains("owner@example.com") && contains("106540352242922"));
    for secret in [ACCESS, REFRESH] {
        assert!(!contains(secret), "{secret} found in plaintext in the database");
    }
}

async fn create_update_disconnect_reconnect(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (token, _) = app.signup("owner@example.com").await;
    let org_id = app.create_org(&token, "Acme").await;
    let base = format!("/api/v1/orgs/{org_id}/connections");
    let (_, created) = app.post(&base, &token, whatsapp("1001")).await;
    let id = str_of(&created["id"]);
    let item = format!("{base}/{id}");

    // Rename, then clear the name; the tokens stay.
    let (status, renamed) = app.patch(&item, &token, json!({"name": "Sales"})).await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("Sales"))
    );
    let (_, cleared) = app.patch(&item, &token, json!({"name": null})).await;
    assert_eq!(cleared["name"], Value::Null);
    assert_eq!(cleared["token_fingerprint"], created["token_fingerprint"]);

    // New credentials: new fingerprint; refresh token without access token is refused.
    let (status, body) = app.patch(&item, &token, json!({"refresh_token": "x"})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "access_token");
    let (status, rotated) = app
        .patch(&item, &token, json!({"access_token": "EAAnewtoken"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(rotated["token_fingerprint"], created["token_fingerprint"]);
    assert_eq!(rotated["has_refresh_token"], false);

    // The same account twice in one organization.
    let (status, body) = app.post(&base, &token, whatsapp("1001")).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["field"], "platform_user_id");

    // Disconnect: tokens erased, idempotent, the row remains.
    assert_eq!(app.delete(&item, &token).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&item, &token).await.0, StatusCode::NO_CONTENT);
    let (_, gone) = app.get(&item, &token).await;
    assert_eq!(gone["status"], "disconnected");
    assert_eq!(gone["token_fingerprint"], Value::Null);
    let stored = app
        .app
        .store
        .connection(org_id.parse().unwrap(), id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.access_token_enc, stored.refresh_token_enc), (None, None));

    // Connecting the same account again revives the same connection.
    let (status, again) = app.post(&base, &token, whatsapp("1001")).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(
        (str_of(&again["id"]), again["status"].as_str()),
        (id, Some("active"))
    );
    assert_eq!(again["name"], "Support line");

    // Validation names the field.
    for (body, field) in [
        (
            json!({"platform": "myspace", "platform_user_id": "1", "access_token": "t"}),
            "platform",
        ),
        (
            json!({"platform": "tiktok", "platform_user_id": " ", "access_token": "t"}),
            "platform_user_id",
        ),
        (
            json!({"platform": "tiktok", "platform_user_id": "1", "access_token": ""}),
            "access_token",
        ),
        (
            json!({"platform": "tiktok", "platform_user_id": "1"}),
            "access_token",
        ),
        (
            json!({"platform": "tiktok", "platform_user_id": "1", "access_token": "t", "secret": 1}),
            "secret",
        ),
    ] {
        let (status, problem) = app.post(&base, &token, body).await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(problem["field"], field, "{problem}");
    }
}

async fn one_live_connection_per_account_across_organizations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (alice, _) = app.signup("alice@example.com").await;
    let (bob, _) = app.signup("bob@example.com").await;
    let alice_org = app.create_org(&alice, "Alice Co").await;
    let bob_org = app.create_org(&bob, "Bob Co").await;
    let (status, created) = app
        .post(
            &format!("/api/v1/orgs/{alice_org}/connections"),
            &alice,
            whatsapp("2002"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = app
        .post(
            &format!("/api/v1/orgs/{bob_org}/connections"),
            &bob,
            whatsapp("2002"),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
    // After Alice disconnects, Bob may connect it.
    let id = str_of(&created["id"]);
    app.delete(&format!("/api/v1/orgs/{alice_org}/connections/{id}"), &alice)
        .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/orgs/{bob_org}/connections"),
            &bob,
            whatsapp("2002"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn members_read_admins_write_strangers_see_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (owner, _) = app.signup("owner@example.com").await;
    let (member, _) = app.signup("member@example.com").await;
    let (stranger, _) = app.signup("stranger@example.com").await;
    let org_id = app.create_org(&owner, "Acme").await;
    app.set_plan(&org_id, Plan::Pro).await;
    app.add_member(&owner, &org_id, "member@example.com", "member")
        .await;
    let base = format!("/api/v1/orgs/{org_id}/connections");
    let (_, created) = app.post(&base, &owner, whatsapp("3003")).await;
    let item = format!("{base}/{}", str_of(&created["id"]));

    let (status, body) = app.post(&base, &member, whatsapp("3004")).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.patch(&item, &member, json!({"name": "x"})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app.delete(&item, &member).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(app.get(&item, &member).await.0, StatusCode::OK);
    assert_eq!(app.get(&base, &member).await.0, StatusCode::OK);

    for (status, body) in [
        app.get(&base, &stranger).await,
        app.get(&item, &stranger).await,
        app.post(&base, &stranger, whatsapp("3005")).await,
        app.patch(&item, &stranger, json!({"name": "x"})).await,
        app.delete(&item, &stranger).await,
    ] {
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    // The stranger's own organization cannot reach this connection by id either.
    let stranger_org = app.create_org(&stranger, "Elsewhere").await;
    let foreign = format!(
        "/api/v1/orgs/{stranger_org}/connections/{}",
        str_of(&created["id"])
    );
    let (status, body) = app.get(&foreign, &stranger).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app.delete(&foreign, &stranger).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.get(&item, &owner).await.1["status"], "active");
}

/// Finding 1: an admin could claim anyone's Page, number or TikTok account with any token, and
/// receive its customers' messages. Now the platform must confirm the token reaches the
/// account, at creation, at re-credit and at a check; nothing is stored otherwise.
async fn claims_are_proven_with_the_platform(backend: Backend) {
    use common::accounts::{REJECTED_TOKEN, page_token, tiktok_token, waba_of};
    let app = TestApp::spawn_with(backend, |c| {
        common::with_webhook_secrets(c);
        c.facebook_app_id = Some("1234567890".into());
    })
    .await;
    let (mallory, _) = app.signup("mallory@example.com").await;
    let (owner, _) = app.signup("owner@example.com").await;
    let mallory_org = app.create_org(&mallory, "Mallory").await;
    let owner_org = app.create_org(&owner, "Real Owner").await;
    let mallory_base = format!("/api/v1/orgs/{mallory_org}/connections");
    let owner_base = format!("/api/v1/orgs/{owner_org}/connections");
    let victim_page = "104000000000042";

    let refused = [
        // Someone's Page with a token that is not that Page's.
        (
            json!({"platform": "facebook", "platform_user_id": victim_page, "access_token": "x"}),
            "account_not_reached",
            "access_token",
        ),
        (
            json!({"platform": "facebook", "platform_user_id": victim_page,
                   "access_token": page_token("104000000000099")}),
            "account_not_reached",
            "access_token",
        ),
        // A number outside the token's WhatsApp Business Account.
        (
            json!({"platform": "whatsapp", "platform_user_id": "15550001",
                   "waba_id": waba_of("15550002"), "access_token": "wa"}),
            "account_not_reached",
            "access_token",
        ),
        (
            json!({"platform": "whatsapp", "platform_user_id": "15550001",
                   "waba_id": waba_of("15550001"), "access_token": REJECTED_TOKEN}),
            "token_rejected",
            "access_token",
        ),
        // No WABA given and no WhatsApp app to look it up with.
        (
            json!({"platform": "whatsapp", "platform_user_id": "15550001", "access_token": "wa"}),
            "waba_id_required",
            "waba_id",
        ),
        // Another business account's TikTok token.
        (
            json!({"platform": "tiktok", "platform_user_id": "open-victim",
                   "access_token": tiktok_token("open-mallory")}),
            "account_not_reached",
            "access_token",
        ),
        (
            json!({"platform": "tiktok", "platform_user_id": "open-victim", "access_token": "garbage"}),
            "token_rejected",
            "access_token",
        ),
    ];
    for (body, code, field) in refused {
        let (status, problem) = app.post(&mallory_base, &mallory, body.clone()).await;
        assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY, code);
        assert_eq!(problem["field"], field, "{body} -> {problem}");
    }
    assert_eq!(app.db.count("SELECT COUNT(*) FROM platform_connections").await, 0);

    // The real owner connects the Page with its own token; the attempts changed nothing.
    let (status, created) = app
        .post(
            &owner_base,
            &owner,
            json!({"platform": "facebook", "platform_user_id": victim_page,
                   "access_token": page_token(victim_page)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let item = format!("{owner_base}/{}", str_of(&created["id"]));

    // New credentials are proven too: the stored token is untouched when they do not reach.
    let (status, problem) = app
        .patch(
            &item,
            &owner,
            json!({"access_token": page_token("104000000000099")}),
        )
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        "account_not_reached",
    );
    assert_eq!(
        app.get(&item, &owner).await.1["token_fingerprint"],
        created["token_fingerprint"]
    );

    // A check asks the same question: once the token no longer reaches the Page, it says so.
    let (status, checked) = app.post(&format!("{item}/check"), &owner, json!({})).await;
    assert_eq!(
        (status, checked["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{checked}"
    );
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path("/v24.0/me"))
        .respond_with(
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({"id": "104000000000099", "name": "Other"})),
        )
        .with_priority(1)
        .mount(&app.accounts)
        .await;
    let (status, checked) = app.post(&format!("{item}/check"), &owner, json!({})).await;
    assert_eq!(
        (status, checked["status"].as_str()),
        (StatusCode::OK, Some("expired")),
        "{checked}"
    );
    assert!(
        str_of(&checked["last_error"]).contains("does not reach")
            || str_of(&checked["last_error"]).contains("not the Page token"),
        "{checked}"
    );
}

backend_tests!(
    claims_are_proven_with_the_platform,
    tokens_never_leave_in_clear,
    create_update_disconnect_reconnect,
    one_live_connection_per_account_across_organizations,
    members_read_admins_write_strangers_see_nothing,
);
