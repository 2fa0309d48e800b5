//! OAuth token calls: Meta code exchange (and short- to long-lived exchange), TikTok code
//! exchange and refresh. Hosts come from [`ClientConfig`](crate::send::ClientConfig).

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::Platform;
use crate::classify::{TokenError, classify_graph};
use crate::json::{opt_int, opt_text};
use crate::secret::Secret;
use crate::send::{Client, graph_error, unreadable_success};
use crate::tiktok;

/// A Meta app (WhatsApp and Messenger share the Graph OAuth endpoint).
#[derive(Debug, Clone)]
pub struct MetaApp {
    pub app_id: String,
    pub app_secret: Secret,
}

/// A TikTok API for Business app (`client_id` = app id, `client_secret` = app secret).
#[derive(Debug, Clone)]
pub struct TikTokApp {
    pub app_id: String,
    pub app_secret: Secret,
}

/// A Meta access token. `expires_in` is absent for tokens that do not expire (e.g. Business
/// Integration System User tokens from Embedded Signup).
#[derive(Debug, Clone)]
pub struct MetaToken {
    pub access_token: Secret,
    pub token_type: Option<String>,
    pub expires_in: Option<Duration>,
}

/// TikTok tokens: access (24 h) and refresh (365 d). Store the refresh token every time: TikTok
/// may rotate it.
#[derive(Debug, Clone)]
pub struct TikTokTokens {
    pub access_token: Secret,
    pub expires_in: Option<Duration>,
    pub refresh_token: Secret,
    pub refresh_expires_in: Option<Duration>,
    /// The business account's `open_id`: the `business_id` of later calls and the webhook
    /// `user_openid`.
    pub open_id: Option<String>,
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct MetaTokenResponse {
    #[serde(default, deserialize_with = "opt_text")]
    access_token: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    token_type: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    expires_in: Option<i64>,
}

#[derive(Deserialize)]
struct TikTokTokenData {
    #[serde(default, deserialize_with = "opt_text")]
    access_token: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    expires_in: Option<i64>,
    #[serde(default, deserialize_with = "opt_text")]
    refresh_token: Option<String>,
    #[serde(default, deserialize_with = "opt_int")]
    refresh_token_expires_in: Option<i64>,
    #[serde(default, deserialize_with = "opt_text")]
    open_id: Option<String>,
    #[serde(default, deserialize_with = "opt_text")]
    scope: Option<String>,
}

#[derive(Serialize)]
struct TikTokTokenRequest<'a> {
    client_id: &'a str,
    client_secret: &'a str,
    grant_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redirect_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

fn seconds(value: Option<i64>) -> Option<Duration> {
    value.filter(|s| *s > 0).and_then(Duration::try_seconds)
}

impl Client {
    /// Exchanges an OAuth `code` (Facebook Login, or WhatsApp Embedded Signup, which passes no
    /// `redirect_uri`) for an access token; `platform` (WhatsApp or Facebook) labels errors.
    /// `GET {graph}/{version}/oauth/access_token?client_id&client_secret&code[&redirect_uri]`.
    pub async fn meta_exchange_code(
        &self,
        platform: Platform,
        app: &MetaApp,
        code: &Secret,
        redirect_uri: Option<&str>,
    ) -> Result<MetaToken, TokenError> {
        let mut params = vec![
            ("client_id", app.app_id.as_str()),
            ("client_secret", app.app_secret.expose()),
            ("code", code.expose()),
        ];
        if let Some(redirect_uri) = redirect_uri {
            params.push(("redirect_uri", redirect_uri));
        }
        self.meta_token(platform, &params, &[&app.app_secret, code]).await
    }

    /// Exchanges a short-lived user token for a long-lived one (~60 days):
    /// `grant_type=fb_exchange_token`.
    pub async fn meta_exchange_long_lived(
        &self,
        platform: Platform,
        app: &MetaApp,
        short_lived_token: &Secret,
    ) -> Result<MetaToken, TokenError> {
        let params = [
            ("grant_type", "fb_exchange_token"),
            ("client_id", app.app_id.as_str()),
            ("client_secret", app.app_secret.expose()),
            ("fb_exchange_token", short_lived_token.expose()),
        ];
        self.meta_token(platform, &params, &[&app.app_secret, short_lived_token])
            .await
    }

