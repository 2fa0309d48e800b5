//! Test support: a fresh database per test on either backend, the real service on a random
//! port, and a small HTTP client. Every end-to-end test runs once per backend through
//! [`backend_tests!`], so the names show which backend ran (`sqlite::x`, `postgres::x`).

#![allow(dead_code)]

pub mod accounts;
pub mod inbox;
pub mod outbound;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use snorq::app::App;
use snorq::config::{Config, DatabaseUrl, RawConfig};
use snorq::crypto::EncryptionKey;
use snorq::store::{self, Store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each named `async fn(Backend)`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The PostgreSQL server tests create their databases on (needs CREATEDB).
pub fn postgres_admin_url() -> String {
    std::env::var("SNORQ_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database: a SQLite file in a temporary directory, or a new PostgreSQL
/// database that is dropped when this value is.
pub struct TestDb {
    pub url: DatabaseUrl,
    pub dir: tempfile::TempDir,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => TestDb {
                url: DatabaseUrl::Sqlite(format!("sqlite://{}", dir.path().join("snorq.db").display())),
                dir,
                pg_name: None,
            },
            Backend::Postgres => {
                let name = format!("snorq_test_{}", uuid::Uuid::new_v4().simple());
                let admin = postgres_admin_url();
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin)
                    .await
                    .expect("PostgreSQL must be running for the postgres tests (see CONTRIBUTING.md, Running the tests)");
                sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map_or(admin.as_str(), |(base, _)| base)
                    .to_owned();
                TestDb {
                    url: DatabaseUrl::Postgres(format!("{base}/{name}")),
                    dir,
                    pg_name: Some(name),
                }
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self.url {
            DatabaseUrl::Sqlite(_) => Backend::Sqlite,
            DatabaseUrl::Postgres(_) => Backend::Postgres,
        }
    }

    pub fn url_string(&self) -> String {
        match &self.url {
            DatabaseUrl::Sqlite(u) | DatabaseUrl::Postgres(u) => u.clone(),
        }
    }

    pub fn pg_name(&self) -> Option<&str> {
        self.pg_name.as_deref()
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        let store = store::connect(&self.url, 5).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// Every byte the database keeps: the SQLite files, or a `pg_dump` of the PostgreSQL database.
    pub fn raw_contents(&self) -> Vec<u8> {
        match &self.pg_name {
            None => {
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(self.dir.path()).expect("read dir") {
                    let path = entry.expect("entry").path();
                    if path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("snorq.db"))
                    {
                        bytes.extend(std::fs::read(&path).expect("read db file"));
                    }
                }
                assert!(!bytes.is_empty(), "no SQLite files found");
                bytes
            }
            Some(_) => {
                let output = std::process::Command::new("pg_dump")
                    .arg("--data-only")
                    .arg(self.url_string())
                    .output()
                    .expect("pg_dump must be installed (it comes with the PostgreSQL client)");
                assert!(
                    output.status.success(),
                    "pg_dump failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                output.stdout
            }
        }
    }

    /// Runs a query returning one integer (e.g. a `COUNT(*)`), on either backend.
    pub async fn count(&self, sql: &str) -> i64 {
        // The cast makes INTEGER columns and COUNT(*) decode alike on both backends.
        let sql = sqlx::AssertSqlSafe(format!("SELECT CAST(({sql}) AS BIGINT)"));
        match &self.url {
            DatabaseUrl::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.expect("query");
                pool.close().await;
                n
            }
            DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                let n = sqlx::query_scalar(sql).fetch_one(&pool).await.expect("query");
                pool.close().await;
                n
            }
        }
    }

    /// Runs a statement, on either backend.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.url {
            DatabaseUrl::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
                sqlx::query(sql).execute(&pool).await.expect("statement");
                pool.close().await;
            }
            DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                sqlx::query(sql).execute(&pool).await.expect("statement");
                pool.close().await;
            }
        }
    }

    /// Runs a statement with one timestamp bound as `$1` (as the service writes timestamps).
    pub async fn execute_at(&self, sql: &str, at: chrono::DateTime<chrono::Utc>) {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.url {
            DatabaseUrl::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
                sqlx::query(sql).bind(at).execute(&pool).await.expect("statement");
                pool.close().await;
            }
            DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                sqlx::query(sql).bind(at).execute(&pool).await.expect("statement");
                pool.close().await;
            }
        }
    }

    /// Runs a query returning text columns, each row joined with `|`.
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        use sqlx::Row;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        fn join<R: Row>(row: &R) -> String
        where
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            (0..row.len())
                .map(|i| row.get::<Option<String>, _>(i).unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
                .join("|")
        }
        match &self.url {
            DatabaseUrl::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
                let rows = sqlx::query(sql).fetch_all(&pool).await.expect("query");
                pool.close().await;
                rows.iter().map(join).collect()
            }
            DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                let rows = sqlx::query(sql).fetch_all(&pool).await.expect("query");
                pool.close().await;
                rows.iter().map(join).collect()
            }
        }
    }

    /// Drops the PostgreSQL database now (to simulate an outage); a no-op for SQLite.
    pub fn drop_now(&mut self) {
        if let Some(name) = self.pg_name.take() {
            drop_pg_database(&name);
        }
    }
}

