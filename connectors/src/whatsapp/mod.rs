//! WhatsApp Cloud API: webhook parsing and the send request.

mod outbound;
mod webhook;

pub(crate) use outbound::send;
pub(crate) use webhook::parse_webhook;
