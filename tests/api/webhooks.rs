//! Webhook ingest end to end (docs/architecture.md, "The flow of a webhook"), on both
//! backends: verified, stored before the 200, normalized, deduplicated, routed per
//! organization, replayable.

use crate::common;

use std::path::Path;

use common::{
    Backend, META_SECRET, TIKTOK_SECRET, TestApp, VERIFY_TOKEN, project_root, with_webhook_secrets,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use snorq::store::ReplayFilter;
use snorq_connectors::verify::{meta_signature_header, tiktok_signature_header};

const WA_NUMBER: &str = "204512345678901";
const PYWA_NUMBER: &str = "1122334455667";
const PAGE: &str = "108765432109876";
const TIKTOK_BUSINESS: &str = "-000AcMeStOrEbUsInEsS0penId987654321";

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, with_webhook_secrets).await
}

/// An organization owning connections for the given (platform, account) pairs; returns its id.
async fn org_with(app: &TestApp, email: &str, accounts: &[(&str, &str)]) -> String {
    common::org_with_connections(app, email, accounts).await.0
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(project_root().join("fixtures").join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Posts a correctly signed body to the platform's route.
async fn deliver(app: &TestApp, platform: &str, body: &[u8]) -> (StatusCode, Value) {
    app.deliver(platform, body).await
}

fn platform_of(file: &str) -> &'static str {
    if file.starts_with("messenger") || file.starts_with("instagram") {
        "facebook"
    } else if file.starts_with("tiktok") {
        "tiktok"
    } else {
        "whatsapp"
    }
}

fn json_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    files
}

async fn every_fixture_is_accepted_and_stored(backend: Backend) {
    let app = spawn(backend).await;
    org_with(
        &app,
        "owner@example.com",
        &[
            ("whatsapp", WA_NUMBER),
            ("whatsapp", PYWA_NUMBER),
            // The other numbers the pywa samples use.
            ("whatsapp", "106540352242922"),
            ("whatsapp", "37489742"),
            ("whatsapp", "5483758353"),
            ("whatsapp", "743897493242"),
            ("facebook", PAGE),
            ("tiktok", TIKTOK_BUSINESS),
        ],
    )
    .await;
    let mut delivered = 0;
    for file in json_files(&project_root().join("fixtures/webhooks")) {
        let (status, body) = deliver(&app, platform_of(&file), &fixture(&format!("webhooks/{file}"))).await;
        assert_eq!(status, StatusCode::OK, "{file}: {body}");
        assert_ne!(body["status"], "failed", "{file}: {body}");
        delivered += 1;
    }
    // Each pywa file maps sample names to webhook bodies.
    for file in json_files(&project_root().join("fixtures/pywa")) {
        let samples: serde_json::Map<String, Value> =
            serde_json::from_slice(&fixture(&format!("pywa/{file}"))).unwrap();
        for (name, sample) in samples {
            let (status, body) = deliver(&app, "whatsapp", sample.to_string().as_bytes()).await;
            assert_eq!(status, StatusCode::OK, "{file}/{name}: {body}");
            assert_ne!(body["status"], "failed", "{file}/{name}: {body}");
            delivered += 1;
        }
    }
    assert!(delivered > 80, "{delivered} bodies");
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM webhook_events").await,
        delivered
    );
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM webhook_events WHERE status = 'FAILED'")
            .await,
        0
    );

    // The WhatsApp text fixture became an inbound message in a conversation with its contact.
    let rows = app
        .db
        .rows(
            "SELECT c.contact_name, m.content_type, m.direction FROM messages m \
             JOIN conversations c ON c.id = m.conversation_id JOIN platform_connections p \
             ON p.id = c.platform_connection_id WHERE p.platform_user_id = '204512345678901' \
             AND m.content_type = 'text'",
        )
        .await;
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r.ends_with("|text|INBOUND")), "{rows:?}");
    // Every platform produced conversations.
    for platform in ["whatsapp", "facebook", "tiktok"] {
        let n = app
            .db
            .count(&format!(
                "SELECT COUNT(*) FROM conversations WHERE platform = '{platform}'"
            ))
            .await;
        assert!(n > 0, "no {platform} conversation");
    }
    // Every conversation's unread count equals its stored inbound messages.
    let mismatched = app
        .db
        .count(
            "SELECT COUNT(*) FROM conversations c WHERE c.unread_count <> \
             (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id AND m.direction = 'INBOUND')",
        )
        .await;
    assert_eq!(mismatched, 0);
    // Live events were written with the data.
    assert!(
        app.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'message.created'")
            .await
            > 0
    );
}

