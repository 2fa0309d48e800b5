//! A string that must never be printed: access tokens, refresh tokens, app secrets, OAuth codes.

use std::fmt;

/// A secret value (token, app secret, OAuth code). `Debug` prints a redacted form and there is no
/// `Display`, so a secret cannot end up in a log line or an error message by accident; call
/// [`Secret::expose`] at the one place the raw value is needed.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The raw value. Use it only to put the secret on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret([redacted; {} bytes])", self.0.len())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Replaces every occurrence of each secret in `text` (platform error messages sometimes echo
/// request parameters back).
pub(crate) fn scrub(text: String, secrets: &[&Secret]) -> String {
    secrets.iter().filter(|s| s.0.len() >= 4).fold(text, |acc, s| {
        if acc.contains(s.expose()) {
            acc.replace(s.expose(), "[redacted]")
        } else {
            acc
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("EAAG-very-secret-token");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn scrub_removes_secrets_from_text() {
        let secret = Secret::new("tok_12345");
        let text = scrub("bad token tok_12345 given".into(), &[&secret]);
        assert_eq!(text, "bad token [redacted] given");
    }
}
