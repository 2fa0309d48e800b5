//! The platforms' APIs as the service calls them (docs/platforms.md, "WhatsApp send API",
//! "Messenger send API", "TikTok send API", "TikTok OAuth and tokens"): the WhatsApp, Messenger
//! and TikTok send APIs and the token endpoints, answering with the configured share of
//! failures; plus the simulator's own record.
//!
//! Point the service's `graph_base_url` and `tiktok_base_url` at this server.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use snorq_connectors::Platform;

use super::Shared;
use super::failures::{Api, FailureKind};
use super::record::SendRecord;

pub fn router(state: Arc<Shared>) -> Router {
    Router::new()
        .route("/{version}/{account}/messages", post(graph_send))
        .route("/{version}/oauth/access_token", get(meta_access_token))
        .route("/{version}/debug_token", get(meta_debug_token))
        .route("/{version}/me", get(meta_me))
        .route("/{version}/{waba}/phone_numbers", get(whatsapp_phone_numbers))
        .route("/open_api/{version}/business/message/send/", post(tiktok_send))
        .route("/open_api/{version}/tt_user/oauth2/token/", post(tiktok_token))
        .route(
            "/open_api/{version}/tt_user/oauth2/refresh_token/",
            post(tiktok_token),
        )
        .route(
            "/open_api/{version}/tt_user/token_info/get/",
            post(tiktok_token_info),
        )
        .route("/_simulator/sends", get(sends))
        .route("/_simulator/fail-next", post(fail_next))
        .route("/{version}/dialog/oauth", get(consent_dialog))
        .route("/v2/auth/authorize/", get(consent_dialog))
        .route("/_simulator/stats", get(stats))
        .route("/_simulator/media/{file}", get(media))
        .fallback(unknown)
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

/// What a send request asked for, whichever platform's shape it came in.
struct SendRequest {
    platform: Platform,
    account_id: String,
    recipient: String,
    content_type: String,
    text: Option<String>,
    correlation: Option<String>,
}

fn text_at(value: &Value, pointer: &str) -> Option<String> {
    value.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .filter(|t| !t.trim().is_empty())
}

/// Graph's answer to a call without a bearer token (OAuth error 190).
fn token_refused(headers: &HeaderMap) -> Option<Response> {
    bearer(headers).is_none().then(|| {
        graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            None,
            "An access token is required to request this resource.",
        )
    })
}

/// `POST /{version}/{phone_number_id or page_id}/messages`: WhatsApp when the body says
/// `messaging_product: whatsapp`, Messenger otherwise.
async fn graph_send(
    State(shared): State<Arc<Shared>>,
    Path((_version, account_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = token_refused(&headers) {
        return refused;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "(#100) The request body is not JSON",
        );
    };
    let whatsapp = body["messaging_product"] == "whatsapp";
    // Housekeeping calls that are not messages: WhatsApp "mark as read", Messenger sender actions.
    if whatsapp && body.get("status").is_some() {
        return axum::Json(json!({"success": true})).into_response();
    }
    if !whatsapp && body.get("sender_action").is_some() {
        return axum::Json(json!({"recipient_id": body["recipient"]["id"]})).into_response();
    }
    let request = if whatsapp {
        let kind = text_at(&body, "/type").unwrap_or_else(|| "text".to_owned());
        SendRequest {
            platform: Platform::WhatsApp,
            account_id,
            recipient: text_at(&body, "/to").unwrap_or_default(),
            text: text_at(&body, "/text/body").or_else(|| text_at(&body, &format!("/{kind}/caption"))),
            content_type: kind,
            correlation: text_at(&body, "/biz_opaque_callback_data"),
        }
    } else {
        SendRequest {
            platform: Platform::Facebook,
            account_id,
            recipient: text_at(&body, "/recipient/id").unwrap_or_default(),
            content_type: text_at(&body, "/message/attachment/type").unwrap_or_else(|| "text".to_owned()),
            text: text_at(&body, "/message/text"),
            correlation: text_at(&body, "/message/metadata"),
        }
    };
    if request.recipient.is_empty() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "(#100) The parameter recipient is required",
        );
    }
    answer_send(&shared, request).await
}

