//! Failure injection: which share of the simulated platforms' answers fail, and how.
//!
//! Rules read `[SCOPE:]KIND=SHARE`, e.g. `rate-limited=0.1` (every send API),
//! `facebook:window-closed=1` (Messenger sends only) or `tokens:server-error=0.5` (the token
//! endpoints). A rule for one platform replaces the general rule of the same kind there.

use std::fmt;
use std::str::FromStr;

use snorq_connectors::Platform;

/// How a simulated platform call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// HTTP 429 (TikTok: its QPS code) with `Retry-After`.
    RateLimited,
    /// HTTP 5xx.
    ServerError,
    /// No answer: the request is held until the caller gives up.
    Timeout,
    /// The platform's "outside the reply window" error (sends only).
    WindowClosed,
    /// The platform's "access token expired" error (on the token endpoints: the refresh token).
    TokenExpired,
    /// Sends: accepted (recorded, receipts and echoes follow) but answered only after the
    /// hold, so the caller times out not knowing. Token endpoints: held like `timeout`.
    SlowAccept,
    /// Sends: accepted (recorded, receipts and echoes follow), then the connection is cut
    /// mid-answer. Token endpoints: cut without a usable answer.
    ResetAfterAccept,
}

impl FailureKind {
    pub const ALL: [FailureKind; 7] = [
        FailureKind::RateLimited,
        FailureKind::ServerError,
        FailureKind::Timeout,
        FailureKind::WindowClosed,
        FailureKind::TokenExpired,
        FailureKind::SlowAccept,
        FailureKind::ResetAfterAccept,
    ];

    /// The platform accepted the send although the caller will not hear so.
    pub fn accepts(self) -> bool {
        matches!(self, FailureKind::SlowAccept | FailureKind::ResetAfterAccept)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::RateLimited => "rate-limited",
            FailureKind::ServerError => "server-error",
            FailureKind::Timeout => "timeout",
            FailureKind::WindowClosed => "window-closed",
            FailureKind::TokenExpired => "token-expired",
            FailureKind::SlowAccept => "slow-accept",
            FailureKind::ResetAfterAccept => "reset-after-accept",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| format!("unknown failure {s:?}: expected one of {}", kind_names()))
    }
}

fn kind_names() -> String {
    FailureKind::ALL.map(FailureKind::as_str).join(", ")
}

/// Which simulated API a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The send APIs of all three platforms.
    Sends,
    /// One platform's send API.
    Send(Platform),
    /// The token endpoints (TikTok code exchange, refresh and token info; Meta code exchange
    /// and debug_token).
    Tokens,
}

/// The API a call was made to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Send(Platform),
    Tokens,
}

impl Scope {
    fn covers(self, api: Api) -> bool {
        match (self, api) {
            (Scope::Sends, Api::Send(_)) | (Scope::Tokens, Api::Tokens) => true,
            (Scope::Send(a), Api::Send(b)) => a == b,
            _ => false,
        }
    }

    /// A platform rule is more specific than the general one.
    fn specificity(self) -> u8 {
        match self {
            Scope::Sends => 0,
            Scope::Send(_) | Scope::Tokens => 1,
        }
    }
}

/// One `[SCOPE:]KIND=SHARE` rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRule {
    pub scope: Scope,
    pub kind: FailureKind,
    /// Between 0 and 1.
    pub share: f64,
}

impl FromStr for FailureRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (target, share) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?}: expected [SCOPE:]KIND=SHARE, e.g. facebook:window-closed=0.5"))?;
        let share: f64 = share
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: the share must be a number between 0 and 1"))?;
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("{s:?}: the share must be between 0 and 1"));
        }
        let (scope, kind) = match target.split_once(':') {
            None => (Scope::Sends, target.parse()?),
            Some(("tokens", kind)) => (Scope::Tokens, kind.parse()?),
            Some((platform, kind)) => {
                let platform = platform.trim().parse::<Platform>().map_err(|_| {
                    format!(
                        "{s:?}: unknown scope {platform:?}: expected whatsapp, facebook, tiktok or tokens"
                    )
                })?;
                (Scope::Send(platform), kind.parse()?)
            }
        };
        if scope == Scope::Tokens && kind == FailureKind::WindowClosed {
            return Err(format!("{s:?}: the token endpoints have no reply window"));
        }
        Ok(FailureRule { scope, kind, share })
    }
}

/// The failures to inject. Empty: every call succeeds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailureMix {
    rules: Vec<FailureRule>,
}

impl FailureMix {
    pub fn none() -> Self {
        FailureMix::default()
    }

    /// Refuses a mix whose shares add up to more than 1 for some API.
    pub fn new(rules: Vec<FailureRule>) -> Result<Self, String> {
        let mix = FailureMix { rules };
        let apis = [
            Api::Send(Platform::WhatsApp),
            Api::Send(Platform::Facebook),
            Api::Send(Platform::TikTok),
            Api::Tokens,
        ];
        for api in apis {
            let total: f64 = mix.shares(api).iter().map(|(_, share)| share).sum();
            if total > 1.0 + f64::EPSILON {
                return Err(format!(
                    "the failure shares for {} add up to {total}, more than 1",
                    api_name(api)
                ));
            }
        }
        Ok(mix)
    }

