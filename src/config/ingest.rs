//! Webhook ingest: group commit, and how searches are planned.

use super::{ConfigError, DatabaseUrl, RawConfig};

/// How verified webhooks are committed.
#[derive(Debug, Clone, Copy)]
pub struct IngestConfig {
    /// Most webhooks committed together in one transaction.
    pub max_batch: usize,
    /// Ingest transactions in flight at once.
    pub writers: usize,
    /// Webhooks waiting for a writer before new ones are refused (503).
    pub queue_limit: usize,
    /// A search whose rarest word is in more conversations than this walks the inbox instead.
    pub search_walk_threshold: u32,
}

impl IngestConfig {
    pub(super) fn from_raw(raw: &RawConfig, database: &DatabaseUrl) -> Result<Self, ConfigError> {
        if raw.ingest_max_batch == 0 || raw.ingest_max_batch > 10_000 {
            return Err(ConfigError::new(
                "ingest_max_batch",
                "must be between 1 and 10000",
            ));
        }
        // SQLite has one writer at a time: more transactions in flight only wait for the lock.
        let writers = match (raw.ingest_writers, database) {
            (Some(0), _) => return Err(ConfigError::new("ingest_writers", "must be at least 1")),
            (Some(n), _) => n,
            (None, DatabaseUrl::Sqlite(_)) => 1,
            (None, DatabaseUrl::Postgres(_)) => 8,
        };
        if raw.ingest_queue_limit == 0 {
            return Err(ConfigError::new("ingest_queue_limit", "must be at least 1"));
        }
        Ok(IngestConfig {
            max_batch: raw.ingest_max_batch,
            writers,
            queue_limit: raw.ingest_queue_limit,
            search_walk_threshold: raw.search_walk_threshold,
        })
    }
}
