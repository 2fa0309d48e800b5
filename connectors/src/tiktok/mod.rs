//! TikTok Business Messaging: webhook parsing and the send request.

mod outbound;
mod webhook;

pub(crate) use outbound::{read_response, send};
pub(crate) use webhook::parse_webhook;
