//! Every reply reaches the customer once (docs/api.md, "Delivery guarantees"), on both backends:
//! a call whose outcome is unknown is never repeated on a schedule but waits for the platform's
//! word (a status carrying our correlation value) or fails visibly as `outcome_unknown`; a
//! worker killed mid-call, a database away while the outcome is recorded and a job the queue
//! lost each end with one call at the platform.

use crate::common;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::outbound::{CUSTOMER, Setup, WA_NUMBER, WhatsAppAcceptsAfter, platform_answers, setup_with};
use common::{Backend, TestApp, assert_problem};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

backend_tests!(
    a_timeout_waits_for_the_platform_s_word,
    a_reset_after_accept_fails_as_outcome_unknown_and_retry_asks_to_confirm,
    a_worker_killed_mid_call_sends_once,
    a_database_away_while_recording_sends_once,
    a_job_the_queue_lost_is_queued_again_or_fails_as_stalled,
);

/// A `snorq worker` process on the test's database, calling `graph_url` for WhatsApp.
pub fn worker_process(app: &TestApp, graph_url: &str, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snorq"));
    command
        .arg("worker")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SNORQ_DATABASE_URL", app.db.url_string())
        .env("SNORQ_ENCRYPTION_KEYS", common::test_key())
        .env("SNORQ_GRAPH_BASE_URL", graph_url)
        .env("SNORQ_SEND_RATE_WHATSAPP", "0")
        .env("SNORQ_QUEUE_POLL_INTERVAL_MS", "50")
        .env("SNORQ_WORKER_HEARTBEAT_SECS", "1")
        .env("SNORQ_SEND_TIMEOUT_SECS", "10")
        .env("SNORQ_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("start snorq worker")
}

/// The sweep's settings short enough for a test: stalled after 2 s, a call abandoned 2 s past
/// its timeout, 3 s to hear the platform's word.
fn quick_sweep(c: &mut snorq::config::RawConfig) {
    c.send_stall_secs = 2;
    c.send_confirm_window_secs = 3;
}

const QUICK_SWEEP_ENV: [(&str, &str); 2] = [
    ("SNORQ_SEND_STALL_SECS", "2"),
    ("SNORQ_SEND_CONFIRM_WINDOW_SECS", "3"),
];

/// WhatsApp's status webhook for one of our sends, naming it by our correlation value (as
/// `biz_opaque_callback_data` does) with the platform's own id.
fn correlated_status(message_id: &str, wamid: &str, status: &str) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550000000", "phone_number_id": WA_NUMBER},
                  "statuses": [{"id": wamid, "status": status, "biz_opaque_callback_data": format!("outbound:{message_id}"),
                                "timestamp": chrono::Utc::now().timestamp().to_string(), "recipient_id": CUSTOMER}]}}]}]})
}

async fn deliver_status(s: &Setup, message_id: &str, wamid: &str, status: &str) {
    let body = correlated_status(message_id, wamid, status).to_string();
    let (code, answer) = s.app.deliver("whatsapp", body.as_bytes()).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
}

