//! The platforms Snorq connects to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A messaging platform. Serialized lowercase (`whatsapp`, `facebook`, `tiktok`), which is also
/// how it appears in URLs (`/webhooks/whatsapp`) and in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// WhatsApp Cloud API; the account is a business phone number (`phone_number_id`).
    #[serde(rename = "whatsapp")]
    WhatsApp,
    /// Facebook Messenger; the account is a Facebook Page (Page id).
    Facebook,
    /// TikTok Business Messaging; the account is a TikTok business `open_id`.
    #[serde(rename = "tiktok")]
    TikTok,
}

impl Platform {
    pub const ALL: [Platform; 3] = [Platform::WhatsApp, Platform::Facebook, Platform::TikTok];

    /// The lowercase name used in JSON, URLs and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::WhatsApp => "whatsapp",
            Platform::Facebook => "facebook",
            Platform::TikTok => "tiktok",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name was not one of `whatsapp`, `facebook`, `tiktok`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform {0:?}: expected whatsapp, facebook or tiktok")]
pub struct UnknownPlatform(pub String);

impl FromStr for Platform {
    type Err = UnknownPlatform;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "whatsapp" => Ok(Platform::WhatsApp),
            "facebook" => Ok(Platform::Facebook),
            "tiktok" => Ok(Platform::TikTok),
            other => Err(UnknownPlatform(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_json() {
        for p in Platform::ALL {
            assert_eq!(p.as_str().parse::<Platform>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{}\"", p.as_str()));
        }
        assert!("WhatsApp".parse::<Platform>().is_err());
    }
}
