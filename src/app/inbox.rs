//! The agents' inbox: list and filter conversations, read one with its history, assign, close,
//! mark read, label. Every function takes the caller's [`OrgAccess`]; ids of other organizations
//! are `NotFound`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use snorq_connectors::Platform;
use uuid::Uuid;

use crate::domain::{self, ConnectionStatus, ConversationStatus, Invalid, SnapshotCursor, TimeCursor};
use crate::store::{
    AssigneeFilter, ConversationFilter, ConversationRecord, ConversationUpdate, InboxCounts, Label,
    MessageRecord,
};

use super::orgs::OrgAccess;
use super::replies::window_expires_at;
use super::{App, AppError, AppResult};

pub const MAX_PAGE: i64 = 100;
pub const DEFAULT_PAGE: i64 = 50;
/// Longest `q`, and most words in it.
const MAX_QUERY_CHARS: usize = 200;
const MAX_QUERY_WORDS: usize = 8;

/// A conversation with what an agent needs to act on it.
#[derive(Debug, Clone)]
pub struct ConversationView {
    pub conversation: ConversationRecord,
    pub labels: Vec<Label>,
    /// When a free-form reply stops being allowed (`None`: the customer never wrote).
    pub window_expires_at: Option<DateTime<Utc>>,
    /// The window is open and the connection is active.
    pub can_reply: bool,
}

/// The listing's query, as the HTTP layer parsed it (raw values validated here).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// `open` (default), `closed`, `archived` or `all`.
    pub status: Option<String>,
    pub platform: Option<Platform>,
    pub connection_id: Option<Uuid>,
    pub label: Option<Uuid>,
    /// `me`, `unassigned` or a user id.
    pub assignee: Option<String>,
    pub unread: bool,
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ConversationList {
    pub conversations: Vec<ConversationView>,
    pub next_cursor: Option<String>,
    pub counts: InboxCounts,
}

pub fn page_limit(limit: Option<i64>) -> AppResult<i64> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Invalid::new("limit", format!("must be between 1 and {MAX_PAGE}")).into());
    }
    Ok(limit)
}

/// The words of a search, split as the index splits them (`domain::search`): letters and digits,
/// lower-cased; nothing of the query reaches any search syntax.
pub fn search_words(q: &str) -> AppResult<Vec<String>> {
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(Invalid::new("q", format!("must be at most {MAX_QUERY_CHARS} characters")).into());
    }
    let words: Vec<String> = crate::domain::search::words(q).collect();
    if words.is_empty() {
        return Err(Invalid::new("q", "must contain a letter or a digit").into());
    }
    if words.len() > MAX_QUERY_WORDS {
        return Err(Invalid::new("q", format!("must have at most {MAX_QUERY_WORDS} words")).into());
    }
    Ok(words)
}

fn status_filter(status: Option<&str>) -> AppResult<Option<ConversationStatus>> {
    match status.unwrap_or("open") {
        "all" => Ok(None),
        other => ConversationStatus::from_db(&other.to_uppercase())
            .map(Some)
            .ok_or_else(|| Invalid::new("status", "must be open, closed, archived or all").into()),
    }
}

fn assignee_filter(access: &OrgAccess, assignee: Option<&str>) -> AppResult<Option<AssigneeFilter>> {
    Ok(match assignee {
        None => None,
        Some("me") => Some(AssigneeFilter::User(access.user_id)),
        Some("unassigned") => Some(AssigneeFilter::Unassigned),
        Some(id) => Some(AssigneeFilter::User(Uuid::parse_str(id).map_err(|_| {
            Invalid::new("assignee", "must be me, unassigned or a user id")
        })?)),
    })
}

