//! The team inbox: conversation listings (with search), history, assignment, reading,
//! labels and notes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::events::{LiveEvents, insert_live_events, live};
use super::search::{SearchPlan, plan_search, push_search_matches, push_search_probes};
use super::{Backend, Db, DbConn, begin_write, db_error, push_any_of};
use crate::store::{
    AssigneeFilter, ConversationFilter, ConversationLabel, ConversationPage, ConversationRecord,
    ConversationUpdate, InboxCounts, InboxStore, Label, MessageRecord, Note, StoreError, StoreResult,
};

/// Where a listing's rows come from. A search for a rare word starts from its matches, a label
/// filter from the label's rows (which carry their conversation's activity, migration 9),
/// anything else from the conversations in activity order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ListingSource {
    Conversations,
    Label(Uuid),
    /// The conversations that have search word `n`.
    SearchMatches(usize),
    /// A search walking the conversations in activity order: the page's ids are found first
    /// from the activity index, which carries the word bits (migration 13), then their rows are
    /// read, so the conversations the bits turn away are never read from the table.
    WordWalk,
}

impl ListingSource {
    pub(super) fn of(filter: &ConversationFilter, plan: SearchPlan) -> Self {
        match (plan, filter.label_id) {
            (SearchPlan::FromMatches(n), _) => ListingSource::SearchMatches(n),
            (_, Some(label)) => ListingSource::Label(label),
            (SearchPlan::Walk, None) => ListingSource::WordWalk,
            (_, None) => ListingSource::Conversations,
        }
    }

    /// The columns the rows are ordered by (equal to `c.last_message_at`, `c.id`).
    pub(super) fn order(self) -> (&'static str, &'static str) {
        match self {
            ListingSource::Label(_) => ("cl.last_message_at", "cl.conversation_id"),
            _ => ("c.last_message_at", "c.id"),
        }
    }

    /// `FROM ... WHERE <the source's own condition>`; the caller adds the filters.
    pub(super) fn push_from(self, query: &mut sqlx::QueryBuilder<Db>, filter: &ConversationFilter) {
        match self {
            ListingSource::Conversations => {
                query.push(
                    " FROM conversations c JOIN platform_connections pc ON pc.id = c.platform_connection_id \
                     WHERE 1 = 1",
                );
            }
            ListingSource::Label(label) => {
                query
                    .push(
                        " FROM conversation_labels cl JOIN conversations c ON c.id = cl.conversation_id \
                         JOIN platform_connections pc ON pc.id = c.platform_connection_id WHERE cl.label_id = ",
                    )
                    .push_bind(label);
            }
            ListingSource::SearchMatches(n) => {
                push_search_matches(query, filter.organization_id, &filter.search[n]);
            }
            ListingSource::WordWalk => {
                query.push(
                    " FROM conversations c JOIN platform_connections pc ON pc.id = c.platform_connection_id \
                     WHERE c.id IN (SELECT c.id FROM conversations c WHERE 1 = 1",
                );
            }
        }
    }

    pub(super) fn push_order(self, query: &mut sqlx::QueryBuilder<Db>) {
        let (at, id) = self.order();
        query.push(format!(" ORDER BY {at} DESC, {id} DESC LIMIT "));
    }

    /// The page size of a first page: written into the statement where the plan's shape is
    /// fixed by the source (see [`push_plain_limit`]), bound for a search's matches, whose
    /// plan must be made for the word (a generic one may walk the whole inbox for a rare word).
    pub(super) fn push_first_page_limit(self, query: &mut sqlx::QueryBuilder<Db>, limit: i64) {
        match self {
            ListingSource::SearchMatches(_) => {
                query.push_bind(limit);
            }
            _ => push_plain_limit(query, limit),
        }
    }

    /// After the order and limit: closes what `push_from` opened.
    pub(super) fn push_close(self, query: &mut sqlx::QueryBuilder<Db>) {
        if self == ListingSource::WordWalk {
            query.push(") ORDER BY c.last_message_at DESC, c.id DESC");
        }
    }
}

