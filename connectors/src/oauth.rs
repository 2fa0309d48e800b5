//! Where to send the browser to connect an account: the Facebook Login dialog (Messenger),
//! WhatsApp Embedded Signup and TikTok's consent page. The `code` they return goes to the
//! [`token`](crate::token) calls. Hosts come from [`ClientConfig`] so tests can use a fake.

use reqwest::Url;

use crate::send::ClientConfig;

/// Facebook Login scopes for Messenger
/// (docs/platforms.md, "Facebook Login and Page subscription"): messaging, webhook
/// subscription, listing the Pages, and `business_management` for business-owned Pages.
pub const FACEBOOK_SCOPES: &[&str] = &[
    "pages_messaging",
    "pages_manage_metadata",
    "pages_show_list",
    "pages_read_engagement",
    "business_management",
];

/// TikTok scopes for Business Messaging (docs/platforms.md, "TikTok OAuth and tokens").
pub const TIKTOK_SCOPES: &[&str] = &[
    "user.info.basic",
    "message.list.read",
    "message.list.send",
    "message.list.manage",
];

/// The scopes WhatsApp Embedded Signup asks for
/// (docs/platforms.md, "WhatsApp Embedded Signup").
const WHATSAPP_SCOPES: &[&str] = &["whatsapp_business_management", "whatsapp_business_messaging"];

/// The Facebook Login dialog (`{facebook}/{version}/dialog/oauth`) asking for `scopes`. `state`
/// must be an unguessable value bound to the user's session (CSRF).
pub fn facebook_login_url(
    cfg: &ClientConfig,
    app_id: &str,
    redirect_uri: &str,
    state: &str,
    scopes: &[&str],
) -> String {
    let scope = scopes.join(",");
    with_query(
        &dialog_url(cfg),
        &[
            ("client_id", app_id),
            ("redirect_uri", redirect_uri),
            ("state", state),
            ("response_type", "code"),
            ("scope", &scope),
        ],
    )
}

/// WhatsApp Embedded Signup as a plain redirect: the Login dialog with the signup
/// `config_id`, always answering with a `code`. In production the JS SDK's Embedded Signup runs
/// this flow in a popup and reports `waba_id` / `phone_number_id` in its session-info message;
/// the page passes them with the `code` to our callback (a redirect alone does not carry them).
pub fn whatsapp_signup_url(
    cfg: &ClientConfig,
    app_id: &str,
    redirect_uri: &str,
    state: &str,
    config_id: Option<&str>,
) -> String {
    let scope = WHATSAPP_SCOPES.join(",");
    let mut params = vec![
        ("client_id", app_id),
        ("redirect_uri", redirect_uri),
        ("state", state),
    ];
    if let Some(config_id) = config_id {
        params.push(("config_id", config_id));
    }
    params.extend([
        ("response_type", "code"),
        ("override_default_response_type", "true"),
        ("scope", scope.as_str()),
    ]);
    with_query(&dialog_url(cfg), &params)
}

/// TikTok's consent page (`client_key` = the TikTok app id) asking for `scopes`.
pub fn tiktok_authorize_url(
    cfg: &ClientConfig,
    client_key: &str,
    redirect_uri: &str,
    state: &str,
    scopes: &[&str],
) -> String {
    let scope = scopes.join(",");
    with_query(
        &cfg.tiktok_authorize_url,
        &[
            ("client_key", client_key),
            ("response_type", "code"),
            ("scope", &scope),
            ("redirect_uri", redirect_uri),
            ("state", state),
        ],
    )
}

fn dialog_url(cfg: &ClientConfig) -> String {
    format!(
        "{}/{}/dialog/oauth",
        cfg.facebook_dialog_base_url.trim_end_matches('/'),
        cfg.graph_api_version.trim_matches('/')
    )
}