    pub fn rules(&self) -> &[FailureRule] {
        &self.rules
    }

    /// Each kind's share for `api`: the most specific rule of that kind (the last one given
    /// among equals).
    pub fn shares(&self, api: Api) -> Vec<(FailureKind, f64)> {
        FailureKind::ALL
            .into_iter()
            .filter_map(|kind| {
                self.rules
                    .iter()
                    .filter(|r| r.kind == kind && r.scope.covers(api))
                    .max_by_key(|r| r.scope.specificity())
                    .map(|r| (kind, r.share))
            })
            .filter(|(_, share)| *share > 0.0)
            .collect()
    }

    /// The failure for a call to `api`, given `roll` uniform in [0, 1).
    pub fn pick(&self, api: Api, roll: f64) -> Option<FailureKind> {
        let mut bound = 0.0;
        for (kind, share) in self.shares(api) {
            bound += share;
            if roll < bound {
                return Some(kind);
            }
        }
        None
    }

    /// A random draw for a call to `api`.
    pub fn draw(&self, api: Api) -> Option<FailureKind> {
        if self.rules.is_empty() {
            return None;
        }
        self.pick(api, rand::random::<f64>())
    }
}

impl fmt::Display for FailureMix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rules.is_empty() {
            return f.write_str("none");
        }
        let rules: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                let scope = match r.scope {
                    Scope::Sends => String::new(),
                    Scope::Send(p) => format!("{p}:"),
                    Scope::Tokens => "tokens:".to_owned(),
                };
                format!("{scope}{}={}", r.kind, r.share)
            })
            .collect();
        f.write_str(&rules.join(", "))
    }
}

fn api_name(api: Api) -> String {
    match api {
        Api::Send(platform) => format!("{platform} sends"),
        Api::Tokens => "the token endpoints".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(rules: &[&str]) -> FailureMix {
        FailureMix::new(rules.iter().map(|r| r.parse().unwrap()).collect()).unwrap()
    }

    #[test]
    fn rules_parse_and_bad_ones_say_why() {
        let rule: FailureRule = "facebook:window-closed=0.5".parse().unwrap();
        assert_eq!(rule.scope, Scope::Send(Platform::Facebook));
        assert_eq!(rule.kind, FailureKind::WindowClosed);
        assert_eq!(rule.share, 0.5);
        assert_eq!(
            "rate-limited=1".parse::<FailureRule>().unwrap().scope,
            Scope::Sends
        );
        assert_eq!(
            "tokens:timeout=0.1".parse::<FailureRule>().unwrap().scope,
            Scope::Tokens
        );
        for (bad, says) in [
            ("rate-limited", "expected [SCOPE:]KIND=SHARE"),
            ("rate-limited=2", "between 0 and 1"),
            ("rate-limited=-0.1", "between 0 and 1"),
            ("rate-limited=x", "a number"),
            ("slow=0.1", "unknown failure"),
            ("myspace:timeout=0.1", "unknown scope"),
            ("tokens:window-closed=0.1", "no reply window"),
        ] {
            let error = bad.parse::<FailureRule>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_platform_rule_replaces_the_general_one_of_its_kind() {
        let mix = mix(&["rate-limited=0.2", "whatsapp:rate-limited=0", "server-error=0.1"]);
        assert_eq!(
            mix.shares(Api::Send(Platform::WhatsApp)),
            vec![(FailureKind::ServerError, 0.1)]
        );
        assert_eq!(
            mix.shares(Api::Send(Platform::TikTok)),
            vec![(FailureKind::RateLimited, 0.2), (FailureKind::ServerError, 0.1)]
        );
        assert!(
            mix.shares(Api::Tokens).is_empty(),
            "send rules do not touch tokens"
        );
    }

    #[test]
    fn picks_follow_the_shares() {
        let mix = mix(&["rate-limited=0.25", "timeout=0.25"]);
        let api = Api::Send(Platform::TikTok);
        assert_eq!(mix.pick(api, 0.0), Some(FailureKind::RateLimited));
        assert_eq!(mix.pick(api, 0.249), Some(FailureKind::RateLimited));
        assert_eq!(mix.pick(api, 0.25), Some(FailureKind::Timeout));
        assert_eq!(mix.pick(api, 0.5), None);
        assert_eq!(mix.pick(Api::Tokens, 0.0), None);
        let always = self::mix(&["facebook:window-closed=1"]);
        assert!(
            (0..100).all(|_| always.draw(Api::Send(Platform::Facebook)) == Some(FailureKind::WindowClosed))
        );
        assert!((0..100).all(|_| always.draw(Api::Send(Platform::WhatsApp)).is_none()));
    }

    #[test]
    fn shares_over_one_are_refused() {
        let rules = ["rate-limited=0.6", "tiktok:server-error=0.5"].map(|r| r.parse().unwrap());
        let error = FailureMix::new(rules.to_vec()).unwrap_err();
        assert!(error.contains("tiktok sends"), "{error}");
        assert_eq!(
            mix(&["rate-limited=0.5", "server-error=0.5"]).to_string(),
            "rate-limited=0.5, server-error=0.5"
        );
    }
}
