//! The agents' inbox: `/api/v1/orgs/{org_id}/conversations` (list, detail, change, read,
//! labels), their message history and their internal notes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use snorq_connectors::Platform;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{OrgScope, PathIds, ValidJson, ValidQuery};
use crate::app::inbox::{self, Change, ConversationView, ListQuery};
use crate::app::{AppResult, notes};
use crate::domain::{
    ConversationStatus, Invalid, MessageContent, MessageDirection, SendStatus, StoredContent,
};
use crate::store::{InboxCounts, Label, MessageRecord, Note};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, update))
        .routes(routes!(mark_read))
        .routes(routes!(set_labels))
        .routes(routes!(messages))
        .routes(routes!(notes_list, note_create))
        .routes(routes!(note_delete))
}

/// A label as it appears on a conversation and in `/labels`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LabelBody {
    id: Uuid,
    name: String,
    /// `#rrggbb`
    color: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Label> for LabelBody {
    fn from(l: Label) -> Self {
        LabelBody {
            id: l.id,
            name: l.name,
            color: l.color,
            created_at: l.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationBody {
    id: Uuid,
    connection_id: Uuid,
    #[schema(value_type = String, example = "whatsapp")]
    platform: Platform,
    status: ConversationStatus,
    contact: ContactBody,
    assignee_id: Option<Uuid>,
    labels: Vec<LabelBody>,
    /// The newest message's text (or a description of it).
    preview: Option<String>,
    unread_count: i32,
    last_message_at: DateTime<Utc>,
    last_inbound_at: Option<DateTime<Utc>>,
    /// A free-form reply is possible now: the reply window is open and the connection active.
    can_reply: bool,
    /// When the reply window closes (null: the customer never wrote).
    window_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactBody {
    /// The customer's id on the platform.
    external_id: String,
    name: Option<String>,
    username: Option<String>,
}

impl From<ConversationView> for ConversationBody {
    fn from(v: ConversationView) -> Self {
        let c = v.conversation;
        ConversationBody {
            id: c.id,
            connection_id: c.platform_connection_id,
            platform: c.platform.0,
            status: c.status,
            contact: ContactBody {
                external_id: c.contact_external_id,
                name: c.contact_name,
                username: c.contact_username,
            },
            assignee_id: c.assignee_id,
            labels: v.labels.into_iter().map(LabelBody::from).collect(),
            preview: c.preview,
            unread_count: c.unread_count,
            last_message_at: c.last_message_at,
            last_inbound_at: c.last_inbound_at,
            can_reply: v.can_reply,
            window_expires_at: v.window_expires_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Open conversations of the organization, kept by the database as they change.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountsBody {
    open: i64,
    /// Open and assigned to the caller.
    mine: i64,
    unassigned: i64,
    /// Open with unread messages.
    unread: i64,
}

impl From<InboxCounts> for CountsBody {
    fn from(c: InboxCounts) -> Self {
        CountsBody {
            open: c.open,
            mine: c.mine,
            unassigned: c.unassigned,
            unread: c.unread,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationPageBody {
    items: Vec<ConversationBody>,
    /// Pass as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
    counts: CountsBody,
}

/// Query of the conversation listing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// `open` (default), `closed`, `archived` or `all`.
    #[param(value_type = Option<super::schema::ConversationStatusFilter>)]
    status: Option<String>,
    /// `whatsapp`, `facebook` or `tiktok`.
    #[param(value_type = Option<super::schema::PlatformName>)]
    platform: Option<String>,
    #[param(value_type = Option<Uuid>)]
    connection_id: Option<String>,
    /// A label id.
    #[param(value_type = Option<Uuid>)]
    label: Option<String>,
    /// `me`, `unassigned` or a user id.
    #[param(
        pattern = r"^(me|unassigned|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    assignee: Option<String>,
    /// `true`: only conversations with unread messages.
    #[param(value_type = Option<super::schema::BoolText>)]
    unread: Option<String>,
    /// Words that must all start words of the contact's name or of one message: up to 8
    /// words of letters and digits, 200 characters at most.
    #[param(max_length = 200)]
    q: Option<String>,
    /// From the previous page's `next_cursor`. A walk keeps every conversation's position as
    /// of its first page: each conversation appears once, however activity changes meanwhile.
    cursor: Option<String>,
    /// 1 to 100, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

fn uuid_param(field: &'static str, value: Option<&str>) -> AppResult<Option<Uuid>> {
    value
        .map(|v| Uuid::parse_str(v).map_err(|_| Invalid::new(field, "must be a UUID").into()))
        .transpose()
}

fn limit_param(value: Option<&str>) -> AppResult<Option<i64>> {
    value
        .map(|l| {
            l.parse::<i64>()
                .map_err(|_| Invalid::new("limit", "must be a number").into())
        })
        .transpose()
}

fn bool_param(field: &'static str, value: Option<&str>) -> AppResult<bool> {
    match value {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(Invalid::new(field, "must be true or false").into()),
    }
}

impl ListParams {
    fn into_query(self) -> AppResult<ListQuery> {
        Ok(ListQuery {
            status: self.status,
            platform: self
                .platform
                .as_deref()
                .map(|p| {
                    p.parse::<Platform>()
                        .map_err(|_| Invalid::new("platform", "must be whatsapp, facebook or tiktok"))
                })
                .transpose()?,
            connection_id: uuid_param("connection_id", self.connection_id.as_deref())?,
            label: uuid_param("label", self.label.as_deref())?,
            assignee: self.assignee,
            unread: bool_param("unread", self.unread.as_deref())?,
            q: self.q,
            cursor: self.cursor,
            limit: limit_param(self.limit.as_deref())?,
        })
    }
}

/// Conversations, newest activity first, with the inbox counts.
#[utoipa::path(get, path = "/orgs/{org_id}/conversations", tag = "conversations",
    params(("org_id" = Uuid, Path), ListParams),
    responses((status = 200, body = ConversationPageBody), (status = 422, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidQuery(params): ValidQuery<ListParams>,
) -> ApiResult<Json<ConversationPageBody>> {
    let page = inbox::list(&state.app, &access, &params.into_query()?).await?;
    Ok(Json(ConversationPageBody {
        items: page
            .conversations
            .into_iter()
            .map(ConversationBody::from)
            .collect(),
        next_cursor: page.next_cursor,
        counts: page.counts.into(),
    }))
}

#[utoipa::path(get, path = "/orgs/{org_id}/conversations/{conversation_id}", tag = "conversations",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path)),
    responses((status = 200, body = ConversationBody), (status = 404, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
) -> ApiResult<Json<ConversationBody>> {
    let id = ids.get("conversation_id")?;
    Ok(Json(inbox::get(&state.app, &access, id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationChange {
    /// `open`, `closed` or `archived`.
    #[schema(value_type = Option<super::schema::ConversationStatusName>)]
    status: Option<String>,
    /// A member's user id, or null to unassign.
    #[serde(default, deserialize_with = "super::extract::present")]
    #[schema(value_type = Option<Uuid>)]
    assignee_id: Option<Option<Uuid>>,
}

/// Changes the status and/or the assignee (who must be a member).
#[utoipa::path(patch, path = "/orgs/{org_id}/conversations/{conversation_id}", tag = "conversations",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path)),
    request_body = ConversationChange,
    responses((status = 200, body = ConversationBody), (status = 404, body = ProblemSchema), (status = 422, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
    ValidJson(body): ValidJson<ConversationChange>,
) -> ApiResult<Json<ConversationBody>> {
    let id = ids.get("conversation_id")?;
    let change = Change {
        status: body.status,
        assignee_id: body.assignee_id,
    };
    Ok(Json(
        inbox::update(&state.app, &access, id, &change).await?.into(),
    ))
}

/// Sets the unread count to zero.
#[utoipa::path(post, path = "/orgs/{org_id}/conversations/{conversation_id}/read", tag = "conversations",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path)),
    responses((status = 200, body = ConversationBody), (status = 404, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn mark_read(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
) -> ApiResult<Json<ConversationBody>> {
    let id = ids.get("conversation_id")?;
    Ok(Json(inbox::mark_read(&state.app, &access, id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelSet {
    /// The conversation's labels from now on (ids of this organization's labels, 50 at most).
    #[schema(max_items = 50)]
    label_ids: Vec<Uuid>,
}

/// Replaces the conversation's labels.
#[utoipa::path(put, path = "/orgs/{org_id}/conversations/{conversation_id}/labels", tag = "conversations",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path)),
    request_body = LabelSet,
    responses((status = 200, body = ConversationBody), (status = 404, body = ProblemSchema), (status = 422, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn set_labels(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
    ValidJson(body): ValidJson<LabelSet>,
) -> ApiResult<Json<ConversationBody>> {
    let id = ids.get("conversation_id")?;
    Ok(Json(
        inbox::set_labels(&state.app, &access, id, &body.label_ids)
            .await?
            .into(),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBody {
    id: Uuid,
    conversation_id: Uuid,
    direction: MessageDirection,
    /// What it carries: one shape for customers' messages and replies alike.
    content: MessageContent,
    /// Further attachments that came in the same platform message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<MessageContent>,
    /// The platform id of the message this one quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply_to: Option<String>,
    /// A reply is `unconfirmed` while the platform's word on an unknown outcome is awaited
    /// (docs/api.md, "Delivery guarantees").
    status: SendStatus,
    /// The platform's id once known.
    external_id: Option<String>,
    /// Why a send failed (`window_closed`, `auth`, `discarded`, ...).
    failure_reason: Option<String>,
    /// The platform's error code and message.
    error_code: Option<String>,
    error_message: Option<String>,
    attempts: i32,
    /// The agent who sent it (outbound replies).
    sender: Option<SenderBody>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SenderBody {
    user_id: Uuid,
    name: Option<String>,
}

impl From<MessageRecord> for MessageBody {
    fn from(m: MessageRecord) -> Self {
        let stored = StoredContent::read(&m.content_type, &m.content.0);
        MessageBody {
            id: m.id,
            conversation_id: m.conversation_id,
            direction: m.direction,
            content: stored.content,
            attachments: stored.attachments,
            reply_to: stored.reply_to,
            status: SendStatus::of(m.status, m.unconfirmed_until),
            external_id: m.external_id,
            failure_reason: m.failure_reason,
            error_code: m.error_code,
            error_message: m.error_message,
            attempts: m.attempts,
            sender: m.sender_user_id.map(|user_id| SenderBody {
                user_id,
                name: m.sender_name,
            }),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePageBody {
    items: Vec<MessageBody>,
    /// Pass as `before` for older messages; null on the oldest page.
    next_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// From the previous page's `next_cursor`.
    before: Option<String>,
    /// 1 to 100, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

/// The conversation's messages, newest first.
#[utoipa::path(get, path = "/orgs/{org_id}/conversations/{conversation_id}/messages", tag = "messages",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path), HistoryParams),
    responses((status = 200, body = MessagePageBody), (status = 404, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn messages(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
    ValidQuery(params): ValidQuery<HistoryParams>,
) -> ApiResult<Json<MessagePageBody>> {
    let id = ids.get("conversation_id")?;
    let limit = limit_param(params.limit.as_deref())?;
    let page = inbox::messages(&state.app, &access, id, params.before.as_deref(), limit).await?;
    Ok(Json(MessagePageBody {
        items: page.items.into_iter().map(MessageBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoteBody {
    id: Uuid,
    conversation_id: Uuid,
    author_id: Option<Uuid>,
    author_name: Option<String>,
    text: String,
    created_at: DateTime<Utc>,
}

impl From<Note> for NoteBody {
    fn from(n: Note) -> Self {
        NoteBody {
            id: n.id,
            conversation_id: n.conversation_id,
            author_id: n.author_id,
            author_name: n.author_name,
            text: n.body,
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotePageBody {
    items: Vec<NoteBody>,
    next_cursor: Option<String>,
}

/// Internal notes, newest first (never sent to the customer).
#[utoipa::path(get, path = "/orgs/{org_id}/conversations/{conversation_id}/notes", tag = "notes",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path), HistoryParams),
    responses((status = 200, body = NotePageBody), (status = 404, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn notes_list(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
    ValidQuery(params): ValidQuery<HistoryParams>,
) -> ApiResult<Json<NotePageBody>> {
    let id = ids.get("conversation_id")?;
    let limit = limit_param(params.limit.as_deref())?;
    let page = notes::list(&state.app, &access, id, params.before.as_deref(), limit).await?;
    Ok(Json(NotePageBody {
        items: page.items.into_iter().map(NoteBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// 1 to 10,000 characters (not only white space).
    #[schema(pattern = r"^[\s\S]*\S[\s\S]*$", max_length = 10000)]
    text: String,
}

#[utoipa::path(post, path = "/orgs/{org_id}/conversations/{conversation_id}/notes", tag = "notes",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path)),
    request_body = NewNote,
    responses((status = 201, body = NoteBody), (status = 404, body = ProblemSchema), (status = 422, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn note_create(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
    ValidJson(body): ValidJson<NewNote>,
) -> ApiResult<(StatusCode, Json<NoteBody>)> {
    let id = ids.get("conversation_id")?;
    let note = notes::create(&state.app, &access, id, &body.text).await?;
    Ok((StatusCode::CREATED, Json(note.into())))
}

/// Deletes a note: its author, or an admin.
#[utoipa::path(delete, path = "/orgs/{org_id}/conversations/{conversation_id}/notes/{note_id}", tag = "notes",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path), ("note_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema)),
    security(("bearer" = [])))]
async fn note_delete(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathIds(ids): PathIds,
) -> ApiResult<StatusCode> {
    let conversation = ids.get("conversation_id")?;
    let note = ids.get("note_id")?;
    notes::delete(&state.app, &access, conversation, note).await?;
    Ok(StatusCode::NO_CONTENT)
}
