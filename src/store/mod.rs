//! Storage: one [`Store`] trait of intent-level operations, implemented for PostgreSQL and
//! SQLite and picked by the database URL scheme. Transactions live inside the store; callers
//! never hold a connection.
//!
//! Both backends run the same SQL where the dialects agree (`$n` placeholders work in both);
//! that shared body is `shared_sql.rs`, compiled once per backend so that every query is typed
//! against a concrete driver. What differs (connecting, locking, transaction start, error codes)
//! is in `postgres.rs` and `sqlite.rs`.

mod connections;
mod error;
mod inbox;
mod ingest;
mod outbound;
mod postgres;
mod records;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use snorq_connectors::Platform;
use uuid::Uuid;

pub use connections::*;
pub use error::{Constraint, StoreError};
pub use inbox::*;
pub use ingest::*;
pub use outbound::*;
pub use postgres::PgStore;
pub use records::*;
pub use sqlite::SqliteStore;

use crate::config::DatabaseUrl;
use crate::domain::Role;

pub type StoreResult<T> = Result<T, StoreError>;

/// Connects to the database named by `url`, runs the embedded migrations, and returns the store.
pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    Ok(match url {
        DatabaseUrl::Postgres(url) => Arc::new(PgStore::connect(url, max_connections).await?),
        DatabaseUrl::Sqlite(url) => Arc::new(SqliteStore::connect(url, max_connections).await?),
    })
}