    async fn meta_token(
        &self,
        platform: Platform,
        params: &[(&str, &str)],
        secrets: &[&Secret],
    ) -> Result<MetaToken, TokenError> {
        let mut url = reqwest::Url::parse(&self.config().graph_url("oauth/access_token"))
            .map_err(|e| TokenError::invalid_request(platform, format!("bad Graph URL: {e}")))?;
        url.query_pairs_mut().extend_pairs(params);
        let reply = self.execute(platform, self.http().get(url), secrets).await?;
        if !(200..300).contains(&reply.status) {
            return Err(graph_error(platform, &reply, secrets, |code, _, status| {
                classify_graph(code, status)
            }));
        }
        let response = serde_json::from_slice::<MetaTokenResponse>(&reply.body).ok();
        let Some(response) = response.filter(|r| r.access_token.is_some()) else {
            return Err(unreadable_success(platform, &reply, "access_token"));
        };
        Ok(MetaToken {
            access_token: Secret::new(response.access_token.unwrap_or_default()),
            token_type: response.token_type,
            expires_in: seconds(response.expires_in),
        })
    }

    /// Exchanges a TikTok authorization code: `POST /tt_user/oauth2/token/`.
    pub async fn tiktok_exchange_code(
        &self,
        app: &TikTokApp,
        auth_code: &Secret,
        redirect_uri: &str,
    ) -> Result<TikTokTokens, TokenError> {
        let request = TikTokTokenRequest {
            client_id: &app.app_id,
            client_secret: app.app_secret.expose(),
            grant_type: "authorization_code",
            auth_code: Some(auth_code.expose()),
            redirect_uri: Some(redirect_uri),
            refresh_token: None,
        };
        self.tiktok_token("tt_user/oauth2/token/", &request, &[&app.app_secret, auth_code])
            .await
    }

    /// Refreshes a TikTok access token: `POST /tt_user/oauth2/refresh_token/`. An `auth` error
    /// (40103 / 40107) means the refresh token is dead and the user must reconnect.
    pub async fn tiktok_refresh_token(
        &self,
        app: &TikTokApp,
        refresh_token: &Secret,
    ) -> Result<TikTokTokens, TokenError> {
        let request = TikTokTokenRequest {
            client_id: &app.app_id,
            client_secret: app.app_secret.expose(),
            grant_type: "refresh_token",
            auth_code: None,
            redirect_uri: None,
            refresh_token: Some(refresh_token.expose()),
        };
        self.tiktok_token(
            "tt_user/oauth2/refresh_token/",
            &request,
            &[&app.app_secret, refresh_token],
        )
        .await
    }

    async fn tiktok_token(
        &self,
        path: &str,
        request: &TikTokTokenRequest<'_>,
        secrets: &[&Secret],
    ) -> Result<TikTokTokens, TokenError> {
        const PLATFORM: Platform = Platform::TikTok;
        let http_request = self.http().post(self.config().tiktok_url(path)).json(request);
        let reply = self.execute(PLATFORM, http_request, secrets).await?;
        let data: Option<TikTokTokenData> = tiktok::read_response(&reply, secrets)?;
        let Some(data) = data else {
            return Err(unreadable_success(PLATFORM, &reply, "data"));
        };
        let (Some(access_token), Some(refresh_token)) = (data.access_token, data.refresh_token) else {
            return Err(unreadable_success(PLATFORM, &reply, "access and refresh tokens"));
        };
        Ok(TikTokTokens {
            access_token: Secret::new(access_token),
            expires_in: seconds(data.expires_in),
            refresh_token: Secret::new(refresh_token),
            refresh_expires_in: seconds(data.refresh_token_expires_in),
            open_id: data.open_id,
            scope: data.scope,
        })
    }
}
