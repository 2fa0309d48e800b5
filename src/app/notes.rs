//! Internal notes on a conversation: seen by the team, never sent to the platform. Deleted by
//! their author or an admin.

use uuid::Uuid;

use crate::domain::{self, Invalid, Role, TimeCursor};
use crate::store::{Note, StoreError};

use super::inbox::{HistoryPage, history_page, history_request};
use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

const MAX_NOTE_CHARS: usize = 10_000;

/// The conversation's notes, newest first; `before` is the cursor of the previous page.
pub async fn list(
    app: &App,
    access: &OrgAccess,
    conversation_id: Uuid,
    before: Option<&str>,
    limit: Option<i64>,
) -> AppResult<HistoryPage<Note>> {
    let (limit, before) = history_request(app, access, conversation_id, before, limit).await?;
    let notes = app
        .store
        .notes(access.org_id(), conversation_id, before.as_ref(), limit + 1)
        .await?;
    Ok(history_page(notes, limit, |n| TimeCursor {
        at: n.created_at,
        id: n.id,
    }))
}

pub async fn create(app: &App, access: &OrgAccess, conversation_id: Uuid, body: &str) -> AppResult<Note> {
    let body = body.trim();
    if body.is_empty() || body.chars().count() > MAX_NOTE_CHARS {
        return Err(Invalid::new("text", format!("must be 1 to {MAX_NOTE_CHARS} characters")).into());
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
