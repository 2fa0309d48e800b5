//! Replies and the sends API: `POST .../conversations/{id}/messages` (202, queued) and
//! `/api/v1/orgs/{org_id}/sends` (list, detail, retry, discard, bulk retry).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use snorq_connectors::Platform;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::{OrgScope, PathId, ValidJson, ValidQuery};
use crate::app::orgs::OrgAccess;
use crate::app::replies::{self, ReplyRequest};
use crate::app::sends;
use crate::app::{AppError, AppResult};
use crate::domain::{Invalid, MessageContent, Role, SendStatus, StoredContent};
use crate::store::{REASON_DISCARDED, SendAttempt, SendFilter, SendRecord, SendStatusFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reply))
        .routes(routes!(list))
        .routes(routes!(retry_matching))
        .routes(routes!(show))
        .routes(routes!(retry))
        .routes(routes!(discard))
}

/// An outbound message and where its delivery stands.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SendBody {
    id: Uuid,
    organization_id: Uuid,
    conversation_id: Uuid,
    connection_id: Uuid,
    #[schema(value_type = String, example = "whatsapp")]
    platform: Platform,
    direction: &'static str,
    /// What it carries: the same shape as a message's `content`, and a reply's.
    content: MessageContent,
    /// `unconfirmed`: the platform was called and may have accepted it; its status or echo is
    /// awaited (see `send_confirm_window_secs`), then it becomes sent or failed `outcome_unknown`.
    status: SendStatus,
    discarded: bool,
    /// The platform's id once sent.
    external_id: Option<String>,
    /// Why it failed: `window_closed`, `auth`, `rate_limited`, `transient`,
    /// `recipient_unavailable`, `invalid_request`, `permanent`, `connection_unavailable`,
    /// `outcome_unknown` (the platform may have accepted it; retrying needs `confirm=true`),
    /// `stalled` (its job never ran), ...
    failure_reason: Option<String>,
    /// The platform's error code and message (of the last attempt).
    error_code: Option<String>,
    error_message: Option<String>,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_attempt_at: Option<DateTime<Utc>>,
    sender_user_id: Option<Uuid>,
    idempotency_key: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<SendRecord> for SendBody {
    fn from(s: SendRecord) -> Self {
        SendBody {
            discarded: s.failure_reason.as_deref() == Some(REASON_DISCARDED),
            id: s.id,
            organization_id: s.organization_id,
            conversation_id: s.conversation_id,
            connection_id: s.connection_id,
            platform: s.platform.0,
            direction: "outbound",
            content: StoredContent::read(&s.content_type, &s.content.0).content,
            status: s.send_status(),
            external_id: s.external_id,
            failure_reason: s.failure_reason,
            error_code: s.error_code,
            error_message: s.error_message,
            attempts: s.attempts,
            next_attempt_at: s.next_attempt_at,
            last_attempt_at: s.last_attempt_at,
            sender_user_id: s.sender_user_id,
            idempotency_key: s.idempotency_key,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    /// Shorthand for `"content": {"kind": "text", "text": ...}`. Limits depend on the platform:
    /// WhatsApp 4,096 characters, Messenger 2,000, TikTok 6,000.
    #[schema(
        pattern = r"^[\s\S]*\S[\s\S]*$",
        max_length = 6000,
        example = "Your order has shipped"
    )]
    text: Option<String>,
    /// What to send (instead of `text`): `text`, or `image`, `video`, `audio` or `file` by a
    /// public http(s) `url`, with an optional `caption` (and `filename` for a file). WhatsApp
    /// captions hold 1,024 characters; TikTok takes text only.
    content: Option<MessageContent>,
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Replies in the conversation: checked (reply window, connection, platform limits), stored
/// as `pending` and queued; 202. An `Idempotency-Key` header makes retries of this request safe.
#[utoipa::path(post, path = "/orgs/{org_id}/conversations/{conversation_id}/messages", tag = "messages",
    params(("org_id" = Uuid, Path), ("conversation_id" = Uuid, Path),
           ("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$",
            description = "1 to 255 visible ASCII characters")),
    request_body = ReplyBody,
    responses((status = 202, body = SendBody), (status = 404, body = ProblemSchema),
              (status = 409, body = ProblemSchema, description = "`window_closed`, `connection_unavailable`, `conflict`"),
              (status = 422, body = ProblemSchema)), security(("bearer" = [])))]
