//! The settings as read from every source, before validation: one flat list whose names are
//! the TOML keys and, upper-cased after `SNORQ_`, the environment variables (docs/configuration.md).
//! Each section of [`Config`](super::Config) validates its own part of it.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use super::LogFormat;

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
    /// Verified webhooks waiting for an ingest writer; beyond it, webhooks answer 503 with
    /// `Retry-After` (the platform delivers them again) instead of queueing without end.
    pub ingest_queue_limit: usize,
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
    /// How long a send whose outcome is unknown waits for the platform's status or echo before
    /// it fails as `outcome_unknown`.
    pub send_confirm_window_secs: u64,
    /// A pending send due this long ago whose job has not run is re-queued (its job was lost);
    /// an attempt open this long past the send timeout was abandoned by its worker.
    pub send_stall_secs: u64,
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
            ingest_queue_limit: 2048,
            workers: true,
            send_concurrency: 32,
            send_retry_delays_secs: vec![10, 60, 300, 1800, 7200, 21600],
            send_rate_whatsapp: 80,
            send_rate_facebook: 40,
            send_rate_tiktok: 10,
            send_timeout_secs: 20,
            send_confirm_window_secs: 900,
            send_stall_secs: 300,
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
