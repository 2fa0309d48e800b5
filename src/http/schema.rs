//! What the OpenAPI document says about values the API reads as text and checks itself
//! (query parameters, names): the enums and patterns here describe exactly what the use
//! cases accept, so that a client (or schemathesis) generating from the document sends
//! requests the service takes.
//!
//! Patterns used on fields (JSON Schema / ECMA regular expressions):
//! - visible text: at least one character that is not white space, and no control characters
//!   (`[^\x00-\x1f\x7f-\x9f]`), as `domain::names` trims and checks;
//! - an email: one `@`, a domain with a dot inside, no spaces or control characters;
//! - an account id: 1 to 128 characters without spaces.

#![allow(dead_code)] // schema-only types: never built, only described

use utoipa::ToSchema;

/// A platform.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PlatformName {
    Whatsapp,
    Facebook,
    Tiktok,
}

/// A conversation's status.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ConversationStatusName {
    Open,
    Closed,
    Archived,
}

/// A conversation listing's status filter (`open` by default).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ConversationStatusFilter {
    Open,
    Closed,
    Archived,
    All,
}

/// `true` or `false`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum BoolText {
    True,
    False,
}

/// A Facebook Page id.
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{1,128}$", example = "106540352242922")]
pub struct PageId(String);

/// A send's status (`discarded`: failed and set aside).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SendStatusName {
    Pending,
    Unconfirmed,
    Sent,
    Delivered,
    Read,
    Failed,
    Discarded,
}