async fn reply(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(conversation_id): PathId,
    headers: HeaderMap,
    ValidJson(body): ValidJson<ReplyBody>,
) -> ApiResult<Response> {
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| AppError::from(Invalid::new("idempotency_key", "must be visible ASCII")))?
                .to_owned(),
        ),
    };
    let shorthand = body.text.is_some();
    let content = match (body.text, body.content) {
        (Some(text), None) => MessageContent::text(text),
        (None, Some(content)) => content,
        (Some(_), Some(_)) => {
            return Err(AppError::from(Invalid::new("content", "give `text` or `content`, not both")).into());
        }
        (None, None) => {
            return Err(AppError::from(Invalid::new("content", "give the text or content to send")).into());
        }
    };
    let request = ReplyRequest {
        content,
        idempotency_key,
    };
    let reply = match replies::reply(&state.app, &access, conversation_id, request).await {
        // Errors name the field the client sent.
        Err(AppError::Validation(invalid)) if shorthand && invalid.field == "content.text" => {
            return Err(AppError::Validation(Invalid::new("text", invalid.message)).into());
        }
        other => other?,
    };
    let mut response = (StatusCode::ACCEPTED, axum::Json(SendBody::from(reply.message))).into_response();
    if !reply.created {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The filter of the list and of the bulk retry, as query parameters or a JSON body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
struct FilterParams {
    #[schema(value_type = Option<super::schema::SendStatusName>)]
    #[param(value_type = Option<super::schema::SendStatusName>)]
    status: Option<String>,
    #[schema(value_type = Option<super::schema::PlatformName>)]
    #[param(value_type = Option<super::schema::PlatformName>)]
    platform: Option<String>,
    #[schema(value_type = Option<Uuid>)]
    #[param(value_type = Option<Uuid>)]
    connection_id: Option<String>,
    /// The platform's error code, e.g. `131047`.
    error_code: Option<String>,
    /// The failure's class, e.g. `window_closed`.
    reason: Option<String>,
    /// RFC 3339.
    #[schema(value_type = Option<DateTime<Utc>>)]
    #[param(value_type = Option<DateTime<Utc>>)]
    since: Option<String>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    #[param(value_type = Option<DateTime<Utc>>)]
    until: Option<String>,
}

impl FilterParams {
    fn into_filter(self, organization: Uuid) -> AppResult<SendFilter> {
        let status = self
            .status
            .as_deref()
            .map(|s| {
                SendStatusFilter::parse(s).ok_or_else(|| {
                    Invalid::new(
                        "status",
                        "must be pending, unconfirmed, sent, delivered, read, failed or discarded",
                    )
                })
            })
            .transpose()?;
        let platform = self
            .platform
            .as_deref()
            .map(|p| {
                p.parse::<Platform>()
                    .map_err(|_| Invalid::new("platform", "must be whatsapp, facebook or tiktok"))
            })
            .transpose()?;
        let connection_id = self
            .connection_id
            .as_deref()
            .map(|c| Uuid::parse_str(c).map_err(|_| Invalid::new("connection_id", "must be a UUID")))
            .transpose()?;
        let time = |field: &'static str, value: Option<String>| {
            value
                .map(|v| {
                    DateTime::parse_from_rfc3339(&v)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|_| {
                            Invalid::new(field, "must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
                        })
                })
                .transpose()
        };
        Ok(SendFilter {
            organizations: vec![organization],
            status,
            platform,
            connection_id,
            error_code: self.error_code.filter(|c| !c.is_empty()),
            reason: self.reason.filter(|r| !r.is_empty()),
            since: time("since", self.since)?,
            until: time("until", self.until)?,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    #[serde(flatten)]
    filter: FilterParams,
    cursor: Option<String>,
    /// 1 to 100, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct SendPageBody {
    items: Vec<SendBody>,
    next_cursor: Option<String>,
}

/// Outbound messages by delivery state, newest first.
#[utoipa::path(get, path = "/orgs/{org_id}/sends", tag = "sends", params(("org_id" = Uuid, Path), ListParams),
    responses((status = 200, body = SendPageBody), (status = 422, body = ProblemSchema)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidQuery(params): ValidQuery<ListParams>,
) -> ApiResult<axum::Json<SendPageBody>> {
    let limit = params
        .limit
        .as_deref()
        .map(|l| {
            l.parse::<i64>()
                .map_err(|_| Invalid::new("limit", "must be a number"))
        })
        .transpose()
        .map_err(AppError::from)?;
    let filter = params.filter.into_filter(access.org_id())?;
    let page = sends::list(&state.app, &filter, params.cursor.as_deref(), limit).await?;
    Ok(axum::Json(SendPageBody {
        items: page.sends.into_iter().map(SendBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct AttemptBody {
    attempt: i32,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    outcome: String,
    http_status: Option<i32>,
    error_code: Option<String>,
    error_message: Option<String>,
    next_attempt_at: Option<DateTime<Utc>>,
}

impl From<SendAttempt> for AttemptBody {
    fn from(a: SendAttempt) -> Self {
        AttemptBody {
            attempt: a.attempt,
            started_at: a.started_at,
            finished_at: a.finished_at,
            outcome: a.outcome,
            http_status: a.http_status,
            error_code: a.error_code,
            error_message: a.error_message,
            next_attempt_at: a.next_attempt_at,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct SendDetailBody {
    #[serde(flatten)]
    send: SendBody,
    attempt_log: Vec<AttemptBody>,
}

/// A send with every platform call made for it.
#[utoipa::path(get, path = "/orgs/{org_id}/sends/{message_id}", tag = "sends", params(("org_id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, body = SendDetailBody), (status = 404, body = ProblemSchema)), security(("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
) -> ApiResult<axum::Json<SendDetailBody>> {
    let (send, attempts) = sends::get_with_attempts(&state.app, access.org_id(), id).await?;
    Ok(axum::Json(SendDetailBody {
        send: send.into(),
        attempt_log: attempts.into_iter().map(AttemptBody::from).collect(),
    }))
}

/// Whether the agent accepts that a send whose outcome is unknown may arrive twice.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ConfirmParams {
    /// Required (`true`) to retry a send whose outcome is unknown (`unconfirmed`, or failed
    /// `outcome_unknown`): the platform may already have delivered it. Without it such a retry
    /// answers 409 `confirmation_required`, and a bulk retry leaves those sends out.
    #[param(value_type = Option<bool>)]
    confirm: Option<String>,
}

impl ConfirmParams {
    fn confirmed(&self) -> AppResult<bool> {
        match self.confirm.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(Invalid::new("confirm", "must be true or false").into()),
        }
    }
}

/// Retries a failed send now (admins).
#[utoipa::path(post, path = "/orgs/{org_id}/sends/{message_id}/retry", tag = "sends",
    params(("org_id" = Uuid, Path), ("message_id" = Uuid, Path), ConfirmParams),
    responses((status = 202, body = SendBody), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema),
              (status = 409, body = ProblemSchema, description = "`conflict` (not failed), `confirmation_required` (its outcome is unknown: add `confirm=true`)"),
              (status = 422, body = ProblemSchema)), security(("bearer" = [])))]
async fn retry(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
    ValidQuery(params): ValidQuery<ConfirmParams>,
) -> ApiResult<(StatusCode, axum::Json<SendBody>)> {
    let send = sends::retry(&state.app, &access, id, params.confirmed()?).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(send.into())))
}

/// Stops a pending send or takes a failed one off the failed list (admins).
#[utoipa::path(post, path = "/orgs/{org_id}/sends/{message_id}/discard", tag = "sends", params(("org_id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, body = SendBody), (status = 403, body = ProblemSchema), (status = 404, body = ProblemSchema),
              (status = 409, body = ProblemSchema)), security(("bearer" = [])))]