async fn redeliveries_change_nothing(backend: Backend) {
    let app = spawn(backend).await;
    org_with(&app, "owner@example.com", &[("whatsapp", WA_NUMBER)]).await;
    let body = fixture("webhooks/whatsapp_text.json");
    for _ in 0..3 {
        assert_eq!(deliver(&app, "whatsapp", &body).await.0, StatusCode::OK);
    }
    // The same message inside a different body (re-serialized, another batch shape).
    let mut other: Value = serde_json::from_slice(&body).unwrap();
    other["entry"][0]["id"] = json!("another-envelope");
    assert_eq!(
        deliver(&app, "whatsapp", other.to_string().as_bytes()).await.0,
        StatusCode::OK
    );

    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM webhook_events").await,
        4,
        "every body is kept"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM conversations").await, 1);
    assert_eq!(app.db.count("SELECT unread_count FROM conversations").await, 1);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM events WHERE kind = 'message.created'")
            .await,
        1
    );
}

fn whatsapp_batch(count: usize) -> Value {
    let messages: Vec<Value> = (0..count)
        .map(|i| {
            json!({"from": format!("55119{i:07}"), "id": format!("wamid.batch.{i}"),
                   "timestamp": "1767225600", "type": "text", "text": {"body": format!("message {i}")}})
        })
        .collect();
    let contacts: Vec<Value> = (0..count)
        .map(|i| json!({"profile": {"name": format!("Customer {i}")}, "wa_id": format!("55119{i:07}")}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001111", "phone_number_id": WA_NUMBER},
                  "contacts": contacts, "messages": messages}}]}]})
}

async fn a_batch_of_100_messages_is_stored_whole(backend: Backend) {
    let app = spawn(backend).await;
    org_with(&app, "owner@example.com", &[("whatsapp", WA_NUMBER)]).await;
    let (status, body) = deliver(&app, "whatsapp", whatsapp_batch(100).to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["events"].as_u64(), body["applied"].as_u64()),
        (Some(100), Some(100))
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 100);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM conversations").await, 100);
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM conversations WHERE contact_name LIKE 'Customer %'")
            .await,
        100
    );
}

async fn concurrent_webhooks_are_each_stored_once(backend: Backend) {
    let app = spawn(backend).await;
    org_with(&app, "owner@example.com", &[("whatsapp", WA_NUMBER)]).await;
    let batch = whatsapp_batch(40);
    let bodies: Vec<Vec<u8>> = (0..40)
        .map(|i| {
            let mut one = batch.clone();
            let value = &mut one["entry"][0]["changes"][0]["value"];
            value["messages"] = json!([batch["entry"][0]["changes"][0]["value"]["messages"][i % 20]]);
            value["contacts"] = json!([batch["entry"][0]["changes"][0]["value"]["contacts"][i % 20]]);
            one.to_string().into_bytes()
        })
        .collect();
    let results = futures::future::join_all(bodies.iter().map(|b| deliver(&app, "whatsapp", b))).await;
    assert!(results.iter().all(|(s, _)| *s == StatusCode::OK), "{results:?}");
    // 40 deliveries of 20 distinct messages (each twice, concurrently).
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_events").await, 40);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 20);
    assert_eq!(
        app.db.count("SELECT SUM(unread_count) FROM conversations").await,
        20
    );
}