/// `POST /open_api/{version}/business/message/send/` with the `Access-Token` header.
async fn tiktok_send(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if headers.get("access-token").is_none_or(|t| t.is_empty()) {
        return tiktok_error(40104, "Access token is empty");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return tiktok_error(40002, "The request body is not JSON");
    };
    let request = SendRequest {
        platform: Platform::TikTok,
        account_id: text_at(&body, "/business_id").unwrap_or_default(),
        recipient: text_at(&body, "/recipient").unwrap_or_default(),
        content_type: text_at(&body, "/message_type")
            .unwrap_or_else(|| "TEXT".to_owned())
            .to_lowercase(),
        text: text_at(&body, "/text/body"),
        correlation: None,
    };
    if request.recipient.is_empty() || request.account_id.is_empty() {
        return tiktok_error(40002, "business_id and recipient are required");
    }
    answer_send(&shared, request).await
}

/// Answers a send: the injected failure, or success (recorded, then receipts follow).
/// A send is decided and recorded as it arrives, as a platform accepts a request it has read:
/// a caller that hangs up during the latency (a client timeout) leaves it accepted all the
/// same, so the record shows what the customer would have received.
async fn answer_send(shared: &Arc<Shared>, request: SendRequest) -> Response {
    let platform = request.platform;
    let failure = shared.failure_for_send(platform);
    let accepted = failure.is_none_or(FailureKind::accepts);
    let message_id = accepted.then(|| shared.new_id(platform, true));
    let sent = shared.record.send(SendRecord {
        seq: 0,
        at: chrono::Utc::now(),
        platform,
        account_id: request.account_id,
        recipient: request.recipient,
        content_type: request.content_type,
        text: request.text,
        correlation: request.correlation,
        outcome: match failure {
            Some(kind) if !kind.accepts() => kind.as_str().to_owned(),
            _ => "accepted".to_owned(),
        },
        answer: failure.map(|kind| kind.as_str().to_owned()),
        message_id: message_id.clone(),
        webhooks: Vec::new(),
    });
    if message_id.is_some() {
        super::receipts::after_send(shared, &sent);
    }
    if !shared.config.latency.is_zero() {
        shared.pause(shared.config.latency).await;
    }
    let Some(message_id) = message_id else {
        let kind = failure.unwrap_or(FailureKind::ServerError);
        return failure_response(shared, platform, kind).await;
    };
    match failure {
        Some(FailureKind::SlowAccept) => {
            shared.hold().await;
        }
        Some(FailureKind::ResetAfterAccept) => return cut_off(),
        _ => {}
    }
    match platform {
        Platform::WhatsApp => axum::Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": sent.recipient, "wa_id": sent.recipient.trim_start_matches('+')}],
            "messages": [{"id": message_id}],
        }))
        .into_response(),
        Platform::Facebook => {
            axum::Json(json!({"recipient_id": sent.recipient, "message_id": message_id})).into_response()
        }
        Platform::TikTok => tiktok_ok(json!({"message": {"message_id": message_id}})),
    }
}

/// A 200 whose body breaks off: the connection is lost mid-answer, as in a reset.
fn cut_off() -> Response {
    let broken = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated reset after accept",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(axum::body::Body::from_stream(broken))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The platform's own error for `kind` on a send.
async fn failure_response(shared: &Shared, platform: Platform, kind: FailureKind) -> Response {
    let retry_after = shared.config.retry_after;
    match (kind, platform) {
        // Accepting kinds never come here (their send is answered as accepted); as a plain
        // failure they are the timeout they resemble.
        (FailureKind::Timeout | FailureKind::SlowAccept | FailureKind::ResetAfterAccept, _) => {
            shared.hold().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        (FailureKind::RateLimited, Platform::WhatsApp) => with_retry_after(
            graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                130429,
                None,
                "(#130429) Rate limit hit",
            ),
            retry_after,
        ),
        (FailureKind::RateLimited, Platform::Facebook) => with_retry_after(
            graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                613,
                None,
                "Calls to this api have exceeded the rate limit.",
            ),
            retry_after,
        ),
        (FailureKind::RateLimited, Platform::TikTok) => with_retry_after(
            (
                StatusCode::TOO_MANY_REQUESTS,
                tiktok_error(40100, "Requests are too frequent"),
            )
                .into_response(),
            retry_after,
        ),
        (FailureKind::ServerError, Platform::WhatsApp) => graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            131000,
            None,
            "Something went wrong",
        ),
        (FailureKind::ServerError, Platform::Facebook) => graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            1200,
            None,
            "Temporary send message failure. Please try again later",
        ),
        (FailureKind::ServerError, Platform::TikTok) => {
            (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response()
        }
        (FailureKind::WindowClosed, Platform::WhatsApp) => graph_error(
            StatusCode::BAD_REQUEST,
            131047,
            None,
            "Re-engagement message: more than 24 hours have passed since the recipient last replied",
        ),
        (FailureKind::WindowClosed, Platform::Facebook) => graph_error(
            StatusCode::BAD_REQUEST,
            10,
            Some(2018278),
            "(#10) This message is sent outside of allowed window.",
        ),
        (FailureKind::WindowClosed, Platform::TikTok) => tiktok_error(
            40064,
            "Messaging restriction: the user has not written in the last 48 hours",
        ),
        (FailureKind::TokenExpired, Platform::WhatsApp | Platform::Facebook) => graph_error(
            StatusCode::UNAUTHORIZED,
            190,
            Some(463),
            "Error validating access token: Session has expired.",
        ),
        (FailureKind::TokenExpired, Platform::TikTok) => tiktok_error(40102, "Access token has expired"),
    }
}