fn drop_pg_database(name: &str) {
    let name = name.to_owned();
    // Drop runs outside any runtime we can block on: use a private one on a helper thread.
    let done = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            if let Ok(mut conn) =
                <sqlx::PgConnection as sqlx::Connection>::connect(&postgres_admin_url()).await
            {
                let _ = sqlx::Executor::execute(
                    &mut conn,
                    sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
                )
                .await;
            }
        });
    });
    let _ = done.join();
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.drop_now();
    }
}

/// A fixed test key, and a second one for rotation tests.
pub fn test_key() -> String {
    "dGVzdC1rZXktMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=".into()
}

pub fn other_key() -> String {
    "b3RoZXIta2V5LTAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=".into()
}

pub fn config_for(db: &TestDb) -> RawConfig {
    assert!(EncryptionKey::from_base64(&test_key()).is_ok());
    RawConfig {
        database_url: Some(db.url_string()),
        data_dir: db.dir.path().to_owned(),
        encryption_keys: vec![test_key()],
        login_failures_per_pair: 1000,
        login_failures_per_address: 1000,
        signups_per_hour: 100_000,
        // Idle workers look for due jobs often, so retries in tests run on time.
        queue_poll_interval_ms: 50,
        ..RawConfig::default()
    }
}

/// The real service on a random port against a fresh database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    pub config: Config,
    pub db: TestDb,
    pub http: reqwest::Client,
    /// The platforms' account calls (see `accounts`), where `graph_base_url` points unless a
    /// test points it elsewhere.
    pub accounts: wiremock::MockServer,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut RawConfig)) -> TestApp {
        let db = TestDb::new(backend).await;
        let mut raw = config_for(&db);
        let accounts = accounts::start().await;
        raw.graph_base_url = Some(accounts.uri());
        raw.tiktok_base_url = Some(accounts.uri());
        configure(&mut raw);
        let config = raw.validate().expect("valid test config");
        let app = snorq::server::bootstrap(&config).await.expect("bootstrap");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        {
            let (app, config) = (app.clone(), config.clone());
            tokio::spawn(async move {
                let stopped = snorq::server::run(app, &config, listener, async {
                    let _ = rx.await;
                });
                if let Err(err) = stopped.await {
                    eprintln!("test service stopped: {err:#}");
                }
            });
        }
        TestApp {
            addr,
            app,
            config,
            db,
            http: reqwest::Client::new(),
            accounts,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request with an optional bearer token and JSON body; returns status and JSON
    /// (Null for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(method, path, token, body).await;
        let status = response.status();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request")
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Signs up a user; returns (token, user id).
    pub async fn signup(&self, email: &str) -> (String, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/signup",
                None,
                Some(json!({"email": email, "name": "Test User", "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "signup {email}: {body}");
        self.login(email).await
    }

    /// Signs in a user signed up with the test password; returns (token, user id).
    pub async fn login(&self, email: &str) -> (String, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {email}: {body}");
        (str_of(&body["token"]), str_of(&body["user"]["id"]))
    }

    /// Creates an organization as `token`'s user; returns its id.
    pub async fn create_org(&self, token: &str, name: &str) -> String {
        let (status, body) = self.post("/api/v1/orgs", token, json!({"name": name})).await;
        assert_eq!(status, StatusCode::CREATED, "create org: {body}");
        str_of(&body["id"])
    }

    /// Moves an organization to a plan (as an operator would with `snorq admin set-plan`).
    pub async fn set_plan(&self, org_id: &str, plan: snorq::domain::Plan) {
        let id = uuid::Uuid::parse_str(org_id).expect("uuid");
        snorq::app::orgs::set_plan(&self.app, id, plan)
            .await
            .expect("set plan");
    }

    /// Adds `email` (a user signed up with the test password) to the org with `role`: the
    /// owner (`owner_token`) invites, the user signs in and accepts.
    pub async fn add_member(&self, owner_token: &str, org_id: &str, email: &str, role: &str) {
        let (status, invitation) = self
            .post(
                &format!("/api/v1/orgs/{org_id}/invitations"),
                owner_token,
                json!({"email": email, "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "invite: {invitation}");
        let (token, _) = self.login(email).await;
        let (status, body) = self
            .post(
                &format!("/api/v1/me/invitations/{}/accept", str_of(&invitation["id"])),
                &token,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "accept: {body}");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub const META_SECRET: &str = "meta-app-secret-for-tests";
pub const TIKTOK_SECRET: &str = "tiktok-app-secret-for-tests";
pub const VERIFY_TOKEN: &str = "verify-me";

/// Signs up `email` and creates an organization owning connections for the given (platform,
/// account) pairs; returns the organization's id and the owner's token.
pub async fn org_with_connections(app: &TestApp, email: &str, accounts: &[(&str, &str)]) -> (String, String) {
    let (token, _) = app.signup(email).await;
    let org_id = app.create_org(&token, &format!("Org of {email}")).await;
    for (platform, account) in accounts {
        let (status, body) = app
            .post(
                &format!("/api/v1/orgs/{org_id}/connections"),
                &token,
                connection_body(platform, account),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    (org_id, token)
}

/// A manual connection's body whose token the fake platform (`accounts`) accepts for `account`.
pub fn connection_body(platform: &str, account: &str) -> Value {
    match platform {
        "whatsapp" => json!({"platform": platform, "platform_user_id": account,
                             "waba_id": accounts::waba_of(account), "access_token": "wa-token"}),
        "facebook" => json!({"platform": platform, "platform_user_id": account,
                             "access_token": accounts::page_token(account)}),
        _ => json!({"platform": platform, "platform_user_id": account,
                    "access_token": accounts::tiktok_token(account)}),
    }
}

/// Configures every platform's webhook secret (the constants above), and the TikTok app whose
/// `token_info` proves a TikTok connection.
pub fn with_webhook_secrets(c: &mut RawConfig) {
    c.whatsapp_app_secret = Some(META_SECRET.into());
    c.facebook_app_secret = Some(META_SECRET.into());
    c.tiktok_app_secret = Some(TIKTOK_SECRET.into());
    c.meta_verify_token = Some(VERIFY_TOKEN.into());
    c.tiktok_app_id = c.tiktok_app_id.take().or_else(|| Some("test-tiktok-app".into()));
    // An app id needs the public URL the platforms would redirect to.
    c.public_url = c.public_url.take().or_else(|| Some("http://snorq.test".into()));
}

impl TestApp {
    /// Posts a correctly signed body to the platform's webhook route.
    pub async fn deliver(&self, platform: &str, body: &[u8]) -> (StatusCode, Value) {
        use snorq_connectors::verify::{meta_signature_header, tiktok_signature_header};
        let request = self
            .http
            .post(self.url(&format!("/webhooks/{platform}")))
            .body(body.to_vec());
        let request = match platform {
            "tiktok" => {
                let now = chrono::Utc::now().timestamp();
                request.header(
                    "Tiktok-Signature",
                    tiktok_signature_header(TIKTOK_SECRET.as_bytes(), now, body),
                )
            }
            _ => request.header(
                "X-Hub-Signature-256",
                meta_signature_header(META_SECRET.as_bytes(), body),
            ),
        };
        let response = request
            .header("content-type", "application/json")
            .send()
            .await
            .expect("webhook request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl TestDb {
    /// Runs a query returning one UUID column, on either backend.
    pub async fn uuids(&self, sql: &str) -> Vec<uuid::Uuid> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.url {
            DatabaseUrl::Sqlite(url) => {
                let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
                let ids = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("query");
                pool.close().await;
                ids
            }
            DatabaseUrl::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.expect("connect");
                let ids = sqlx::query_scalar(sql).fetch_all(&pool).await.expect("query");
                pool.close().await;
                ids
            }
        }
    }

    /// The apalis queue table of this backend.
    pub fn jobs_table(&self) -> &'static str {
        match self.url {
            DatabaseUrl::Sqlite(_) => "Jobs",
            DatabaseUrl::Postgres(_) => "apalis.jobs",
        }
    }
}

/// Makes the database refuse work until dropped: SQLite's write lock held by another
/// connection; PostgreSQL refusing connections, with the service's sessions terminated.
pub enum Outage {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(String),
}

pub async fn outage(app: &TestApp) -> Outage {
    match &app.db.url {
        snorq::config::DatabaseUrl::Sqlite(url) => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("BEGIN EXCLUSIVE").execute(&mut *conn).await.unwrap();
            Outage::Sqlite(conn)
        }
        snorq::config::DatabaseUrl::Postgres(_) => {
            let name = app.db.pg_name().unwrap().to_owned();
            let admin = sqlx::PgPool::connect(&postgres_admin_url()).await.unwrap();
            for sql in [
                format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"),
                format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&admin)
                    .await
                    .unwrap();
            }
            Outage::Postgres(name)
        }
    }
}

pub async fn end_outage(outage: Outage) {
    match outage {
        Outage::Sqlite(mut conn) => {
            sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
        }
        Outage::Postgres(name) => {
            let admin = sqlx::PgPool::connect(&postgres_admin_url()).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS true"
            )))
            .execute(&admin)
            .await
            .unwrap();
        }
    }
}

pub fn str_of(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_owned()
}

/// Asserts a problem+json answer with this status and code.
pub fn assert_problem(status: StatusCode, body: &Value, expected_status: StatusCode, code: &str) {
    assert_eq!(status, expected_status, "body: {body}");
    assert_eq!(body["code"], code, "body: {body}");
    assert_eq!(body["status"], expected_status.as_u16(), "body: {body}");
}

pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Another client holding the tables ingest writes: the service's writers wait (SQLite: the
/// write lock, within the 5 s busy timeout; PostgreSQL: an exclusive lock on `webhook_events`).
pub enum WriteLock {
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
}

pub async fn hold_write_lock(db: &TestDb) -> WriteLock {
    match &db.url {
        snorq::config::DatabaseUrl::Sqlite(url) => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await.unwrap();
            WriteLock::Sqlite(conn)
        }
        snorq::config::DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
            sqlx::query("LOCK TABLE webhook_events IN EXCLUSIVE MODE")
                .execute(&mut *conn)
                .await
                .unwrap();
            WriteLock::Postgres(conn)
        }
    }
}

impl WriteLock {
    pub async fn release(self) {
        match self {
            WriteLock::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
            }
            WriteLock::Postgres(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
            }
        }
    }
}
