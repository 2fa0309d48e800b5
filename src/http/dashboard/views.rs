//! The dashboard's pages: askama templates (compiled into the binary) and the rows they show.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::app::dashboard::{ConnectionHealth, DashboardScope, HourBucket};
use crate::domain::delivery::retry_needs_confirmation;
use crate::domain::{MessageStatus, SendStatus, StoredContent};
use crate::store::{REASON_DISCARDED, SendAttempt, SendRecord, WebhookSummary};

/// Renders a template, or a plain 500 if a template cannot render (a bug, logged).
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "dashboard template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

pub fn forbidden(message: &str) -> Response {
    let mut response = render(&MessagePage {
        title: "Not available",
        message,
    });
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// What every signed-in page shows.
pub struct Frame {
    pub user: String,
    pub csrf: String,
    pub nav: &'static str,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub user: String,
    pub csrf: String,
    pub nav: &'static str,
    pub notice: Option<String>,
    pub failed: usize,
    pub failed_text: String,
    pub pending_text: String,
    pub webhooks: usize,
    pub unhealthy: usize,
    pub total_sent: i64,
    pub total_retried: i64,
    pub total_failed: i64,
    pub chart: Chart,
    pub organizations: Vec<String>,
    pub operator: bool,
}

/// "100+" when a count was cut off at a page.
pub fn count_text(count: usize, page: usize) -> String {
    if count > page {
        format!("{page}+")
    } else {
        count.to_string()
    }
}

/// A stacked bar chart of the hourly outcomes, laid out here so the template only draws.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    pub bar_width: u32,
    pub max: i64,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
}

pub struct Bar {
    pub label: String,
    pub x: u32,
    pub sent: i64,
    pub retried: i64,
    pub failed: i64,
    pub sent_y: f64,
    pub sent_h: f64,
    pub retry_y: f64,
    pub retry_h: f64,
    pub failed_y: f64,
    pub failed_h: f64,
}

pub struct Tick {
    pub x: u32,
    pub label: String,
}

impl Chart {
    pub fn new(buckets: &[HourBucket]) -> Chart {
        const WIDTH: u32 = 960;
        const HEIGHT: u32 = 200;
        const TOP: f64 = 18.0;
        const BOTTOM: f64 = 16.0;
        let slot = WIDTH / buckets.len().max(1) as u32;
        let max = buckets
            .iter()
            .map(|b| b.sent + b.retried + b.failed)
            .max()
            .unwrap_or(0)
            .max(1);
        let scale = (f64::from(HEIGHT) - TOP - BOTTOM) / max as f64;
        let base = f64::from(HEIGHT) - BOTTOM;
        let bars = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let sent_h = b.sent as f64 * scale;
                let retry_h = b.retried as f64 * scale;
                let failed_h = b.failed as f64 * scale;
                Bar {
                    label: b.hour.format("%H:00 UTC").to_string(),
                    x: i as u32 * slot + 2,
                    sent: b.sent,
                    retried: b.retried,
                    failed: b.failed,
                    sent_y: base - sent_h,
                    sent_h,
                    retry_y: base - sent_h - retry_h,
                    retry_h,
                    failed_y: base - sent_h - retry_h - failed_h,
                    failed_h,
                }
            })
            .collect();
        let ticks = buckets
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0)
            .map(|(i, b)| Tick {
                x: i as u32 * slot + 2,
                label: b.hour.format("%H:00").to_string(),
            })
            .collect();
        Chart {
            width: WIDTH,
            height: HEIGHT,
            bar_width: slot.saturating_sub(4).max(1),
            max,
            bars,
            ticks,
        }
    }
}

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "sends.html")]
pub struct SendsPage {
    pub user: String,
    pub csrf: String,
    pub nav: &'static str,
    pub notice: Option<String>,
    pub heading: &'static str,
    pub status: String,
    pub org: String,
    pub platform: String,
    pub error_code: String,
    pub connection: String,
    pub reason: String,
    pub age: String,
    pub org_options: Vec<Choice>,
    pub platform_options: Vec<Choice>,
    pub age_options: Vec<Choice>,
    pub rows: Vec<SendRow>,
    pub next_page: Option<String>,
    /// Where the row actions return to (this page with its filters).
    pub back: String,
}

pub struct SendRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub organization: String,
    pub platform: &'static str,
    pub created: String,
    pub created_full: String,
    pub preview: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub error_code: Option<String>,
    pub reason: Option<String>,
    pub error_message: String,
    pub attempts: i32,
    pub last_attempt: String,
    pub next_attempt: String,
    pub can_retry: bool,
    /// Retrying may deliver it twice (its outcome is unknown): the form asks to confirm.
    pub retry_needs_confirm: bool,
    pub can_discard: bool,
}

fn status_word(record: &SendRecord) -> (&'static str, &'static str) {
    if record.failure_reason.as_deref() == Some(REASON_DISCARDED) {
        return ("discarded", "discarded");
    }
    if record.send_status() == SendStatus::Unconfirmed {
        return ("unconfirmed", "unconfirmed");
    }
    match record.status {
        MessageStatus::Pending if record.attempts > 0 => ("pending", "retrying"),
        MessageStatus::Pending => ("pending", "pending"),
        MessageStatus::Sent => ("sent", "sent"),
        MessageStatus::Delivered => ("delivered", "delivered"),
        MessageStatus::Read => ("read", "read"),
        MessageStatus::Failed => ("failed", "failed"),
    }
}

pub fn short_time(t: DateTime<Utc>) -> String {
    let age = Utc::now() - t;
    if age < chrono::Duration::hours(20) && age > -chrono::Duration::hours(20) {
        t.format("%H:%M:%S").to_string()
    } else {
        t.format("%b %d %H:%M").to_string()
    }
}

