//! One typed configuration, layered: built-in defaults < TOML file < `SNORQ_*` environment
//! variables (and the conventional `DATABASE_URL`) < command-line flags. Validated once at start,
//! with messages that say what to fix.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

use crate::crypto::{EncryptionKey, Keyring};

/// The raw settings as read from all sources, before validation. No `Debug`: it holds keys.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    /// `sqlite://path` or `postgres://...`; defaults to a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Where the embedded database and the dev-mode key live.
    pub data_dir: PathBuf,
    /// Address the HTTP server listens on.
    pub listen: String,
    /// Development mode: generates and keeps a local encryption key when none is configured.
    pub dev: bool,
    /// Base64 AES-256 keys; the first encrypts, all decrypt. Comma-separated in the environment.
    #[serde(deserialize_with = "string_or_list")]
    pub encryption_keys: Vec<String>,
    /// Whether `POST /api/v1/auth/signup` is open.
    pub signup_enabled: bool,
    /// Lifetime of a login session token.
    pub session_ttl_hours: u32,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Largest JSON request body accepted by the API, in bytes.
    pub max_body_bytes: usize,
    /// Failed sign-ins allowed per (email, client address) within 15 minutes before that pair
    /// waits (30 s, doubling with each further failure).
    pub login_failures_per_pair: u32,
    /// Failed sign-ins allowed per client address (any emails) within 15 minutes.
    pub login_failures_per_address: u32,
    /// Signups allowed per client address per hour.
    pub signups_per_hour: u32,
    /// Addresses (or CIDR ranges) of reverse proxies whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// Password hashes computed at once (default: the number of cores).
    pub password_hash_threads: Option<usize>,
    /// Password checks that may wait for a hashing thread; beyond, 503 with Retry-After.
    pub password_hash_queue: usize,
    /// Open live-event streams allowed per user, and per organization.
    pub live_streams_per_user: usize,
    pub live_streams_per_org: usize,
    /// Whether the dashboard's cookies are `Secure`; default: when `public_url` is https.
    pub cookie_secure: Option<bool>,
    /// Upper bound of the database connection pool.
    pub database_max_connections: u32,
    /// Meta app secret that signs WhatsApp webhooks. Unset: the route refuses every POST.
    #[serde(deserialize_with = "opt_text")]
    pub whatsapp_app_secret: Option<String>,
    /// Meta app secret that signs Messenger webhooks (usually the same app as WhatsApp).
    #[serde(deserialize_with = "opt_text")]
    pub facebook_app_secret: Option<String>,
    /// TikTok app secret (client secret) that signs TikTok webhooks.
    #[serde(deserialize_with = "opt_text")]
    pub tiktok_app_secret: Option<String>,
    /// The token typed into Meta's dashboard for the GET subscribe handshake.
    #[serde(deserialize_with = "opt_text")]
    pub meta_verify_token: Option<String>,
    /// How far a TikTok signature timestamp may be from our clock.
    pub tiktok_timestamp_tolerance_secs: u64,
    /// Most webhooks committed together in one transaction (group commit).
    pub ingest_max_batch: usize,
    /// A search whose rarest word is in more conversations than this walks the inbox in
    /// activity order (probing each conversation) instead of sorting all the matches.
    pub search_walk_threshold: u32,
    /// Ingest transactions in flight at once; default 1 on SQLite, 8 on PostgreSQL.
    pub ingest_writers: Option<usize>,
    /// Whether `snorq serve` also runs the send workers (`--no-workers` turns them off).
    pub workers: bool,
    /// Sends in flight at once per worker process.
    pub send_concurrency: usize,
    /// Waits before each retry of a retryable send failure, in seconds; one more attempt than
    /// there are delays. A platform's Retry-After wins when longer.
    #[serde(deserialize_with = "number_list")]
    pub send_retry_delays_secs: Vec<u64>,
    /// Sends per second per connection (0: unpaced).
    pub send_rate_whatsapp: u32,
    pub send_rate_facebook: u32,
    pub send_rate_tiktok: u32,
    /// How long one platform call may take.
    pub send_timeout_secs: u64,
    /// Graph API host (tests, simulators); default https://graph.facebook.com.
    pub graph_base_url: Option<String>,
    /// TikTok API for Business host; default https://business-api.tiktok.com.
    pub tiktok_base_url: Option<String>,
    /// How often idle workers look for due jobs (delayed retries are not notified).
    pub queue_poll_interval_ms: u64,
    /// Worker heartbeat; a worker silent for 6 heartbeats is dead and its jobs are handed out
    /// again.
    pub worker_heartbeat_secs: u64,
    /// Finished queue jobs are deleted after this long (the send history stays on messages).
    pub finished_job_retention_hours: u32,
    /// Live events (SSE) are kept this long for clients resuming with Last-Event-ID (and
    /// paginated conversation walks); at least 24.
    pub event_retention_hours: u32,
    /// Emails of operators: the dashboard shows them every organization and the webhooks that
    /// reached none. Everyone else sees the organizations they administer.
    #[serde(deserialize_with = "string_or_list")]
    pub operator_emails: Vec<String>,
    /// This service's public base URL; platforms redirect to `{public_url}/oauth/{platform}/callback`.
    pub public_url: Option<String>,
    /// Where the OAuth callback sends the browser afterwards (with `status`, `platform` and
    /// `error` or `connection_ids` in the query); default `{public_url}/dashboard/connections`.
    pub oauth_return_url: Option<String>,
    /// App ids for the connect flows (the secrets are the `*_app_secret` settings).
    #[serde(deserialize_with = "opt_text")]
    pub whatsapp_app_id: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub facebook_app_id: Option<String>,
    #[serde(deserialize_with = "opt_text")]
    pub tiktok_app_id: Option<String>,
    /// The Embedded Signup configuration id (Facebook Login for Business) for WhatsApp.
    #[serde(deserialize_with = "opt_text")]
    pub whatsapp_config_id: Option<String>,
    /// Facebook Login dialog host (tests, simulators); default https://www.facebook.com.
    pub facebook_dialog_base_url: Option<String>,
    /// TikTok authorization page; default https://www.tiktok.com/v2/auth/authorize/.
    pub tiktok_authorize_url: Option<String>,
    /// TikTok access tokens expiring within this many minutes are refreshed.
    pub token_refresh_window_mins: u32,
    /// How often the workers look for tokens to refresh.
    pub token_refresh_interval_secs: u64,
    /// Waits before retrying a refresh that failed without a verdict (5xx, timeout), in seconds.
    #[serde(deserialize_with = "number_list")]
    pub token_refresh_retry_delays_secs: Vec<u64>,
    /// Refreshes or checks failed in a row (no verdict on the token) before an active
    /// connection shows `error`.
    pub connection_error_threshold: u32,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            database_url: None,
            data_dir: PathBuf::from("data"),
            listen: "127.0.0.1:8080".into(),
            dev: false,
            encryption_keys: Vec::new(),
            signup_enabled: true,
            session_ttl_hours: 24 * 30,
            log_format: LogFormat::Text,
            max_body_bytes: 1024 * 1024,
            login_failures_per_pair: 5,
            login_failures_per_address: 50,
            signups_per_hour: 20,
            trusted_proxies: Vec::new(),
            password_hash_threads: None,
            password_hash_queue: 32,
            live_streams_per_user: 10,
            live_streams_per_org: 200,
            cookie_secure: None,
            database_max_connections: 20,
            whatsapp_app_secret: None,
            facebook_app_secret: None,
            tiktok_app_secret: None,
            meta_verify_token: None,
            tiktok_timestamp_tolerance_secs: 300,
            ingest_max_batch: 256,
            search_walk_threshold: 1_000,
            ingest_writers: None,
            workers: true,
            send_concurrency: 32,
            send_retry_delays_secs: vec![10, 60, 300, 1800, 7200, 21600],
            send_rate_whatsapp: 80,
            send_rate_facebook: 40,
            send_rate_tiktok: 10,
            send_timeout_secs: 20,
            graph_base_url: None,
            tiktok_base_url: None,
            queue_poll_interval_ms: 1000,
            worker_heartbeat_secs: 5,
            finished_job_retention_hours: 24 * 7,
            event_retention_hours: 72,
            operator_emails: Vec::new(),
            public_url: None,
            oauth_return_url: None,
            whatsapp_app_id: None,
            facebook_app_id: None,
            tiktok_app_id: None,
            whatsapp_config_id: None,
            facebook_dialog_base_url: None,
            tiktok_authorize_url: None,
            token_refresh_window_mins: 60,
            token_refresh_interval_secs: 60,
            token_refresh_retry_delays_secs: vec![60, 300, 1800],
            connection_error_threshold: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