/// Waits until the platform has been called `n` times (10 s at most).
async fn until_called(s: &Setup, n: usize) {
    for _ in 0..200 {
        if s.platform_calls().await.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the platform was not called {n} times");
}

/// No answer within the send timeout: the platform may have accepted it. The send waits,
/// `unconfirmed`, without a second call; WhatsApp's status with our correlation value makes
/// it sent with the platform's id.
async fn a_timeout_waits_for_the_platform_s_word(backend: Backend) {
    let s = setup_with(backend, Duration::ZERO, quick_sweep).await;
    platform_answers(&s.platform, WhatsAppAcceptsAfter(Duration::from_secs(4)), Some(1)).await;
    let id = s.queued("are you there?").await;
    let waiting = s.wait_status(&id, "unconfirmed").await;
    assert_eq!(waiting["failure_reason"], Value::Null, "{waiting}");
    assert_eq!(waiting["attempts"], 1);
    let first = &waiting["attempt_log"][0];
    assert_eq!(first["outcome"], "unconfirmed", "{first}");
    assert!(
        first["error_message"]
            .as_str()
            .unwrap()
            .contains("may still have accepted"),
        "{first}"
    );
    // Longer than the retry schedule's first wait (1 s): still the one call.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.platform_calls().await.len(), 1);

    // The listing filters by the new state.
    let (status, page) = s
        .app
        .get(
            &format!("/api/v1/orgs/{}/sends?status=unconfirmed", s.org),
            &s.token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    // The conversation's history shows the same state.
    let (status, history) = s
        .app
        .get(
            &format!("/api/v1/orgs/{}/conversations/{}/messages", s.org, s.conversation),
            &s.token,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let reply = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id.as_str())
        .expect("the reply in the history");
    assert_eq!(reply["status"], "unconfirmed", "{reply}");

    deliver_status(&s, &id, "wamid.accepted-late", "delivered").await;
    let settled = s.send(&id).await;
    assert_eq!(settled["status"], "delivered", "{settled}");
    assert_eq!(settled["external_id"], "wamid.accepted-late");
    // The window has passed: nothing changes a settled send.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(s.send(&id).await["status"], "delivered");
    assert_eq!(s.platform_calls().await.len(), 1);
}

/// A platform stand-in that reads each request whole and then cuts the connection without a
/// word: the request was written, so the platform may have acted on it.
struct CuttingPlatform {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl CuttingPlatform {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    if let Some(body) = read_request(&mut socket).await {
                        seen.lock().unwrap().push(body);
                    }
                    let _ = socket.shutdown().await;
                });
            }
        });
        CuttingPlatform { url, bodies }
    }

    fn calls(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }
}

/// The JSON body of one HTTP/1.1 request (by its Content-Length).
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Value> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return serde_json::from_slice(&data[end + 4..end + 4 + length]).ok();
            }
        }
    }
}

