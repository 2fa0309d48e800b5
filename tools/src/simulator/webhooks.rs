//! Posting webhooks to the service, signed as each platform signs them (docs/platforms.md,
//! "Meta webhook signature" and "TikTok webhook signature"), with a few retries the way the
//! platforms retry.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use snorq_connectors::Platform;
use snorq_connectors::verify::{meta_signature_header, signature_header, tiktok_signature_header};

use super::record::Record;

/// The app secrets the service verifies webhooks with; nothing is posted for a platform
/// without one.
#[derive(Clone, Default)]
pub struct Secrets {
    pub whatsapp: Option<SecretString>,
    pub facebook: Option<SecretString>,
    pub tiktok: Option<SecretString>,
}

impl Secrets {
    fn of(&self, platform: Platform) -> Option<&SecretString> {
        match platform {
            Platform::WhatsApp => self.whatsapp.as_ref(),
            Platform::Facebook => self.facebook.as_ref(),
            Platform::TikTok => self.tiktok.as_ref(),
        }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(***)")
    }
}

/// Tries per webhook; between them 0.5 s, then 1 s.
const ATTEMPTS: u32 = 3;

/// Where webhooks go: `{base_url}/webhooks/{platform}`.
pub struct WebhookTarget {
    base_url: String,
    secrets: Secrets,
    http: reqwest::Client,
}

/// How a webhook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// 2xx.
    Accepted,
    /// A 4xx other than 429: retrying would not help (e.g. a wrong secret).
    Rejected(u16),
    /// No answer, 429 or 5xx on every attempt.
    Failed,
    /// Not posted: no secret to sign it with.
    Unsigned,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Accepted => "accepted",
            Delivery::Rejected(_) => "rejected",
            Delivery::Failed => "failed",
            Delivery::Unsigned => "unsigned",
        }
    }
}

impl WebhookTarget {
    pub fn new(base_url: &str, secrets: Secrets) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(WebhookTarget {
            base_url: base_url.trim_end_matches('/').to_owned(),
            secrets,
            http,
        })
    }

    pub fn url(&self, platform: Platform) -> String {
        format!("{}/webhooks/{platform}", self.base_url)
    }

    pub fn can_sign(&self, platform: Platform) -> bool {
        self.secrets.of(platform).is_some()
    }

    /// The headers a platform sends with `body`, signed now; `None` without the secret.
    pub fn signed_headers(&self, platform: Platform, body: &[u8]) -> Option<[(&'static str, String); 2]> {
        let secret = self.secrets.of(platform)?.expose_secret().as_bytes();
        let signature = match platform {
            Platform::WhatsApp | Platform::Facebook => meta_signature_header(secret, body),
            Platform::TikTok => tiktok_signature_header(secret, chrono::Utc::now().timestamp(), body),
        };
        Some([
            ("content-type", "application/json".to_owned()),
            (signature_header(platform), signature),
        ])
    }

    /// Posts `body`, retrying on no answer, 429 and 5xx; counts the outcome under `record`.
    pub async fn deliver(&self, record: &Record, platform: Platform, body: &Value) -> Delivery {
        if !self.can_sign(platform) {
            record.webhook(platform, Delivery::Unsigned.as_str());
            return Delivery::Unsigned;
        }
        let body = body.to_string().into_bytes();
        let mut outcome = Delivery::Failed;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
            // Signed per attempt: TikTok's signature carries the time.
            let mut request = self.http.post(self.url(platform)).body(body.clone());
            for (name, value) in self.signed_headers(platform, &body).into_iter().flatten() {
                request = request.header(name, value);
            }
            match request.send().await {
                Ok(reply) if reply.status().is_success() => {
                    outcome = Delivery::Accepted;
                    break;
                }
                Ok(reply) if reply.status().is_client_error() && reply.status().as_u16() != 429 => {
                    let status = reply.status().as_u16();
                    tracing::warn!(%platform, status, "the service refused a simulated webhook");
                    outcome = Delivery::Rejected(status);
                    break;
                }
                Ok(reply) => {
                    tracing::debug!(%platform, status = reply.status().as_u16(), attempt, "webhook not taken, retrying");
                }
                Err(error) => tracing::debug!(%platform, %error, attempt, "webhook not delivered, retrying"),
            }
        }
        if outcome == Delivery::Failed {
            tracing::warn!(%platform, "a simulated webhook could not be delivered");
        }
        record.webhook(platform, outcome.as_str());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use snorq_connectors::verify::verify_signature;

    use super::*;

    #[test]
    fn headers_pass_the_services_verification() {
        let secrets = Secrets {
            whatsapp: Some("wa-secret".into()),
            facebook: Some("fb-secret".into()),
            tiktok: Some("tt-secret".into()),
        };
        let target = WebhookTarget::new("http://127.0.0.1:1/", secrets).unwrap();
        assert_eq!(target.url(Platform::TikTok), "http://127.0.0.1:1/webhooks/tiktok");
        let body = br#"{"object":"page"}"#;
        let unsigned = WebhookTarget::new("http://127.0.0.1:1", Secrets::default()).unwrap();
        assert!(!unsigned.can_sign(Platform::WhatsApp));
        assert!(unsigned.signed_headers(Platform::WhatsApp, body).is_none());
        for (platform, secret) in [
            (Platform::WhatsApp, "wa-secret"),
            (Platform::Facebook, "fb-secret"),
            (Platform::TikTok, "tt-secret"),
        ] {
            let [_, (name, value)] = target.signed_headers(platform, body).unwrap();
            assert_eq!(name, signature_header(platform));
            let (now, tolerance) = (chrono::Utc::now(), Duration::from_secs(300));
            let check =
                |secret: &[u8]| verify_signature(platform, secret, Some(&value), body, now, tolerance);
            assert!(check(secret.as_bytes()).is_ok(), "{platform}");
            assert!(check(b"another secret").is_err(), "{platform}");
        }
    }
}
