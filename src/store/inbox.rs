//! Records of the team inbox (issue 6): conversations as agents list them, message history,
//! labels, notes, live events, API keys and retention.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::PlatformColumn;
use crate::domain::{ConnectionStatus, ConversationStatus, MessageDirection, MessageStatus, TimeCursor};

/// A conversation as the inbox shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub platform_connection_id: Uuid,
    #[sqlx(try_from = "String")]
    pub platform: PlatformColumn,
    pub external_id: String,
    pub contact_external_id: String,
    pub contact_name: Option<String>,
    pub contact_username: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: ConversationStatus,
    pub assignee_id: Option<Uuid>,
    pub preview: Option<String>,
    pub last_message_at: DateTime<Utc>,
    pub last_inbound_at: Option<DateTime<Utc>>,
    pub unread_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The connection's settings (the reply window depends on them) and status.
    pub connection_settings: Json<Value>,
    #[sqlx(try_from = "String")]
    pub connection_status: ConnectionStatus,
    /// Where the row stands in the listing it came from (`last_message_at`, or for a
    /// conversation that changed during a paginated walk, its activity when the walk started).
    #[sqlx(skip)]
    pub position_at: DateTime<Utc>,
}

impl ConversationRecord {
    pub fn position(&self) -> TimeCursor {
        TimeCursor {
            at: self.position_at,
            id: self.id,
        }
    }
}

/// Who a listing is filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssigneeFilter {
    Unassigned,
    User(Uuid),
}

/// Filters of the conversation listing; every one optional except the organization.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    pub organization_id: Uuid,
    /// `None`: every status.
    pub status: Option<ConversationStatus>,
    pub platform: Option<snorq_connectors::Platform>,
    pub connection_id: Option<Uuid>,
    pub label_id: Option<Uuid>,
    pub assignee: Option<AssigneeFilter>,
    pub unread: bool,
    /// Words (`domain::search::words`) that must each start a word of the conversation: of
    /// its contact's name or username, or of any of its messages.
    pub search: Vec<String>,
    /// A search whose rarest word is in more conversations than this walks the listing in
    /// activity order instead of sorting the matches (`search_walk_threshold`).
    pub search_walk_above: i64,
}

/// One page of conversations and the event-log position it was read at.
#[derive(Debug, Clone)]
pub struct ConversationPage {
    pub conversations: Vec<ConversationRecord>,
    /// The newest event of the organization when the walk started (the cursor keeps it).
    pub as_of: i64,
}

/// Open conversations: in total, per assignee, unassigned, with unread messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxCounts {
    pub open: i64,
    pub mine: i64,
    pub unassigned: i64,
    pub unread: i64,
}

/// A change to a conversation; `None` leaves the field alone.
#[derive(Debug, Clone, Default)]
pub struct ConversationUpdate {
    pub status: Option<ConversationStatus>,
    /// `Some(None)` unassigns.
    pub assignee_id: Option<Option<Uuid>>,
}

/// A message of a conversation's history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRecord {
    pub id: Uuid,
    pub conversation_id: Uuid,
    #[sqlx(try_from = "String")]
    pub direction: MessageDirection,
    pub external_id: Option<String>,
    pub content_type: String,
    pub content: Json<Value>,
    pub media_url: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub failure_reason: Option<String>,
    pub attempts: i32,
    pub sender_user_id: Option<Uuid>,
    pub sender_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl MessageRecord {
    pub fn position(&self) -> TimeCursor {
        TimeCursor {
            at: self.created_at,
            id: self.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Label {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub color: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A label of a conversation (for listings: which conversation it belongs to).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationLabel {
    pub conversation_id: Uuid,
    #[sqlx(flatten)]
    pub label: Label,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Note {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub conversation_id: Uuid,
    pub author_id: Option<Uuid>,
    pub author_name: Option<String>,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// An entry of the organization's live event log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRecord {
    pub id: i64,
    pub kind: String,
    pub payload: Json<Value>,
    pub created_at: DateTime<Utc>,
}

/// An organization API key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: Option<String>,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// What one retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub messages: u64,
    pub events: u64,
    /// Conversations whose words were indexed for search (written before the index existed).
    pub indexed: u64,
}
