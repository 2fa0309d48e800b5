//! Outbound replies end to end (docs/architecture.md, "The flow of a reply"), on both backends:
//! the API stores the message and its job together, the worker calls a fake platform
//! (wiremock), and every outcome ends where the issue says: sent, retried on our schedule,
//! failed with the platform's code, the connection marked on auth errors; retries from the
//! sends API call the platform again.

use crate::common;

use std::time::Duration;

use crate::delivery::worker_process;
use common::outbound::{
    CUSTOMER, SEND_PATH, TOKEN, WA_NUMBER, WhatsAppAccepts, WhatsAppAcceptsAfter, customer_writes,
    graph_error, platform_answers, setup, setup_with,
};
use common::{Backend, TestApp, assert_problem, str_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::Mock;
use wiremock::matchers::{method, path};

backend_tests!(
    a_reply_is_sent_then_delivered,
    a_receipt_that_overtakes_the_send_is_applied,
    rate_limited_with_retry_after_then_sent,
    server_errors_are_retried_on_schedule_then_sent,
    retries_stop_after_the_last_scheduled_attempt,
    window_closed_at_the_platform_fails_without_retry,
    auth_error_fails_the_send_and_marks_the_connection,
    the_same_idempotency_key_sends_once,
    a_closed_window_is_refused_before_anything_is_stored,
    replies_are_checked_before_anything_is_stored,
    retry_from_the_api_calls_the_platform_again,
    bulk_retry_and_discard,
    two_worker_processes_send_each_message_once,
    the_workers_come_back_after_a_database_outage,
    finished_jobs_and_stale_receipts_are_cleaned_up,
    tiktok_allows_ten_replies_per_customer_message,
);

async fn a_reply_is_sent_then_delivered(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(WhatsAppAccepts)
        .mount(&s.platform)
        .await;
    let id = s.queued("Hi! How can we help?").await;
    let sent = s.wait_status(&id, "sent").await;
    assert_eq!(sent["external_id"], format!("wamid.outbound:{id}"));
    assert_eq!(sent["attempts"], 1);
    assert_eq!(sent["attempt_log"][0]["outcome"], "sent");

    let calls = s.platform_calls().await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["to"], CUSTOMER);
    assert_eq!(calls[0]["text"]["body"], "Hi! How can we help?");
    let auth = s.platform.received_requests().await.unwrap()[0]
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(auth.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));

    // The platform's receipt moves it on.
    let (status, _) = s
        .app
        .deliver("whatsapp", receipt(&id, "delivered").to_string().as_bytes())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.send(&id).await["status"], "delivered");

    // Every status change was a live event: created, then pending -> sent.
    let kinds = s
        .app
        .db
        .rows(&format!(
            "SELECT kind FROM events WHERE CAST(payload AS TEXT) LIKE '%{id}%' ORDER BY id"
        ))
        .await;
    assert_eq!(
        kinds,
        ["message.created", "message.updated", "message.updated"],
        "{kinds:?}"
    );
}

fn receipt(id: &str, status: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550000000", "phone_number_id": WA_NUMBER},
                  "statuses": [{"id": format!("wamid.outbound:{id}"), "status": status,
                                "timestamp": chrono::Utc::now().timestamp().to_string(), "recipient_id": CUSTOMER}]}}]}]})
}

async fn a_receipt_that_overtakes_the_send_is_applied(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(WhatsAppAcceptsAfter(Duration::from_millis(1500)))
        .mount(&s.platform)
        .await;
    let id = s.queued("quick reader").await;
    for _ in 0..100 {
        if !s.platform_calls().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The platform has the message, we do not know its id yet: the read receipt comes first.
    let (status, _) = s
        .app
        .deliver("whatsapp", receipt(&id, "read").to_string().as_bytes())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.send(&id).await["status"], "pending");
    assert_eq!(s.app.db.count("SELECT COUNT(*) FROM pending_receipts").await, 1);
    let read = s.wait_status(&id, "read").await;
    assert_eq!(read["external_id"], format!("wamid.outbound:{id}"));
    assert_eq!(s.app.db.count("SELECT COUNT(*) FROM pending_receipts").await, 0);
}