fn string_or_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(de)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Ids and secrets are text even when they look like numbers (an app id set in the
/// environment arrives as an integer).
fn opt_text<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Unsigned(u64),
        Signed(i64),
    }
    Ok(Option::<TextOrNumber>::deserialize(de)?.map(|t| match t {
        TextOrNumber::Text(s) => s,
        TextOrNumber::Unsigned(n) => n.to_string(),
        TextOrNumber::Signed(n) => n.to_string(),
    }))
}

fn number_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<u64>),
        Single(u64),
    }
    match OneOrMany::deserialize(de)? {
        OneOrMany::Many(v) => Ok(v),
        OneOrMany::Single(n) => Ok(vec![n]),
        OneOrMany::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number of seconds")))
            })
            .collect(),
    }
}

/// Which database, picked by the URL scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(String),
    Postgres(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        if url.starts_with("sqlite:") {
            Ok(DatabaseUrl::Sqlite(url.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else {
            Err(ConfigError::new(
                "database_url",
                "must start with sqlite: (e.g. sqlite://data/snorq.db) or postgres://",
            ))
        }
    }

    /// The URL without any password, safe to log.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(url) => url.clone(),
            DatabaseUrl::Postgres(url) => redact_password(url),
        }
    }
}

/// The URL with any password masked: in the user info and in a `password` query parameter.
fn redact_password(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return "<unparseable database url>".to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query_pairs().any(|(k, _)| k.eq_ignore_ascii_case("password")) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

/// The validated configuration the service runs with.
#[derive(Clone)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub dev: bool,
    pub encryption_keys: Vec<SecretString>,
    pub signup_enabled: bool,
    pub session_ttl: chrono::Duration,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    pub security: SecurityConfig,
    pub database_max_connections: u32,
    pub webhooks: WebhookConfig,
    pub ingest_max_batch: usize,
    pub search_walk_threshold: u32,
    pub ingest_writers: usize,
    pub workers: bool,
    pub outbound: OutboundConfig,
    pub operator_emails: Vec<String>,
    pub oauth: OAuthConfig,
    pub token_refresh: TokenRefreshConfig,
}

