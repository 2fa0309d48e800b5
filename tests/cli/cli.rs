//! The `snorq` binary: key generation, refusing to start without a key, operator bootstrap,
//! key rotation, and `serve` with graceful shutdown — on both backends.

use crate::common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Backend, TestApp, TestDb, other_key, str_of, test_key};
use reqwest::StatusCode;
use serde_json::json;
use snorq::crypto::{EncryptionKey, Keyring, SecretField, Vault};
use snorq::domain::{Plan, Role};

/// The binary with a clean environment: only what the test passes applies.
fn snorq(db: &TestDb) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snorq"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SNORQ_") || key == "DATABASE_URL" {
            cmd.env_remove(key);
        }
    }
    cmd.env("SNORQ_LOG", "warn")
        .arg("--data-dir")
        .arg(db.dir.path())
        .arg("--database-url")
        .arg(db.url_string());
    cmd
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn snorq");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn keys_generate_prints_a_fresh_usable_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_snorq"))
        .args(["keys", "generate"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = text(&out.stdout).trim().to_owned();
    let bytes = base64::engine::general_purpose::STANDARD.decode(&key).unwrap();
    assert_eq!(bytes.len(), 32);
    assert!(EncryptionKey::from_base64(&key).is_ok());
    let again = Command::new(env!("CARGO_BIN_EXE_snorq"))
        .args(["keys", "generate"])
        .output()
        .unwrap();
    assert_ne!(text(&again.stdout).trim(), key);
}

async fn refuses_to_start_without_a_key_outside_dev_mode(backend: Backend) {
    let db = TestDb::new(backend).await;
    let out = run(
        {
            let mut c = snorq(&db);
            c.arg("migrate");
            c
        },
        None,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no encryption key configured") && err.contains("snorq keys generate"),
        "{err}"
    );

    // A bad setting names itself.
    let mut c = snorq(&db);
    c.env("SNORQ_LISTEN", "nowhere").arg("serve");
    let out = run(c, None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("`listen`"), "{}", text(&out.stderr));
}

async fn operators_bootstrap_users_orgs_and_members(backend: Backend) {
    let db = TestDb::new(backend).await;
    let admin = |args: &[&str], stdin: Option<&str>| {
        let mut c = snorq(&db);
        c.env("SNORQ_ENCRYPTION_KEYS", test_key()).arg("admin").args(args);
        run(c, stdin)
    };
    let out = admin(
        &["create-user", "--email", "ops@example.com", "--name", "Ops"],
        Some("a long password\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = admin(
        &["create-user", "--email", "ana@example.com", "--name", "Ana"],
        Some("another password\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = admin(
        &["create-user", "--email", "bad@example.com", "--name", "Bad"],
        Some(""),
    );
    assert!(!out.status.success() && text(&out.stderr).contains("password"));

    let out = admin(
        &[
            "create-org",
            "--name",
            "Acme",
            "--owner",
            "ops@example.com",
            "--slug",
            "acme",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // FREE has one seat: adding refuses, with the reason.
    let out = admin(
        &[
            "add-member",
            "--org",
            "acme",
            "--email",
            "ana@example.com",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("plan allows 1"),
        "{}",
        text(&out.stderr)
    );
    let out = admin(&["set-plan", "--org", "acme", "--plan", "pro"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = admin(
        &[
            "add-member",
            "--org",
            "acme",
            "--email",
            "ana@example.com",
            "--role",
            "admin",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let store = db.store().await;
    let org = store.organization_by_slug("acme").await.unwrap().expect("org");
    assert_eq!(org.plan, Plan::Pro);
    let roles: Vec<_> = store
        .members(org.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.email, m.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            ("ops@example.com".to_owned(), Role::Owner),
            ("ana@example.com".to_owned(), Role::Admin)
        ]
    );
    // The password given on stdin works for logging in.
    let credentials = store.user_credentials("ops@example.com").await.unwrap().unwrap();
    let hasher = snorq::crypto::password::PasswordHasher::new(1, 1);
    assert!(
        hasher
            .verify("a long password", credentials.password_hash)
            .await
            .unwrap()
    );
}

async fn keys_rotate_reencrypts_everything_and_can_rerun(backend: Backend) {
    let app = TestApp::spawn_with(backend, common::with_webhook_secrets).await;
    let (token, _) = app.signup("owner@example.com").await;
    let org_id = app.create_org(&token, "Acme").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, c) = app
            .post(
                &format!("/api/v1/orgs/{org_id}/connections"),
                &token,
                json!({"platform": "tiktok", "platform_user_id": format!("open-{i}"),
                       "access_token": format!("tiktok-token:open-{i}"), "refresh_token": format!("rft.secret-{i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        ids.push(str_of(&c["id"]).parse::<uuid::Uuid>().unwrap());
    }
    let rotate = || {
        let mut c = snorq(&app.db);
        c.env("SNORQ_ENCRYPTION_KEYS", format!("{},{}", other_key(), test_key()))
            .args(["keys", "rotate"]);
        run(c, None)
    };
    let out = rotate();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("3 rotated"), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("3 examined"),
        "progress is shown: {}",
        text(&out.stderr)
    );
    // Rerunning (e.g. after an interruption) finds nothing left to do.
    let out = rotate();
    assert!(
        text(&out.stdout).contains("0 rotated, 3 already current"),
        "{}",
        text(&out.stdout)
    );

    // Every token is readable with the new key alone.
    let new_only = Vault::new(Keyring::new(vec![EncryptionKey::from_base64(&other_key()).unwrap()]).unwrap());
    let org: uuid::Uuid = org_id.parse().unwrap();
    for (i, id) in ids.iter().enumerate() {
        let c = app.app.store.connection(org, *id).await.unwrap().unwrap();
        let access = new_only.decrypt(
            SecretField::ConnectionAccessToken,
            c.id,
            c.access_token_enc.as_deref().unwrap(),
        );
        let refresh = new_only.decrypt(
            SecretField::ConnectionRefreshToken,
            c.id,
            c.refresh_token_enc.as_deref().unwrap(),
        );
        assert_eq!(
            (access.unwrap(), refresh.unwrap()),
            (format!("tiktok-token:open-{i}"), format!("rft.secret-{i}"))
        );
    }

    // Without the key a token was written with, rotation reports it and fails.
    let mut c = snorq(&app.db);
    c.env("SNORQ_ENCRYPTION_KEYS", EncryptionKey::generate_base64())
        .args(["keys", "rotate"]);
    let out = run(c, None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("could not be decrypted"),
        "{}",
        text(&out.stderr)
    );
}

async fn serve_runs_until_sigterm(backend: Backend) {
    let db = TestDb::new(backend).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = snorq(&db);
    cmd.args(["--dev", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await {
            break r.status();
        }
        assert!(Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready, StatusCode::OK);
    // Dev mode created and kept a key next to the database.
    assert!(db.dir.path().join("dev-encryption.key").exists());

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(exit.success(), "exit {exit:?}: {stderr}");
    assert!(
        stderr.contains("DEV MODE"),
        "the dev key warning is loud: {stderr}"
    );
}

async fn replay_applies_webhooks_that_were_unroutable(backend: Backend) {
    let secret = "replay-secret";
    let app = TestApp::spawn_with(backend, |c| c.whatsapp_app_secret = Some(secret.into())).await;
    let body = std::fs::read(common::project_root().join("fixtures/webhooks/whatsapp_text.json")).unwrap();
    let response = app
        .http
        .post(app.url("/webhooks/whatsapp"))
        .header(
            "X-Hub-Signature-256",
            snorq_connectors::verify::meta_signature_header(secret.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 0);

    let (token, _) = app.signup("owner@example.com").await;
    let org_id = app.create_org(&token, "Acme").await;
    let (status, _) = app
        .post(
            &format!("/api/v1/orgs/{org_id}/connections"),
            &token,
            common::connection_body("whatsapp", "204512345678901"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let replay = |args: &[&str]| {
        let mut c = snorq(&app.db);
        c.env("SNORQ_ENCRYPTION_KEYS", test_key())
            .arg("replay")
            .args(args);
        run(c, None)
    };
    let out = replay(&["--platform", "tiktok"]);
    assert!(
        text(&out.stdout).contains("replayed 0 webhooks"),
        "{}",
        text(&out.stdout)
    );
    let out = replay(&["--platform", "whatsapp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("replayed 1 webhooks: 1 processed"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 1);
    // Nothing is left to replay, and replaying everything changes nothing.
    assert!(text(&replay(&[]).stdout).contains("replayed 0 webhooks"));
    assert!(text(&replay(&["--all"]).stdout).contains("replayed 1 webhooks: 1 processed"));
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 1);

    // The fixture's message is from January 2026, and the organization is on FREE: past its
    // 30 days, `snorq retention` deletes it (once).
    let retention = || {
        let mut c = snorq(&app.db);
        c.env("SNORQ_ENCRYPTION_KEYS", test_key()).arg("retention");
        run(c, None)
    };
    let out = retention();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("deleted 1 messages"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(app.db.count("SELECT COUNT(*) FROM messages").await, 0);
    assert!(text(&retention().stdout).contains("deleted 0 messages"));
}

backend_tests!(
    replay_applies_webhooks_that_were_unroutable,
    refuses_to_start_without_a_key_outside_dev_mode,
    operators_bootstrap_users_orgs_and_members,
    keys_rotate_reencrypts_everything_and_can_rerun,
    serve_runs_until_sigterm,
);
