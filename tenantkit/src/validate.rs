//! Input rules, checked before anything reaches the database (or any other
//! service): one definition each, used by the store and by crates built on it.
//!
//! ```
//! use tenantkit::validate;
//!
//! assert_eq!(validate::email(" Ann@Example.COM ").unwrap(), "ann@example.com");
//! let refused = tenantkit::problem::Problem::from(&validate::email("no-at-sign").unwrap_err());
//! assert_eq!(refused.status, 422);
//! ```

use crate::{Error, PageRequest, Result};

/// A display name: trimmed, 1 to 200 characters, no control characters.
pub fn name(field: &str, value: &str) -> Result<String> {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len == 0 || len > 200 {
        return Err(Error::invalid(format!(
            "`{field}` must be 1 to 200 characters, got {len}"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "`{field}` must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// A DNS label: 1 to 63 of `a-z 0-9 -`, not starting or ending with `-`; lower-cased.
pub fn subdomain(value: &str) -> Result<String> {
    let label = value.trim().to_ascii_lowercase();
    let ok = (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        Ok(label)
    } else {
        Err(Error::invalid(format!(
            "`subdomain` must be a DNS label (1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'), got `{value}`"
        )))
    }
}

/// An e-mail address: one `@` with text on both sides, a dot in the domain,
/// no white space, at most 254 characters; lower-cased.
pub fn email(value: &str) -> Result<String> {
    let email = value.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(Error::invalid(format!(
            "`email` is not a valid e-mail address: `{value}`"
        )))
    }
}

/// A page size between 1 and [`PageRequest::MAX_LIMIT`].
pub fn limit(limit: u32) -> Result<i64> {
    let max = PageRequest::<()>::MAX_LIMIT;
    if (1..=max).contains(&limit) {
        Ok(i64::from(limit))
    } else {
        Err(Error::invalid(format!(
            "`limit` must be between 1 and {max}, got {limit}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        assert_eq!(subdomain("Acme").unwrap(), "acme");
        assert_eq!(subdomain("a-1").unwrap(), "a-1");
        assert!(subdomain(&"a".repeat(63)).is_ok());
        assert!(subdomain(&"a".repeat(64)).is_err());
        for bad in ["", "-a", "a-", "a.b", "a_b", "ä"] {
            assert!(subdomain(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(email(" Ann@Example.COM ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(email(&long_local).is_err());
        let max = format!("{}@{}.com", "a".repeat(64), "b".repeat(185));
        assert_eq!(max.len(), 254);
        assert!(email(&max).is_ok());
        assert!(email(&format!("a{max}")).is_err());
    }

    #[test]
    fn names_and_limits() {
        assert_eq!(name("name", "  Acme ").unwrap(), "Acme");
        assert!(name("name", &"x".repeat(200)).is_ok());
        assert!(name("name", &"x".repeat(201)).is_err());
        assert!(name("name", "   ").is_err());
        assert!(name("name", "a\u{0}b").is_err());
        assert!(limit(0).is_err());
        assert_eq!(limit(500).unwrap(), 500);
        assert!(limit(501).is_err());
    }
}