async fn receipts_move_forward_only(backend: Backend) {
    let app = spawn(backend).await;
    org_with(&app, "owner@example.com", &[("facebook", PAGE)]).await;
    // Our reply comes back as an echo (imported: it was sent outside Snorq), then read.
    assert_eq!(
        deliver(&app, "facebook", &fixture("webhooks/messenger_text.json"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&app, "facebook", &fixture("webhooks/messenger_echo.json"))
            .await
            .0,
        StatusCode::OK
    );
    let outbound = "SELECT status FROM messages WHERE direction = 'OUTBOUND'";
    assert_eq!(app.db.rows(outbound).await, vec!["SENT"]);
    assert_eq!(
        deliver(
            &app,
            "facebook",
            &fixture("webhooks/messenger_delivery_read.json")
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(app.db.rows(outbound).await, vec!["READ"]);
    // The echo again (a redelivery) neither duplicates nor moves it back.
    assert_eq!(
        deliver(&app, "facebook", &fixture("webhooks/messenger_echo.json"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(app.db.rows(outbound).await, vec!["READ"]);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 2);
    // Echoes do not count as unread and do not move the reply window.
    assert_eq!(app.db.count("SELECT unread_count FROM conversations").await, 1);
}

async fn a_status_before_its_message_is_kept_and_applied(backend: Backend) {
    let app = spawn(backend).await;
    org_with(&app, "owner@example.com", &[("whatsapp", WA_NUMBER)]).await;
    // "delivered" for a message we have not seen yet.
    let (status, body) = deliver(
        &app,
        "whatsapp",
        &fixture("webhooks/whatsapp_status_delivered.json"),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("processed"))
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM pending_receipts").await, 1);
    // The message then arrives: the business's own message, echoed (WhatsApp coexistence).
    let echo = json!({"object": "whatsapp_business_account", "entry": [{"id": "310245987654321", "changes": [{
        "field": "smb_message_echoes",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001111", "phone_number_id": WA_NUMBER},
                  "message_echoes": [{"from": "15550001111", "to": "5511987654321",
                                      "id": "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABEYEjRBRjdCMzlEQUU4OTJBMTE4RTUA",
                                      "timestamp": "1767225600", "type": "text",
                                      "text": {"body": "Your order shipped today."}}]}}]}]});
    let (status, _) = deliver(&app, "whatsapp", echo.to_string().as_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    let rows = app.db.rows("SELECT direction, status FROM messages").await;
    assert_eq!(rows, vec!["OUTBOUND|DELIVERED"]);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM pending_receipts").await, 0);
}

async fn echo_of_our_own_send_is_matched_not_duplicated(backend: Backend) {
    let app = spawn(backend).await;
    let org_id = org_with(&app, "owner@example.com", &[("facebook", PAGE)]).await;
    assert_eq!(
        deliver(&app, "facebook", &fixture("webhooks/messenger_text.json"))
            .await
            .0,
        StatusCode::OK
    );
    // Our send, recorded before the platform's id is known (as the outbound worker does).
    let ours = uuid::Uuid::parse_str("8f14e45f-ceea-467e-a9c6-5a0f4b1c2d3e").unwrap();
    insert_pending_outbound(&app, &org_id, ours).await;
    assert_eq!(
        deliver(&app, "facebook", &fixture("webhooks/messenger_echo.json"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.db
            .count("SELECT COUNT(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await,
        1
    );
    let rows = app
        .db
        .rows("SELECT external_id, status FROM messages WHERE direction = 'OUTBOUND'")
        .await;
    assert!(
        rows[0].starts_with("m_Ab1cD2") && rows[0].ends_with("|SENT"),
        "{rows:?}"
    );
}

/// Inserts an OUTBOUND pending message into the org's only conversation (what a send creates).
async fn insert_pending_outbound(app: &TestApp, org_id: &str, id: uuid::Uuid) {
    let org: uuid::Uuid = org_id.parse().unwrap();
    let sql = "INSERT INTO messages (id, organization_id, conversation_id, direction, content_type, content, \
               status, attempts, created_at, updated_at) \
               SELECT $1, $2, id, 'OUTBOUND', 'text', '{}', 'PENDING', 0, $3, $3 FROM conversations WHERE organization_id = $2";
    let now = chrono::Utc::now();
    match &app.db.url {
        snorq::config::DatabaseUrl::Sqlite(url) => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query(sql)
                .bind(id)
                .bind(org)
                .bind(now)
                .execute(&pool)
                .await
                .unwrap();
        }
        snorq::config::DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(sql)
                .bind(id)
                .bind(org)
                .bind(now)
                .execute(&pool)
                .await
                .unwrap();
        }
    }
}

async fn signatures_are_checked_before_anything_is_stored(backend: Backend) {
    let app = spawn(backend).await;
    org_with(
        &app,
        "owner@example.com",
        &[("whatsapp", WA_NUMBER), ("tiktok", TIKTOK_BUSINESS)],
    )
    .await;
    let body = fixture("webhooks/whatsapp_text.json");
    let post = |path: &str, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut request = app.http.post(app.url(path)).body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        request.send()
    };
    let wrong_secret = meta_signature_header(b"not-the-secret", &body);
    let mut altered = body.clone();
    altered[10] ^= 1;
    let good = meta_signature_header(META_SECRET.as_bytes(), &body);
    let stale = chrono::Utc::now().timestamp() - 3600;
    let tiktok = fixture("webhooks/tiktok_message.json");
    for (name, path, headers, payload) in [
        ("missing header", "/webhooks/whatsapp", vec![], body.clone()),
        (
            "wrong secret",
            "/webhooks/whatsapp",
            vec![("X-Hub-Signature-256", wrong_secret)],
            body.clone(),
        ),
        (
            "altered body",
            "/webhooks/whatsapp",
            vec![("X-Hub-Signature-256", good.clone())],
            altered,
        ),
        (
            "malformed",
            "/webhooks/whatsapp",
            vec![("X-Hub-Signature-256", "md5=abc".into())],
            body.clone(),
        ),
        (
            "stale tiktok",
            "/webhooks/tiktok",
            vec![(
                "Tiktok-Signature",
                tiktok_signature_header(TIKTOK_SECRET.as_bytes(), stale, &tiktok),
            )],
            tiktok.clone(),
        ),
        (
            "tiktok without header",
            "/webhooks/tiktok",
            vec![],
            tiktok.clone(),
        ),
    ] {
        let response = post(path, headers, payload).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_signature", "{name}");
    }
    // Oversized: 413 before anything else.
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    let response = post("/webhooks/whatsapp", vec![("X-Hub-Signature-256", good)], huge)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM webhook_events").await,
        0,
        "nothing stored"
    );

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("webhooks_rejected_total{platform=\"whatsapp\",reason=\"bad_signature\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("reason=\"stale_timestamp\""), "{metrics}");
}

async fn unconfigured_platforms_refuse_and_handshake_works(backend: Backend) {
    let app = TestApp::spawn(backend).await; // no secrets at all
    let body = fixture("webhooks/whatsapp_text.json");
    let response = app
        .http
        .post(app.url("/webhooks/whatsapp"))
        .header("X-Hub-Signature-256", meta_signature_header(b"anything", &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.json::<Value>().await.unwrap()["code"], "not_configured");
    let refused = app
        .http
        .get(app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=x&hub.challenge=42"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_events").await, 0);

    let app = spawn(backend).await;
    for platform in ["whatsapp", "facebook"] {
        let ok = app
            .http
            .get(app.url(&format!(
                "/webhooks/{platform}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.text().await.unwrap(), "1158201444");
        let wrong = app
            .http
            .get(app.url(&format!(
                "/webhooks/{platform}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    }
}

async fn signed_garbage_is_stored_and_acknowledged(backend: Backend) {
    let app = spawn(backend).await;
    let (status, body) = deliver(&app, "whatsapp", b"this is not json").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("failed"))
    );
    let rows = app.db.rows("SELECT status, reason FROM webhook_events").await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].starts_with("FAILED|unparseable body"), "{rows:?}");
}

async fn unroutable_then_replayed_after_connecting(backend: Backend) {
    let app = spawn(backend).await;
    let body = fixture("webhooks/whatsapp_text.json");
    let (status, answer) = deliver(&app, "whatsapp", &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (StatusCode::OK, Some("unroutable"))
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 0);
    let rows = app.db.rows("SELECT status, reason FROM webhook_events").await;
    assert!(
        rows[0].contains("UNROUTABLE|no live whatsapp connection for account 204512345678901"),
        "{rows:?}"
    );

    org_with(&app, "owner@example.com", &[("whatsapp", WA_NUMBER)]).await;
    let store = app.app.store.clone();
    let report = snorq::app::ingest::replay(store.as_ref(), &ReplayFilter::default(), |_| {})
        .await
        .unwrap();
    assert_eq!((report.examined, report.processed), (1, 1));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 1);
    assert_eq!(
        app.db.rows("SELECT status FROM webhook_events").await,
        vec!["PROCESSED"]
    );
    // Replaying everything again changes nothing.
    let all = ReplayFilter {
        include_processed: true,
        ..ReplayFilter::default()
    };
    let report = snorq::app::ingest::replay(store.as_ref(), &all, |_| {})
        .await
        .unwrap();
    assert_eq!(report.examined, 1);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 1);
    assert_eq!(app.db.count("SELECT unread_count FROM conversations").await, 1);
}

async fn organizations_never_see_each_others_conversations(backend: Backend) {
    let app = spawn(backend).await;
    let a = org_with(&app, "a@example.com", &[("whatsapp", WA_NUMBER)]).await;
    let b = org_with(
        &app,
        "b@example.com",
        &[("whatsapp", PYWA_NUMBER), ("facebook", PAGE)],
    )
    .await;
    deliver(&app, "whatsapp", &fixture("webhooks/whatsapp_text.json")).await;
    let pywa: Value = serde_json::from_slice(&fixture("pywa/message.json")).unwrap();
    deliver(&app, "whatsapp", pywa["text"].to_string().as_bytes()).await;
    deliver(&app, "facebook", &fixture("webhooks/messenger_text.json")).await;
    let count_for = |org: &str| {
        format!(
            "SELECT COUNT(*) FROM conversations c JOIN organizations o ON o.id = c.organization_id \
             WHERE o.slug = (SELECT slug FROM organizations WHERE name = 'Org of {org}')"
        )
    };
    assert_eq!(app.db.count(&count_for("a@example.com")).await, 1);
    assert_eq!(app.db.count(&count_for("b@example.com")).await, 2);
    // Every row belongs to the organization of the connection it came through.
    let crossed = "SELECT COUNT(*) FROM conversations c JOIN platform_connections p \
                   ON p.id = c.platform_connection_id WHERE c.organization_id <> p.organization_id";
    assert_eq!(app.db.count(crossed).await, 0);
    let crossed = "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                   WHERE m.organization_id <> c.organization_id";
    assert_eq!(app.db.count(crossed).await, 0);
    assert_ne!(a, b);
}

async fn database_down_answers_503_and_writes_nothing(backend: Backend) {
    let app = spawn(backend).await;
    org_with(&app, "owner@example.com", &[("whatsapp", WA_NUMBER)]).await;
    let body = fixture("webhooks/whatsapp_batch_two_messages.json");
    let down = common::outage(&app).await;
    let (status, problem) = deliver(&app, "whatsapp", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "unavailable");
    common::end_outage(down).await;
    assert_eq!(
        app.db.count("SELECT COUNT(*) FROM webhook_events").await,
        0,
        "nothing half-written"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 0);
    // The platform's redelivery then lands whole.
    let (status, answer) = deliver(&app, "whatsapp", &body).await;
    assert_eq!(
        (status, answer["applied"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{answer}"
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 2);
}

/// Issue 21: when the writers are behind, webhooks beyond the queue limit are refused at once
/// with 503 `busy` and `Retry-After` (the platform delivers them again), nothing of them stored,
/// while the ones already queued are stored once the writers catch up.
async fn a_full_ingest_queue_refuses_with_retry_after(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        with_webhook_secrets(config);
        config.ingest_writers = Some(1);
        config.ingest_max_batch = 1;
        config.ingest_queue_limit = 1;
    })
    .await;
    org_with(&app, "owner@example.com", &[("whatsapp", WA_NUMBER)]).await;
    // Hold the writer up: another connection keeps the tables it writes locked.
    let blocker = common::hold_write_lock(&app.db).await;
    let requests: Vec<_> = (0..6)
        .map(|i| {
            let body = common::inbox::text_webhook(
                WA_NUMBER,
                &format!("55119{i}"),
                "Ana",
                &format!("wamid.q{i}"),
                "hi",
                5,
            )
            .to_string();
            let request = app
                .http
                .post(app.url("/webhooks/whatsapp"))
                .header(
                    "X-Hub-Signature-256",
                    meta_signature_header(META_SECRET.as_bytes(), body.as_bytes()),
                )
                .header("content-type", "application/json")
                .body(body);
            tokio::spawn(async move {
                let response = request.send().await.expect("webhook");
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_owned());
                let status = response.status();
                (
                    status,
                    retry_after,
                    response.json::<Value>().await.unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    // One webhook is in the writer's transaction, one waits in the queue: the other four are
    // refused without waiting for the writer.
    let mut refused = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while refused < 4 && tokio::time::Instant::now() < deadline {
        refused = requests.iter().filter(|r| r.is_finished()).count();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        refused, 4,
        "four webhooks are refused while the writer is held up"
    );
    blocker.release().await;
    let mut stored = 0;
    for request in requests {
        let (status, retry_after, body) = request.await.unwrap();
        match status {
            StatusCode::OK => stored += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["code"], "busy", "{body}");
                assert_eq!(retry_after.as_deref(), Some("2"));
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(stored, 2);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM webhook_events").await, 2);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 2);
}

backend_tests!(
    a_full_ingest_queue_refuses_with_retry_after,
    database_down_answers_503_and_writes_nothing,
    every_fixture_is_accepted_and_stored,
    redeliveries_change_nothing,
    a_batch_of_100_messages_is_stored_whole,
    concurrent_webhooks_are_each_stored_once,
    receipts_move_forward_only,
    a_status_before_its_message_is_kept_and_applied,
    echo_of_our_own_send_is_matched_not_duplicated,
    signatures_are_checked_before_anything_is_stored,
    unconfigured_platforms_refuse_and_handshake_works,
    signed_garbage_is_stored_and_acknowledged,
    unroutable_then_replayed_after_connecting,
    organizations_never_see_each_others_conversations,
);