#[async_trait]
pub trait Store: IngestStore + OutboundStore + InboxStore + ConnectionStore + Send + Sync + 'static {
    /// Which backend this is ("postgres" or "sqlite"), for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Runs the embedded migrations (idempotent).
    async fn migrate(&self) -> StoreResult<()>;

    /// A cheap round trip to the database, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;

    /// The pool the job queue shares with the store, so that jobs are pushed inside the
    /// store's own transactions.
    fn queue_pool(&self) -> QueuePool;

    // --- users and tokens ---

    /// Fails with `Conflict(UserEmail)` when the (case-insensitive) email is taken.
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User>;
    async fn user(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn user_credentials(&self, email_normalized: &str) -> StoreResult<Option<UserCredentials>>;
    async fn insert_api_token(&self, token: &NewApiToken) -> StoreResult<()>;
    /// The live (unrevoked, unexpired) token with this hash, and its user.
    async fn session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<Option<Session>>;
    /// [`session`](Self::session) and its user's membership of `org_id` (`None` when not a
    /// member), in one statement: every organization route asks for both.
    async fn session_in_org(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
        org_id: Uuid,
    ) -> StoreResult<Option<(Session, Option<Membership>)>>;
    async fn revoke_api_token(&self, token_id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;

    // --- organizations and members ---

    /// Creates the organization and makes its owner an OWNER member, atomically.
    async fn insert_organization(&self, org: &NewOrganization) -> StoreResult<Organization>;
    async fn organization_by_slug(&self, slug: &str) -> StoreResult<Option<Organization>>;
    /// Organizations the user belongs to, with the user's role, oldest first.
    async fn memberships(&self, user_id: Uuid) -> StoreResult<Vec<Membership>>;
    async fn membership(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<Option<Membership>>;
    async fn update_organization(
        &self,
        org_id: Uuid,
        update: &OrganizationUpdate,
    ) -> StoreResult<Organization>;
    async fn members(&self, org_id: Uuid) -> StoreResult<Vec<Member>>;
    async fn member(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<Option<Member>>;
    /// Adds a member unless the plan's seat limit is reached (`PlanLimit`) or the user already
    /// is one (`Conflict(Membership)`). The check and the insert are one transaction.
    async fn add_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> StoreResult<Member>;
    /// Records an invitation unless the seats (members and pending invitations) are taken
    /// (`PlanLimit`), the email is a member already (`Conflict(Membership)`) or invited already
    /// (`Conflict(Invitation)`). One transaction with the organization locked.
    async fn insert_invitation(&self, invitation: &NewInvitation) -> StoreResult<Invitation>;
    /// Pending (unexpired) invitations of the organization, newest first.
    async fn invitations(&self, org_id: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<Invitation>>;
    /// Revokes a pending invitation; false when there is none with that id here.
    async fn delete_invitation(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool>;
    /// Pending invitations addressed to this (normalized) email, newest first.
    async fn invitations_for(
        &self,
        email_normalized: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Invitation>>;
    /// Turns the invitation addressed to `email_normalized` into a membership of `user_id`, in
    /// one transaction; `NotFound` when there is no such pending invitation.
    async fn accept_invitation(
        &self,
        id: Uuid,
        email_normalized: &str,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Membership>;
    /// Declines (deletes) the invitation addressed to `email_normalized`; false when none.
    async fn decline_invitation(&self, id: Uuid, email_normalized: &str) -> StoreResult<bool>;
    /// Changes a non-owner's role; `NotFound` when the user is not a member.
    async fn set_member_role(&self, org_id: Uuid, user_id: Uuid, role: Role) -> StoreResult<Member>;
    /// Makes `to` the OWNER and the previous owner an ADMIN, atomically.
    async fn transfer_ownership(
        &self,
        org_id: Uuid,
        from: Uuid,
        to: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Removes a non-owner member; false when there was no such member.
    async fn remove_member(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<bool>;

    // --- conversations ---

    /// Every conversation id of the organization, in id order (benchmarks, tools).
    async fn conversation_ids(&self, org_id: Uuid) -> StoreResult<Vec<Uuid>>;

    // --- platform connections ---

    /// Fails with `Conflict(ConnectionLiveAccount)` when the account is connected anywhere.
    async fn insert_connection(&self, connection: &Connection) -> StoreResult<Connection>;
    async fn connections(&self, org_id: Uuid) -> StoreResult<Vec<Connection>>;
    async fn connection(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<Connection>>;
    /// Whether the account is connected (not disconnected) in an organization other than
    /// `org_id`: the connect flows leave such accounts alone.
    async fn account_live_elsewhere(
        &self,
        org_id: Uuid,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<bool>;
    async fn connection_by_account(
        &self,
        org_id: Uuid,
        platform: Platform,
        platform_user_id: &str,
    ) -> StoreResult<Option<Connection>>;
    /// Writes every mutable field of the connection, if it is unchanged since it was read
    /// (`updated_at` still `read_at`; otherwise `Stale`); `NotFound` when it is not in that org.
    async fn save_connection(
        &self,
        connection: &Connection,
        read_at: DateTime<Utc>,
    ) -> StoreResult<Connection>;
    /// Encrypted token columns of every connection with an id after `after`, in id order.
    async fn connection_secrets_page(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<ConnectionSecrets>>;
    /// Replaces the encrypted tokens only if they are still `old` (a concurrent change wins), and
    /// bumps `updated_at` so an edit that read the old tokens cannot write them back; true when
    /// the row was updated.
    async fn replace_connection_secrets(
        &self,
        old: &ConnectionSecrets,
        new: &ConnectionSecrets,
    ) -> StoreResult<bool>;
}

/// Webhook ingest (docs/architecture.md, "The flow of a webhook"): verified bodies stored and
/// applied in one transaction.
#[async_trait]
pub trait IngestStore: Send + Sync + 'static {
    /// Stores every webhook of the batch and applies its events, all in one transaction: when
    /// this returns Ok, everything is committed. One savepoint per event, so a bad event is
    /// recorded on its webhook's row without affecting the others.
    async fn ingest(&self, batch: &[IncomingWebhook]) -> StoreResult<Vec<IngestOutcome>>;
    /// Applies a stored webhook's events again (idempotently) and updates its row.
    async fn reapply(&self, webhook: &IncomingWebhook) -> StoreResult<IngestOutcome>;
    /// Webhooks whose events were not all applied (unroutable, failed, partial), newest first:
    /// of these organizations, or all of them (also those that reached none) for `None`.
    async fn webhooks_needing_attention(
        &self,
        organizations: Option<&[Uuid]>,
        limit: i64,
    ) -> StoreResult<Vec<WebhookSummary>>;
    async fn webhook_summary(&self, id: Uuid) -> StoreResult<Option<WebhookSummary>>;
    /// Stored webhooks matching the filter with an id after `after`, in id order.
    async fn webhooks_for_replay(
        &self,
        filter: &ReplayFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<StoredWebhook>>;
}

/// The database pool behind the store, for the job queue (apalis) to run on.
#[derive(Clone)]
pub enum QueuePool {
    Postgres(sqlx::PgPool),
    /// With a signal for each row inserted into the queue table (SQLite has no LISTEN/NOTIFY;
    /// an update hook on every pooled connection stands in for it).
    Sqlite {
        pool: sqlx::SqlitePool,
        inserts: tokio::sync::broadcast::Sender<()>,
    },
}

/// Outbound sends (docs/architecture.md, "The flow of a reply"): the reply, its jobs, their
/// outcomes, the sends API.
#[async_trait]
pub trait OutboundStore: Send + Sync + 'static {
    /// The conversation to reply in, with its connection; `None` when not in that organization.
    async fn reply_target(&self, org_id: Uuid, conversation_id: Uuid) -> StoreResult<Option<ReplyTarget>>;
    /// Outbound messages of the conversation created after `since` and not failed (TikTok caps
    /// them per window).
    async fn outbound_count_since(&self, conversation_id: Uuid, since: DateTime<Utc>) -> StoreResult<i64>;
    /// Stores the message (pending) and pushes its first send job in one transaction. With an
    /// idempotency key already used in the organization, returns that message instead
    /// (`created: false`) and pushes nothing.
    async fn create_outbound(&self, message: &NewOutbound) -> StoreResult<OutboundCreated>;
    /// The outbound message created with this Idempotency-Key in the organization.
    async fn outbound_by_idempotency_key(&self, org_id: Uuid, key: &str) -> StoreResult<Option<SendRecord>>;
    /// The messages, with their conversations and connections, for the worker (missing ids are
    /// left out; any order).
    async fn send_contexts(&self, message_ids: &[Uuid]) -> StoreResult<Vec<SendContext>>;
    /// Records provider calls, all in one transaction: each message moves on only if it is still
    /// pending with `attempt - 1` attempts (otherwise `false` for that outcome: a duplicate run),
    /// gets its attempt row, its live event, its retry job; receipts that arrived before the
    /// platform's id are applied; an auth failure marks the connection.
    async fn record_send_outcomes(&self, outcomes: &[SendOutcome]) -> StoreResult<Vec<bool>>;
    /// Outbound messages matching the filter, newest first, with ids below `before`.
    async fn sends(
        &self,
        filter: &SendFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> StoreResult<Vec<SendRecord>>;
    async fn send(&self, org_id: Uuid, message_id: Uuid) -> StoreResult<Option<SendRecord>>;
    async fn send_attempts(&self, org_id: Uuid, message_id: Uuid) -> StoreResult<Vec<SendAttempt>>;
    /// A failed send back to pending, with a new job (a fresh retry budget).
    async fn retry_send(&self, org_id: Uuid, message_id: Uuid, now: DateTime<Utc>)
    -> StoreResult<SendChange>;
    /// A failed or pending send marked failed with reason `discarded`; its pending job, if any,
    /// then does nothing.
    async fn discard_send(
        &self,
        org_id: Uuid,
        message_id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<SendChange>;
    /// Retries up to `limit` failed (not discarded) sends matching the filter with ids after
    /// `after`, in id order; how many, and the last id looked at (where the next chunk starts).
    async fn retry_sends(
        &self,
        filter: &SendFilter,
        after: Option<Uuid>,
        now: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<(u64, Option<Uuid>)>;
    /// Failed (not discarded) sends per connection of these organizations.
    async fn failed_sends_by_connection(&self, organizations: &[Uuid]) -> StoreResult<Vec<(Uuid, i64)>>;
    /// Provider calls per hour and outcome since `since`.
    async fn hourly_outcomes(
        &self,
        organizations: &[Uuid],
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<HourlyOutcome>>;
    /// Deletes finished queue jobs done before `jobs_before` and receipts for unknown messages
    /// received before `receipts_before`.
    async fn cleanup(
        &self,
        jobs_before: DateTime<Utc>,
        receipts_before: DateTime<Utc>,
    ) -> StoreResult<Cleanup>;
}

/// The team inbox (issue 6): what agents list, read and organize. Every method is scoped by
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
        after: Option<&crate::domain::SnapshotCursor>,
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
        before: Option<&crate::domain::TimeCursor>,
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
        before: Option<&crate::domain::TimeCursor>,
        limit: i64,
    ) -> StoreResult<Vec<Note>>;
    async fn note(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<Note>>;
    /// `NotFound` when the conversation is not in that org.
    async fn insert_note(&self, note: &Note) -> StoreResult<Note>;
    async fn delete_note(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool>;

    /// Events of the organization with ids after `after`, in id order.
    async fn events_after(&self, org_id: Uuid, after: i64, limit: i64) -> StoreResult<Vec<EventRecord>>;
    /// The newest event id of any organization (0 when there is none): a cheap change signal.
    async fn latest_event_id(&self) -> StoreResult<i64>;
    /// Per organization with events after `after`, its newest event id: whom to wake.
    async fn newest_event_ids_after(&self, after: i64) -> StoreResult<Vec<(Uuid, i64)>>;
    /// The newest event id of the organization (0 when there is none).
    async fn latest_org_event_id(&self, org_id: Uuid) -> StoreResult<i64>;

    /// Live (unrevoked) API keys of the organization, newest first.
    async fn api_keys(&self, org_id: Uuid) -> StoreResult<Vec<ApiKey>>;
    async fn revoke_api_key(&self, org_id: Uuid, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Deletes up to `limit` messages created before `before` in organizations on `plan`
    /// (pending sends are kept), and rebuilds their conversations' search words; how many.
    async fn delete_messages_before(
        &self,
        plan: crate::domain::Plan,
        before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<u64>;
    /// Indexes the words of up to `limit` conversations written before the search index
    /// existed (migration 11); how many (0: all are indexed).
    async fn index_for_search(&self, limit: i64) -> StoreResult<u64>;
    /// Deletes live events created before `before`; how many.
    async fn delete_events_before(&self, before: DateTime<Utc>) -> StoreResult<u64>;
    /// Folds the inbox count deltas; how many rows remain.
    async fn compact_conversation_counts(&self) -> StoreResult<u64>;
}
