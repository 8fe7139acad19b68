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

pub mod json;

/// The text rule, for every string that comes from outside: no NUL
/// character (U+0000), which PostgreSQL cannot store in `text` or `jsonb`
/// and SQLite would keep, so refusing it everywhere keeps both backends
/// alike. Fields with stricter rules (no control characters at all) check
/// those too.
///
/// ```
/// use tenantkit::validate;
///
/// assert!(validate::text("action", "user.created").is_ok());
/// let refused = validate::text("action", "a\u{0}b").unwrap_err();
/// assert!(refused.to_string().contains("`action`"));
/// ```
pub fn text(field: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        Err(Error::invalid(format!(
            "`{field}` must not contain a NUL character (U+0000)"
        )))
    } else {
        Ok(())
    }
}

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

/// The earliest instant a time parameter may name: 1970-01-01T00:00:00Z.
pub const EARLIEST: chrono::DateTime<chrono::Utc> = chrono::DateTime::UNIX_EPOCH;

/// The first instant past what a time parameter may name: year 10000
/// (so `9999-12-31T23:59:59Z` is the last one).
pub fn latest() -> chrono::DateTime<chrono::Utc> {
    chrono::NaiveDate::from_ymd_opt(10_000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// A time parameter: between 1970-01-01 and 9999-12-31 (both databases
/// store it, and days or hours can be added to it or taken from it without
/// overflowing), else [`Error::Invalid`] naming `parameter`.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use tenantkit::validate;
///
/// let t = Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).unwrap();
/// assert_eq!(validate::instant("from", t).unwrap(), t);
/// let ancient = Utc.with_ymd_and_hms(-262_143, 1, 1, 0, 0, 0).unwrap();
/// let refused = validate::instant("from", ancient).unwrap_err();
/// assert!(refused.to_string().contains("`from`"));
/// ```
pub fn instant(
    parameter: &str,
    t: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>> {
    if t < EARLIEST || t >= latest() {
        return Err(Error::invalid(format!(
            "`{parameter}` must be between 1970-01-01 and 9999-12-31, got {}",
            t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )));
    }
    Ok(t)
}

/// `t` at the precision both databases store: whole microseconds
/// (PostgreSQL's `timestamptz`; SQLite is written the same), truncated.
/// Input instants are normalised with it where they are validated, so what
/// is counted is what is stored.
///
/// ```
/// use chrono::DateTime;
/// use tenantkit::validate;
///
/// let t = DateTime::parse_from_rfc3339("2026-12-03T23:59:59.999999999Z").unwrap().to_utc();
/// assert_eq!(validate::storage_precision(t).to_rfc3339(), "2026-12-03T23:59:59.999999+00:00");
/// ```
pub fn storage_precision(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    t.trunc_subsecs(6)
}

/// Like [`instant`], for an optional parameter.
pub fn optional_instant(
    parameter: &str,
    t: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    t.map(|t| instant(parameter, t)).transpose()
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
