//! The team inbox: conversations as agents list them, message history, labels and notes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{PlatformColumn, StoreResult};
use crate::domain::{
    ConnectionStatus, ConversationStatus, MessageDirection, MessageStatus, SnapshotCursor, TimeCursor,
};

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
    /// Set while a reply's outcome is unknown and the platform's word is awaited.
    pub unconfirmed_until: Option<DateTime<Utc>>,
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

/// The team inbox: what agents list, read and organize. Every method is scoped by
/// organization; an id of another organization is `None` / `NotFound`.
#[async_trait]
pub trait InboxStore: Send + Sync + 'static {
    /// A page of conversations, newest activity first. Without a cursor the page starts at the
    /// top and `as_of` is the organization's newest event; with one, conversations keep the
    /// position they had at `as_of` (their newer messages, and conversations created since, are
    /// left out), so a walk sees each conversation once however activity changes meanwhile.
    async fn conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&SnapshotCursor>,
        limit: i64,
    ) -> StoreResult<ConversationPage>;

    async fn conversation(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<ConversationRecord>>;

    /// The labels of these conversations (by name).
    async fn conversation_labels(&self, org_id: Uuid, ids: &[Uuid]) -> StoreResult<Vec<ConversationLabel>>;

    /// Open conversations: all, the user's, unassigned, unread; from the count deltas.
    async fn inbox_counts(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<InboxCounts>;

    /// Applies the update and writes `conversation.updated`; `None` when not in that org.
    async fn update_conversation(
        &self,
        org_id: Uuid,
        id: Uuid,
        update: &ConversationUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConversationRecord>>;

    /// Sets the unread count to zero (with `conversation.updated` when it was not).
    async fn mark_read(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConversationRecord>>;

    /// Messages of the conversation, newest first, before `before`.
    async fn messages(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        before: Option<&TimeCursor>,
        limit: i64,
    ) -> StoreResult<Vec<MessageRecord>>;

    async fn labels(&self, org_id: Uuid) -> StoreResult<Vec<Label>>;

    /// `Conflict(LabelName)` when the name is taken in the organization.
    async fn insert_label(&self, label: &Label) -> StoreResult<Label>;

    /// `None` when not in that org; `Conflict(LabelName)` as above.
    async fn update_label(&self, label: &Label) -> StoreResult<Option<Label>>;

    async fn delete_label(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool>;

    /// Replaces the conversation's labels (all of them in the org, checked by the caller) and
    /// writes `conversation.updated`; false when the conversation is not in that org.
    async fn set_conversation_labels(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        label_ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Notes of the conversation, newest first, before `before`.
    async fn notes(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        before: Option<&TimeCursor>,
        limit: i64,
    ) -> StoreResult<Vec<Note>>;

    async fn note(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<Note>>;

    /// `NotFound` when the conversation is not in that org.
    async fn insert_note(&self, note: &Note) -> StoreResult<Note>;

    async fn delete_note(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool>;

    // --- conversations ---

    /// Every conversation id of the organization, in id order (benchmarks, tools).
    async fn conversation_ids(&self, org_id: Uuid) -> StoreResult<Vec<Uuid>>;
}