/// The filter's conditions on `c` (every branch of the listing repeats them); the label is left
/// out when the rows come from the label already.
pub(super) fn push_conversation_filters(
    query: &mut sqlx::QueryBuilder<Db>,
    filter: &ConversationFilter,
    source: ListingSource,
) {
    query
        .push(" AND c.organization_id = ")
        .push_bind(filter.organization_id);
    if let Some(status) = filter.status {
        query.push(" AND c.status = ").push_bind(status.as_db());
    }
    if let Some(platform) = filter.platform {
        query.push(" AND c.platform = ").push_bind(platform.as_str());
    }
    if let Some(connection) = filter.connection_id {
        query
            .push(" AND c.platform_connection_id = ")
            .push_bind(connection);
    }
    if let Some(label) = filter
        .label_id
        .filter(|_| !matches!(source, ListingSource::Label(_)))
    {
        query
            .push(" AND EXISTS (SELECT 1 FROM conversation_labels cl WHERE cl.conversation_id = c.id AND cl.label_id = ")
            .push_bind(label)
            .push(")");
    }
    match filter.assignee {
        Some(AssigneeFilter::User(user)) => {
            query.push(" AND c.assignee_id = ").push_bind(user);
        }
        Some(AssigneeFilter::Unassigned) => {
            query.push(" AND c.assignee_id IS NULL");
        }
        None => {}
    }
    if filter.unread {
        query.push(" AND c.unread_count > 0");
    }
    // Each search word the rows do not come from already.
    let from_matches = match source {
        ListingSource::SearchMatches(n) => Some(n),
        _ => None,
    };
    push_search_probes(
        query,
        filter
            .search
            .iter()
            .enumerate()
            .filter(|(n, _)| Some(*n) != from_matches)
            .map(|(_, word)| word),
    );
}

/// Rows of a listing with the position each had in its walk.
#[derive(sqlx::FromRow)]
pub(super) struct PositionedConversation {
    #[sqlx(flatten)]
    pub(super) conversation: ConversationRecord,
    pub(super) position_at: DateTime<Utc>,
    pub(super) as_of: Option<i64>,
}

