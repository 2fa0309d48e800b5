use std::fmt;

use super::Invalid;

fn bounded_text(field: &'static str, raw: &str, max: usize) -> Result<String, Invalid> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(Invalid::new(field, format!("must be at most {max} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// A person's name as shown to teammates: 1 to 100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text("name", raw, 100).map(DisplayName)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An organization's name: 1 to 100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgName(String);

impl OrgName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text("name", raw, 100).map(OrgName)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A URL-safe organization handle: 2 to 48 of `a-z 0-9 -`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let s = raw.trim();
        let ok_chars = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !(2..=48).contains(&s.len()) || !ok_chars || s.starts_with('-') || s.ends_with('-') {
            return Err(Invalid::new(
                "slug",
                "must be 2 to 48 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            ));
        }
        Ok(Slug(s.to_owned()))
    }

    /// A slug derived from a name ("Acme Support, Ltd." -> "acme-support-ltd"), padded when
    /// the name has too few usable characters.
    pub fn from_name(name: &OrgName) -> Slug {
        let mut slug = String::new();
        for c in name.as_str().chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
            if slug.len() >= 40 {
                break;
            }
        }
        let mut slug = slug.trim_end_matches('-').to_owned();
        if slug.len() < 2 {
            slug = format!("org{slug}");
        }
        Slug(slug)
    }

    /// This slug with a suffix, used when the plain slug is taken.
    pub fn with_suffix(&self, suffix: &str) -> Slug {
        Slug(format!("{}-{suffix}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed: 8 to 1024 characters. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let n = raw.chars().count();
        if n < 8 {
            return Err(Invalid::new("password", "must be at least 8 characters"));
        }
        if n > 1024 {
            return Err(Invalid::new("password", "must be at most 1024 characters"));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_derived_from_names() {
        let name = OrgName::parse("Acme Support, Ltd.").unwrap();
        assert_eq!(Slug::from_name(&name).as_str(), "acme-support-ltd");
        let odd = OrgName::parse("?!").unwrap();
        assert_eq!(Slug::from_name(&odd).as_str(), "org");
        assert!(Slug::parse(Slug::from_name(&name).as_str()).is_ok());
    }

    #[test]
    fn slug_rules() {
        assert!(Slug::parse("acme").is_ok());
        for bad in ["a", "-acme", "acme-", "Acme", "ac me", &"a".repeat(49)] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(OrgName::parse("  Acme ").unwrap().as_str(), "Acme");
        assert!(OrgName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
        assert!(DisplayName::parse("a\u{0007}b").is_err());
    }

    #[test]
    fn passwords_are_bounded_and_never_debug_printed() {
        assert!(Password::parse("short").is_err());
        let p = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }
}
