//! Account calls after OAuth: who the token belongs to, the user's Pages and their tokens,
//! subscribing our app to a Page's or WABA's webhooks, and token introspection.
//!
//! Graph calls send the token as `Authorization: Bearer` (never in the URL), except
//! `debug_token`, whose parameters are defined as query parameters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Platform;
use crate::classify::{ApiError, ErrorClass, classify_graph, classify_messenger, classify_whatsapp};
use crate::json::{non_empty, opt_bool, opt_int, opt_text};
use crate::secret::{Secret, scrub};
use crate::send::{Client, HttpReply, check_path_segment, graph_error, unreadable_success};
use crate::tiktok;
use crate::token::{MetaApp, TikTokApp};

/// The Messenger webhook fields a Page is subscribed to
/// (docs/platforms.md, "Messenger webhooks").
const PAGE_SUBSCRIBED_FIELDS: &str = "messages,message_deliveries,message_reads,message_echoes,\
                                      messaging_postbacks,message_reactions,messaging_referrals";
/// `/me/accounts` page size: most users fit in one request.
const PAGES_PER_REQUEST: &str = "100";
/// A bound on `/me/accounts` paging, so a misbehaving cursor cannot loop forever.
const MAX_PAGE_REQUESTS: usize = 20;

/// The Facebook user (or system user) a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaUser {
    pub id: String,
    pub name: Option<String>,
}

/// A Facebook Page the user manages, with its Page token (no expiry when obtained with a
/// long-lived user token; docs/platforms.md, "Meta tokens").
#[derive(Debug, Clone)]
pub struct MetaPage {
    pub id: String,
    pub name: Option<String>,
    pub access_token: Secret,
}

/// What Graph `debug_token` says about a token: is it still usable, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaTokenInfo {
    pub is_valid: bool,
    /// `None` when the token never expires (Graph reports `0`).
    pub expires_at: Option<DateTime<Utc>>,
    pub user_id: Option<String>,
    /// Why the token is invalid (`data.error.message`), scrubbed of the secrets sent.
    pub error_message: Option<String>,
    /// The WhatsApp Business Accounts the token manages: the `target_ids` of its
    /// `whatsapp_business_management` granular scope.
    pub whatsapp_waba_ids: Vec<String>,
}

/// What TikTok `token_info` says about an access token: whose it is and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TikTokTokenInfo {
    /// The business account's `open_id` (TikTok calls it `creator_id` in this response).
    pub open_id: Option<String>,
    /// Comma-separated granted scopes.
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct MeResponse {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    name: Option<String>,
}

#[derive(Deserialize)]
struct AccountsResponse {
    /// Elements are read one by one so one odd element cannot hide the other Pages.
    data: Option<Vec<serde_json::Value>>,
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    cursors: Option<Cursors>,
    #[serde(default, deserialize_with = "opt_text")]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default, deserialize_with = "opt_text")]
    after: Option<String>,
}