async fn discard(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    PathId(id): PathId,
) -> ApiResult<axum::Json<SendBody>> {
    Ok(axum::Json(sends::discard(&state.app, &access, id).await?.into()))
}

#[derive(Serialize, utoipa::ToSchema)]
struct BulkRetryBody {
    retried: u64,
    /// More failed sends match than one request retries; call again.
    more: bool,
}

/// Retries every failed (not discarded) send matching the filter (admins), e.g. `{"reason": "auth"}`
/// after reconnecting.
#[utoipa::path(post, path = "/orgs/{org_id}/sends/retry", tag = "sends", params(("org_id" = Uuid, Path), ConfirmParams), request_body = FilterParams,
    responses((status = 202, body = BulkRetryBody), (status = 403, body = ProblemSchema), (status = 422, body = ProblemSchema)), security(("bearer" = [])))]
async fn retry_matching(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    ValidQuery(params): ValidQuery<ConfirmParams>,
    ValidJson(body): ValidJson<FilterParams>,
) -> ApiResult<(StatusCode, axum::Json<BulkRetryBody>)> {
    require_admin(&access)?;
    let confirm = params.confirmed()?;
    let filter = body.into_filter(access.org_id())?;
    let result = sends::retry_matching(&state.app, &filter, confirm).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(BulkRetryBody {
            retried: result.retried,
            more: result.more,
        }),
    ))
}

fn require_admin(access: &OrgAccess) -> AppResult<()> {
    access.require(Role::Admin)
}
