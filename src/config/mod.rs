//! One typed configuration, layered: built-in defaults < TOML file < `SNORQ_*` environment
//! variables (and the conventional `DATABASE_URL`) < command-line flags. Validated once at start,
//! with messages that say what to fix. The settings are one flat list (their names are the TOML
//! keys and the environment variables); the validated [`Config`] groups them in sections, each
//! checking its own settings (`security`, `webhooks`, `ingest`, `outbound`, `oauth`,
//! `token_refresh`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

mod database;
mod ingest;
mod oauth;
mod outbound;
mod raw;
mod security;
mod token_refresh;
mod webhooks;

pub use database::DatabaseUrl;
pub use ingest::IngestConfig;
pub use oauth::OAuthConfig;
pub use outbound::OutboundConfig;
pub use raw::RawConfig;
pub use security::SecurityConfig;
pub use token_refresh::TokenRefreshConfig;
pub use webhooks::WebhookConfig;

use crate::crypto::{EncryptionKey, Keyring};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
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
    pub ingest: IngestConfig,
    pub workers: bool,
    pub outbound: OutboundConfig,
    pub operator_emails: Vec<String>,
    pub oauth: OAuthConfig,
    pub token_refresh: TokenRefreshConfig,
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
    /// Checks every setting, section by section; the first wrong one is named in the error.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let database_url = DatabaseUrl::from_raw(&self)?;
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
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::new("max_body_bytes", "must be at least 1024"));
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError::new("database_max_connections", "must be at least 1"));
        }
        Ok(Config {
            security: SecurityConfig::from_raw(&self)?,
            webhooks: WebhookConfig::from_raw(&self),
            ingest: IngestConfig::from_raw(&self, &database_url)?,
            outbound: OutboundConfig::from_raw(&self)?,
            oauth: OAuthConfig::from_raw(&self)?,
            token_refresh: TokenRefreshConfig::from_raw(&self)?,
            operator_emails: self
                .operator_emails
                .iter()
                .map(|e| e.trim().to_lowercase())
                .filter(|e| !e.is_empty())
                .collect(),
            database_url,
            data_dir: self.data_dir,
            listen,
            dev: self.dev,
            encryption_keys: self.encryption_keys.into_iter().map(SecretString::from).collect(),
            signup_enabled: self.signup_enabled,
            session_ttl: chrono::Duration::hours(i64::from(self.session_ttl_hours)),
            log_format: self.log_format,
            max_body_bytes: self.max_body_bytes,
            database_max_connections: self.database_max_connections,
            workers: self.workers,
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
