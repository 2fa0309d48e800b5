//! Use cases. No HTTP types here: handlers and the CLI call these functions, which call the
//! store, the vault and (later) the connectors.

pub mod account_proof;
pub mod api_keys;
pub mod auth;
pub mod batcher;
pub mod connection_health;
pub mod connections;
pub mod content;
pub mod dashboard;
pub mod delivery;
mod error;
pub mod inbox;
pub mod ingest;
pub mod invitations;
pub mod keys;
pub mod labels;
pub mod live;
mod login_limiter;
pub mod notes;
pub mod oauth;
pub mod orgs;
pub mod pacing;
pub mod replies;
pub mod retention;
pub mod sends;
pub mod token_refresh;

use std::sync::{Arc, OnceLock};

pub use error::AppError;
pub use login_limiter::{LoginLimiter, LoginLimits};

use crate::config::{Config, OAuthConfig, TokenRefreshConfig, WebhookConfig};
use crate::crypto::Vault;
use crate::store::Store;

pub type AppResult<T> = Result<T, AppError>;

/// Everything a use case needs, shared by all requests.
pub struct App {
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub settings: Settings,
    pub login_limiter: LoginLimiter,
    /// Signups per client address.
    pub signup_limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Password hashing, bounded in threads and queue.
    pub hasher: crate::crypto::password::PasswordHasher,
    pub ingestor: ingest::Ingestor,
    pub live: live::EventPump,
    /// Built on first use (the connect flows, checks, refreshes).
    platform_client: OnceLock<snorq_connectors::Client>,
}

/// The subset of configuration the use cases read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub signup_enabled: bool,
    pub session_ttl: chrono::Duration,
    pub webhooks: WebhookConfig,
    /// Lower-cased emails of the dashboard's operators.
    pub operator_emails: Vec<String>,
    pub oauth: OAuthConfig,
    pub token_refresh: TokenRefreshConfig,
    pub platforms: snorq_connectors::ClientConfig,
    pub search_walk_threshold: u32,
    pub security: crate::config::SecurityConfig,
}

impl App {
    /// Builds the use cases; starts the ingest writers (so call it inside the runtime).
    pub fn new(store: Arc<dyn Store>, vault: Vault, config: &Config) -> Self {
        let ingestor = ingest::Ingestor::start(
            store.clone(),
            ingest::IngestSettings {
                max_batch: config.ingest.max_batch,
                writers: config.ingest.writers,
                queue_limit: config.ingest.queue_limit,
            },
        );
        App {
            ingestor,
            store,
            vault,
            settings: Settings {
                signup_enabled: config.signup_enabled,
                session_ttl: config.session_ttl,
                webhooks: config.webhooks.clone(),
                operator_emails: config.operator_emails.clone(),
                oauth: config.oauth.clone(),
                token_refresh: config.token_refresh.clone(),
                platforms: config.outbound.platforms.clone(),
                search_walk_threshold: config.ingest.search_walk_threshold,
                security: config.security.clone(),
            },
            login_limiter: LoginLimiter::new(config.security.login_limits),
            signup_limiter: governor::RateLimiter::keyed(governor::Quota::per_hour(
                std::num::NonZeroU32::new(config.security.signups_per_hour)
                    .unwrap_or(std::num::NonZeroU32::MIN),
            )),
            hasher: crate::crypto::password::PasswordHasher::new(
                config.security.password_hash_threads,
                config.security.password_hash_queue,
            ),
            live: live::EventPump::default(),
            platform_client: OnceLock::new(),
        }
    }

    /// The platform API client (shares one connection pool).
    pub fn platform_client(&self) -> AppResult<&snorq_connectors::Client> {
        if let Some(client) = self.platform_client.get() {
            return Ok(client);
        }
        let client =
            snorq_connectors::Client::new(self.settings.platforms.clone()).map_err(AppError::internal)?;
        Ok(self.platform_client.get_or_init(|| client))
    }

    /// The Meta app of this platform (WhatsApp or Facebook), if its id and secret are set.
    pub fn meta_app(&self, platform: snorq_connectors::Platform) -> Option<snorq_connectors::MetaApp> {
        let (id, secret) = self.app_credentials(platform)?;
        Some(snorq_connectors::MetaApp {
            app_id: id,
            app_secret: secret,
        })
    }

    /// The TikTok app, if its id and secret are set.
    pub fn tiktok_app(&self) -> Option<snorq_connectors::TikTokApp> {
        let (id, secret) = self.app_credentials(snorq_connectors::Platform::TikTok)?;
        Some(snorq_connectors::TikTokApp {
            app_id: id,
            app_secret: secret,
        })
    }

    fn app_credentials(
        &self,
        platform: snorq_connectors::Platform,
    ) -> Option<(String, snorq_connectors::Secret)> {
        use secrecy::ExposeSecret;
        let id = self.settings.oauth.app_id(platform)?;
        let secret = self.settings.webhooks.app_secret(platform)?;
        Some((
            id.to_owned(),
            snorq_connectors::Secret::new(secret.expose_secret().to_owned()),
        ))
    }
}
