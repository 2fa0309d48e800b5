//! `GET /api/v1/orgs/{org_id}/events`: the organization's live events as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiResult, ProblemSchema};
use super::extract::OrgScope;
use crate::app::AppError;
use crate::app::live::{self, LiveItem};
use crate::domain::Invalid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Live events: `message.created`, `message.updated`, `conversation.created`,
/// `conversation.updated`, `connection.updated`. Each has an increasing `id`; reconnect with
/// `Last-Event-ID` to receive what was missed (events are kept at least 24 h). Without it, the
/// stream starts now. The first event, `stream.opened` (`{"after": <id>}`, no id of its own),
/// says where: the id after which events follow. A comment line every 15 s keeps idle
/// connections open. When the caller
/// loses access (removed from the organization, session signed out or expired, key revoked),
/// the stream ends within a few seconds with a last `stream.closed` event
/// (`{"reason":"access_revoked"}`). Open streams are limited per user and per organization
/// (429 `too_many_streams` beyond).
#[utoipa::path(get, path = "/orgs/{org_id}/events", tag = "events",
    params(("org_id" = Uuid, Path),
           ("Last-Event-ID" = Option<i64>, Header, description = "the id of the last event received")),
    responses((status = 200, content_type = "text/event-stream",
               description = "`id: <n>`, `event: <kind>`, `data: <JSON payload>` per event"),
              (status = 400, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 401, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 404, body = ProblemSchema, content_type = "application/problem+json"),
              (status = 429, body = ProblemSchema, content_type = "application/problem+json")),
    security(("bearer" = [])))]
async fn events(
    State(state): State<AppState>,
    OrgScope(access): OrgScope,
    headers: HeaderMap,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|id| *id >= 0)
                .ok_or_else(|| AppError::from(Invalid::new("last_event_id", "must be an event id")))
        })
        .transpose()?;
    let stream = live::follow(state.app.clone(), &access, last_event_id).await?;
    let stream = stream.map(|item| {
        Ok(match item {
            LiveItem::Event(event) => Event::default()
                .id(event.id.to_string())
                .event(event.kind)
                .data(event.payload.0.to_string()),
            LiveItem::Opened { after } => Event::default()
                .event("stream.opened")
                .data(serde_json::json!({ "after": after }).to_string()),
            LiveItem::Closed { reason } => Event::default()
                .event("stream.closed")
                .data(serde_json::json!({ "reason": reason }).to_string()),
        })
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