pub async fn list(app: &App, access: &OrgAccess, query: &ListQuery) -> AppResult<ConversationList> {
    let limit = page_limit(query.limit)?;
    let filter = ConversationFilter {
        organization_id: access.org_id(),
        status: status_filter(query.status.as_deref())?,
        platform: query.platform,
        connection_id: query.connection_id,
        label_id: query.label,
        assignee: assignee_filter(access, query.assignee.as_deref())?,
        unread: query.unread,
        search: query
            .q
            .as_deref()
            .map(search_words)
            .transpose()?
            .unwrap_or_default(),
        search_walk_above: i64::from(app.settings.search_walk_threshold),
    };
    let cursor = query.cursor.as_deref().map(SnapshotCursor::decode).transpose()?;
    let (page, counts) = tokio::try_join!(
        app.store.conversations(&filter, cursor.as_ref(), limit + 1),
        app.store.inbox_counts(access.org_id(), access.user_id),
    )?;
    let mut conversations = page.conversations;
    let next_cursor = if conversations.len() as i64 > limit {
        conversations.truncate(limit as usize);
        conversations.last().map(|last| {
            SnapshotCursor {
                as_of: page.as_of,
                position: last.position(),
            }
            .encode()
        })
    } else {
        None
    };
    Ok(ConversationList {
        conversations: views(app, access.org_id(), conversations).await?,
        next_cursor,
        counts,
    })
}

async fn views(
    app: &App,
    org_id: Uuid,
    conversations: Vec<ConversationRecord>,
) -> AppResult<Vec<ConversationView>> {
    let ids: Vec<Uuid> = conversations.iter().map(|c| c.id).collect();
    let mut labels: HashMap<Uuid, Vec<Label>> = HashMap::new();
    for row in app.store.conversation_labels(org_id, &ids).await? {
        labels.entry(row.conversation_id).or_default().push(row.label);
    }
    let now = domain::now();
    Ok(conversations
        .into_iter()
        .map(|c| {
            let labels = labels.remove(&c.id).unwrap_or_default();
            view(c, labels, now)
        })
        .collect())
}

fn view(conversation: ConversationRecord, labels: Vec<Label>, now: DateTime<Utc>) -> ConversationView {
    let window_expires_at = window_expires_at(
        conversation.platform.0,
        conversation.last_inbound_at,
        &conversation.connection_settings,
    );
    let can_reply = conversation.connection_status == ConnectionStatus::Active
        && window_expires_at.is_some_and(|at| at > now);
    ConversationView {
        conversation,
        labels,
        window_expires_at,
        can_reply,
    }
}

async fn one_view(
    app: &App,
    org_id: Uuid,
    conversation: Option<ConversationRecord>,
) -> AppResult<ConversationView> {
    let conversation = conversation.ok_or(AppError::NotFound)?;
    views(app, org_id, vec![conversation])
        .await?
        .pop()
        .ok_or(AppError::NotFound)
}

pub async fn get(app: &App, access: &OrgAccess, id: Uuid) -> AppResult<ConversationView> {
    let conversation = app.store.conversation(access.org_id(), id).await?;
    one_view(app, access.org_id(), conversation).await
}

/// A change asked for by an agent: status and/or assignee (`Some(None)` unassigns).
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub status: Option<String>,
    pub assignee_id: Option<Option<Uuid>>,
}

pub async fn update(app: &App, access: &OrgAccess, id: Uuid, change: &Change) -> AppResult<ConversationView> {
    let status = match change.status.as_deref() {
        None => None,
        Some(s) => Some(
            ConversationStatus::from_db(&s.to_uppercase())
                .ok_or_else(|| Invalid::new("status", "must be open, closed or archived"))?,
        ),
    };
    if let Some(Some(user)) = change.assignee_id
        && app.store.member(access.org_id(), user).await?.is_none()
    {
        return Err(Invalid::new("assignee_id", "is not a member of this organization").into());
    }
    let update = ConversationUpdate {
        status,
        assignee_id: change.assignee_id,
    };
    let conversation = app
        .store
        .update_conversation(access.org_id(), id, &update, domain::now())
        .await?;
    one_view(app, access.org_id(), conversation).await
}

