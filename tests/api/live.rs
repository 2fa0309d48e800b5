//! Live events over Server-Sent Events, on both backends: events arrive as they are written,
//! a client reconnecting with `Last-Event-ID` gets exactly what it missed, in order, and events
//! written by one process reach clients of another process on the same database.

use crate::common;

use std::time::Duration;

use common::inbox::org_with_number;
use common::{Backend, TestApp, assert_problem, str_of, with_webhook_secrets};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

backend_tests!(
    streams_end_when_access_ends_and_are_limited,
    a_reconnecting_client_gets_what_it_missed_from_any_process,
    events_are_private_to_their_organization,
    a_shutdown_ends_open_streams,
);

#[derive(Debug, Clone)]
struct SseEvent {
    id: i64,
    kind: String,
    data: Value,
}

/// An open event stream.
struct Stream {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
}

impl Stream {
    async fn open(base: &str, org: &str, token: &str, last_event_id: Option<i64>) -> Stream {
        let mut request = reqwest::Client::new()
            .get(format!("{base}/api/v1/orgs/{org}/events"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("events");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut stream = Stream {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        };
        // The first event says where the stream starts: after the id asked for, or the newest.
        while !stream.buffer.contains("\n\n") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.body.next())
                .await
                .expect("stream.opened at once")
                .expect("stream open")
                .expect("no stream error");
            stream.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
        let end = stream.buffer.find("\n\n").unwrap();
        let first: String = stream.buffer.drain(..end + 2).collect();
        assert!(first.contains("event: stream.opened"), "{first}");
        if let Some(id) = last_event_id {
            assert!(first.contains(&format!("\"after\":{id}")), "{first}");
        }
        stream
    }

    /// The next `n` events (10 s at most).
    async fn take(&mut self, n: usize) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while events.len() < n {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_owned()))
                };
                // Keep-alive comments have no fields; `stream.closed` has no id (-1 here);
                // `stream.opened` comes first and is checked on its own.
                if let (Some(kind), Some(data)) = (field("event"), field("data"))
                    && kind != "stream.opened"
                {
                    events.push(SseEvent {
                        id: field("id").map_or(-1, |id| id.parse().expect("numeric id")),
                        kind,
                        data: serde_json::from_str(&data).expect("JSON data"),
                    });
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} events arrived: {events:?}", events.len()))
                .expect("stream ended")
                .expect("stream error");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
        events
    }

    /// Nothing more arrives within `wait`.
    async fn quiet_for(&mut self, wait: Duration) {
        if let Ok(Some(Ok(chunk))) = tokio::time::timeout(wait, self.body.next()).await {
            let text = String::from_utf8_lossy(&chunk);
            assert!(
                text.trim().is_empty() || text.starts_with(':'),
                "unexpected event: {text}"
            );
        }
    }
}

impl Stream {
    /// Reads until the stream ends (10 s at most); the events it sent last.
    async fn until_closed(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => panic!("the stream is still open after 10 s: {events:?}"),
                Ok(None) | Ok(Some(Err(_))) => break,
                Ok(Some(Ok(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
            }
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_owned()))
                };
                if let (Some(kind), Some(data)) = (field("event"), field("data")) {
                    events.push(SseEvent {
                        id: field("id").map_or(-1, |id| id.parse().expect("numeric id")),
                        kind,
                        data: serde_json::from_str(&data).expect("JSON data"),
                    });
                }
            }
        }
        events
    }
}

