//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations: every
//! router of the service is an `OpenApiRouter` registering its routes with `routes!`, so a
//! route and its documentation cannot drift apart (`tests/openapi.rs` checks that no route is
//! registered any other way, and that every documented operation is served).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Snorq",
        description = "Omnichannel inbox integration service: WhatsApp, Messenger and TikTok \
                       conversations for teams. Errors are `application/problem+json` with a \
                       stable `code`. Lists use opaque cursors.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and login tokens"),
        (name = "organizations", description = "Organizations and their members"),
        (name = "connections", description = "Connected platform accounts"),
        (name = "conversations", description = "The team inbox"),
        (name = "messages", description = "History and replies"),
        (name = "notes", description = "Internal notes (never sent)"),
        (name = "labels", description = "The organization's labels"),
        (name = "sends", description = "Outbound delivery: failed sends, retries"),
        (name = "events", description = "Live events (Server-Sent Events)"),
        (name = "api keys", description = "Organization API keys (BUSINESS)"),
        (name = "webhooks", description = "Platform webhooks (signed by the platform)"),
        (name = "oauth", description = "Platforms' OAuth redirects and deauthorize callbacks"),
        (name = "dashboard", description = "The operators' HTML dashboard"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// `Authorization: Bearer <token>`: a login token or an organization API key.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
