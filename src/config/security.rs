//! What limits callers and what they are trusted with.

use super::{ConfigError, RawConfig};

/// What limits callers and what they are trusted with: sign-in and signup limits, the password
/// hashing pool, live-stream limits, proxies and cookies.
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    pub login_limits: crate::app::LoginLimits,
    pub signups_per_hour: u32,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub password_hash_threads: usize,
    pub password_hash_queue: usize,
    pub live_streams_per_user: usize,
    pub live_streams_per_org: usize,
    pub cookie_secure: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig::from_raw(&RawConfig::default()).unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}

impl SecurityConfig {
    pub(super) fn from_raw(raw: &RawConfig) -> Result<Self, ConfigError> {
        let at_least_one = |name: &str, value: u64| {
            if value == 0 {
                Err(ConfigError::new(name, "must be at least 1"))
            } else {
                Ok(())
            }
        };
        at_least_one("login_failures_per_pair", raw.login_failures_per_pair.into())?;
        at_least_one(
            "login_failures_per_address",
            raw.login_failures_per_address.into(),
        )?;
        at_least_one("signups_per_hour", raw.signups_per_hour.into())?;
        at_least_one("live_streams_per_user", raw.live_streams_per_user as u64)?;
        at_least_one("live_streams_per_org", raw.live_streams_per_org as u64)?;
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::new(
                            "trusted_proxies",
                            format!("{p:?} is not an address or CIDR range"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let password_hash_threads = match raw.password_hash_threads {
            Some(0) => return Err(ConfigError::new("password_hash_threads", "must be at least 1")),
            Some(n) if n > 256 => {
                return Err(ConfigError::new("password_hash_threads", "must be at most 256"));
            }
            Some(n) => n,
            None => cores,
        };
        let https = raw
            .public_url
            .as_deref()
            .is_some_and(|u| u.trim().to_ascii_lowercase().starts_with("https://"));
        Ok(SecurityConfig {
            login_limits: crate::app::LoginLimits {
                pair_failures: raw.login_failures_per_pair,
                address_failures: raw.login_failures_per_address,
            },
            signups_per_hour: raw.signups_per_hour,
            trusted_proxies,
            password_hash_threads,
            password_hash_queue: raw.password_hash_queue,
            live_streams_per_user: raw.live_streams_per_user,
            live_streams_per_org: raw.live_streams_per_org,
            cookie_secure: raw.cookie_secure.unwrap_or(https),
        })
    }

    /// Whether a socket peer is one of our reverse proxies.
    pub fn is_trusted_proxy(&self, addr: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&addr))
    }
}
