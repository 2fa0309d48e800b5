//! `snorq-tools demo` and `snorq-tools simulate` as a newcomer runs them: the binary, on both backends.
//! The demo's customers write on all three platforms, a reply through the API reaches the
//! simulator and becomes `delivered`, an injected failure shows in the sends API, and Ctrl-C
//! stops everything cleanly.

#[macro_use]
#[path = "../../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Backend, TestApp, TestDb, str_of, with_webhook_secrets};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What the demo agent answers every new conversation.
const GREETING: &str = "Hi! Thanks for writing to Demo Shop. An agent will be with you shortly.";

/// The binary with a clean environment: only what the test passes applies.
fn snorq() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snorq-tools"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SNORQ_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.env("SNORQ_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// Reads the banner up to "Press Ctrl-C": `label value` lines, and the `export TOKEN=` line.
async fn banner(child: &mut Child) -> (HashMap<String, String>, BufReader<tokio::process::ChildStdout>) {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut fields = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout_at(deadline, lines.read_line(&mut line))
            .await
            .expect("the demo printed its banner in time")
            .expect("read stdout");
        assert!(read > 0, "the demo ended before its banner: {fields:?}");
        let line = line.trim();
        if line.starts_with("Press Ctrl-C") {
            return (fields, lines);
        }
        if let Some(token) = line.strip_prefix("export TOKEN=") {
            fields.insert("Token".to_owned(), token.to_owned());
        } else if let Some((label, value)) = line.split_once(char::is_whitespace) {
            fields
                .entry(label.to_owned())
                .or_insert_with(|| value.trim().to_owned());
        }
    }
}

async fn interrupt_and_wait(child: &mut Child, signal: &str) -> std::process::ExitStatus {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stopped in time")
        .expect("wait")
}