async fn rate_limited_with_retry_after_then_sent(backend: Backend) {
    let s = setup(backend).await;
    platform_answers(
        &s.platform,
        graph_error(429, 130429, "Rate limit hit").insert_header("Retry-After", "2"),
        Some(1),
    )
    .await;
    let id = s.queued("busy?").await;
    let sent = s.wait_status(&id, "sent").await;
    assert_eq!(sent["attempts"], 2);
    let log = sent["attempt_log"].as_array().unwrap();
    assert_eq!(log[0]["outcome"], "retry");
    assert_eq!(log[0]["error_code"], "130429");
    assert_eq!(log[0]["http_status"], 429);
    // Retry-After (2 s) beat the schedule's 1 s, and the second attempt waited for it.
    let first_end: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(log[0]["finished_at"].clone()).unwrap();
    let due: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(log[0]["next_attempt_at"].clone()).unwrap();
    let second: chrono::DateTime<chrono::Utc> = serde_json::from_value(log[1]["started_at"].clone()).unwrap();
    assert!(due - first_end >= chrono::Duration::seconds(2), "{log:?}");
    assert!(second >= due, "{log:?}");
    assert_eq!(s.platform_calls().await.len(), 2);
}

async fn server_errors_are_retried_on_schedule_then_sent(backend: Backend) {
    let s = setup(backend).await;
    platform_answers(
        &s.platform,
        graph_error(500, 2, "Service temporarily unavailable"),
        Some(2),
    )
    .await;
    let id = s.queued("third time lucky").await;
    let sent = s.wait_status(&id, "sent").await;
    assert_eq!(sent["attempts"], 3);
    let outcomes: Vec<&str> = sent["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "sent"]);
    // Nothing of the failures is left on the sent message.
    assert_eq!(sent["error_code"], Value::Null);
    assert_eq!(s.platform_calls().await.len(), 3);
}

async fn retries_stop_after_the_last_scheduled_attempt(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(graph_error(503, 1, "An unknown error occurred"))
        .mount(&s.platform)
        .await;
    let id = s.queued("never gets through").await;
    let failed = s.wait_status(&id, "failed").await;
    // Three delays in the test schedule: four attempts, then failed.
    assert_eq!(failed["attempts"], 4);
    assert_eq!(failed["failure_reason"], "transient");
    assert_eq!(failed["next_attempt_at"], Value::Null);
    assert_eq!(s.platform_calls().await.len(), 4);
}

async fn window_closed_at_the_platform_fails_without_retry(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(graph_error(400, 131047, "Re-engagement message"))
        .mount(&s.platform)
        .await;
    let id = s.queued("too late?").await;
    let failed = s.wait_status(&id, "failed").await;
    assert_eq!(failed["failure_reason"], "window_closed");
    assert_eq!(failed["error_code"], "131047");
    assert!(
        failed["error_message"]
            .as_str()
            .unwrap()
            .contains("Re-engagement"),
        "{failed}"
    );
    assert_eq!(failed["attempts"], 1);
    // Longer than the retry delay: nothing else was sent.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.platform_calls().await.len(), 1);
    let (status, page) = s
        .app
        .get(
            &format!("/api/v1/orgs/{}/sends?status=failed&error_code=131047", s.org),
            &s.token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"][0]["id"], id.as_str(), "{page}");
}

async fn auth_error_fails_the_send_and_marks_the_connection(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(graph_error(
            401,
            190,
            "Error validating access token: Session has expired",
        ))
        .mount(&s.platform)
        .await;
    let id = s.queued("hello").await;
    let failed = s.wait_status(&id, "failed").await;
    assert_eq!(failed["failure_reason"], "auth");
    assert_eq!(failed["error_code"], "190");
    let (_, connections) = s
        .app
        .get(&format!("/api/v1/orgs/{}/connections", s.org), &s.token)
        .await;
    let connection = &connections["items"][0];
    assert_eq!(connection["status"], "expired", "{connection}");
    assert!(
        connection["last_error"]
            .as_str()
            .unwrap()
            .contains("Session has expired")
    );
    // The token never reaches the stored error.
    assert!(!connection.to_string().contains(TOKEN));
    // New replies are refused until the connection is fixed.
    let (status, body, _) = s.reply("another", None).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "connection_unavailable");
    assert_eq!(s.platform_calls().await.len(), 1);
}

async fn the_same_idempotency_key_sends_once(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(WhatsAppAccepts)
        .mount(&s.platform)
        .await;
    let (first_status, first, first_replayed) = s.reply("only once", Some("order-42")).await;
    let (second_status, second, second_replayed) = s.reply("only once", Some("order-42")).await;
    assert_eq!(first_status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(second_status, StatusCode::ACCEPTED, "{second}");
    assert!(!first_replayed && second_replayed);
    assert_eq!(first["id"], second["id"]);
    let id = str_of(&first["id"]);
    s.wait_status(&id, "sent").await;
    // After it was sent, the key still answers with the same message.
    let (_, third, replayed) = s.reply("only once", Some("order-42")).await;
    assert!(replayed);
    assert_eq!(third["id"], first["id"]);
    assert_eq!(third["status"], "sent");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.platform_calls().await.len(), 1);
    assert_eq!(
        s.app
            .db
            .count("SELECT COUNT(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await,
        1
    );
    // The same key for another conversation is refused, not answered with the first message.
    common::outbound::customer_writes_from(&s.app, "15559876543", "wamid.other-1", Duration::ZERO).await;
    let conversations = s.app.db.uuids("SELECT id FROM conversations").await;
    let other = conversations
        .iter()
        .find(|c| c.to_string() != s.conversation)
        .expect("a second conversation");
    let response = s
        .app
        .http
        .post(
            s.app
                .url(&format!("/api/v1/orgs/{}/conversations/{other}/messages", s.org)),
        )
        .bearer_auth(&s.token)
        .header("Idempotency-Key", "order-42")
        .json(&json!({"text": "only once"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

async fn a_closed_window_is_refused_before_anything_is_stored(backend: Backend) {
    let s = setup_with(backend, Duration::from_secs(25 * 3600), |_| {}).await;
    let (status, body, _) = s.reply("sorry for the wait", None).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "window_closed");
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["window_expires_at"].clone()).unwrap();
    assert!(expires < chrono::Utc::now(), "{body}");
    assert_eq!(
        s.app
            .db
            .count("SELECT COUNT(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await,
        0
    );
    let jobs = s
        .app
        .db
        .count(&format!("SELECT COUNT(*) FROM {}", s.app.db.jobs_table()))
        .await;
    assert_eq!(jobs, 0);
    assert!(s.platform_calls().await.is_empty());
    // The customer writes again: the window reopens.
    customer_writes(&s.app, "wamid.inbound-2", Duration::ZERO).await;
    let (status, body, _) = s.reply("sorry for the wait", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn replies_are_checked_before_anything_is_stored(backend: Backend) {
    let s = setup(backend).await;
    let too_long = "x".repeat(4097);
    let (status, body, _) = s.reply(&too_long, None).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "text");
    let (status, body, _) = s.reply("   ", None).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body, _) = s.reply("ok", Some("has spaces in it")).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let media = |url: &str| json!({"content": {"kind": "image", "url": url}});
    let path = format!("/api/v1/orgs/{}/conversations/{}/messages", s.org, s.conversation);
    let (status, body) = s.app.post(&path, &s.token, media("file:///etc/passwd")).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(body["field"], "content.url");
    // Another organization's conversation does not exist for this one.
    let (other_token, _) = s.app.signup("other@example.com").await;
    let other_org = s.app.create_org(&other_token, "Other").await;
    let (status, body) = s
        .app
        .post(
            &format!(
                "/api/v1/orgs/{other_org}/conversations/{}/messages",
                s.conversation
            ),
            &other_token,
            json!({"text": "hi"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        s.app
            .db
            .count("SELECT COUNT(*) FROM messages WHERE direction = 'OUTBOUND'")
            .await,
        0
    );
    // A valid image reply is accepted.
    let (status, body) = s
        .app
        .post(&path, &s.token, media("https://cdn.example.com/a.png"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["content"],
        json!({"kind": "image", "url": "https://cdn.example.com/a.png"})
    );
}

async fn retry_from_the_api_calls_the_platform_again(backend: Backend) {
    let s = setup(backend).await;
    platform_answers(
        &s.platform,
        graph_error(400, 131026, "Message undeliverable"),
        Some(1),
    )
    .await;
    let id = s.queued("please arrive").await;
    let failed = s.wait_status(&id, "failed").await;
    assert_eq!(failed["failure_reason"], "recipient_unavailable");

    // Members may read sends but not retry them.
    s.app.set_plan(&s.org, snorq::domain::Plan::Pro).await;
    s.app.signup("member@example.com").await;
    s.app
        .add_member(&s.token, &s.org, "member@example.com", "member")
        .await;
    let member = login(&s.app, "member@example.com").await;
    let retry_path = format!("/api/v1/orgs/{}/sends/{id}/retry", s.org);
    let (status, body) = s.app.post(&retry_path, &member, json!({})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let (status, body) = s.app.post(&retry_path, &s.token, json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "pending");
    let sent = s.wait_status(&id, "sent").await;
    assert_eq!(sent["attempts"], 2);
    assert_eq!(s.platform_calls().await.len(), 2);
    // Retrying a sent message is refused.
    let (status, body) = s.app.post(&retry_path, &s.token, json!({})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");
}

async fn login(app: &TestApp, email: &str) -> String {
    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    str_of(&body["token"])
}

async fn bulk_retry_and_discard(backend: Backend) {
    let s = setup(backend).await;
    platform_answers(&s.platform, graph_error(400, 100, "Invalid parameter"), Some(3)).await;
    let ids = [
        s.queued("one").await,
        s.queued("two").await,
        s.queued("three").await,
    ];
    for id in &ids {
        s.wait_status(id, "failed").await;
    }
    // Discard one: it leaves the failed list and is not retried in bulk.
    let (status, body) = s
        .app
        .post(
            &format!("/api/v1/orgs/{}/sends/{}/discard", s.org, ids[0]),
            &s.token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["discarded"], true);
    let (_, failed) = s
        .app
        .get(&format!("/api/v1/orgs/{}/sends?status=failed", s.org), &s.token)
        .await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 2, "{failed}");
    let (_, discarded) = s
        .app
        .get(
            &format!("/api/v1/orgs/{}/sends?status=discarded", s.org),
            &s.token,
        )
        .await;
    assert_eq!(discarded["items"][0]["id"], ids[0].as_str());
    // A discarded send stays discarded.
    let (status, body) = s
        .app
        .post(
            &format!("/api/v1/orgs/{}/sends/{}/retry", s.org, ids[0]),
            &s.token,
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "conflict");

    let (status, body) = s
        .app
        .post(
            &format!("/api/v1/orgs/{}/sends/retry", s.org),
            &s.token,
            json!({"error_code": "100"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["retried"], 2);
    s.wait_status(&ids[1], "sent").await;
    s.wait_status(&ids[2], "sent").await;
    assert_eq!(s.send(&ids[0]).await["status"], "failed");
    assert_eq!(s.platform_calls().await.len(), 5);

    // Pagination: newest first, a cursor to the rest.
    let (_, first) = s
        .app
        .get(&format!("/api/v1/orgs/{}/sends?limit=2", s.org), &s.token)
        .await;
    assert_eq!(first["items"][0]["id"], ids[2].as_str());
    let cursor = str_of(&first["next_cursor"]);
    let (_, rest) = s
        .app
        .get(
            &format!("/api/v1/orgs/{}/sends?limit=2&cursor={cursor}", s.org),
            &s.token,
        )
        .await;
    assert_eq!(rest["items"][0]["id"], ids[0].as_str(), "{rest}");
    assert_eq!(rest["next_cursor"], Value::Null);
    let (status, body) = s
        .app
        .get(&format!("/api/v1/orgs/{}/sends?status=lost", s.org), &s.token)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

/// Runs `snorq worker` as its own process against the test database.
async fn two_worker_processes_send_each_message_once(backend: Backend) {
    let s = setup_with(backend, Duration::ZERO, |c| c.send_concurrency = 8).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(WhatsAppAccepts)
        .mount(&s.platform)
        .await;
    let mut other = worker_process(&s.app, &s.platform.uri(), &[]);
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(s.queued(&format!("message {i}")).await);
    }
    for id in &ids {
        s.wait_status(id, "sent").await;
    }
    let _ = other.kill();
    let _ = other.wait();
    let mut correlations: Vec<String> = s
        .platform_calls()
        .await
        .iter()
        .map(|c| str_of(&c["biz_opaque_callback_data"]))
        .collect();
    correlations.sort();
    let mut expected: Vec<String> = ids.iter().map(|id| format!("outbound:{id}")).collect();
    expected.sort();
    assert_eq!(correlations, expected, "every message sent exactly once");
}

async fn the_workers_come_back_after_a_database_outage(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(WhatsAppAccepts)
        .mount(&s.platform)
        .await;
    let before = s.queued("before").await;
    s.wait_status(&before, "sent").await;
    // Long enough for the worker's polls and heartbeats to fail (SQLite: past the 5 s busy
    // timeout), which stops apalis's worker; the Monitor must start it again.
    let down = common::outage(&s.app).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    common::end_outage(down).await;
    let after = s.queued("after").await;
    s.wait_status(&after, "sent").await;
    assert_eq!(s.platform_calls().await.len(), 2);
}

async fn finished_jobs_and_stale_receipts_are_cleaned_up(backend: Backend) {
    let s = setup(backend).await;
    Mock::given(method("POST"))
        .and(path(SEND_PATH))
        .respond_with(WhatsAppAccepts)
        .mount(&s.platform)
        .await;
    let id = s.queued("done soon").await;
    s.wait_status(&id, "sent").await;
    // A receipt for a message this service never sent stays pending.
    let (status, _) = s
        .app
        .deliver(
            "whatsapp",
            receipt("not-ours", "delivered").to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let jobs = s.app.db.jobs_table();
    // apalis acknowledges asynchronously: wait for the job to be recorded as done.
    for _ in 0..100 {
        if s.app
            .db
            .count(&format!("SELECT COUNT(*) FROM {jobs} WHERE status = 'Done'"))
            .await
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = s.app.app.store.clone();
    let now = chrono::Utc::now();
    // Nothing is old enough yet.
    let kept = store
        .cleanup(now - chrono::Duration::hours(1), now - chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!((kept.finished_jobs, kept.pending_receipts), (0, 0));
    // Later: the finished job and the stale receipt go; the message and its history stay.
    let later = now + chrono::Duration::hours(1);
    let cleaned = store.cleanup(later, later).await.unwrap();
    assert_eq!((cleaned.finished_jobs, cleaned.pending_receipts), (1, 1));
    assert_eq!(s.app.db.count(&format!("SELECT COUNT(*) FROM {jobs}")).await, 0);
    assert_eq!(s.send(&id).await["attempt_log"].as_array().unwrap().len(), 1);
}

async fn tiktok_allows_ten_replies_per_customer_message(backend: Backend) {
    const BUSINESS: &str = "-000AcMeStOrEbUsInEsS0penId987654321";
    let app = TestApp::spawn_with(backend, common::with_webhook_secrets).await;
    let (token, _) = app.signup("agent@example.com").await;
    let org = app.create_org(&token, "Acme").await;
    let (status, body) = app
        .post(
            &format!("/api/v1/orgs/{org}/connections"),
            &token,
            common::connection_body("tiktok", BUSINESS),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // TikTok is down: every reply waits for a retry and counts against the window.
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/open_api/v1.3/business/message/send/"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount(&app.accounts)
        .await;
    let customer_writes = |id: &str| {
        let now = chrono::Utc::now();
        let content = json!({"message_id": id, "conversation_id": "MS4wLjABAAAAconversation", "type": "text",
            "timestamp": now.timestamp_millis(), "from": "fan", "from_user": {"id": "-000customer", "role": "personal_account"},
            "to": "acme", "to_user": {"id": BUSINESS, "role": "business_account"}, "text": {"body": "hi"}});
        json!({"client_key": "1", "event": "im_receive_msg", "create_time": now.timestamp(),
               "user_openid": BUSINESS, "content": content.to_string()})
        .to_string()
    };
    let (status, _) = app
        .deliver("tiktok", customer_writes("7000000000000000001").as_bytes())
        .await;
    assert_eq!(status, StatusCode::OK);
    let conversation = app.db.uuids("SELECT id FROM conversations").await[0];
    let path = format!("/api/v1/orgs/{org}/conversations/{conversation}/messages");
    for i in 0..10 {
        let (status, body) = app
            .post(&path, &token, json!({"text": format!("reply {i}")}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = app.post(&path, &token, json!({"text": "one too many"})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "window_closed");
    // The customer writes again: ten more.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = app
        .deliver("tiktok", customer_writes("7000000000000000002").as_bytes())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.post(&path, &token, json!({"text": "welcome back"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}