fn graph_error(status: StatusCode, code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut error = json!({
        "message": message,
        "type": if code == 190 { "OAuthException" } else { "GraphMethodException" },
        "code": code,
        "fbtrace_id": format!("Sim{}", uuid::Uuid::new_v4().simple()),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// TikTok answers application errors with HTTP 200 and a non-zero `code` (docs/platforms.md,
/// "TikTok send API").
fn tiktok_error(code: i64, message: &str) -> Response {
    axum::Json(json!({"code": code, "message": message, "request_id": request_id(), "data": {}}))
        .into_response()
}

fn tiktok_ok(data: Value) -> Response {
    axum::Json(json!({"code": 0, "message": "OK", "request_id": request_id(), "data": data})).into_response()
}

fn with_retry_after(mut response: Response, after: Duration) -> Response {
    if let Ok(value) = after.as_secs().max(1).to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The injected failure of a token endpoint, if any (recorded under `endpoint`).
async fn token_failure(shared: &Shared, endpoint: &str, platform: Platform) -> Option<Response> {
    let Some(kind) = shared.config.failures.draw(Api::Tokens) else {
        shared.record.token_call(endpoint, "ok");
        return None;
    };
    shared.record.token_call(endpoint, kind.as_str());
    let response = match (kind, platform) {
        (FailureKind::Timeout | FailureKind::SlowAccept, _) => {
            shared.hold().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        (FailureKind::ResetAfterAccept, _) => cut_off(),
        (FailureKind::RateLimited, Platform::TikTok) => with_retry_after(
            (
                StatusCode::TOO_MANY_REQUESTS,
                tiktok_error(40100, "Requests are too frequent"),
            )
                .into_response(),
            shared.config.retry_after,
        ),
        (FailureKind::RateLimited, _) => with_retry_after(
            graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                4,
                None,
                "(#4) Application request limit reached",
            ),
            shared.config.retry_after,
        ),
        (FailureKind::ServerError | FailureKind::WindowClosed, _) => {
            (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response()
        }
        (FailureKind::TokenExpired, Platform::TikTok) if endpoint == "tiktok.token_info" => {
            tiktok_error(40102, "Access token has expired")
        }
        (FailureKind::TokenExpired, Platform::TikTok) => tiktok_error(40103, "Refresh token has expired"),
        (FailureKind::TokenExpired, _) => graph_error(
            StatusCode::BAD_REQUEST,
            190,
            Some(463),
            "Error validating access token: Session has expired.",
        ),
    };
    Some(response)
}

/// TikTok's code exchange and refresh: fresh tokens for the simulated business account.
async fn tiktok_token(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let endpoint = if uri.path().ends_with("refresh_token/") {
        "tiktok.refresh_token"
    } else {
        "tiktok.token"
    };
    if let Some(failure) = token_failure(&shared, endpoint, Platform::TikTok).await {
        return failure;
    }
    let id = shared.new_id(Platform::TikTok, false);
    tiktok_ok(json!({
        "access_token": format!("sim-tt-access-{id}"),
        "expires_in": 86_400,
        "refresh_token": format!("sim-tt-refresh-{id}"),
        "refresh_token_expires_in": 31_536_000,
        "open_id": shared.config.accounts.tiktok_business_id,
        "scope": "user.info.basic,message.list.read,message.list.send,message.list.manage",
        "token_type": "Bearer",
    }))
}

async fn tiktok_token_info(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(failure) = token_failure(&shared, "tiktok.token_info", Platform::TikTok).await {
        return failure;
    }
    tiktok_ok(json!({
        "app_id": shared.config.accounts.tiktok_app_id,
        "creator_id": shared.config.accounts.tiktok_business_id,
        "scope": "user.info.basic,message.list.read,message.list.send,message.list.manage",
    }))
}

/// `GET /oauth/access_token`: a code exchange or a long-lived token (`fb_exchange_token`).
async fn meta_access_token(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(failure) = token_failure(&shared, "meta.access_token", Platform::Facebook).await {
        return failure;
    }
    let id = shared.new_id(Platform::Facebook, false);
    axum::Json(
        json!({"access_token": format!("sim-meta-{id}"), "token_type": "bearer", "expires_in": 5_184_000}),
    )
    .into_response()
}

/// `GET /me` with a token: the simulator's Page (every token it is shown is that Page's own
/// token), so a connection claiming the Page proves it.
async fn meta_me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = token_refused(&headers) {
        return refused;
    }
    axum::Json(json!({"id": shared.config.accounts.facebook_page_id, "name": "Simulated Page"}))
        .into_response()
}

/// `GET /{waba_id}/phone_numbers`: the simulator's number, for its own WhatsApp Business
/// Account; another WABA is one the token cannot see (Graph's error 100).
async fn whatsapp_phone_numbers(
    State(shared): State<Arc<Shared>>,
    Path((_version, waba)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = token_refused(&headers) {
        return refused;
    }
    let account = &shared.config.accounts.whatsapp;
    if waba != account.waba_id {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(33),
            "Unsupported get request. Object does not exist or cannot be loaded due to missing permissions",
        );
    }
    axum::Json(json!({"data": [{
        "id": account.phone_number_id,
        "display_phone_number": account.display_phone_number,
        "verified_name": "Demo Shop",
    }]}))
    .into_response()
}

/// `GET /debug_token`: every token is valid and never expires, unless a failure is injected.
async fn meta_debug_token(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(failure) = token_failure(&shared, "meta.debug_token", Platform::Facebook).await {
        return failure;
    }
    axum::Json(json!({"data": {
        "app_id": shared.config.accounts.meta_app_id,
        "type": "PAGE",
        "is_valid": true,
        "expires_at": 0,
        "scopes": ["pages_messaging", "pages_manage_metadata", "whatsapp_business_messaging"],
        "granular_scopes": [{"scope": "whatsapp_business_management",
                             "target_ids": [shared.config.accounts.whatsapp.waba_id]}],
    }}))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct FailNextQuery {
    platform: Platform,
    kind: FailureKind,
}

/// `POST /_simulator/fail-next?platform=facebook&kind=window-closed`: the next send on that
/// platform fails so, whatever the shares say (repeat to queue several).
async fn fail_next(State(shared): State<Arc<Shared>>, Query(query): Query<FailNextQuery>) -> Response {
    shared.fail_next(query.platform, query.kind);
    StatusCode::NO_CONTENT.into_response()
}

/// The platforms' consent dialogs are not simulated: the page says so instead of a 404.
async fn consent_dialog() -> Response {
    (
        StatusCode::NOT_IMPLEMENTED,
        axum::response::Html(
            "<!doctype html><title>Snorq simulator</title><p>The platform simulator does not play the \
             Meta or TikTok consent dialog. The demo's connections already exist; to connect real \
             accounts, run the service against the real platforms.</p>",
        ),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct SendsQuery {
    platform: Option<Platform>,
    /// Only sends with a greater `seq`.
    #[serde(default)]
    after: u64,
}

/// `GET /_simulator/sends[?platform=..&after=seq]`: what the service sent, oldest first.
async fn sends(State(shared): State<Arc<Shared>>, Query(query): Query<SendsQuery>) -> Response {
    axum::Json(json!({"sends": shared.record.sends(query.platform, query.after)})).into_response()
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.record.stats()).into_response()
}

/// A 1×1 PNG, the picture behind every simulated image.
const PIXEL: [u8; 67] = [
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00,
    0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01,
    0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn media(Path(_file): Path<String>) -> Response {
    ([(header::CONTENT_TYPE, "image/png")], PIXEL.as_slice()).into_response()
}

async fn unknown(method: Method, uri: Uri) -> Response {
    tracing::warn!(%method, path = uri.path(), "the simulator does not play this call");
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            json!({"error": {"message": format!("the simulator does not play {method} {}", uri.path())}}),
        ),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use snorq_connectors::{Client, ClientConfig, ErrorClass, OutboundMessage, Secret, TikTokApp};

    use super::super::{Simulator, SimulatorConfig, failures::FailureMix};
    use super::*;

    async fn simulator(rule: Option<&str>) -> Simulator {
        let accounts = super::super::payloads::tests::accounts();
        let mut config = SimulatorConfig::new(accounts, None, 0.0);
        config.failures = FailureMix::new(rule.map(|r| r.parse().unwrap()).into_iter().collect()).unwrap();
        config.retry_after = Duration::from_secs(7);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Simulator::start(listener, config).await.unwrap()
    }

    fn client(simulator: &Simulator) -> Client {
        let config = ClientConfig {
            timeout: Duration::from_millis(500),
            ..ClientConfig::with_base_url(simulator.url())
        };
        Client::new(config).unwrap()
    }

    const PLATFORMS: [Platform; 3] = [Platform::WhatsApp, Platform::Facebook, Platform::TikTok];

    async fn send(
        client: &Client,
        platform: Platform,
    ) -> Result<snorq_connectors::SendReceipt, snorq_connectors::SendError> {
        let message = OutboundMessage::text("15550001234", "Your order shipped").correlation("ours-1");
        client
            .send(platform, "106540352242922", &Secret::new("token"), &message)
            .await
    }

    /// Every injected failure reaches the service as that platform's error, classified the way
    /// the service acts on it; the record shows each outcome.
    #[tokio::test]
    async fn injected_failures_are_the_platforms_own_errors() {
        let cases = [
            ("rate-limited", ErrorClass::RateLimited),
            ("server-error", ErrorClass::Transient),
            ("window-closed", ErrorClass::WindowClosed),
            ("token-expired", ErrorClass::Auth),
        ];
        for (kind, class) in cases {
            for platform in PLATFORMS {
                let simulator = simulator(Some(&format!("{platform}:{kind}=1"))).await;
                let client = client(&simulator);
                let error = send(&client, platform).await.unwrap_err();
                assert_eq!(error.class, class, "{platform} {kind}: {error:?}");
                if class == ErrorClass::RateLimited {
                    assert_eq!(error.retry_after, Some(Duration::from_secs(7)), "{platform}");
                }
                let other = PLATFORMS.into_iter().find(|p| *p != platform).unwrap();
                assert!(send(&client, other).await.is_ok(), "{kind} on {platform} only");
                let sends = simulator.sends();
                assert_eq!(sends.len(), 2);
                assert_eq!((sends[0].platform, sends[0].outcome.as_str()), (platform, kind));
                assert_eq!(
                    (sends[1].outcome.as_str(), sends[0].message_id.is_none()),
                    ("accepted", true)
                );
                simulator.stop().await;
            }
        }
    }

    #[tokio::test]
    async fn a_timeout_holds_the_call_until_the_caller_gives_up() {
        let simulator = simulator(Some("timeout=1")).await;
        let client = client(&simulator);
        let started = std::time::Instant::now();
        let error = send(&client, Platform::TikTok).await.unwrap_err();
        // The request was sent and nothing came back: it may have been accepted.
        assert_eq!(error.class, ErrorClass::OutcomeUnknown, "{error:?}");
        assert_eq!(error.http_status, None, "no answer came: {error:?}");
        assert!(started.elapsed() >= Duration::from_millis(500));
        // Stopping releases the held request at once.
        let stopped = std::time::Instant::now();
        simulator.stop().await;
        assert!(stopped.elapsed() < Duration::from_secs(5));
    }

    /// A caller that gives up before the answer (here its 500 ms timeout against 2 s of
    /// latency) does not undo the send: the platform accepted it on arrival.
    #[tokio::test]
    async fn a_send_whose_caller_hung_up_is_still_accepted_and_recorded() {
        let accounts = super::super::payloads::tests::accounts();
        let mut config = SimulatorConfig::new(accounts, None, 0.0);
        config.latency = Duration::from_secs(2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let simulator = Simulator::start(listener, config).await.unwrap();
        let client = client(&simulator);
        let error = send(&client, Platform::WhatsApp).await.unwrap_err();
        assert_eq!(
            error.http_status, None,
            "the caller gave up before any answer: {error:?}"
        );
        let sends = simulator.sends();
        assert_eq!(sends.len(), 1, "{sends:?}");
        assert_eq!(sends[0].outcome, "accepted");
        assert!(sends[0].message_id.is_some());
        simulator.stop().await;
    }

    /// `slow-accept` and `reset-after-accept` accept the send (recorded, receipts follow) and
    /// leave the caller without an answer: its outcome is unknown to it.
    #[tokio::test]
    async fn accepting_failures_record_the_send_and_leave_the_caller_in_doubt() {
        for (kind, hold) in [
            (FailureKind::SlowAccept, Duration::from_secs(2)),
            (FailureKind::ResetAfterAccept, Duration::ZERO),
        ] {
            let accounts = super::super::payloads::tests::accounts();
            let mut config = SimulatorConfig::new(accounts, None, 0.0);
            config.hold = hold;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let simulator = Simulator::start(listener, config).await.unwrap();
            simulator.fail_next(Platform::WhatsApp, kind);
            let error = send(&client(&simulator), Platform::WhatsApp).await.unwrap_err();
            assert_eq!(
                error.class,
                snorq_connectors::ErrorClass::OutcomeUnknown,
                "{kind}: {error:?}"
            );
            let sends = simulator.sends();
            assert_eq!(sends.len(), 1, "{sends:?}");
            assert_eq!(sends[0].outcome, "accepted", "{kind}");
            assert_eq!(sends[0].answer.as_deref(), Some(kind.as_str()));
            assert!(sends[0].message_id.is_some());
            simulator.stop().await;
        }
    }

    #[tokio::test]
    async fn accepted_sends_are_recorded_with_what_was_sent() {
        let simulator = simulator(None).await;
        let client = client(&simulator);
        for platform in PLATFORMS {
            let receipt = send(&client, platform).await.unwrap();
            let sent = simulator.sends().pop().unwrap();
            assert_eq!(sent.platform, platform);
            assert_eq!(sent.message_id.as_deref(), Some(receipt.message_id.as_str()));
            assert_eq!(sent.text.as_deref(), Some("Your order shipped"));
            assert_eq!(sent.recipient, "15550001234");
            assert_eq!(sent.outcome, "accepted");
            let correlation = (platform != Platform::TikTok).then_some("ours-1");
            assert_eq!(sent.correlation.as_deref(), correlation, "{platform}");
        }
        let listed: Value = reqwest::get(format!("{}/_simulator/sends?platform=tiktok", simulator.url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["sends"].as_array().unwrap().len(), 1);
        assert_eq!(listed["sends"][0]["platform"], "tiktok");
        let ids: std::collections::HashSet<_> = simulator
            .sends()
            .into_iter()
            .filter_map(|s| s.message_id)
            .collect();
        assert_eq!(ids.len(), 3, "ids are unique");
        simulator.stop().await;
    }

    #[tokio::test]
    async fn token_endpoints_issue_tokens_and_fail_on_demand() {
        let simulator = simulator(None).await;
        let client = client(&simulator);
        let app = TikTokApp {
            app_id: "sim-tiktok-app".into(),
            app_secret: Secret::new("secret"),
        };
        let first = client
            .tiktok_refresh_token(&app, &Secret::new("r0"))
            .await
            .unwrap();
        let second = client
            .tiktok_refresh_token(&app, &Secret::new("r1"))
            .await
            .unwrap();
        assert_ne!(
            first.refresh_token.expose(),
            second.refresh_token.expose(),
            "refresh tokens rotate"
        );
        assert_eq!(first.open_id.as_deref(), Some("-000SIMbusiness"));
        let info = client.tiktok_token_info(&app, &first.access_token).await.unwrap();
        assert_eq!(info.open_id.as_deref(), Some("-000SIMbusiness"));
        simulator.stop().await;

        let simulator = self::simulator(Some("tokens:token-expired=1")).await;
        let client = self::client(&simulator);
        let error = client
            .tiktok_refresh_token(&app, &Secret::new("r0"))
            .await
            .unwrap_err();
        assert_eq!((error.class, error.code), (ErrorClass::Auth, Some(40103)));
        assert!(
            send(&client, Platform::TikTok).await.is_ok(),
            "sends are not token calls"
        );
        let stats = simulator.stop().await;
        assert_eq!(
            super::super::Stats::count(&stats.tokens, "tiktok.refresh_token", "token-expired"),
            1
        );
    }
}