/// The connect flows: where platforms send users back, and the apps' ids.
#[derive(Debug, Clone, Default)]
pub struct OAuthConfig {
    /// `{public_url}/oauth/{platform}/callback` is the redirect URI given to the platforms.
    pub public_url: Option<String>,
    pub return_url: Option<String>,
    pub whatsapp_app_id: Option<String>,
    pub facebook_app_id: Option<String>,
    pub tiktok_app_id: Option<String>,
    pub whatsapp_config_id: Option<String>,
}

impl OAuthConfig {
    pub fn app_id(&self, platform: snorq_connectors::Platform) -> Option<&str> {
        use snorq_connectors::Platform;
        match platform {
            Platform::WhatsApp => self.whatsapp_app_id.as_deref(),
            Platform::Facebook => self.facebook_app_id.as_deref(),
            Platform::TikTok => self.tiktok_app_id.as_deref(),
        }
    }
}

/// What limits callers and what they are trusted with: sign-in and signup limits, the password
/// hashing pool, live-stream limits, proxies and cookies.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    pub login_limits: crate::app::LoginLimits,
    pub signups_per_hour: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub password_hash_threads: usize,
    pub password_hash_queue: usize,
    pub live_streams_per_user: usize,
    pub live_streams_per_org: usize,
    pub cookie_secure: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig::from_raw(&RawConfig::default()).unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}