/// The connection is cut after the platform read the request: outcome unknown. No word comes
/// within the window, so it fails as `outcome_unknown`; retrying it needs the agent's
/// confirmation, and a bulk retry leaves it out unless confirmed.
async fn a_reset_after_accept_fails_as_outcome_unknown_and_retry_asks_to_confirm(backend: Backend) {
    let s = setup_with(backend, Duration::ZERO, |c| {
        c.workers = false;
        quick_sweep(c);
    })
    .await;
    let cutting = CuttingPlatform::start().await;
    let mut worker = worker_process(&s.app, &cutting.url, &QUICK_SWEEP_ENV);
    let id = s.queued("did this arrive?").await;
    s.wait_status(&id, "unconfirmed").await;
    let failed = s.wait_status(&id, "failed").await;
    assert_eq!(failed["failure_reason"], "outcome_unknown", "{failed}");
    assert_eq!(failed["attempts"], 1);
    assert_eq!(cutting.calls(), 1);

    let retry = format!("/api/v1/orgs/{}/sends/{id}/retry", s.org);
    let (status, problem) = s.app.post(&retry, &s.token, json!({})).await;
    assert_problem(status, &problem, StatusCode::CONFLICT, "confirmation_required");
    let (status, answer) = s
        .app
        .post(
            &format!("/api/v1/orgs/{}/sends/retry", s.org),
            &s.token,
            json!({"status": "failed"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["retried"], 0, "a bulk retry leaves unknown outcomes out");
    assert_eq!(cutting.calls(), 1);

    let (status, answer) = s
        .app
        .post(&format!("{retry}?confirm=true"), &s.token, json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["status"], "pending");
    // The agent asked for it: the platform is called again (and cut again).
    for _ in 0..200 {
        if cutting.calls() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cutting.calls(), 2);
    let _ = worker.kill();
    let _ = worker.wait();
}

/// SIGKILL during the platform call. The attempt was claimed before the call, so the next
/// worker does not call again; the sweep finds the claim abandoned and the send waits for the
/// platform's word, which settles it.
async fn a_worker_killed_mid_call_sends_once(backend: Backend) {
    let s = setup_with(backend, Duration::ZERO, |c| c.workers = false).await;
    platform_answers(
        &s.platform,
        WhatsAppAcceptsAfter(Duration::from_secs(30)),
        Some(1),
    )
    .await;
    let id = s.queued("survive a crash").await;
    let mut first = worker_process(&s.app, &s.platform.uri(), &[]);
    until_called(&s, 1).await;
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(s.send(&id).await["status"], "pending");
    // The new worker's heartbeat check hands the orphaned job out again; its claim stops it.
    let env = [
        QUICK_SWEEP_ENV[0],
        QUICK_SWEEP_ENV[1],
        ("SNORQ_SEND_TIMEOUT_SECS", "1"),
    ];
    let mut second = worker_process(&s.app, &s.platform.uri(), &env);
    let waiting = s.wait_status(&id, "unconfirmed").await;
    assert_eq!(waiting["attempt_log"][0]["outcome"], "abandoned", "{waiting}");
    deliver_status(&s, &id, "wamid.survived", "sent").await;
    let sent = s.wait_status(&id, "sent").await;
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(sent["attempts"], 1);
    assert_eq!(sent["external_id"], "wamid.survived");
    assert_eq!(s.platform_calls().await.len(), 1);
}

/// The database goes away while the platform is answering and stays away past the worker's
/// heartbeat timeout (apalis then hands the job out again): the outcome is recorded once the
/// database is back, and the job run again does not call the platform.
async fn a_database_away_while_recording_sends_once(backend: Backend) {
    let s = setup_with(backend, Duration::ZERO, |c| {
        c.worker_heartbeat_secs = 1;
        c.queue_poll_interval_ms = 50;
    })
    .await;
    platform_answers(&s.platform, WhatsAppAcceptsAfter(Duration::from_secs(1)), Some(1)).await;
    let id = s.queued("through an outage").await;
    until_called(&s, 1).await;
    let down = common::outage(&s.app).await;
    // Past the orphan timeout (6 heartbeats) and SQLite's 5 s busy timeout.
    tokio::time::sleep(Duration::from_secs(8)).await;
    common::end_outage(down).await;
    let sent = s.wait_status(&id, "sent").await;
    assert_eq!(sent["attempts"], 1);
    // Room for a second run of the job to have happened.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.platform_calls().await.len(), 1);
    assert_eq!(s.send(&id).await["attempt_log"].as_array().unwrap().len(), 1);
}

/// The queue lost a send's job (deleted here; the same as one apalis gave up on): the sweep
/// queues a new one and it is sent once. A send re-queued too often fails as `stalled`, and
/// retrying it needs no confirmation (nothing was sent).
async fn a_job_the_queue_lost_is_queued_again_or_fails_as_stalled(backend: Backend) {
    let s = setup_with(backend, Duration::ZERO, |c| c.workers = false).await;
    platform_answers(&s.platform, WhatsAppAcceptsAfter(Duration::ZERO), None).await;
    let lost = s.queued("lost job").await;
    let hopeless = s.queued("never runs").await;
    let jobs = match backend {
        Backend::Postgres => "apalis.jobs",
        Backend::Sqlite => "Jobs",
    };
    s.app.db.execute(&format!("DELETE FROM {jobs}")).await;
    s.app
        .db
        .execute(
            "UPDATE messages SET requeues = 3 WHERE id = \
             (SELECT id FROM messages WHERE direction = 'OUTBOUND' ORDER BY id DESC LIMIT 1)",
        )
        .await;
    let mut worker = worker_process(&s.app, &s.platform.uri(), &QUICK_SWEEP_ENV);
    let sent = s.wait_status(&lost, "sent").await;
    assert_eq!(sent["attempts"], 1);
    let stalled = s.wait_status(&hopeless, "failed").await;
    assert_eq!(stalled["failure_reason"], "stalled", "{stalled}");
    assert_eq!(stalled["attempts"], 0);
    assert_eq!(s.platform_calls().await.len(), 1);

    let (status, answer) = s
        .app
        .post(
            &format!("/api/v1/orgs/{}/sends/{hopeless}/retry", s.org),
            &s.token,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    s.wait_status(&hopeless, "sent").await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(s.platform_calls().await.len(), 2);
}