#[derive(Deserialize)]
struct PageEntry {
    #[serde(default, deserialize_with = "opt_text")]
    id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct SuccessResponse {
    #[serde(default, deserialize_with = "opt_bool")]
    success: Option<bool>,
}

#[derive(Deserialize)]
struct DebugTokenResponse {
    data: Option<DebugTokenData>,
}

#[derive(Deserialize)]
struct DebugTokenData {
    #[serde(default, deserialize_with = "opt_bool")]
    is_valid: Option<bool>,
    #[serde(default, deserialize_with = "opt_int")]
    expires_at: Option<i64>,
    #[serde(default, deserialize_with = "opt_text")]
    user_id: Option<String>,
    error: Option<DebugTokenError>,
    /// Read element by element: one odd entry does not hide the others.
    granular_scopes: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct GranularScope {
    #[serde(default, deserialize_with = "opt_text")]
    scope: Option<String>,
    #[serde(default)]
    target_ids: Vec<serde_json::Value>,
}

/// The ids a token's `whatsapp_business_management` scope covers: the WABA ids
/// (docs/platforms.md, "Meta tokens").
fn waba_ids(scopes: Option<Vec<serde_json::Value>>) -> Vec<String> {
    scopes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|value| serde_json::from_value::<GranularScope>(value).ok())
        .filter(|s| s.scope.as_deref() == Some("whatsapp_business_management"))
        .flat_map(|s| s.target_ids)
        .filter_map(|id| match id {
            serde_json::Value::String(s) => non_empty(Some(s)),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

#[derive(Deserialize)]
struct DebugTokenError {
    #[serde(default, deserialize_with = "opt_text")]
    message: Option<String>,
}

#[derive(Serialize)]
struct TikTokTokenInfoRequest<'a> {
    app_id: &'a str,
    access_token: &'a str,
}

#[derive(Deserialize)]
struct TikTokTokenInfoData {
    #[serde(default, deserialize_with = "opt_text")]
    open_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    creator_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    scope: Option<String>,
}

impl Client {
    /// The user behind a token (`GET /me?fields=id,name`); `platform` labels errors.
    pub async fn meta_me(&self, platform: Platform, user_token: &Secret) -> Result<MetaUser, ApiError> {
        let url = self.graph_url_with(platform, "me", &[("fields", "id,name")])?;
        let request = self.http().get(url).bearer_auth(user_token.expose());
        let reply = self.execute(platform, request, &[user_token]).await?;
        check_graph_status(platform, &reply, &[user_token], graph_classify)?;
        let response = serde_json::from_slice::<MeResponse>(&reply.body).ok();
        let Some((id, name)) = response.and_then(|r| Some((non_empty(r.id)?, non_empty(r.name)))) else {
            return Err(unreadable_success(platform, &reply, "id"));
        };
        Ok(MetaUser { id, name })
    }

    /// The Pages the user manages, with their Page tokens (`GET /me/accounts`). Follows
    /// `paging.cursors.after` against the configured host (never the returned `next` URL, which
    /// could point anywhere and may carry the token), up to 20 requests. Pages without an id or
    /// token (the user lacks a task on them) are skipped.
    pub async fn meta_pages(&self, user_token: &Secret) -> Result<Vec<MetaPage>, ApiError> {
        const PLATFORM: Platform = Platform::Facebook;
        let mut pages = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGE_REQUESTS {
            let mut params = vec![("fields", "id,name,access_token"), ("limit", PAGES_PER_REQUEST)];
            if let Some(cursor) = after.as_deref() {
                params.push(("after", cursor));
            }
            let url = self.graph_url_with(PLATFORM, "me/accounts", &params)?;
            let request = self.http().get(url).bearer_auth(user_token.expose());
            let reply = self.execute(PLATFORM, request, &[user_token]).await?;
            check_graph_status(PLATFORM, &reply, &[user_token], graph_classify)?;
            let response = serde_json::from_slice::<AccountsResponse>(&reply.body).ok();
            let Some((data, paging)) = response.and_then(|r| Some((r.data?, r.paging))) else {
                return Err(unreadable_success(PLATFORM, &reply, "data"));
            };
            pages.extend(data.into_iter().filter_map(|value| {
                let entry = serde_json::from_value::<PageEntry>(value).ok()?;
                Some(MetaPage {
                    id: non_empty(entry.id)?,
                    name: non_empty(entry.name),
                    access_token: Secret::new(non_empty(entry.access_token)?),
                })
            }));
            let next_cursor = paging
                .filter(|p| p.next.is_some())
                .and_then(|p| p.cursors?.after)
                .filter(|cursor| !cursor.is_empty() && after.as_deref() != Some(cursor.as_str()));
            match next_cursor {
                Some(cursor) => after = Some(cursor),
                None => return Ok(pages),
            }
        }
        tracing::warn!(
            pages = pages.len(),
            requests = MAX_PAGE_REQUESTS,
            "stopped following /me/accounts paging; some Pages may be missing"
        );
        Ok(pages)
    }

    /// Subscribes our app to a Page's Messenger webhooks (`POST /{page_id}/subscribed_apps`
    /// with the Page token); without it no messages arrive.
    pub async fn meta_subscribe_page(&self, page_id: &str, page_token: &Secret) -> Result<(), ApiError> {
        const PLATFORM: Platform = Platform::Facebook;
        check_path_segment(PLATFORM, "Page id", page_id)?;
        let url = self.graph_url_with(
            PLATFORM,
            &format!("{page_id}/subscribed_apps"),
            &[("subscribed_fields", PAGE_SUBSCRIBED_FIELDS)],
        )?;
        self.subscribe(PLATFORM, url, page_token, classify_messenger)
            .await
    }

    /// Subscribes our app to a WhatsApp Business Account's webhooks (`POST
    /// /{waba_id}/subscribed_apps`), the step after Embedded Signup.
    pub async fn whatsapp_subscribe_waba(&self, waba_id: &str, token: &Secret) -> Result<(), ApiError> {
        const PLATFORM: Platform = Platform::WhatsApp;
        check_path_segment(PLATFORM, "WABA id", waba_id)?;
        let url = self.graph_url_with(PLATFORM, &format!("{waba_id}/subscribed_apps"), &[])?;
        self.subscribe(PLATFORM, url, token, |code, _, status| {
            classify_whatsapp(code, status)
        })
        .await
    }

    /// The phone number ids of a WhatsApp Business Account (`GET /{waba_id}/phone_numbers`,
    /// first 100): the numbers a token really reaches, so a number reported by the browser can
    /// be checked before it is connected.
    pub async fn whatsapp_phone_numbers(
        &self,
        waba_id: &str,
        token: &Secret,
    ) -> Result<Vec<String>, ApiError> {
        const PLATFORM: Platform = Platform::WhatsApp;
        check_path_segment(PLATFORM, "WABA id", waba_id)?;
        let url = self.graph_url_with(
            PLATFORM,
            &format!("{waba_id}/phone_numbers"),
            &[("fields", "id"), ("limit", "100")],
        )?;
        let request = self.http().get(url).bearer_auth(token.expose());
        let reply = self.execute(PLATFORM, request, &[token]).await?;
        check_graph_status(PLATFORM, &reply, &[token], |code, _, status| {
            classify_whatsapp(code, status)
        })?;
        let response = serde_json::from_slice::<AccountsResponse>(&reply.body).ok();
        let Some(data) = response.and_then(|r| r.data) else {
            return Err(unreadable_success(PLATFORM, &reply, "data"));
        };
        Ok(data
            .into_iter()
            .filter_map(|value| non_empty(serde_json::from_value::<PageEntry>(value).ok()?.id))
            .collect())
    }

    async fn subscribe(
        &self,
        platform: Platform,
        url: reqwest::Url,
        token: &Secret,
        classify: impl Fn(i64, Option<i64>, Option<u16>) -> ErrorClass,
    ) -> Result<(), ApiError> {
        let request = self.http().post(url).bearer_auth(token.expose());
        let reply = self.execute(platform, request, &[token]).await?;
        check_graph_status(platform, &reply, &[token], classify)?;
        let success = serde_json::from_slice::<SuccessResponse>(&reply.body)
            .ok()
            .and_then(|r| r.success);
        match success {
            Some(true) => Ok(()),
            Some(false) => Err(ApiError {
                http_status: Some(reply.status),
                ..ApiError::new(
                    platform,
                    ErrorClass::Permanent,
                    "the platform answered success: false to the webhook subscription",
                )
            }),
            None => Err(unreadable_success(platform, &reply, "success")),
        }
    }

    /// Introspects a token with the app token (`GET /debug_token`): valid or not, expiry, and
    /// whose. An invalid token is `Ok` with `is_valid: false`; `platform` labels errors.
    pub async fn meta_debug_token(
        &self,
        platform: Platform,
        app: &MetaApp,
        input_token: &Secret,
    ) -> Result<MetaTokenInfo, ApiError> {
        let app_token = format!("{}|{}", app.app_id, app.app_secret.expose());
        let url = self.graph_url_with(
            platform,
            "debug_token",
            &[
                ("input_token", input_token.expose()),
                ("access_token", &app_token),
            ],
        )?;
        let secrets = [&app.app_secret, input_token];
        let reply = self.execute(platform, self.http().get(url), &secrets).await?;
        check_graph_status(platform, &reply, &secrets, graph_classify)?;
        let data = serde_json::from_slice::<DebugTokenResponse>(&reply.body)
            .ok()
            .and_then(|r| r.data);
        let Some(data) = data.filter(|d| d.is_valid.is_some()) else {
            return Err(unreadable_success(platform, &reply, "data.is_valid"));
        };
        Ok(MetaTokenInfo {
            is_valid: data.is_valid.unwrap_or(false),
            expires_at: data
                .expires_at
                .filter(|at| *at > 0)
                .and_then(|at| DateTime::from_timestamp(at, 0)),
            user_id: non_empty(data.user_id).filter(|id| id != "0"),
            error_message: non_empty(data.error.and_then(|e| e.message)).map(|m| scrub(m, &secrets)),
            whatsapp_waba_ids: waba_ids(data.granular_scopes),
        })
    }

    /// Introspects a TikTok access token (`POST /tt_user/token_info/get/`): the account and
    /// granted scopes. A dead token is an `auth` error (40102 / 40104 / 40105).
    pub async fn tiktok_token_info(
        &self,
        app: &TikTokApp,
        access_token: &Secret,
    ) -> Result<TikTokTokenInfo, ApiError> {
        const PLATFORM: Platform = Platform::TikTok;
        let body = TikTokTokenInfoRequest {
            app_id: &app.app_id,
            access_token: access_token.expose(),
        };
        let request = self
            .http()
            .post(self.config().tiktok_url("tt_user/token_info/get/"))
            .json(&body);
        let reply = self.execute(PLATFORM, request, &[access_token]).await?;
        let data: Option<TikTokTokenInfoData> = tiktok::read_response(&reply, &[access_token])?;
        let Some(data) = data else {
            return Err(unreadable_success(PLATFORM, &reply, "data"));
        };
        Ok(TikTokTokenInfo {
            open_id: non_empty(data.open_id).or_else(|| non_empty(data.creator_id)),
            scope: non_empty(data.scope),
        })
    }

    /// `{graph}/{version}/{path}?{params}`, form-encoded.
    fn graph_url_with(
        &self,
        platform: Platform,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<reqwest::Url, ApiError> {
        let mut url = reqwest::Url::parse(&self.config().graph_url(path))
            .map_err(|e| ApiError::invalid_request(platform, format!("bad Graph URL: {e}")))?;
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(params);
        }
        Ok(url)
    }
}

/// Graph core endpoints (`/me`, `/debug_token`) answer with the generic Graph codes.
fn graph_classify(code: i64, _subcode: Option<i64>, status: Option<u16>) -> ErrorClass {
    classify_graph(code, status)
}

fn check_graph_status(
    platform: Platform,
    reply: &HttpReply,
    secrets: &[&Secret],
    classify: impl Fn(i64, Option<i64>, Option<u16>) -> ErrorClass,
) -> Result<(), ApiError> {
    if (200..300).contains(&reply.status) {
        Ok(())
    } else {
        Err(graph_error(platform, reply, secrets, classify))
    }
}
