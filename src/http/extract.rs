//! Request extractors: JSON bodies with field-level errors, the bearer session, the caller's
//! organization access, and the client address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::AppState;
use super::error::Problem;
use super::strict_json::{Strict, plain_message};
use crate::app::orgs::{self, OrgAccess};
use crate::app::{AppError, auth};
use crate::store::Session;

/// A JSON body. Syntax errors answer 400 `malformed_json`; a wrong, missing or unknown field
/// answers 422 `validation_failed` naming the field; over the size limit, 413.
pub struct ValidJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ValidJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(ValidJson)
    }
}

/// Query parameters. A query string that does not parse (a repeated or malformed parameter)
/// answers 400 `bad_request` as a problem document; values are checked by the use cases.
pub struct ValidQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ValidQuery(value))
            .map_err(|rejection| {
                let detail = rejection.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail);
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the query string is not valid: {}", plain_message(detail)),
                )
            })
    }
}

/// The request body as received, within the route's size limit (413 `payload_too_large`).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(status, "payload_too_large", "the request body is too large")
                } else {
                    Problem::new(status, "bad_request", rejection.body_text())
                }
            })
    }
}

/// Reads a request body: the JSON text is parsed first (400 `malformed_json`), then read into
/// `T` strictly ([`Strict`]: structs only from objects), with errors naming the field in JSON
/// terms (422 `validation_failed`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|err| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("malformed JSON: {err}"),
        )
    })?;
    serde_path_to_error::deserialize(Strict(&value)).map_err(|err| {
        let path = err.path().to_string();
        let message = plain_message(&strip_position(&err.into_inner().to_string()));
        // Unknown and missing fields are reported by serde at the parent's path; name the field.
        let field = match field_from_message(&message) {
            Some(f) if path == "." => f,
            Some(f) if path != f && !path.ends_with(&format!(".{f}")) => format!("{path}.{f}"),
            _ => path,
        };
        let field = if field == "." { "body".to_owned() } else { field };
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message).with_field(field)
    })
}

fn strip_position(message: &str) -> String {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head)
        .to_owned()
}

fn field_from_message(message: &str) -> Option<String> {
    for prefix in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_owned);
        }
    }
    None
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<Option<T>>` field: tells
/// an explicit `null` (clear it: `Some(None)`) from a missing field (leave it: `None`).
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    de: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

/// The authenticated bearer session.
pub struct Authenticated(pub Session);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = auth::authenticate(&state.app, bearer_token(parts)?).await?;
        Ok(Authenticated(session))
    }
}

/// The `Authorization: Bearer` token; `Unauthorized` when there is none.
fn bearer_token(parts: &Parts) -> Result<&str, AppError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AppError::Unauthorized)
}

/// The caller's access to the organization in the `{org_id}` path segment. Not a member (or a
/// malformed id): 404, so that other organizations' existence is not revealed.
pub struct OrgScope(pub OrgAccess);

impl FromRequestParts<AppState> for OrgScope {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let org_id = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|Path(params)| params.get("org_id").and_then(|id| Uuid::parse_str(id).ok()));
        let Some(org_id) = org_id else {
            // Authentication still comes first: a bad token answers 401 whatever the path.
            Authenticated::from_request_parts(parts, state).await?;
            return Err(AppError::NotFound.into());
        };
        // The session and the membership in one statement.
        Ok(OrgScope(
            orgs::access(&state.app, bearer_token(parts)?, org_id).await?,
        ))
    }
}

/// A path id (`{user_id}`, `{connection_id}`, ...) that answers 404 when it is not a UUID.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound)?;
        params
            .iter()
            .find(|(k, _)| k.as_str() != "org_id")
            .and_then(|(_, v)| Uuid::parse_str(v).ok())
            .map(PathId)
            .ok_or_else(|| AppError::NotFound.into())
    }
}

/// Several path ids by name (`{conversation_id}`, `{note_id}`, ...); `get` answers 404 for a
/// missing or malformed one.
pub struct PathIds(pub PathIdMap);

pub struct PathIdMap(HashMap<String, String>);

impl PathIdMap {
    pub fn get(&self, name: &str) -> Result<Uuid, AppError> {
        self.0
            .get(name)
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or(AppError::NotFound)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound)?;
        Ok(PathIds(PathIdMap(params)))
    }
}

/// The `{platform}` path segment; an unknown platform answers 404.
pub struct PathPlatform(pub snorq_connectors::Platform);

impl<S: Send + Sync> FromRequestParts<S> for PathPlatform {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound)?;
        params
            .get("platform")
            .and_then(|p| p.parse().ok())
            .map(PathPlatform)
            .ok_or_else(|| AppError::NotFound.into())
    }
}

/// The client's address: the socket peer, or, when the peer is one of `trusted_proxies`, the
/// address that proxy reported in `X-Forwarded-For` (the right-most entry that is not itself a
/// trusted proxy: entries further left were written by the client and prove nothing).
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let security = &state.app.settings.security;
        Ok(ClientAddr(
            peer.map(|peer| client_address(peer, &parts.headers, security)),
        ))
    }
}

fn client_address(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    security: &crate::config::SecurityConfig,
) -> IpAddr {
    if !security.is_trusted_proxy(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|a| !security.is_trusted_proxy(**a))
        .or(forwarded.first())
        .copied()
        .map_or(peer, canonical)
}

/// `::ffff:192.0.2.1` and `192.0.2.1` are one client.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        count: u32,
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
        let mut security = crate::config::SecurityConfig::default();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "6.6.6.6, 203.0.113.5, 10.0.0.2".parse().unwrap(),
        );
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        // Not configured: the socket address, whatever the header says.
        assert_eq!(client_address(proxy, &headers, &security), proxy);
        security.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        // The right-most untrusted entry; the client-written 6.6.6.6 is ignored.
        assert_eq!(
            client_address(proxy, &headers, &security),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        // An untrusted peer's header is ignored.
        let stranger: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(client_address(stranger, &headers, &security), stranger);
    }

    #[test]
    fn arrays_are_not_objects() {
        let p = parse_json::<Body>(br#"["a", null]"#).unwrap_err();
        assert_eq!(
            (p.status, p.code, p.field.as_deref()),
            (422, "validation_failed", Some("body"))
        );
        assert!(!p.detail.contains("Body"), "{}", p.detail);
        let p = parse_json::<Body>(br#"{"email": "a", "nested": [1]}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("nested"));
    }

    #[test]
    fn errors_name_the_field() {
        let p = parse_json::<Body>(br#"{"email": "a", "extra": 1}"#).unwrap_err();
        assert_eq!(
            (p.status, p.code, p.field.as_deref()),
            (422, "validation_failed", Some("extra"))
        );
        let p = parse_json::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("email"));
        let p = parse_json::<Body>(br#"{"email": 5}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("email"));
        let p = parse_json::<Body>(br#"{"email": "a", "nested": {"count": -1}}"#).unwrap_err();
        assert_eq!(p.field.as_deref(), Some("nested.count"));
        let p = parse_json::<Body>(br#"{"email": "#).unwrap_err();
        assert_eq!((p.status, p.code), (400, "malformed_json"));
    }
}
