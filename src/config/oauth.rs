//! The connect flows: where platforms send users back, and the apps' ids.

use super::{ConfigError, RawConfig, http_url};

/// The connect flows: where platforms send users back, and the apps' ids.
#[derive(Debug, Clone, Default)]
pub struct OAuthConfig {
    /// `{public_url}/oauth/{platform}/callback` is the redirect URI given to the platforms.
    pub public_url: Option<String>,
    pub return_url: Option<String>,
    pub whatsapp_app_id: Option<String>,
    pub facebook_app_id: Option<String>,
    pub tiktok_app_id: Option<String>,
    pub whatsapp_config_id: Option<String>,
}

impl OAuthConfig {
    pub fn app_id(&self, platform: snorq_connectors::Platform) -> Option<&str> {
        use snorq_connectors::Platform;
        match platform {
            Platform::WhatsApp => self.whatsapp_app_id.as_deref(),
            Platform::Facebook => self.facebook_app_id.as_deref(),
            Platform::TikTok => self.tiktok_app_id.as_deref(),
        }
    }
}

impl OAuthConfig {
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let public_url = http_url("public_url", &raw.public_url)?.map(|u| u.trim_end_matches('/').to_owned());
        let return_url = http_url("oauth_return_url", &raw.oauth_return_url)?;
        let id = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let oauth = OAuthConfig {
            whatsapp_app_id: id(&raw.whatsapp_app_id),
            facebook_app_id: id(&raw.facebook_app_id),
            tiktok_app_id: id(&raw.tiktok_app_id),
            whatsapp_config_id: id(&raw.whatsapp_config_id),
            public_url,
            return_url,
        };
        let any_app = [
            &oauth.whatsapp_app_id,
            &oauth.facebook_app_id,
            &oauth.tiktok_app_id,
        ]
        .iter()
        .any(|a| a.is_some());
        if any_app && oauth.public_url.is_none() {
            return Err(ConfigError::new(
                "public_url",
                "required with an app id: the platforms redirect to {public_url}/oauth/{platform}/callback",
            ));
        }
        Ok(oauth)
    }
}
