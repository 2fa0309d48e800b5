//! Verifying webhooks: the platforms' app secrets and Meta's handshake token.

use secrecy::SecretString;

use super::RawConfig;

/// Webhook verification secrets. Debug shows only which are set.
#[derive(Clone, Default)]
pub struct WebhookConfig {
    pub whatsapp_app_secret: Option<SecretString>,
    pub facebook_app_secret: Option<SecretString>,
    pub tiktok_app_secret: Option<SecretString>,
    pub meta_verify_token: Option<SecretString>,
    pub tiktok_tolerance: std::time::Duration,
}

impl WebhookConfig {
    /// The secret that signs this platform's webhooks, if configured.
    pub fn app_secret(&self, platform: snorq_connectors::Platform) -> Option<&SecretString> {
        use snorq_connectors::Platform;
        match platform {
            Platform::WhatsApp => self.whatsapp_app_secret.as_ref(),
            Platform::Facebook => self.facebook_app_secret.as_ref(),
            Platform::TikTok => self.tiktok_app_secret.as_ref(),
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<SecretString>| if s.is_some() { "set" } else { "unset" };
        f.debug_struct("WebhookConfig")
            .field("whatsapp_app_secret", &set(&self.whatsapp_app_secret))
            .field("facebook_app_secret", &set(&self.facebook_app_secret))
            .field("tiktok_app_secret", &set(&self.tiktok_app_secret))
            .field("meta_verify_token", &set(&self.meta_verify_token))
            .field("tiktok_tolerance", &self.tiktok_tolerance)
            .finish()
    }
}

impl WebhookConfig {
    /// Blank secrets count as unset (the route then refuses every POST: fail closed).
    pub(super) fn from_raw(raw: &RawConfig) -> Self {
        let secret = |value: &Option<String>| {
            value
                .as_deref()
                .filter(|v| !v.trim().is_empty())
                .map(|v| SecretString::from(v.to_owned()))
        };
        WebhookConfig {
            whatsapp_app_secret: secret(&raw.whatsapp_app_secret),
            facebook_app_secret: secret(&raw.facebook_app_secret),
            tiktok_app_secret: secret(&raw.tiktok_app_secret),
            meta_verify_token: secret(&raw.meta_verify_token),
            tiktok_tolerance: std::time::Duration::from_secs(raw.tiktok_timestamp_tolerance_secs),
        }
    }
}
