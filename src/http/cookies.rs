//! Reading and setting cookies, in one place so that every cookie the service sets is
//! `HttpOnly`, scoped to a path, and `Secure` whenever the service is served over https
//! (`cookie_secure`).

use axum::http::{HeaderMap, HeaderValue, header};

/// How a cookie travels with requests from other sites.
#[derive(Debug, Clone, Copy)]
pub enum SameSite {
    /// Never from another site: the dashboard.
    Strict,
    /// On top-level navigations from another site too: a platform's redirect back to a
    /// connect flow's callback must carry it.
    Lax,
}

/// A cookie's value in the request, if present and not empty.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for an `HttpOnly` cookie on `path`; `max_age_secs` 0 deletes it.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    same_site: SameSite,
    max_age_secs: i64,
    secure: bool,
) -> HeaderValue {
    let same_site = match same_site {
        SameSite::Strict => "Strict",
        SameSite::Lax => "Lax",
    };
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={max_age_secs}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others_and_set_with_every_attribute() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; snorq_dashboard=tok; b=2"),
        );
        assert_eq!(cookie(&headers, "snorq_dashboard").as_deref(), Some("tok"));
        assert_eq!(cookie(&headers, "missing"), None);
        let set = set_cookie("s", "v", "/dashboard", SameSite::Strict, 60, true);
        assert_eq!(
            set,
            "s=v; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        let set = set_cookie("s", "v", "/oauth", SameSite::Lax, 60, false);
        assert_eq!(set, "s=v; Path=/oauth; HttpOnly; SameSite=Lax; Max-Age=60");
    }
}
