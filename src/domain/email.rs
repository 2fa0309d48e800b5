use std::fmt;

use super::Invalid;

/// An email address: trimmed, at most 254 characters, one `@` with text on both sides and a dot
/// in the domain. Comparison for uniqueness uses [`Email::normalized`] (lower case).
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim();
        let invalid = |why: &str| Invalid::new("email", why.to_owned());
        if email.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if email.chars().count() > 254 {
            return Err(invalid("must be at most 254 characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain spaces"));
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(invalid("must contain @"));
        };
        if local.is_empty() || local.contains('@') {
            return Err(invalid("must have exactly one @ with a name before it"));
        }
        if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') {
            return Err(invalid("must have a domain such as example.com after the @"));
        }
        Ok(Email(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key unique across users: the address in lower case.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_normalizes_case() {
        let e = Email::parse("  Ana.Silva@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "Ana.Silva@Example.COM");
        assert_eq!(e.normalized(), "ana.silva@example.com");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "a@b@c.com",
            "ana@.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }
}
