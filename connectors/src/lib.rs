//! Platform connectors for Snorq: webhook verification, parsing into normalized events,
//! sending, error classification and tokens for WhatsApp Cloud API, Facebook Messenger and
//! TikTok Business Messaging. No database code lives here.
//!
//! The service's path through the crate:
//! 1. [`verify::verify_signature`] (or the per-platform functions) over the raw body;
//!    [`verify::meta_subscribe_handshake`] for Meta's GET.
//! 2. [`parse()`] the body into [`Event`]s.
//! 3. [`Client::send`] one [`OutboundMessage`]; a failure is an [`ApiError`] with an
//!    [`ErrorClass`].
//! 4. [`oauth`] URLs to send the browser to, [`token`] calls for the returned code, [`account`]
//!    calls to list Pages, subscribe webhooks and introspect tokens; [`window`] for reply windows.

// ApiError (~128 bytes) is returned at most once per HTTP call; boxing it would only make the
// API clumsier.
#![allow(clippy::result_large_err)]

pub mod account;
pub mod classify;
pub mod event;
mod json;
mod messenger;
pub mod oauth;
pub mod parse;
pub mod platform;
pub mod secret;
pub mod send;
mod tiktok;
pub mod token;
pub mod verify;
mod whatsapp;
pub mod window;

pub use account::{MetaPage, MetaTokenInfo, MetaUser, TikTokTokenInfo};
pub use classify::{ApiError, ErrorClass, SendError, TokenError};
pub use event::{
    Contact, ContactCard, Content, DeliveryStatus, Direction, Event, Ignored, InboundMessage, Media,
    PlatformError, StatusReceipt, Watermark, WatermarkKind,
};
pub use parse::{ParseError, parse};
pub use platform::{Platform, UnknownPlatform};
pub use secret::Secret;
pub use send::{
    Client, ClientBuildError, ClientConfig, MessagingType, OutboundContent, OutboundMessage, SendReceipt,
};
pub use token::{MetaApp, MetaToken, TikTokApp, TikTokTokens};
pub use verify::{HandshakeError, SignatureError, SignedRequest};
pub use window::reply_window;
