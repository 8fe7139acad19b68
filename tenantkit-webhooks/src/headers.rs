//! Custom headers per endpoint (an `Authorization` the receiver expects,
//! a routing header): the one place that decides which headers an endpoint
//! may set. They are stored sealed like secrets (only their names are ever
//! shown) and sent with every delivery to that endpoint, before the
//! headers the platform sets itself.
//!
//! Refused: names that are not HTTP tokens, values with control or
//! non-ASCII characters, more than [`MAX_HEADERS`], and the names of
//! [`DENIED`] (hop-by-hop headers, `Host`, the body's framing and type,
//! and every `webhook-*` header, which carry the signature).
//!
//! ```
//! use std::collections::BTreeMap;
//! use tenantkit_webhooks::headers::CustomHeaders;
//!
//! let ok = BTreeMap::from([("Authorization".to_owned(), "Bearer s3cret".to_owned())]);
//! assert_eq!(CustomHeaders::check(&ok).unwrap().names(), ["Authorization"]);
//!
//! let spoof = BTreeMap::from([("Webhook-Signature".to_owned(), "v1,forged".to_owned())]);
//! assert!(CustomHeaders::check(&spoof).is_err());
//! ```

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};

/// Why custom headers are refused (`WebhookError::Invalid`, `422`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HeaderRefusal(String);

/// At most this many custom headers on an endpoint.
pub const MAX_HEADERS: usize = 10;
/// A header name is at most this many bytes.
pub const MAX_NAME_BYTES: usize = 100;
/// A header value is at most this many bytes.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Names an endpoint may not set (compared without regard to case): the
/// hop-by-hop headers of RFC 9110 §7.6.1, those that frame or describe the
/// body, and `Host` and `Expect`, which the client sets. Every name
/// starting with [`DENIED_PREFIX`] is refused too.
pub const DENIED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "expect",
];

/// The signature headers' prefix (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`): no custom header may start with it.
pub const DENIED_PREFIX: &str = "webhook-";

/// An endpoint's checked custom headers, in name order, each name once.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CustomHeaders(Vec<(String, String)>);

impl std::fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be credentials: names only.
        f.debug_tuple("CustomHeaders").field(&self.names()).finish()
    }
}

