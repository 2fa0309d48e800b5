//! The sends API (and the dashboard's actions): list outbound messages by delivery state, retry
//! a failed one for real, discard one, retry many by filter.

use uuid::Uuid;

use crate::domain::delivery::retry_needs_confirmation;
use crate::domain::{self, IdCursor, Role};
use crate::store::{SendAttempt, SendChange, SendFilter, SendRecord};

use super::orgs::OrgAccess;
use super::{App, AppError, AppResult};

pub const MAX_PAGE: i64 = 100;
/// Sends reopened per transaction by a bulk retry.
const BULK_CHUNK: i64 = 500;
/// Most sends one bulk retry request reopens; the answer says when more match.
pub const BULK_MAX: u64 = 10_000;

/// One page, newest first, and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct SendPage {
    pub sends: Vec<SendRecord>,
    pub next_cursor: Option<String>,
}

/// Lists sends of the filter's organizations (the caller has checked access to them).
pub async fn list(
    app: &App,
    filter: &SendFilter,
    cursor: Option<&str>,
    limit: Option<i64>,
) -> AppResult<SendPage> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(domain::Invalid::new("limit", format!("must be between 1 and {MAX_PAGE}")).into());
    }
    let before = cursor.map(IdCursor::decode).transpose()?.map(|c| c.0);
    let mut sends = app.store.sends(filter, before, limit + 1).await?;
    let next_cursor = if sends.len() as i64 > limit {
        sends.truncate(limit as usize);
        sends.last().map(|last| IdCursor(last.id).encode())
    } else {
        None
    };
    Ok(SendPage { sends, next_cursor })
}

pub async fn get(app: &App, access: &OrgAccess, message_id: Uuid) -> AppResult<SendRecord> {
    app.store
        .send(access.org_id(), message_id)
        .await?
        .ok_or(AppError::NotFound)
}

/// A send with every provider call made for it.
pub async fn get_with_attempts(
    app: &App,
    org_id: Uuid,
    message_id: Uuid,
) -> AppResult<(SendRecord, Vec<SendAttempt>)> {
    let send = app
        .store
        .send(org_id, message_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let attempts = app.store.send_attempts(org_id, message_id).await?;
    Ok((send, attempts))
}

/// How many sends match, counting at most `cap` (for "100+" tiles).
pub async fn count_up_to(app: &App, filter: &SendFilter, cap: usize) -> AppResult<usize> {
    let limit = i64::try_from(cap).unwrap_or(i64::MAX);
    Ok(app.store.sends(filter, None, limit).await?.len())
}

/// A failed send back to pending with a fresh retry schedule; the platform is called again.
/// A send whose outcome is unknown (the platform may have accepted it) is retried only when
/// the agent `confirm`s that a second delivery is acceptable.
pub async fn retry(app: &App, access: &OrgAccess, message_id: Uuid, confirm: bool) -> AppResult<SendRecord> {
    access.require(Role::Admin)?;
    retry_one(app, access.org_id(), message_id, confirm).await
}

/// [`retry`] for a caller whose access to the organization is checked (the dashboard).
pub async fn retry_one(app: &App, org_id: Uuid, message_id: Uuid, confirm: bool) -> AppResult<SendRecord> {
    match app
        .store
        .retry_send(org_id, message_id, domain::now(), confirm)
        .await?
    {
        SendChange::Changed(record) => Ok(record),
        SendChange::WrongState(record)
            if retry_needs_confirmation(record.send_status(), record.failure_reason.as_deref()) =>
        {
            Err(AppError::ConfirmationRequired(
                "the platform may already have delivered this reply (its outcome is unknown); \
                 confirm that it may arrive twice to send it again"
                    .to_owned(),
            ))
        }
        SendChange::WrongState(record) => Err(AppError::conflict(
            format!(
                "only failed sends can be retried; this one is {}",
                status_word(&record)
            ),
            None,
        )),
        SendChange::NotFound => Err(AppError::NotFound),
    }
}

/// Stops a pending send or takes a failed one off the failed list.
pub async fn discard(app: &App, access: &OrgAccess, message_id: Uuid) -> AppResult<SendRecord> {
    access.require(Role::Admin)?;
    match app
        .store
        .discard_send(access.org_id(), message_id, domain::now())
        .await?
    {
        SendChange::Changed(record) => Ok(record),
        SendChange::WrongState(record) => Err(AppError::conflict(
            format!(
                "only pending or failed sends can be discarded; this one is {}",
                status_word(&record)
            ),
            None,
        )),
        SendChange::NotFound => Err(AppError::NotFound),
    }
}

/// How a bulk retry went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkRetry {
    pub retried: u64,
    /// More matched than one request retries ([`BULK_MAX`]); run it again.
    pub more: bool,
}

/// Retries every failed (not discarded) send matching the filter, in chunks; those whose
/// outcome is unknown only when `confirm`.
pub async fn retry_matching(app: &App, filter: &SendFilter, confirm: bool) -> AppResult<BulkRetry> {
    // One pass in id order: a send that fails again while this runs is not picked up twice.
    let mut retried = 0;
    let mut after = None;
    loop {
        let (chunk, last) = app
            .store
            .retry_sends(filter, after, domain::now(), BULK_CHUNK, confirm)
            .await?;
        retried += chunk;
        after = last;
        if after.is_none() {
            return Ok(BulkRetry { retried, more: false });
        }
        if retried >= BULK_MAX {
            return Ok(BulkRetry { retried, more: true });
        }
    }
}

fn status_word(record: &SendRecord) -> String {
    match record.failure_reason.as_deref() {
        Some("discarded") => "discarded".to_owned(),
        _ => record.send_status().as_str().to_owned(),
    }
}
