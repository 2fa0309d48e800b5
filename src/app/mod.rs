//! Use cases. No HTTP types here: handlers and the CLI call these functions, which call the
//! store, the vault and (later) the connectors.

pub mod auth;
pub mod connections;
mod error;
pub mod keys;
mod login_limiter;
pub mod orgs;

use std::sync::Arc;

pub use error::AppError;
pub use login_limiter::LoginLimiter;

use crate::config::Config;
use crate::crypto::Vault;
use crate::store::Store;

pub type AppResult<T> = Result<T, AppError>;

/// Everything a use case needs, shared by all requests.
pub struct App {
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub settings: Settings,
    pub login_limiter: LoginLimiter,
}

/// The subset of configuration the use cases read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub signup_enabled: bool,
    pub session_ttl: chrono::Duration,
}

impl App {
    pub fn new(store: Arc<dyn Store>, vault: Vault, config: &Config) -> Self {
        App {
            store,
            vault,
            settings: Settings {
                signup_enabled: config.signup_enabled,
                session_ttl: config.session_ttl,
            },
            login_limiter: LoginLimiter::per_minute(config.login_attempts_per_minute),
        }
    }
}