impl CustomHeaders {
    /// Checks headers as given in a request (`{"Authorization": "..."}`).
    pub fn check(headers: &BTreeMap<String, String>) -> Result<Self, HeaderRefusal> {
        if headers.len() > MAX_HEADERS {
            return Err(invalid(format!(
                "`headers` may set at most {MAX_HEADERS} headers"
            )));
        }
        let mut seen: Vec<String> = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            if name.is_empty()
                || name.len() > MAX_NAME_BYTES
                || HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                return Err(invalid(format!(
                    "header name `{}` must be 1 to {MAX_NAME_BYTES} characters of an HTTP token \
                     (letters, digits and !#$%&'*+-.^_`|~)",
                    name.escape_debug()
                )));
            }
            if DENIED.contains(&lower.as_str()) || lower.starts_with(DENIED_PREFIX) {
                return Err(invalid(format!(
                    "header `{name}` is set by the platform and may not be set by an endpoint \
                     (refused: hop-by-hop headers, Host, Expect, Content-Length, Content-Type, \
                     Content-Encoding and webhook-*)"
                )));
            }
            if seen.contains(&lower) {
                return Err(invalid(format!(
                    "header `{name}` is named twice (names are compared without regard to case)"
                )));
            }
            if value.is_empty()
                || value.len() > MAX_VALUE_BYTES
                || !value
                    .bytes()
                    .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
                || value.starts_with([' ', '\t'])
                || value.ends_with([' ', '\t'])
            {
                return Err(invalid(format!(
                    "the value of header `{name}` must be 1 to {MAX_VALUE_BYTES} printable ASCII \
                     characters, without white space around it"
                )));
            }
            seen.push(lower);
        }
        Ok(Self(
            headers
                .iter()
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
        ))
    }

    /// Their names, as given (what an endpoint shows).
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ready for a request. (Checked when set, so every pair converts; one
    /// that does not, read from a tampered store, is left out.)
    pub fn pairs(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.0.iter().filter_map(|(n, v)| {
            Some((
                HeaderName::from_bytes(n.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
    }

    /// The plain text that is sealed: a JSON object.
    pub(crate) fn to_plain(&self) -> Vec<u8> {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(map).to_string().into_bytes()
    }

    /// Reads back what [`CustomHeaders::to_plain`] wrote.
    pub(crate) fn from_plain(plain: &[u8]) -> Option<Self> {
        let map: BTreeMap<String, String> = serde_json::from_slice(plain).ok()?;
        Self::check(&map).ok()
    }
}

/// What the OpenAPI document says of `headers` when an endpoint is created.
pub const DESCRIPTION: &str = "Up to 10 headers sent with every delivery (such as an \
    `Authorization` the receiver expects): names are HTTP tokens of at most 100 characters, \
    each once whatever its case; values 1 to 4,096 printable ASCII characters without white \
    space around them. Hop-by-hop headers, `Host`, `Expect`, `Content-Length`, `Content-Type`, \
    `Content-Encoding` and `webhook-*` are refused. Stored sealed: only their names are shown \
    (`header_names`), even in this answer.";

/// The OpenAPI schema of `headers` in `POST /webhooks`: at most
/// [`MAX_HEADERS`] token names, printable ASCII values. (The deny-list and
/// the case rule are the server's to check.)
#[cfg(feature = "openapi")]
pub fn openapi_schema() -> utoipa::openapi::schema::Object {
    schema(DESCRIPTION.to_owned(), false)
}

/// The same in `PATCH /webhooks/{id}`, where they replace all the others
/// (`null` as absent: they stay).
#[cfg(feature = "openapi")]
pub fn openapi_patch_schema() -> utoipa::openapi::schema::Object {
    schema(
        format!(
            "New custom headers, replacing all of them (`{{}}` for none; absent or `null`: \
             they stay). {DESCRIPTION}"
        ),
        true,
    )
}

#[cfg(feature = "openapi")]
fn schema(description: String, nullable: bool) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_VALUE_BYTES))
        .pattern(Some(r"^[!-~]([ \t!-~]*[!-~])?$"));
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_BYTES))
        .pattern(Some(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"));
    let kind: SchemaType = if nullable {
        [Type::Object, Type::Null].into_iter().collect()
    } else {
        Type::Object.into()
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .additional_properties(Some(value))
        .property_names(Some(name))
        .max_properties(Some(MAX_HEADERS))
        .description(Some(description))
        .build()
}

fn invalid(detail: String) -> HeaderRefusal {
    HeaderRefusal(detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Result<CustomHeaders, HeaderRefusal> {
        CustomHeaders::check(&BTreeMap::from([(name.to_owned(), value.to_owned())]))
    }

    #[test]
    fn every_denied_name_is_refused_in_any_case() {
        for name in DENIED.iter().copied().chain([
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "Webhook-Other",
        ]) {
            for spelled in [name.to_owned(), name.to_ascii_uppercase()] {
                let err = one(&spelled, "x").unwrap_err().to_string();
                assert!(err.contains("set by the platform"), "{spelled}: {err}");
            }
        }
    }

    #[test]
    fn names_and_values_are_checked_and_limits_crossed() {
        assert!(one("Authorization", "Bearer abc").is_ok());
        assert!(one("X-Team", "a b").is_ok());
        for bad_name in [
            "",
            "X Team",
            "X:Team",
            "Ünï",
            &"x".repeat(MAX_NAME_BYTES + 1),
        ] {
            assert!(one(bad_name, "v").is_err(), "{bad_name:?}");
        }
        assert!(one(&"x".repeat(MAX_NAME_BYTES), "v").is_ok());
        for bad_value in [
            "",
            "a\nb",
            "a\rb",
            "a\0",
            "é",
            " lead",
            "trail ",
            &"v".repeat(MAX_VALUE_BYTES + 1),
        ] {
            assert!(one("X-Value", bad_value).is_err(), "{bad_value:?}");
        }
        assert!(one("X-Value", &"v".repeat(MAX_VALUE_BYTES)).is_ok());
        let most: BTreeMap<String, String> = (0..MAX_HEADERS)
            .map(|i| (format!("X-H{i}"), "v".to_owned()))
            .collect();
        assert!(CustomHeaders::check(&most).is_ok());
        let mut too_many = most.clone();
        too_many.insert("X-One-More".into(), "v".into());
        assert!(CustomHeaders::check(&too_many).is_err());
        let twice = BTreeMap::from([
            ("X-Team".to_owned(), "a".to_owned()),
            ("x-team".to_owned(), "b".to_owned()),
        ]);
        assert!(
            CustomHeaders::check(&twice)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }

    #[test]
    fn the_sealed_text_reads_back_and_debug_shows_names_only() {
        let headers = one("Authorization", "Bearer s3cret").unwrap();
        assert_eq!(
            CustomHeaders::from_plain(&headers.to_plain()),
            Some(headers.clone())
        );
        assert!(!format!("{headers:?}").contains("s3cret"));
        let pairs: Vec<_> = headers.pairs().collect();
        assert_eq!(pairs[0].0, "authorization");
        assert_eq!(pairs[0].1, "Bearer s3cret");
    }
}
