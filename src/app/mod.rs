//! Use cases. No HTTP types here: handlers and the CLI call these functions, which call the
//! store, the vault and (later) the connectors.

pub mod api_keys;
pub mod auth;
pub mod batcher;
pub mod connections;
pub mod dashboard;
pub mod delivery;
mod error;
pub mod inbox;
pub mod ingest;
pub mod keys;
pub mod labels;
pub mod live;
mod login_limiter;
pub mod notes;
pub mod orgs;
pub mod pacing;
pub mod replies;
pub mod retention;
pub mod sends;

use std::sync::Arc;

pub use error::AppError;
pub use login_limiter::LoginLimiter;

use crate::config::{Config, WebhookConfig};
use crate::crypto::Vault;
use crate::store::Store;

pub type AppResult<T> = Result<T, AppError>;

/// Everything a use case needs, shared by all requests.
pub struct App {
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub settings: Settings,
    pub login_limiter: LoginLimiter,
    pub ingestor: ingest::Ingestor,
    pub live: live::EventPump,
}

/// The subset of configuration the use cases read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub signup_enabled: bool,
    pub session_ttl: chrono::Duration,
    pub webhooks: WebhookConfig,
    /// Lower-cased emails of the dashboard's operators.
    pub operator_emails: Vec<String>,
}

impl App {
    /// Builds the use cases; starts the ingest writers (so call it inside the runtime).
    pub fn new(store: Arc<dyn Store>, vault: Vault, config: &Config) -> Self {
        let ingestor = ingest::Ingestor::start(
            store.clone(),
            ingest::IngestSettings {
                max_batch: config.ingest_max_batch,
                writers: config.ingest_writers,
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
            },
            login_limiter: LoginLimiter::per_minute(config.login_attempts_per_minute),
            live: live::EventPump::default(),
        }
    }
}