pub(super) async fn conversation_record(
    conn: &mut DbConn,
    org_id: Uuid,
    id: Uuid,
) -> StoreResult<Option<ConversationRecord>> {
    let record: Option<ConversationRecord> = sqlx::query_as(concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM conversations c JOIN platform_connections pc ON pc.id = c.platform_connection_id \
         WHERE c.organization_id = $1 AND c.id = $2"
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    Ok(record.map(|c| ConversationRecord {
        position_at: c.last_message_at,
        ..c
    }))
}

/// A page size written into the statement rather than bound. PostgreSQL plans a prepared
/// statement for its values on each of its first five calls, then keeps one generic plan if
/// that looks no costlier. With `LIMIT $n` it never does (a generic plan is costed as reading
/// a tenth of the rows), so every call was planned again: 0.2-0.45 ms, more than the statement
/// ran (docs/benchmarks.md, "Inbox benchmark"). Only for statements whose best plan is the same for any
/// values bound; `limit` is an integer, never text from a request.
pub(super) fn push_plain_limit(query: &mut sqlx::QueryBuilder<Db>, limit: i64) {
    query.push(limit.to_string());
}

/// Newest first from just before `before` (on `alias`.created_at, `alias`.id), `limit` rows.
pub(super) fn push_history_page(
    query: &mut sqlx::QueryBuilder<Db>,
    alias: &'static str,
    before: Option<&crate::domain::TimeCursor>,
    limit: i64,
) {
    if let Some(before) = before {
        query
            .push(format!(" AND ({alias}.created_at, {alias}.id) < ("))
            .push_bind(before.at)
            .push(", ")
            .push_bind(before.id)
            .push(")");
    }
    query.push(format!(
        " ORDER BY {alias}.created_at DESC, {alias}.id DESC LIMIT "
    ));
    push_plain_limit(query, limit);
}

pub(super) fn conversation_updated(out: &mut LiveEvents, org_id: Uuid, id: Uuid) {
    live(
        out,
        org_id,
        "conversation.updated",
        json!({ "conversation_id": id }),
    );
}

#[async_trait]
impl InboxStore for Backend {
    async fn conversation_ids(&self, org_id: Uuid) -> StoreResult<Vec<Uuid>> {
        sqlx::query_scalar("SELECT id FROM conversations WHERE organization_id = $1 ORDER BY id")
            .bind(org_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn conversations(
        &self,
        filter: &ConversationFilter,
        after: Option<&crate::domain::SnapshotCursor>,
        limit: i64,
    ) -> StoreResult<ConversationPage> {
        let org = filter.organization_id;
        let source = ListingSource::of(filter, plan_search(&self.pool, filter).await?);
        let mut query = sqlx::QueryBuilder::<Db>::new("");
        match after {
            None => {
                // One statement, one snapshot: the page and the event-log position it reflects.
                query
                    .push(concat!(
                        "SELECT ",
                        conversation_columns!(),
                        ", c.last_message_at AS position_at, \
                         (SELECT COALESCE(MAX(e.id), 0) FROM events e WHERE e.organization_id = "
                    ))
                    .push_bind(org)
                    .push(") AS as_of");
                source.push_from(&mut query, filter);
                push_conversation_filters(&mut query, filter, source);
                source.push_order(&mut query);
                source.push_first_page_limit(&mut query, limit);
                source.push_close(&mut query);
            }
            Some(cursor) => {
                // Conversations whose activity changed after the walk started are placed by
                // their newest message that existed then; the others by `last_message_at`.
                let changed = |q: &mut sqlx::QueryBuilder<Db>, kind: &'static str, column: &'static str| {
                    q.push(format!(
                        "SELECT e.{column} FROM events e WHERE e.organization_id = "
                    ))
                    .push_bind(org)
                    .push(" AND e.id > ")
                    .push_bind(cursor.as_of)
                    .push(format!(" AND e.kind = '{kind}' AND e.{column} IS NOT NULL"));
                };
                let (at, id) = (cursor.position.at, cursor.position.id);
                query.push(concat!(
                    "SELECT * FROM (SELECT * FROM (SELECT ",
                    conversation_columns!(),
                    ", c.last_message_at AS position_at, CAST(NULL AS BIGINT) AS as_of"
                ));
                source.push_from(&mut query, filter);
                let (order_at, order_id) = source.order();
                query
                    .push(format!(" AND ({order_at}, {order_id}) < ("))
                    .push_bind(at)
                    .push(", ")
                    .push_bind(id)
                    .push(") AND c.id NOT IN (");
                changed(&mut query, "message.created", "conversation_id");
                query.push(")");
                push_conversation_filters(&mut query, filter, source);
                source.push_order(&mut query);
                query.push_bind(limit);
                source.push_close(&mut query);
                query.push(concat!(
                    ") AS unchanged UNION ALL SELECT ",
                    conversation_columns!(),
                    ", (SELECT MAX(m.created_at) FROM messages m WHERE m.conversation_id = c.id \
                         AND m.id NOT IN ("
                ));
                changed(&mut query, "message.created", "message_id");
                query.push(
                    ")) AS position_at, CAST(NULL AS BIGINT) AS as_of FROM conversations c \
                     JOIN platform_connections pc ON pc.id = c.platform_connection_id WHERE c.id IN (",
                );
                changed(&mut query, "message.created", "conversation_id");
                query.push(") AND c.id NOT IN (");
                changed(&mut query, "conversation.created", "conversation_id");
                query.push(")");
                push_conversation_filters(&mut query, filter, ListingSource::Conversations);
                query
                    .push(") AS walk WHERE position_at IS NOT NULL AND (position_at, id) < (")
                    .push_bind(at)
                    .push(", ")
                    .push_bind(id)
                    .push(") ORDER BY position_at DESC, id DESC LIMIT ")
                    .push_bind(limit);
            }
        }
        let rows: Vec<PositionedConversation> = query
            .build_query_as()
            .persistent(true)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        let as_of = match after {
            Some(cursor) => cursor.as_of,
            None => rows.first().and_then(|r| r.as_of).unwrap_or(0),
        };
        Ok(ConversationPage {
            conversations: rows
                .into_iter()
                .map(|r| ConversationRecord {
                    position_at: r.position_at,
                    ..r.conversation
                })
                .collect(),
            as_of,
        })
    }

    async fn conversation(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<ConversationRecord>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        conversation_record(&mut conn, org_id, id).await
    }

    async fn conversation_labels(&self, org_id: Uuid, ids: &[Uuid]) -> StoreResult<Vec<ConversationLabel>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::<Db>::new(
            "SELECT cl.conversation_id, l.id, l.organization_id, l.name, l.color, l.created_at \
             FROM conversation_labels cl JOIN labels l ON l.id = cl.label_id WHERE cl.organization_id = ",
        );
        query.push_bind(org_id).push(" AND");
        push_any_of(&mut query, "cl.conversation_id", ids);
        query.push(" ORDER BY l.name");
        query
            .build_query_as()
            .persistent(true)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn inbox_counts(&self, org_id: Uuid, user_id: Uuid) -> StoreResult<InboxCounts> {
        let rows: Vec<(Option<Uuid>, i64, i64)> = sqlx::query_as(
            "SELECT assignee_id, CAST(SUM(open_count) AS BIGINT), CAST(SUM(unread_count) AS BIGINT) \
             FROM conversation_counts WHERE organization_id = $1 GROUP BY assignee_id",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        let mut counts = InboxCounts::default();
        for (assignee, open, unread) in rows {
            counts.open += open;
            counts.unread += unread;
            match assignee {
                None => counts.unassigned += open,
                Some(id) if id == user_id => counts.mine += open,
                Some(_) => {}
            }
        }
        Ok(counts)
    }

    async fn update_conversation(
        &self,
        org_id: Uuid,
        id: Uuid,
        update: &ConversationUpdate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConversationRecord>> {
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query(
            "UPDATE conversations SET status = COALESCE($3, status), \
             assignee_id = CASE WHEN $4 THEN $5 ELSE assignee_id END, updated_at = $6 \
             WHERE organization_id = $1 AND id = $2",
        )
        .bind(org_id)
        .bind(id)
        .bind(update.status.map(|s| s.as_db()))
        .bind(update.assignee_id.is_some())
        .bind(update.assignee_id.flatten())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        let record = conversation_record(&mut tx, org_id, id).await?;
        let mut events = LiveEvents::new();
        conversation_updated(&mut events, org_id, id);
        let written = insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(record)
    }

    async fn mark_read(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ConversationRecord>> {
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query(
            "UPDATE conversations SET unread_count = 0, updated_at = $3 \
             WHERE organization_id = $1 AND id = $2 AND unread_count > 0",
        )
        .bind(org_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let record = conversation_record(&mut tx, org_id, id).await?;
        let mut events = LiveEvents::new();
        if updated.rows_affected() > 0 {
            conversation_updated(&mut events, org_id, id);
        }
        let written = insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(record)
    }

    async fn messages(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        before: Option<&crate::domain::TimeCursor>,
        limit: i64,
    ) -> StoreResult<Vec<MessageRecord>> {
        let mut query = sqlx::QueryBuilder::<Db>::new(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m LEFT JOIN users u ON u.id = m.sender_user_id WHERE m.conversation_id = "
        ));
        query
            .push_bind(conversation_id)
            .push(" AND m.organization_id = ")
            .push_bind(org_id);
        push_history_page(&mut query, "m", before, limit);
        query
            .build_query_as()
            .persistent(true)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn labels(&self, org_id: Uuid) -> StoreResult<Vec<Label>> {
        sqlx::query_as(
            "SELECT id, organization_id, name, color, created_at FROM labels \
             WHERE organization_id = $1 ORDER BY name",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn insert_label(&self, label: &Label) -> StoreResult<Label> {
        sqlx::query(
            "INSERT INTO labels (id, organization_id, name, color, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(label.id)
        .bind(label.organization_id)
        .bind(&label.name)
        .bind(&label.color)
        .bind(label.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(label.clone())
    }

    async fn update_label(&self, label: &Label) -> StoreResult<Option<Label>> {
        sqlx::query_as(
            "UPDATE labels SET name = $3, color = $4 WHERE organization_id = $1 AND id = $2 \
             RETURNING id, organization_id, name, color, created_at",
        )
        .bind(label.organization_id)
        .bind(label.id)
        .bind(&label.name)
        .bind(&label.color)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn delete_label(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM labels WHERE organization_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected() == 1)
    }

    async fn set_conversation_labels(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        label_ids: &[Uuid],
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = begin_write(&self.pool).await?;
        let touched =
            sqlx::query("UPDATE conversations SET updated_at = $3 WHERE organization_id = $1 AND id = $2")
                .bind(org_id)
                .bind(conversation_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        if touched.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM conversation_labels WHERE organization_id = $1 AND conversation_id = $2")
            .bind(org_id)
            .bind(conversation_id)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if !label_ids.is_empty() {
            // Only labels of this organization: another org's id is silently not linked (the
            // use case has already refused it). The conversation's row is locked (above), so its
            // activity cannot change before this commits.
            let mut insert = sqlx::QueryBuilder::<Db>::new(
                "INSERT INTO conversation_labels (organization_id, conversation_id, label_id, last_message_at) \
                 SELECT l.organization_id, c.id, l.id, c.last_message_at FROM labels l \
                 JOIN conversations c ON c.id = ",
            );
            insert
                .push_bind(conversation_id)
                .push(" WHERE l.organization_id = ")
                .push_bind(org_id)
                .push(" AND l.id IN (");
            let mut list = insert.separated(", ");
            for id in label_ids {
                list.push_bind(*id);
            }
            insert.push(")");
            insert
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        let mut events = LiveEvents::new();
        conversation_updated(&mut events, org_id, conversation_id);
        let written = insert_live_events(&mut tx, &events, now).await?;
        tx.commit().await.map_err(db_error)?;
        written.announce(&self.events);
        Ok(true)
    }

    async fn notes(
        &self,
        org_id: Uuid,
        conversation_id: Uuid,
        before: Option<&crate::domain::TimeCursor>,
        limit: i64,
    ) -> StoreResult<Vec<Note>> {
        let mut query = sqlx::QueryBuilder::<Db>::new(concat!(
            "SELECT ",
            note_columns!(),
            " FROM notes n LEFT JOIN users u ON u.id = n.author_id WHERE n.conversation_id = "
        ));
        query
            .push_bind(conversation_id)
            .push(" AND n.organization_id = ")
            .push_bind(org_id);
        push_history_page(&mut query, "n", before, limit);
        query
            .build_query_as()
            .persistent(true)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)
    }

    async fn note(&self, org_id: Uuid, id: Uuid) -> StoreResult<Option<Note>> {
        sqlx::query_as(concat!(
            "SELECT ",
            note_columns!(),
            " FROM notes n LEFT JOIN users u ON u.id = n.author_id WHERE n.organization_id = $1 AND n.id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)
    }

    async fn insert_note(&self, note: &Note) -> StoreResult<Note> {
        // Inserted only if the conversation is in the organization.
        let inserted = sqlx::query(
            "INSERT INTO notes (id, organization_id, conversation_id, author_id, body, created_at) \
             SELECT $1, organization_id, id, $4, $5, $6 FROM conversations WHERE organization_id = $2 AND id = $3",
        )
        .bind(note.id)
        .bind(note.organization_id)
        .bind(note.conversation_id)
        .bind(note.author_id)
        .bind(&note.body)
        .bind(note.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(note.clone())
    }

    async fn delete_note(&self, org_id: Uuid, id: Uuid) -> StoreResult<bool> {
        let deleted = sqlx::query("DELETE FROM notes WHERE organization_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(deleted.rows_affected() == 1)
    }
}
