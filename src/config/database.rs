//! Which database: the URL picks the backend by its scheme.

use super::{ConfigError, RawConfig};

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

impl DatabaseUrl {
    /// `database_url`, or a SQLite file in `data_dir` when unset.
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        match &raw.database_url {
            Some(url) if !url.trim().is_empty() => DatabaseUrl::parse(url.trim()),
            _ => Ok(DatabaseUrl::Sqlite(format!(
                "sqlite://{}",
                raw.data_dir.join("snorq.db").display()
            ))),
        }
    }
}