/// `base` with the pairs form-encoded into its query. A base that is not a URL (bad config)
/// still gets a correctly encoded query, so the browser shows the real problem.
fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.into()
        }
        Err(_) => {
            let mut encoder = Url::parse("http://localhost/").expect("a valid constant URL");
            encoder.query_pairs_mut().extend_pairs(pairs);
            format!("{base}?{}", encoder.query().unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> Vec<(String, String)> {
        Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn facebook_login() {
        let url = facebook_login_url(
            &ClientConfig::default(),
            "1517776481860111",
            "https://snorq.example/oauth/facebook/callback?x=1&y=2",
            "st&te=/+ü",
            FACEBOOK_SCOPES,
        );
        assert!(
            url.starts_with("https://www.facebook.com/v24.0/dialog/oauth?client_id=1517776481860111&"),
            "{url}"
        );
        // Reserved characters of the redirect URI and state are escaped, not passed through.
        assert!(
            url.contains(
                "redirect_uri=https%3A%2F%2Fsnorq.example%2Foauth%2Ffacebook%2Fcallback%3Fx%3D1%26y%3D2"
            ),
            "{url}"
        );
        assert!(url.contains("state=st%26te%3D%2F%2B%C3%BC"), "{url}");
        assert_eq!(
            query(&url),
            pairs(&[
                ("client_id", "1517776481860111"),
                (
                    "redirect_uri",
                    "https://snorq.example/oauth/facebook/callback?x=1&y=2"
                ),
                ("state", "st&te=/+ü"),
                ("response_type", "code"),
                (
                    "scope",
                    "pages_messaging,pages_manage_metadata,pages_show_list,pages_read_engagement,business_management"
                ),
            ])
        );
    }

    #[test]
    fn whatsapp_signup() {
        let cfg = ClientConfig::default();
        let url = whatsapp_signup_url(&cfg, "123", "https://snorq.example/cb", "s1", Some("987654"));
        assert!(
            url.starts_with("https://www.facebook.com/v24.0/dialog/oauth?"),
            "{url}"
        );
        assert_eq!(
            query(&url),
            pairs(&[
                ("client_id", "123"),
                ("redirect_uri", "https://snorq.example/cb"),
                ("state", "s1"),
                ("config_id", "987654"),
                ("response_type", "code"),
                ("override_default_response_type", "true"),
                (
                    "scope",
                    "whatsapp_business_management,whatsapp_business_messaging"
                ),
            ])
        );
        let without = whatsapp_signup_url(&cfg, "123", "https://snorq.example/cb", "s1", None);
        assert!(
            !query(&without).iter().any(|(k, _)| k == "config_id"),
            "{without}"
        );
    }

    #[test]
    fn tiktok_authorize() {
        let url = tiktok_authorize_url(
            &ClientConfig::default(),
            "7312345678901234567",
            "https://snorq.example/oauth/tiktok/callback",
            "a b",
            TIKTOK_SCOPES,
        );
        assert!(
            url.starts_with("https://www.tiktok.com/v2/auth/authorize/?client_key=7312345678901234567&"),
            "{url}"
        );
        assert!(url.contains("&state=a+b"), "{url}");
        assert_eq!(
            query(&url),
            pairs(&[
                ("client_key", "7312345678901234567"),
                ("response_type", "code"),
                (
                    "scope",
                    "user.info.basic,message.list.read,message.list.send,message.list.manage"
                ),
                ("redirect_uri", "https://snorq.example/oauth/tiktok/callback"),
                ("state", "a b"),
            ])
        );
    }

    #[test]
    fn hosts_follow_the_config() {
        let cfg = ClientConfig::with_base_url("http://127.0.0.1:9/");
        let url = facebook_login_url(&cfg, "1", "https://r", "s", &["a", "b"]);
        assert!(url.starts_with("http://127.0.0.1:9/v24.0/dialog/oauth?"), "{url}");
        assert!(url.ends_with("&scope=a%2Cb"), "{url}");
        let url = tiktok_authorize_url(&cfg, "1", "https://r", "s", &[]);
        assert!(
            url.starts_with("http://127.0.0.1:9/v2/auth/authorize/?client_key=1&response_type=code&scope=&"),
            "{url}"
        );
    }

    #[test]
    fn a_bad_base_still_gets_an_encoded_query() {
        let cfg = ClientConfig {
            tiktok_authorize_url: "not a url".to_owned(),
            ..ClientConfig::default()
        };
        let url = tiktok_authorize_url(&cfg, "1", "https://r/?a=b", "s", &["x"]);
        assert_eq!(
            url,
            "not a url?client_key=1&response_type=code&scope=x&redirect_uri=https%3A%2F%2Fr%2F%3Fa%3Db&state=s"
        );
    }
}