struct Api {
    http: reqwest::Client,
    org: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.org))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// Polls `path` until `done` holds (30 s at most).
    async fn wait_for(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{what}: still {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A conversation of `platform` (there is one once its customers wrote).
    async fn conversation(&self, platform: &str) -> String {
        let page = self
            .get(&format!("/conversations?platform={platform}&limit=1"))
            .await;
        str_of(&page["items"][0]["id"])
    }

    async fn reply(&self, conversation: &str, text: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/conversations/{conversation}/messages"),
                Some(json!({ "text": text })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        str_of(&body["id"])
    }
}

async fn demo_runs_the_whole_loop(backend: Backend) {
    let db = match backend {
        Backend::Postgres => Some(TestDb::new(backend).await),
        Backend::Sqlite => None,
    };
    let mut cmd = snorq();
    cmd.arg("demo");
    if let Some(db) = &db {
        cmd.arg("--database-url").arg(db.url_string());
    }
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--rate",
        "15",
        // No random failures (the demo's first Messenger greeting still fails, on purpose);
        // read receipts off, so a delivered message stays `delivered`.
        "--fail",
        "none",
        "--read-share",
        "0",
    ]);
    let mut child = cmd.spawn().expect("spawn snorq-tools demo");
    let (fields, mut stdout) = banner(&mut child).await;
    for label in [
        "Docs",
        "Dashboard",
        "API",
        "Simulator",
        "Email",
        "Password",
        "Organization",
        "Token",
    ] {
        assert!(fields.contains_key(label), "the banner shows {label}: {fields:?}");
    }
    let http = reqwest::Client::new();
    let api_url = fields["API"].clone();
    let service_url = api_url.trim_end_matches("/api/v1").to_owned();
    let simulator_url = fields["Simulator"]
        .trim_end_matches("/_simulator/sends")
        .to_owned();
    assert_eq!(fields["Docs"], format!("{service_url}/docs"));
    let docs = http.get(&fields["Docs"]).send().await.unwrap();
    assert!(docs.status().is_success() || docs.status().is_redirection());

    // The printed credentials sign in, and the printed token works.
    let login = http
        .post(format!("{api_url}/auth/login"))
        .json(&json!({"email": fields["Email"], "password": fields["Password"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let token = str_of(&login.json::<Value>().await.unwrap()["token"]);
    let api = Api {
        http: http.clone(),
        org: format!("{api_url}/orgs/{}", fields["Organization"]),
        token,
    };
    let printed = Api {
        token: fields["Token"].clone(),
        http: http.clone(),
        org: api.org.clone(),
    };
    printed.get("/conversations?limit=1").await;

    // Customers write on all three platforms.
    api.wait_for(
        "/conversations?limit=100",
        "conversations on every platform",
        |page| {
            let platforms: BTreeSet<String> = page["items"]
                .as_array()
                .map(|items| items.iter().map(|c| str_of(&c["platform"])).collect())
                .unwrap_or_default();
            platforms.len() == 3
        },
    )
    .await;
    for platform in ["whatsapp", "facebook", "tiktok"] {
        let conversation = api.conversation(platform).await;
        let history = api.get(&format!("/conversations/{conversation}/messages")).await;
        let items = history["items"].as_array().unwrap();
        assert!(
            items.iter().any(|m| m["direction"] == "inbound"),
            "{platform}: {history}"
        );
    }

    // A WhatsApp reply reaches the simulator and becomes delivered.
    let whatsapp = api.conversation("whatsapp").await;
    let reply = api.reply(&whatsapp, "Hi! Yes, we ship to Brazil.").await;
    let sent = api
        .wait_for(&format!("/sends/{reply}"), "the reply delivered", |s| {
            s["status"] == "delivered"
        })
        .await;
    let recorded: Value = http
        .get(format!("{simulator_url}/_simulator/sends?platform=whatsapp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ours: Vec<&Value> = recorded["sends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["text"] == "Hi! Yes, we ship to Brazil.")
        .collect();
    assert_eq!(ours.len(), 1, "sent once: {recorded}");
    assert_eq!(ours[0]["outcome"], "accepted");
    assert_eq!(ours[0]["message_id"], sent["external_id"]);
    assert_eq!(
        ours[0]["correlation"],
        format!("outbound:{reply}"),
        "our id travels as the correlation"
    );

    // The demo agent greeted every new conversation; its first Messenger greeting failed on
    // purpose and shows in the sends API. Retried, it is delivered.
    let failed = api
        .wait_for("/sends?status=failed", "the failed Messenger greeting", |page| {
            page["items"].as_array().is_some_and(|items| !items.is_empty())
        })
        .await;
    let failed = failed["items"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "only the injected failure: {failed:?}");
    assert_eq!(failed[0]["platform"], "facebook");
    assert_eq!(failed[0]["failure_reason"], "window_closed", "{failed:?}");
    assert_eq!(failed[0]["error_code"], "10", "{failed:?}");
    assert_eq!(failed[0]["content"]["text"], GREETING);
    let greeting = str_of(&failed[0]["id"]);
    let (status, body) = api
        .call(reqwest::Method::POST, &format!("/sends/{greeting}/retry"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    api.wait_for(
        &format!("/sends/{greeting}"),
        "the retried greeting delivered",
        |s| s["status"] == "delivered",
    )
    .await;
    let greeted = api.get("/sends?status=delivered&platform=whatsapp").await;
    assert!(
        greeted["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["content"]["text"] == GREETING),
        "WhatsApp conversations were greeted: {greeted}"
    );

    // TikTok: sent, echoed back without a duplicate; its token checks out against the simulator.
    let tiktok = api.conversation("tiktok").await;
    let tiktok_reply = api.reply(&tiktok, "Thanks for writing!").await;
    api.wait_for(&format!("/sends/{tiktok_reply}"), "the TikTok reply sent", |s| {
        s["status"] == "sent"
    })
    .await;
    let connections = api.get("/connections").await;
    let tiktok_connection = connections["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "tiktok")
        .map(|c| str_of(&c["id"]))
        .expect("a TikTok connection");
    let (status, checked) = api
        .call(
            reqwest::Method::POST,
            &format!("/connections/{tiktok_connection}/check"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked["status"], "active", "{checked}");
    // The simulator records which follow-ups the service took: wait for the echo.
    let echoed = format!("{simulator_url}/_simulator/sends?platform=tiktok");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record: Value = http.get(&echoed).send().await.unwrap().json().await.unwrap();
        let ours = record["sends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["text"] == "Thanks for writing!")
            .cloned()
            .unwrap_or(Value::Null);
        if ours["webhooks"]
            .as_array()
            .is_some_and(|w| w.iter().any(|l| l == "echo"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no echo taken: {ours}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = api
        .get(&format!("/conversations/{tiktok}/messages?limit=100"))
        .await;
    let copies = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "outbound" && m["content"]["text"] == "Thanks for writing!")
        .count();
    assert_eq!(copies, 1, "the echo matched our message: {history}");

    // Ctrl-C stops the service and the simulator, and the demo cleans up after itself.
    let exit = interrupt_and_wait(&mut child, "-INT").await;
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut rest)
        .await
        .unwrap();
    assert!(rest.contains("simulator: "), "{rest}");
    assert!(
        http.get(&fields["Docs"]).send().await.is_err(),
        "the service stopped"
    );
    match &db {
        None => {
            let database = &fields["Database"];
            let dir = database
                .strip_prefix("SQLite in ")
                .and_then(|d| d.split_whitespace().next())
                .unwrap_or_else(|| panic!("a temporary SQLite database: {database}"));
            assert!(!std::path::Path::new(dir).exists(), "{dir} was deleted");
            assert!(rest.contains(&format!("deleted {dir}")), "{rest}");
        }
        Some(db) => {
            let live = db
                .count("SELECT COUNT(*) FROM platform_connections WHERE status <> 'DISCONNECTED'")
                .await;
            assert_eq!(live, 0, "a kept database keeps no live demo connection");
            assert_eq!(db.count("SELECT COUNT(*) FROM platform_connections").await, 3);
        }
    }
}

/// `snorq-tools simulate` beside a service started by the test: its customers reach the service's
/// connections and its send API answers the service's replies.
async fn simulate_drives_a_running_service(backend: Backend) {
    let simulator_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let simulator_url = format!("http://127.0.0.1:{simulator_port}");
    let app = TestApp::spawn_with(backend, |c| {
        with_webhook_secrets(c);
        c.graph_base_url = Some(simulator_url.clone());
        c.tiktok_base_url = Some(simulator_url.clone());
    })
    .await;
    let (token, _) = app.signup("owner@example.com").await;
    let org = app.create_org(&token, "Simulated").await;
    let mut cmd = snorq();
    cmd.args([
        "simulate",
        "--target",
        &app.url(""),
        "--listen",
        &format!("127.0.0.1:{simulator_port}"),
        "--platforms",
        "whatsapp,tiktok",
        "--rate",
        "20",
        "--fail",
        "tiktok:window-closed=1",
        "--seconds",
        "60",
        "--whatsapp-app-secret",
        common::META_SECRET,
        "--tiktok-app-secret",
        common::TIKTOK_SECRET,
    ]);
    let mut child = cmd.spawn().expect("spawn snorq-tools simulate");
    // Once the simulated platforms answer, connect the simulator's default accounts: the
    // service asks them to prove the tokens.
    let stats = format!("{simulator_url}/_simulator/stats");
    let mut waited = 0;
    while reqwest::get(&stats).await.is_err() {
        waited += 1;
        assert!(waited < 200, "snorq-tools simulate did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for body in [
        json!({"platform": "whatsapp", "platform_user_id": "100000000000001",
               "waba_id": "100000000000002", "access_token": "sim-token"}),
        json!({"platform": "tiktok", "platform_user_id": "-000SIMbusiness", "access_token": "sim-token"}),
    ] {
        let (status, created) = app
            .post(&format!("/api/v1/orgs/{org}/connections"), &token, body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let api = Api {
        http: reqwest::Client::new(),
        org: app.url(&format!("/api/v1/orgs/{org}")),
        token,
    };
    let page = api
        .wait_for(
            "/conversations?limit=100",
            "conversations from the simulator",
            |page| {
                let items = page["items"].as_array().map(Vec::as_slice).unwrap_or_default();
                ["whatsapp", "tiktok"]
                    .iter()
                    .all(|p| items.iter().any(|c| c["platform"] == *p))
            },
        )
        .await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["platform"] != "facebook")
    );
    let conversation = api.conversation("whatsapp").await;
    let reply = api.reply(&conversation, "On its way!").await;
    api.wait_for(
        &format!("/sends/{reply}"),
        "delivered through the simulator",
        |s| matches!(s["status"].as_str(), Some("delivered" | "read")),
    )
    .await;
    // The configured failure: every TikTok send is refused as outside the window.
    let tiktok = api.conversation("tiktok").await;
    let refused = api.reply(&tiktok, "Hello?").await;
    let failed = api
        .wait_for(&format!("/sends/{refused}"), "the TikTok reply failed", |s| {
            s["status"] == "failed"
        })
        .await;
    assert_eq!(failed["failure_reason"], "window_closed", "{failed}");
    assert_eq!(failed["error_code"], "40064", "{failed}");
    let exit = interrupt_and_wait(&mut child, "-TERM").await;
    assert!(exit.success(), "{exit:?}");
    let mut out = String::new();
    let mut stdout = child.stdout.take().expect("stdout");
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out)
        .await
        .unwrap();
    assert!(
        out.contains("2 sends answered (1 accepted, 1 failed on purpose)"),
        "{out}"
    );
}

backend_tests!(demo_runs_the_whole_loop, simulate_drives_a_running_service);

/// Each command offers only the flags that apply to it: the service's `--dev` and `--listen`
/// are not the simulator's, and the client-side generators take no database.
#[test]
fn each_command_lists_only_what_applies() {
    let help = |command: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_snorq-tools"))
            .args([command, "--help"])
            .output()
            .expect("run snorq-tools");
        assert!(out.status.success(), "{command} --help failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let demo = help("demo");
    for flag in [
        "--listen",
        "--simulator-listen",
        "--database-url",
        "--rate",
        "--fail",
    ] {
        assert!(demo.contains(flag), "demo --help lacks {flag}:\n{demo}");
    }
    assert!(!demo.contains("--dev"), "demo --help offers --dev:\n{demo}");
    let simulate = help("simulate");
    assert!(simulate.contains("--target"), "{simulate}");
    assert!(
        !simulate.contains("--database-url") && !simulate.contains("--data-dir"),
        "{simulate}"
    );
    let ingest = help("bench-ingest");
    assert!(!ingest.contains("--database-url"), "{ingest}");
    let send = help("bench-send");
    assert!(send.contains("--database-url"), "{send}");
}