fn preview(record: &SendRecord) -> String {
    let content = StoredContent::read(&record.content_type, &record.content.0).content;
    let text = content
        .readable()
        .map_or_else(|| format!("[{}]", content.kind()), str::to_owned);
    let mut chars = text.chars();
    let short: String = chars.by_ref().take(80).collect();
    if chars.next().is_some() {
        format!("{short}…")
    } else {
        short
    }
}

impl SendRow {
    pub fn new(record: SendRecord, scope: &DashboardScope) -> SendRow {
        let (status, status_label) = status_word(&record);
        SendRow {
            id: record.id,
            organization_id: record.organization_id,
            organization: scope.organization_name(record.organization_id).to_owned(),
            platform: record.platform.0.as_str(),
            created: short_time(record.created_at),
            created_full: record.created_at.to_rfc3339(),
            preview: preview(&record),
            status,
            status_label,
            error_code: record.error_code.clone(),
            reason: record.failure_reason.clone().filter(|r| r != REASON_DISCARDED),
            error_message: record.error_message.clone().unwrap_or_default(),
            attempts: record.attempts,
            last_attempt: record
                .last_attempt_at
                .map(short_time)
                .unwrap_or_else(|| "—".into()),
            next_attempt: record
                .next_attempt_at
                .map(short_time)
                .unwrap_or_else(|| "—".into()),
            can_retry: matches!(status, "failed" | "unconfirmed"),
            retry_needs_confirm: retry_needs_confirmation(
                record.send_status(),
                record.failure_reason.as_deref(),
            ),
            can_discard: matches!(status, "failed" | "pending" | "unconfirmed"),
        }
    }
}

#[derive(Template)]
#[template(path = "send.html")]
pub struct SendPage {
    pub user: String,
    pub csrf: String,
    pub nav: &'static str,
    pub notice: Option<String>,
    pub id: Uuid,
    pub organization_id: Uuid,
    pub organization: String,
    pub conversation_id: Uuid,
    pub platform: &'static str,
    pub status: &'static str,
    pub status_label: &'static str,
    pub preview: String,
    pub external_id: Option<String>,
    pub attempts: Vec<AttemptRow>,
}

pub struct AttemptRow {
    pub attempt: i32,
    pub started: String,
    pub outcome: String,
    pub http: String,
    pub error_code: Option<String>,
    pub error_message: String,
    pub next: String,
}

impl SendPage {
    pub fn new(frame: Frame, record: SendRecord, attempts: Vec<SendAttempt>, scope: &DashboardScope) -> Self {
        let (status, status_label) = status_word(&record);
        SendPage {
            user: frame.user,
            csrf: frame.csrf,
            nav: frame.nav,
            notice: frame.notice,
            id: record.id,
            organization_id: record.organization_id,
            organization: scope.organization_name(record.organization_id).to_owned(),
            conversation_id: record.conversation_id,
            platform: record.platform.0.as_str(),
            status,
            status_label,
            preview: preview(&record),
            external_id: record.external_id.clone(),
            attempts: attempts
                .into_iter()
                .map(|a| AttemptRow {
                    attempt: a.attempt,
                    started: short_time(a.started_at),
                    outcome: a.outcome,
                    http: a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                    error_code: a.error_code,
                    error_message: a.error_message.unwrap_or_default(),
                    next: a.next_attempt_at.map(short_time).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "webhooks.html")]
pub struct WebhooksPage {
    pub user: String,
    pub csrf: String,
    pub nav: &'static str,
    pub notice: Option<String>,
    pub rows: Vec<WebhookRow>,
}

pub struct WebhookRow {
    pub id: Uuid,
    pub received: String,
    pub received_full: String,
    pub platform: &'static str,
    pub organization: String,
    pub status: String,
    pub events: i32,
    pub applied: i32,
    pub reason: String,
}

impl WebhookRow {
    pub fn new(w: WebhookSummary, scope: &DashboardScope) -> Self {
        WebhookRow {
            id: w.id,
            received: short_time(w.received_at),
            received_full: w.received_at.to_rfc3339(),
            platform: w.platform.0.as_str(),
            organization: w.organization_id.map_or_else(
                || "— (no connection)".to_owned(),
                |o| scope.organization_name(o).to_owned(),
            ),
            status: w.status,
            events: w.event_count,
            applied: w.applied_count,
            reason: w.reason.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "connections.html")]
pub struct ConnectionsPage {
    pub user: String,
    pub csrf: String,
    pub nav: &'static str,
    pub notice: Option<String>,
    pub rows: Vec<ConnectionRow>,
}

pub struct ConnectionRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub organization: String,
    pub platform: &'static str,
    pub account: String,
    pub name: String,
    pub status: String,
    pub failed_sends: i64,
    pub last_error: String,
    pub last_checked: String,
    pub updated: String,
}

impl From<ConnectionHealth> for ConnectionRow {
    fn from(h: ConnectionHealth) -> Self {
        let c = h.connection;
        ConnectionRow {
            id: c.id,
            organization_id: c.organization_id,
            organization: h.organization,
            platform: c.platform.0.as_str(),
            account: c.platform_user_id,
            name: c.name.unwrap_or_default(),
            status: c.status.as_db().to_lowercase(),
            failed_sends: h.failed_sends,
            last_error: c.last_error.unwrap_or_default(),
            last_checked: c
                .last_checked_at
                .or(c.last_refreshed_at)
                .map(short_time)
                .unwrap_or_default(),
            updated: short_time(c.updated_at),
        }
    }
}
