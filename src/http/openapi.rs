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
    components(schemas(
        crate::http::schema::PlatformName,
        crate::http::schema::ConversationStatusName,
        crate::http::schema::ConversationStatusFilter,
        crate::http::schema::BoolText,
        crate::http::schema::SendStatusName,
        crate::http::schema::PageId,
    )),
    tags(
        (name = "auth", description = "Accounts and login tokens"),
        (name = "organizations", description = "Organizations and their members"),
        (name = "invitations", description = "Joining an organization: invited by email, accepted by the person"),
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

/// The finished document: what every operation shares is added here, in one place, rather than
/// repeated on each handler.
///
/// - Every error response is `application/problem+json` with the `Problem` schema.
/// - Operations with a JSON body can answer 400 (`malformed_json`), 413 (`payload_too_large`),
///   415 (`unsupported_media_type`) and 422 (`validation_failed`); secured ones 401
///   (`unauthorized`); ones with path ids 404 (`not_found`); every API operation 503
///   (`unavailable`: the database is away).
/// - operationIds are unique: a handler name used on several paths (`list`, `create`, ...)
///   gets the path's resource words appended (`list_labels`).
pub fn finish(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return doc;
    };
    complete(&mut value);
    serde_json::from_value(value).unwrap_or(doc)
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn problem_response(description: &str) -> serde_json::Value {
    serde_json::json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn complete(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let mut uses: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for item in paths.values() {
        for method in METHODS {
            if let Some(id) = item.get(method).and_then(|o| o["operationId"].as_str()) {
                *uses.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    for (path, item) in paths.iter_mut() {
        let api = path.starts_with("/api/");
        let has_path_params = path.contains('{');
        for method in METHODS {
            let Some(operation) = item.get_mut(method).and_then(|o| o.as_object_mut()) else {
                continue;
            };
            if let Some(id) = operation
                .get("operationId")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                && uses.get(&id).copied().unwrap_or(0) > 1
            {
                operation.insert("operationId".into(), unique_operation_id(&id, path).into());
            }
            let json_body = operation
                .get("requestBody")
                .and_then(|b| b.get("content"))
                .and_then(|c| c.as_object())
                .is_some_and(|c| c.contains_key("application/json"));
            let has_query = operation
                .get("parameters")
                .and_then(|p| p.as_array())
                .is_some_and(|ps| {
                    ps.iter()
                        .any(|p| matches!(p["in"].as_str(), Some("query" | "header")))
                });
            let secured = operation
                .get("security")
                .and_then(|s| s.as_array())
                .is_some_and(|s| !s.is_empty());
            let responses = operation
                .entry("responses")
                .or_insert_with(|| serde_json::json!({}));
            let Some(responses) = responses.as_object_mut() else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem_response(description));
            };
            if json_body {
                add("400", "malformed JSON (`malformed_json`)");
                add("413", "the body is too large (`payload_too_large`)");
                add("415", "the body is not JSON (`unsupported_media_type`)");
                add(
                    "422",
                    "a field is missing or invalid (`validation_failed`, with `field`)",
                );
            }
            if has_query {
                add("400", "the query string does not parse (`bad_request`)");
                add(
                    "422",
                    "a parameter is invalid (`validation_failed`, with `field`)",
                );
            }
            if secured {
                add("401", "no valid bearer token (`unauthorized`)");
            }
            if has_path_params && api {
                add("404", "not found, or not visible to the caller (`not_found`)");
            }
            if api {
                add(
                    "503",
                    "the database is unavailable (`unavailable`); retry shortly",
                );
            }
            // OpenAPI requires a description on every response: the status's own words at least.
            for (status, response) in responses.iter_mut() {
                let missing = response
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_none_or(str::is_empty);
                if missing && let Some(object) = response.as_object_mut() {
                    let reason = status
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                        .and_then(|code| code.canonical_reason())
                        .unwrap_or("Response");
                    object.insert("description".into(), reason.into());
                }
            }
            // Every error is a problem document, whatever a handler's annotation said.
            for (status, response) in responses.iter_mut() {
                if status.starts_with('4') || status.starts_with('5') {
                    let description = response["description"].as_str().unwrap_or("an error").to_owned();
                    *response = problem_response(&description);
                }
            }
        }
    }
}

/// `list` on `/api/v1/orgs/{org_id}/labels` becomes `list_labels`; on
/// `/api/v1/orgs/{org_id}/conversations/{conversation_id}/notes`, `list_conversations_notes`.
fn unique_operation_id(id: &str, path: &str) -> String {
    let words: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{') && !matches!(*s, "api" | "v1"))
        .collect();
    let words = match words.as_slice() {
        ["orgs", rest @ ..] if !rest.is_empty() => rest.to_vec(),
        all => all.to_vec(),
    };
    let suffix = words.join("_").replace('-', "_");
    format!("{id}_{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_operation_ids_get_their_resource_words() {
        assert_eq!(
            unique_operation_id("list", "/api/v1/orgs/{org_id}/labels"),
            "list_labels"
        );
        assert_eq!(unique_operation_id("list", "/api/v1/orgs"), "list_orgs");
        assert_eq!(
            unique_operation_id("create", "/api/v1/orgs/{org_id}/api-keys"),
            "create_api_keys"
        );
    }

    #[test]
    fn errors_become_problem_documents_and_shared_statuses_are_added() {
        let mut doc = serde_json::json!({"paths": {
            "/api/v1/orgs/{org_id}/labels": {
                "post": {"operationId": "create", "security": [{"bearer": []}],
                         "requestBody": {"content": {"application/json": {}}},
                         "responses": {"201": {"description": "ok"},
                                       "409": {"description": "taken", "content": {"application/json": {}}}}},
                "get": {"operationId": "list", "responses": {}}
            },
            "/api/v1/orgs": {"get": {"operationId": "list", "responses": {}}}
        }});
        complete(&mut doc);
        let post = &doc["paths"]["/api/v1/orgs/{org_id}/labels"]["post"];
        for status in ["400", "401", "404", "409", "413", "415", "422", "503"] {
            assert!(
                post["responses"][status]["content"]["application/problem+json"].is_object(),
                "{status}"
            );
        }
        assert_eq!(post["responses"]["409"]["description"], "taken");
        assert_eq!(post["operationId"], "create");
        assert_eq!(
            doc["paths"]["/api/v1/orgs/{org_id}/labels"]["get"]["operationId"],
            "list_labels"
        );
        assert_eq!(doc["paths"]["/api/v1/orgs"]["get"]["operationId"], "list_orgs");
    }
}
