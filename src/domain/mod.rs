//! Domain values that validate on construction, and the enums stored in the database.
//!
//! Enums are stored upper-case in the database (as in the schema seed) and travel lower-case
//! in JSON; `as_db`/`from_db` are the only place that mapping lives.

mod content;
mod cursor;
pub mod delivery;
mod email;
mod enums;
mod names;
pub mod receipts;
pub mod routing;
pub mod search;

pub use content::{ContactCard, Media, MessageContent, StoredContent};
pub use cursor::{IdCursor, SnapshotCursor, TimeCursor};
pub use delivery::SendStatus;
pub use email::Email;
pub use enums::{ConnectionStatus, ConversationStatus, MessageDirection, MessageStatus, Plan, Role};
pub use names::{DisplayName, OrgName, Password, Slug};

/// A value that failed validation, with the field it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Invalid {
            field,
            message: message.into(),
        }
    }
}

/// The current time, truncated to microseconds: PostgreSQL keeps microseconds, so a value
/// read back compares equal to the one written, on both backends.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::{SubsecRound, Utc};
    Utc::now().trunc_subsecs(6)
}

/// A new time-ordered id (UUID v7), used for every primary key: ids that grow with time keep
/// the indexes append-mostly.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