impl SecurityConfig {
    fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let at_least_one = |name: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::new(name, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        at_least_one("login_failures_per_pair", raw.login_failures_per_pair.into())?;
        at_least_one(
            "login_failures_per_address",
            raw.login_failures_per_address.into(),
        )?;
        at_least_one("signups_per_hour", raw.signups_per_hour.into())?;
        at_least_one("live_streams_per_user", raw.live_streams_per_user as u64)?;
        at_least_one("live_streams_per_org", raw.live_streams_per_org as u64)?;
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(
                            "trusted_proxies",
                            format!("{p:?} is not an address or CIDR range"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let password_hash_threads = match raw.password_hash_threads {
            Some(0) => return Err(ConfigError::new("password_hash_threads", "must be at least 1")),
            Some(n) if n > 256 => {
                return Err(ConfigError::new("password_hash_threads", "must be at most 256"));
            }
            Some(n) => n,
            None => cores,
        };
        let https = raw
            .public_url
            .as_deref()
            .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"));
        Ok(SecurityConfig {
            login_limits: crate::app::LoginLimits {
                pair_failures: raw.login_failures_per_pair,
                address_failures: raw.login_failures_per_address,
            },
            signups_per_hour: raw.signups_per_hour,
            trusted_proxies,
            password_hash_threads,
            password_hash_queue: raw.password_hash_queue,
            live_streams_per_user: raw.live_streams_per_user,
            live_streams_per_org: raw.live_streams_per_org,
            cookie_secure: raw.cookie_secure.unwrap_or(https),
        })
    }

    /// Whether a socket peer is one of our reverse proxies.
    pub fn is_trusted_proxy(&self, addr: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&addr))
    }
}

/// Keeping TikTok tokens fresh, and when a connection counts as failing.
#[derive(Debug, Clone)]
pub struct TokenRefreshConfig {
    pub window: chrono::Duration,
    pub interval: std::time::Duration,
    pub retry_delays: Vec<chrono::Duration>,
    pub error_threshold: i32,
}

/// Sending: the worker's settings.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    pub concurrency: usize,
    pub retry_delays: Vec<std::time::Duration>,
    pub rates: crate::queue::SendRates,
    pub platforms: snorq_connectors::ClientConfig,
    pub poll_interval: std::time::Duration,
    pub heartbeat: std::time::Duration,
    pub job_retention: chrono::Duration,
    pub event_retention: chrono::Duration,
    /// Outcome transactions in flight at once. One: with group commit a single writer makes the
    /// biggest batches, which measured fastest on both backends (docs/benchmarks.md, "Outbound benchmark").
    pub outcome_writers: usize,
}

/// Webhook verification secrets. Debug shows only which are set.
#[derive(Clone, Default)]
pub struct WebhookConfig {
    pub whatsapp_app_secret: Option<SecretString>,
    pub facebook_app_secret: Option<SecretString>,
    pub tiktok_app_secret: Option<SecretString>,
    pub meta_verify_token: Option<SecretString>,
    pub tiktok_tolerance: std::time::Duration,
}

impl WebhookConfig {
    /// The secret that signs this platform's webhooks, if configured.
    pub fn app_secret(&self, platform: snorq_connectors::Platform) -> Option<&SecretString> {
        use snorq_connectors::Platform;
        match platform {
            Platform::WhatsApp => self.whatsapp_app_secret.as_ref(),
            Platform::Facebook => self.facebook_app_secret.as_ref(),
            Platform::TikTok => self.tiktok_app_secret.as_ref(),
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<SecretString>| if s.is_some() { "set" } else { "unset" };
        f.debug_struct("WebhookConfig")
            .field("whatsapp_app_secret", &set(&self.whatsapp_app_secret))
            .field("facebook_app_secret", &set(&self.facebook_app_secret))
            .field("tiktok_app_secret", &set(&self.tiktok_app_secret))
            .field("meta_verify_token", &set(&self.meta_verify_token))
            .field("tiktok_tolerance", &self.tiktok_tolerance)
            .finish()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &self.database_url.redacted())
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("dev", &self.dev)
            .field(
                "encryption_keys",
                &format!("[{} configured]", self.encryption_keys.len()),
            )
            .field("signup_enabled", &self.signup_enabled)
            .field("session_ttl", &self.session_ttl)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

/// A setting that is missing or wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration `{setting}`: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: &str, message: impl Into<String>) -> Self {
        ConfigError {
            setting: setting.to_owned(),
            message: message.into(),
        }
    }
}

/// Settings given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dev: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<bool>,
}

impl Config {
    /// Reads every layer: defaults, the TOML file (if given), the environment, the flags.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::new(
                    "config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let known = known_settings();
        warn_about_unknown_variables(&known);
        let raw: RawConfig = figment
            // The conventional DATABASE_URL first, so an explicit SNORQ_DATABASE_URL wins.
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::prefixed("SNORQ_").only(&known.iter().map(String::as_str).collect::<Vec<_>>()))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| {
                let setting = e.path.join(".");
                ConfigError::new(
                    if setting.is_empty() { "config" } else { &setting },
                    e.kind.to_string(),
                )
            })?;
        raw.validate()
    }
}

