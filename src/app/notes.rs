//! Internal notes on a conversation: seen by the team, never sent to the platform. Deleted by
//! their author or an admin.

use uuid::Uuid;

use crate::domain::{self, Invalid, Role, TimeCursor};
use crate::store::{Note, StoreError};

use super::inbox::page_limit;
use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

const MAX_NOTE_CHARS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct NotePage {
    pub notes: Vec<Note>,
    pub next_cursor: Option<String>,
}

pub async fn list(
    app: &App,
    access: &OrgAccess,
    conversation_id: Uuid,
    before: Option<&str>,
    limit: Option<i64>,
) -> AppResult<NotePage> {
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
    let mut notes = app
        .store
        .notes(access.org_id(), conversation_id, before.as_ref(), limit + 1)
        .await?;
    let next_cursor = if notes.len() as i64 > limit {
        notes.truncate(limit as usize);
        notes.last().map(|n| {
            TimeCursor {
                at: n.created_at,
                id: n.id,
            }
            .encode()
        })
    } else {
        None
    };
    Ok(NotePage { notes, next_cursor })
}

pub async fn create(app: &App, access: &OrgAccess, conversation_id: Uuid, body: &str) -> AppResult<Note> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > MAX_NOTE_CHARS {
        return Err(Invalid::new("body", format!("must be 1 to {MAX_NOTE_CHARS} characters")).into());
    }
    let note = Note {
        id: domain::new_id(),
        organization_id: access.org_id(),
        conversation_id,
        author_id: Some(access.user_id),
        author_name: None,
        body: body.to_owned(),
        created_at: domain::now(),
    };
    match app.store.insert_note(&note).await {
        Ok(_) => app
            .store
            .note(access.org_id(), note.id)
            .await?
            .ok_or(AppError::NotFound),
        Err(StoreError::NotFound) => Err(AppError::NotFound),
        Err(err) => Err(err.into()),
    }
}

/// The author, or an admin, deletes a note.
pub async fn delete(app: &App, access: &OrgAccess, conversation_id: Uuid, id: Uuid) -> AppResult<()> {
    let note = app
        .store
        .note(access.org_id(), id)
        .await?
        .filter(|n| n.conversation_id == conversation_id)
        .ok_or(AppError::NotFound)?;
    if note.author_id != Some(access.user_id) {
        access
            .require(Role::Admin)
            .map_err(|_| AppError::Forbidden("only the note's author or an admin may delete it"))?;
    }
    if app.store.delete_note(access.org_id(), id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}