pub async fn mark_read(app: &App, access: &OrgAccess, id: Uuid) -> AppResult<ConversationView> {
    let conversation = app.store.mark_read(access.org_id(), id, domain::now()).await?;
    one_view(app, access.org_id(), conversation).await
}

/// Replaces the conversation's labels; every id must be a label of the organization.
pub async fn set_labels(
    app: &App,
    access: &OrgAccess,
    id: Uuid,
    label_ids: &[Uuid],
) -> AppResult<ConversationView> {
    const MAX_LABELS: usize = 50;
    if label_ids.len() > MAX_LABELS {
        return Err(Invalid::new("label_ids", format!("at most {MAX_LABELS} labels")).into());
    }
    let known: Vec<Uuid> = app
        .store
        .labels(access.org_id())
        .await?
        .into_iter()
        .map(|l| l.id)
        .collect();
    if let Some(unknown) = label_ids.iter().find(|id| !known.contains(id)) {
        return Err(Invalid::new(
            "label_ids",
            format!("{unknown} is not a label of this organization"),
        )
        .into());
    }
    let mut ids = label_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    if !app
        .store
        .set_conversation_labels(access.org_id(), id, &ids, domain::now())
        .await?
    {
        return Err(AppError::NotFound);
    }
    get(app, access, id).await
}

/// A page of a conversation's history (messages or notes), newest first.
#[derive(Debug, Clone)]
pub struct HistoryPage<T> {
    pub items: Vec<T>,
    /// The `before` of the next (older) page.
    pub next_cursor: Option<String>,
}

/// What reading a page of history needs, checked: the limit, the position to read before, and
/// that the conversation is in the caller's organization (404 rather than an empty page).
pub(super) async fn history_request(
    app: &App,
    access: &OrgAccess,
    conversation_id: Uuid,
    before: Option<&str>,
    limit: Option<i64>,
) -> AppResult<(i64, Option<TimeCursor>)> {
    let limit = page_limit(limit)?;
    let before = before
        .map(|b| {
            TimeCursor::decode(b).map_err(|_| Invalid::new("before", "is not a cursor this API returned"))
        })
        .transpose()?;
    if app
        .store
        .conversation(access.org_id(), conversation_id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound);
    }
    Ok((limit, before))
}

/// Cuts the one extra row read to learn whether another page follows.
pub(super) fn history_page<T>(
    mut items: Vec<T>,
    limit: i64,
    position: impl Fn(&T) -> TimeCursor,
) -> HistoryPage<T> {
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|last| position(last).encode())
    } else {
        None
    };
    HistoryPage { items, next_cursor }
}

/// The conversation's messages, newest first; `before` is the cursor of the previous page.
pub async fn messages(
    app: &App,
    access: &OrgAccess,
    conversation_id: Uuid,
    before: Option<&str>,
    limit: Option<i64>,
) -> AppResult<HistoryPage<MessageRecord>> {
    let (limit, before) = history_request(app, access, conversation_id, before, limit).await?;
    let messages = app
        .store
        .messages(access.org_id(), conversation_id, before.as_ref(), limit + 1)
        .await?;
    Ok(history_page(messages, limit, MessageRecord::position))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_keep_only_letters_and_digits() {
        assert_eq!(
            search_words("Olá, 'mundo'* OR 1=1").unwrap(),
            ["olá", "mundo", "or", "1", "1"]
        );
        assert_eq!(search_words("\"a\" & b:*").unwrap(), ["a", "b"]);
        assert!(search_words(" -*- ").is_err());
        assert!(search_words(&"a ".repeat(9)).is_err());
        assert!(search_words(&"x".repeat(201)).is_err());
    }

    #[test]
    fn status_filter_defaults_to_open() {
        assert_eq!(status_filter(None).unwrap(), Some(ConversationStatus::Open));
        assert_eq!(status_filter(Some("all")).unwrap(), None);
        assert_eq!(
            status_filter(Some("closed")).unwrap(),
            Some(ConversationStatus::Closed)
        );
        assert!(status_filter(Some("OPEN; DROP")).is_err());
    }
}