/// Finding 3: a stream opened before access ended kept delivering the organization's events.
/// Now it ends within a few seconds, with a last `stream.closed`, when the member is removed,
/// the session signs out, or the API key is revoked; and streams are limited per user.
async fn streams_end_when_access_ends_and_are_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        with_webhook_secrets(c);
        c.live_streams_per_user = 2;
    })
    .await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    app.set_plan(&org.id, snorq::domain::Plan::Business).await;
    let (member, member_id) = app.signup("member@example.com").await;
    app.add_member(&org.token, &org.id, "member@example.com", "member")
        .await;
    let base = app.url("");

    // The member is removed: their open stream ends.
    let mut removed = Stream::open(&base, &org.id, &member, None).await;
    let (status, _) = app
        .delete(&org.path(&format!("/members/{member_id}")), &org.token)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let started = std::time::Instant::now();
    let last = removed.until_closed().await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let closed = last.last().expect("a final event");
    assert_eq!(
        (closed.kind.as_str(), &closed.data),
        ("stream.closed", &json!({"reason": "access_revoked"}))
    );

    // A signed-out session's stream ends.
    let (status, login) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "owner@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let session = str_of(&login["token"]);
    let mut signed_out = Stream::open(&base, &org.id, &session, None).await;
    let (status, _) = app
        .call(reqwest::Method::POST, "/api/v1/auth/logout", Some(&session), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        signed_out.until_closed().await.last().unwrap().kind,
        "stream.closed"
    );

    // A revoked API key's stream ends.
    let (status, key) = app
        .post(&org.path("/api-keys"), &org.token, json!({"name": "k"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let mut keyed = Stream::open(&base, &org.id, &str_of(&key["token"]), None).await;
    let (status, _) = app
        .delete(
            &org.path(&format!("/api-keys/{}", str_of(&key["id"]))),
            &org.token,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(keyed.until_closed().await.last().unwrap().kind, "stream.closed");

    // Two streams per user here: a third answers 429 until one closes.
    let first = Stream::open(&base, &org.id, &org.token, None).await;
    let _second = Stream::open(&base, &org.id, &org.token, None).await;
    let response = app
        .http
        .get(app.url(&org.path("/events")))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "too_many_streams");
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        let response = app
            .http
            .get(app.url(&org.path("/events")))
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            reopened = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "a closed stream gives its place back");
}

/// A second service process on the same database (its own HTTP server and workers).
async fn second_instance(app: &TestApp) -> (String, tokio::sync::oneshot::Sender<()>) {
    let other = snorq::server::bootstrap(&app.config).await.expect("bootstrap");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let config = app.config.clone();
    tokio::spawn(async move {
        let _ = snorq::server::run(other, &config, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    (base, tx)
}

async fn a_reconnecting_client_gets_what_it_missed_from_any_process(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_webhook_secrets).await;
    let org = org_with_number(&app, "owner@example.com", "100000000000001").await;
    org.customer_says(&app, "9001", "Eve", "wamid.before", "before the stream", 60)
        .await;
    let conversation = org.conversation_of(&app, "9001").await;

    // A new stream starts now: the first message is not replayed.
    let mut stream = Stream::open(&app.url(""), &org.id, &org.token, None).await;
    org.customer_says(&app, "9001", "Eve", "wamid.live", "live", 30)
        .await;
    let live = stream.take(2).await;
    assert_eq!(live[0].kind, "message.created");
    assert_eq!(live[0].data["conversation_id"], conversation.as_str());
    assert_eq!(live[1].kind, "conversation.updated");
    assert!(live[1].id > live[0].id);
    let last_seen = live[1].id;
    drop(stream);

    // Missed while disconnected: two messages, an assignment, a read.
    org.customer_says(&app, "9001", "Eve", "wamid.m1", "one", 20)
        .await;
    org.customer_says(&app, "9002", "Finn", "wamid.m2", "two", 10)
        .await;
    app.patch(
        &org.path(&format!("/conversations/{conversation}")),
        &org.token,
        json!({"assignee_id": org.user_id}),
    )
    .await;
    app.post(
        &org.path(&format!("/conversations/{conversation}/read")),
        &org.token,
        json!({}),
    )
    .await;
    let expected = app
        .db
        .rows(&format!(
            "SELECT kind FROM events WHERE id > {last_seen} AND organization_id IN \
             (SELECT organization_id FROM conversations) ORDER BY id"
        ))
        .await;
    assert_eq!(
        expected,
        [
            "message.created",
            "conversation.updated",
            "message.created",
            "conversation.created",
            "conversation.updated",
            "conversation.updated"
        ]
    );

    // Reconnect to another process with Last-Event-ID: exactly the missed events, in order.
    let (other, _stop) = second_instance(&app).await;
    let mut stream = Stream::open(&other, &org.id, &org.token, Some(last_seen)).await;
    let missed = stream.take(expected.len()).await;
    let kinds: Vec<&str> = missed.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, expected);
    assert!(missed[0].id > last_seen);
    assert!(missed.windows(2).all(|w| w[0].id < w[1].id), "{missed:?}");
    stream.quiet_for(Duration::from_millis(300)).await;

    // Written through the first process, delivered by the second.
    let (status, _) = app
        .patch(
            &org.path(&format!("/conversations/{conversation}")),
            &org.token,
            json!({"status": "closed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let next = stream.take(1).await;
    assert_eq!(next[0].kind, "conversation.updated");
    assert_eq!(next[0].data["conversation_id"], conversation.as_str());
    assert!(next[0].id > missed.last().unwrap().id);

    // A malformed Last-Event-ID is refused.
    let response = app
        .http
        .get(app.url(&org.path("/events")))
        .bearer_auth(&org.token)
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .expect("events");
    let status = response.status();
    let body: Value = response.json().await.expect("problem");
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

async fn events_are_private_to_their_organization(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_webhook_secrets).await;
    let mine = org_with_number(&app, "mine@example.com", "100000000000001").await;
    let theirs = org_with_number(&app, "theirs@example.com", "100000000000002").await;
    let mut stream = Stream::open(&app.url(""), &mine.id, &mine.token, Some(0)).await;
    theirs
        .customer_says(&app, "9101", "X", "wamid.theirs", "not for you", 5)
        .await;
    mine.customer_says(&app, "9102", "Y", "wamid.mine", "for you", 5)
        .await;
    // From the start: the organization's connection being created, then its customer's message.
    let events = stream.take(3).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["connection.created", "message.created", "conversation.created"]
    );
    assert_eq!(events[0].data["status"], "active");
    let conversation = mine.conversation_of(&app, "9102").await;
    for event in &events[1..] {
        assert_eq!(event.data["conversation_id"], conversation.as_str(), "{event:?}");
    }
    stream.quiet_for(Duration::from_millis(300)).await;
    // Someone else's organization: 404, as for every org route.
    let response = app
        .http
        .get(app.url(&theirs.path("/events")))
        .bearer_auth(&mine.token)
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// A graceful shutdown waits for open responses; open event streams end so that it can finish
/// (before, a client following events kept the process from stopping).
async fn a_shutdown_ends_open_streams(backend: Backend) {
    let app = TestApp::spawn_with(backend, with_webhook_secrets).await;
    let org = org_with_number(&app, "ana@example.com", "106540352242922").await;
    let process = snorq::server::bootstrap(&app.config).await.expect("bootstrap");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = app.config.clone();
    let server = tokio::spawn(async move {
        snorq::server::run(process, &config, listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut stream = Stream::open(&base, &org.id, &org.token, None).await;
    stream.quiet_for(Duration::from_millis(300)).await;
    let _ = stop.send(());
    let finished = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the process stopped with a client following its events");
    finished.expect("no panic").expect("a clean stop");
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = stream.body.next().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream ended");
}