/// The setting names, as the environment spells them after `SNORQ_` (lower-cased).
fn known_settings() -> Vec<String> {
    match serde_json::to_value(RawConfig::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A mistyped `SNORQ_` variable would otherwise be silently ignored.
fn warn_about_unknown_variables(known: &[String]) {
    // Read elsewhere: the config file path, the log filter; and the test and benchmark tools'.
    let other = |name: &str| {
        name == "config" || name == "log" || name.starts_with("test_") || name.starts_with("bench_")
    };
    for (name, _) in std::env::vars() {
        if let Some(setting) = name.strip_prefix("SNORQ_").map(str::to_ascii_lowercase)
            && !known.contains(&setting)
            && !other(&setting)
        {
            eprintln!("warning: ignoring unknown environment variable {name}");
        }
    }
}

impl RawConfig {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let database_url = match &self.database_url {
            Some(url) if !url.trim().is_empty() => DatabaseUrl::parse(url.trim())?,
            _ => DatabaseUrl::Sqlite(format!("sqlite://{}", self.data_dir.join("snorq.db").display())),
        };
        let listen = listen_address(&self.listen).ok_or_else(|| {
            ConfigError::new(
                "listen",
                format!("{:?} is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;
        for (i, key) in self.encryption_keys.iter().enumerate() {
            EncryptionKey::from_base64(key).map_err(|e| {
                ConfigError::new("encryption_keys", format!("key #{} is not usable: {e}", i + 1))
            })?;
        }
        if !(1..=24 * 365 * 10).contains(&self.session_ttl_hours) {
            return Err(ConfigError::new(
                "session_ttl_hours",
                "must be between 1 and 87600 (ten years)",
            ));
        }
        let security = SecurityConfig::from_raw(&self)?;
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::new("max_body_bytes", "must be at least 1024"));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::new("database_max_connections", "must be at least 1"));
        }
        if self.ingest_max_batch == 0 || self.ingest_max_batch > 10_000 {
            return Err(ConfigError::new(
                "ingest_max_batch",
                "must be between 1 and 10000",
            ));
        }
        let ingest_writers = match (self.ingest_writers, &database_url) {
            (Some(0), _) => return Err(ConfigError::new("ingest_writers", "must be at least 1")),
            (Some(n), _) => n,
            (None, DatabaseUrl::Sqlite(_)) => 1,
            (None, DatabaseUrl::Postgres(_)) => 8,
        };
        if self.send_concurrency == 0 || self.send_concurrency > 10_000 {
            return Err(ConfigError::new(
                "send_concurrency",
                "must be between 1 and 10000",
            ));
        }
        if self.send_timeout_secs == 0 {
            return Err(ConfigError::new("send_timeout_secs", "must be at least 1"));
        }
        if self.send_retry_delays_secs.len() > 100 {
            return Err(ConfigError::new("send_retry_delays_secs", "at most 100 retries"));
        }
        if !(1..=300).contains(&self.worker_heartbeat_secs) {
            return Err(ConfigError::new(
                "worker_heartbeat_secs",
                "must be between 1 and 300",
            ));
        }
        if self.queue_poll_interval_ms < 10 {
            return Err(ConfigError::new("queue_poll_interval_ms", "must be at least 10"));
        }
        if !(1..=24 * 365).contains(&self.finished_job_retention_hours) {
            return Err(ConfigError::new(
                "finished_job_retention_hours",
                "must be between 1 and 8760 (a year)",
            ));
        }
        if !(24..=24 * 365).contains(&self.event_retention_hours) {
            return Err(ConfigError::new(
                "event_retention_hours",
                "must be between 24 and 8760 (a year)",
            ));
        }
        let mut platforms = snorq_connectors::ClientConfig {
            timeout: std::time::Duration::from_secs(self.send_timeout_secs),
            ..snorq_connectors::ClientConfig::default()
        };
        for (setting, value, target) in [
            (
                "graph_base_url",
                &self.graph_base_url,
                &mut platforms.graph_base_url,
            ),
            (
                "tiktok_base_url",
                &self.tiktok_base_url,
                &mut platforms.tiktok_base_url,
            ),
            (
                "facebook_dialog_base_url",
                &self.facebook_dialog_base_url,
                &mut platforms.facebook_dialog_base_url,
            ),
            (
                "tiktok_authorize_url",
                &self.tiktok_authorize_url,
                &mut platforms.tiktok_authorize_url,
            ),
        ] {
            if let Some(url) = http_url(setting, value)? {
                *target = url;
            }
        }
        let public_url =
            http_url("public_url", &self.public_url)?.map(|u| u.trim_end_matches('/').to_owned());
        let return_url = http_url("oauth_return_url", &self.oauth_return_url)?;
        let id = |value: Option<String>| value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let oauth = OAuthConfig {
            whatsapp_app_id: id(self.whatsapp_app_id),
            facebook_app_id: id(self.facebook_app_id),
            tiktok_app_id: id(self.tiktok_app_id),
            whatsapp_config_id: id(self.whatsapp_config_id),
            public_url,
            return_url,
        };
        let any_app = [
            &oauth.whatsapp_app_id,
            &oauth.facebook_app_id,
            &oauth.tiktok_app_id,
        ]
        .iter()
        .any(|a| a.is_some());
        if any_app && oauth.public_url.is_none() {
            return Err(ConfigError::new(
                "public_url",
                "required with an app id: the platforms redirect to {public_url}/oauth/{platform}/callback",
            ));
        }
        if !(5..=24 * 60).contains(&self.token_refresh_window_mins) {
            return Err(ConfigError::new(
                "token_refresh_window_mins",
                "must be between 5 and 1440 (a day; TikTok access tokens live 24 hours)",
            ));
        }
        if !(1..=3600).contains(&self.token_refresh_interval_secs) {
            return Err(ConfigError::new(
                "token_refresh_interval_secs",
                "must be between 1 and 3600",
            ));
        }
        if self.token_refresh_retry_delays_secs.is_empty()
            || self
                .token_refresh_retry_delays_secs
                .iter()
                .any(|d| !(1..=86_400).contains(d))
        {
            return Err(ConfigError::new(
                "token_refresh_retry_delays_secs",
                "must be one or more waits of 1 to 86400 seconds",
            ));
        }
        if !(1..=1000).contains(&self.connection_error_threshold) {
            return Err(ConfigError::new(
                "connection_error_threshold",
                "must be between 1 and 1000",
            ));
        }
        let token_refresh = TokenRefreshConfig {
            window: chrono::Duration::minutes(i64::from(self.token_refresh_window_mins)),
            interval: std::time::Duration::from_secs(self.token_refresh_interval_secs),
            retry_delays: self
                .token_refresh_retry_delays_secs
                .iter()
                .map(|s| chrono::Duration::seconds(*s as i64))
                .collect(),
            error_threshold: self.connection_error_threshold as i32,
        };
        let outbound = OutboundConfig {
            concurrency: self.send_concurrency,
            retry_delays: self
                .send_retry_delays_secs
                .iter()
                .map(|s| std::time::Duration::from_secs(*s))
                .collect(),
            rates: crate::queue::SendRates {
                whatsapp: self.send_rate_whatsapp,
                facebook: self.send_rate_facebook,
                tiktok: self.send_rate_tiktok,
            },
            platforms,
            poll_interval: std::time::Duration::from_millis(self.queue_poll_interval_ms),
            heartbeat: std::time::Duration::from_secs(self.worker_heartbeat_secs),
            job_retention: chrono::Duration::hours(i64::from(self.finished_job_retention_hours)),
            event_retention: chrono::Duration::hours(i64::from(self.event_retention_hours)),
            outcome_writers: 1,
        };
        let secret = |value: Option<String>| value.filter(|v| !v.trim().is_empty()).map(SecretString::from);
        Ok(Config {
            database_url,
            data_dir: self.data_dir,
            listen,
            dev: self.dev,
            encryption_keys: self.encryption_keys.into_iter().map(SecretString::from).collect(),
            signup_enabled: self.signup_enabled,
            session_ttl: chrono::Duration::hours(i64::from(self.session_ttl_hours)),
            log_format: self.log_format,
            max_body_bytes: self.max_body_bytes,
            security,
            database_max_connections: self.database_max_connections,
            webhooks: WebhookConfig {
                whatsapp_app_secret: secret(self.whatsapp_app_secret),
                facebook_app_secret: secret(self.facebook_app_secret),
                tiktok_app_secret: secret(self.tiktok_app_secret),
                meta_verify_token: secret(self.meta_verify_token),
                tiktok_tolerance: std::time::Duration::from_secs(self.tiktok_timestamp_tolerance_secs),
            },
            ingest_max_batch: self.ingest_max_batch,
            search_walk_threshold: self.search_walk_threshold,
            ingest_writers,
            workers: self.workers,
            outbound,
            operator_emails: self
                .operator_emails
                .iter()
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
            oauth,
            token_refresh,
        })
    }
}

/// A listen address: `ip:port`, or `localhost:port` (the IPv4 loopback).
fn listen_address(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let port = text.strip_prefix("localhost:")?.parse::<u16>().ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// An optional http(s) URL setting; blank counts as unset.
fn http_url(setting: &str, value: &Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(url) = value.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if !matches!(url::Url::parse(url), Ok(u) if matches!(u.scheme(), "http" | "https")) {
        return Err(ConfigError::new(setting, "must be an http(s) URL"));
    }
    Ok(Some(url.to_owned()))
}

impl Config {
    /// The keyring from configuration, or, in dev mode only, from a key file kept in the data
    /// directory (created on first use). Outside dev mode a missing key is an error: tokens are
    /// never stored unencrypted.
    pub fn keyring(&self) -> Result<Keyring, ConfigError> {
        let configured: Result<Vec<_>, _> = self
            .encryption_keys
            .iter()
            .map(|k| EncryptionKey::from_base64(k.expose_secret()))
            .collect();
        let configured = configured.map_err(|e| ConfigError::new("encryption_keys", e.to_string()))?;
        if let Some(ring) = Keyring::new(configured) {
            return Ok(ring);
        }
        if !self.dev {
            return Err(ConfigError::new(
                "encryption_keys",
                "no encryption key configured. Generate one with `snorq keys generate` and set \
                 SNORQ_ENCRYPTION_KEYS, or run with --dev to use a local development key",
            ));
        }
        let key = dev_key(&self.data_dir)?;
        Ok(Keyring::new(vec![key]).unwrap_or_else(|| unreachable!("one key")))
    }
}

const DEV_KEY_FILE: &str = "dev-encryption.key";

fn dev_key(data_dir: &Path) -> Result<EncryptionKey, ConfigError> {
    let path = data_dir.join(DEV_KEY_FILE);
    let io_err = |e: std::io::Error| ConfigError::new("data_dir", format!("{}: {e}", path.display()));
    let text = if path.exists() {
        std::fs::read_to_string(&path).map_err(io_err)?
    } else {
        std::fs::create_dir_all(data_dir).map_err(io_err)?;
        let text = EncryptionKey::generate_base64();
        write_private(&path, &text).map_err(io_err)?;
        text
    };
    let key = EncryptionKey::from_base64(&text)
        .map_err(|e| ConfigError::new("data_dir", format!("{}: {e}", path.display())))?;
    tracing::warn!(
        key_file = %path.display(),
        key_id = key.id(),
        "DEV MODE: platform tokens are encrypted with a development key kept next to the database. \
         Do not use this in production: set SNORQ_ENCRYPTION_KEYS instead."
    );
    Ok(key)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_select_sqlite_in_the_data_dir() {
        let config = RawConfig::default().validate().unwrap();
        assert_eq!(
            config.database_url,
            DatabaseUrl::Sqlite("sqlite://data/snorq.db".into())
        );
        assert_eq!(config.listen.port(), 8080);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let raw = RawConfig {
            database_url: Some("mysql://x".into()),
            ..RawConfig::default()
        };
        assert_eq!(raw.validate().unwrap_err().setting, "database_url");
        let raw = RawConfig {
            listen: "nowhere".into(),
            ..RawConfig::default()
        };
        assert_eq!(raw.validate().unwrap_err().setting, "listen");
        assert_eq!(
            listen_address("localhost:8080"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(listen_address("[::1]:9"), Some("[::1]:9".parse().unwrap()));
        assert_eq!(listen_address("localhost:http"), None);
        let raw = RawConfig {
            encryption_keys: vec!["short".into()],
            ..RawConfig::default()
        };
        let err = raw.validate().unwrap_err();
        assert_eq!(err.setting, "encryption_keys");
        assert!(!err.message.contains("short"), "the key itself is not echoed");
    }

    #[test]
    fn absurd_session_lengths_are_refused() {
        let raw = RawConfig {
            session_ttl_hours: 4_000_000_000,
            ..RawConfig::default()
        };
        assert_eq!(raw.validate().unwrap_err().setting, "session_ttl_hours");
    }

    #[test]
    fn keys_are_required_outside_dev_mode_and_generated_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let raw = RawConfig {
            data_dir: dir.path().to_owned(),
            ..RawConfig::default()
        };
        let err = raw.clone().validate().unwrap().keyring().unwrap_err();
        assert!(err.message.contains("snorq keys generate"));

        let dev = RawConfig { dev: true, ..raw }.validate().unwrap();
        let first = dev.keyring().unwrap().primary().id().to_owned();
        assert!(dir.path().join(DEV_KEY_FILE).exists());
        // The same key is read back on the next start.
        assert_eq!(dev.keyring().unwrap().primary().id(), first);
    }

    #[test]
    fn app_ids_that_look_like_numbers_stay_text_and_need_a_public_url() {
        let figment = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(("tiktok_app_id", 7_312_345_678_901_234_567_u64))
            .merge(("facebook_app_secret", 1234));
        let raw: RawConfig = figment.extract().unwrap();
        assert_eq!(raw.tiktok_app_id.as_deref(), Some("7312345678901234567"));
        assert_eq!(raw.facebook_app_secret.as_deref(), Some("1234"));
        let err = raw.clone().validate().unwrap_err();
        assert_eq!(err.setting, "public_url");
        let config = RawConfig {
            public_url: Some("https://inbox.example.com/".into()),
            ..raw
        }
        .validate()
        .unwrap();
        assert_eq!(
            config.oauth.public_url.as_deref(),
            Some("https://inbox.example.com")
        );
        assert_eq!(
            config.oauth.app_id(snorq_connectors::Platform::TikTok),
            Some("7312345678901234567")
        );
        for (setting, bad) in [
            (
                "token_refresh_window_mins",
                RawConfig {
                    token_refresh_window_mins: 0,
                    ..RawConfig::default()
                },
            ),
            (
                "connection_error_threshold",
                RawConfig {
                    connection_error_threshold: 0,
                    ..RawConfig::default()
                },
            ),
            (
                "token_refresh_retry_delays_secs",
                RawConfig {
                    token_refresh_retry_delays_secs: vec![],
                    ..RawConfig::default()
                },
            ),
            (
                "public_url",
                RawConfig {
                    public_url: Some("ftp://x".into()),
                    ..RawConfig::default()
                },
            ),
        ] {
            assert_eq!(bad.validate().unwrap_err().setting, setting);
        }
    }

    #[test]
    fn keys_come_as_a_comma_separated_string_or_a_list() {
        let a = EncryptionKey::generate_base64();
        let b = EncryptionKey::generate_base64();
        let figment = Figment::from(Serialized::defaults(RawConfig::default()))
            .merge(("encryption_keys", format!("{a}, {b}")));
        let known = known_settings();
        warn_about_unknown_variables(&known);
        let raw: RawConfig = figment.extract().unwrap();
        assert_eq!(raw.encryption_keys, vec![a.clone(), b.clone()]);
        let ring = raw.validate().unwrap().keyring().unwrap();
        assert_eq!(ring.primary().id(), EncryptionKey::from_base64(&a).unwrap().id());
    }

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        let url = DatabaseUrl::parse("postgres://snorq:hunter2@db:5432/snorq").unwrap();
        assert_eq!(url.redacted(), "postgres://snorq:***@db:5432/snorq");
        // An @ inside the password, and a password given as a query parameter.
        let tricky =
            DatabaseUrl::parse("postgres://u:p%40ss@db/snorq?sslmode=require&password=hunter2").unwrap();
        let shown = tricky.redacted();
        assert!(!shown.contains("ss@") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
        let config = RawConfig {
            database_url: Some("postgres://snorq:hunter2@db/snorq".into()),
            ..RawConfig::default()
        }
        .validate()
        .unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
