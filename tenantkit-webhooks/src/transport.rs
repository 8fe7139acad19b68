//! One delivery attempt over HTTP, and what came of it.
//!
//! - Every connection is vetted: an address URL by [`UrlPolicy::vet_url`]
//!   before sending, a host name by the client's resolver
//!   ([`UrlPolicy::resolve`]), which refuses the name when any of its
//!   addresses is blocked and hands the client only vetted addresses, so DNS
//!   rebinding cannot reach an internal host between registration and delivery.
//! - Redirects are never followed: a `3xx` is a failed attempt.
//! - The whole request (connect included) times out after 10 s; a body over
//!   1 MiB is never sent; at most 64 KiB of a response is read, and 4 KiB of
//!   it kept as the excerpt.
//!
//! The client uses rustls without choosing a crypto provider: the process
//! installs one (the reference server installs ring).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use crate::{
    headers::CustomHeaders,
    signature::SignedHeaders,
    ssrf::{UrlPolicy, UrlRefusal, VettingResolver},
};

/// The whole request, connect included.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body sent.
pub const MAX_BODY: usize = 1024 * 1024;
/// At most this much of a response is read.
pub const MAX_RESPONSE_READ: usize = 64 * 1024;
/// At most this much of a response is kept.
pub const EXCERPT: usize = 4 * 1024;
/// `Retry-After` is honoured up to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Why an attempt got no HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// No answer within the time limit.
    Timeout,
    /// Nothing listens there.
    ConnectionRefused,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The URL, or an address its host resolves to, may not be contacted.
    BlockedAddress,
    /// The host name does not resolve.
    Dns,
    /// The body is over [`MAX_BODY`]; nothing was sent.
    TooLarge,
    /// The connection failed otherwise (reset, closed early...).
    Connection,
    /// The platform could not sign the delivery (its secret did not open);
    /// nothing was sent.
    Signing,
}

impl ErrorClass {
    /// The stored name, e.g. `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Timeout => "timeout",
            ErrorClass::ConnectionRefused => "connection_refused",
            ErrorClass::Tls => "tls",
            ErrorClass::BlockedAddress => "blocked_address",
            ErrorClass::Dns => "dns",
            ErrorClass::TooLarge => "too_large",
            ErrorClass::Connection => "connection",
            ErrorClass::Signing => "signing",
        }
    }
}

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The response's status, when one came.
    pub status: Option<u16>,
    /// Why none came.
    pub error: Option<ErrorClass>,
    /// How long it took.
    pub duration: Duration,
    /// The start of the response body (at most [`EXCERPT`] bytes, lossy UTF-8),
    /// or the error.
    pub excerpt: String,
    /// `Retry-After` of a 429 or 503, capped at [`MAX_RETRY_AFTER`].
    pub retry_after: Option<Duration>,
}

impl Attempt {
    /// 2xx: delivered.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    pub(crate) fn failed(error: ErrorClass, duration: Duration, detail: impl Into<String>) -> Self {
        Self {
            status: None,
            error: Some(error),
            duration,
            excerpt: truncate(detail.into()),
            retry_after: None,
        }
    }
}

/// Sends delivery attempts.
#[derive(Clone, Debug)]
pub struct Transport {
    client: reqwest::Client,
    policy: UrlPolicy,
}

impl Transport {
    /// A transport contacting only what `policy` allows, with the
    /// [`TIMEOUT`] of 10 s.
    pub fn new(policy: UrlPolicy) -> Result<Self, reqwest::Error> {
        Self::with_timeout(policy, TIMEOUT)
    }

    /// The same with another time limit (tests).
    pub fn with_timeout(policy: UrlPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(VettingResolver(policy.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("tenantkit-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, policy })
    }

    /// POSTs `body` (JSON) to `url` with the endpoint's custom headers and
    /// the signature headers (custom ones cannot name the platform's: see
    /// [`crate::headers`]).
    pub async fn send(
        &self,
        url: &str,
        custom: &CustomHeaders,
        headers: &SignedHeaders,
        body: &[u8],
    ) -> Attempt {
        let started = Instant::now();
        if body.len() > MAX_BODY {
            return Attempt::failed(
                ErrorClass::TooLarge,
                started.elapsed(),
                format!(
                    "the body is {} bytes; at most {MAX_BODY} are sent",
                    body.len()
                ),
            );
        }
        // Addresses in the URL never reach the resolver: vet them here.
        if let Err(refusal) = self.policy.vet_url(url) {
            return Attempt::failed(
                ErrorClass::BlockedAddress,
                started.elapsed(),
                refusal.to_string(),
            );
        }
        let mut request = self.client.post(url);
        for (name, value) in custom.pairs() {
            request = request.header(name, value);
        }
        request = request.header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers.pairs() {
            request = request.header(name, value);
        }
        let mut response = match request.body(body.to_vec()).send().await {
            Ok(response) => response,
            Err(e) => return Attempt::failed(classify(&e), started.elapsed(), chain(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = matches!(status, 429 | 503)
            .then(|| {
                response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, Utc::now()))
            })
            .flatten();
        // Read at most MAX_RESPONSE_READ bytes, then let the rest go.
        let mut read = Vec::new();
        while read.len() < MAX_RESPONSE_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        read.truncate(EXCERPT);
        Attempt {
            status: Some(status),
            error: None,
            duration: started.elapsed(),
            excerpt: String::from_utf8_lossy(&read).into_owned(),
            retry_after,
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`];
/// `None` when it is neither.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(value)
                .ok()?
                .with_timezone(&Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

fn classify(e: &reqwest::Error) -> ErrorClass {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<UrlRefusal>().is_some() {
            return ErrorClass::BlockedAddress;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return ErrorClass::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return ErrorClass::Timeout,
                _ => {}
            }
        }
        source = err.source();
    }
    let text = chain(e).to_ascii_lowercase();
    if e.is_timeout() {
        ErrorClass::Timeout
    } else if text.contains("does not resolve") || text.contains("dns error") {
        ErrorClass::Dns
    } else if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
        ErrorClass::Tls
    } else {
        ErrorClass::Connection
    }
}

/// The error and its causes, as one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        out.push_str(": ");
        out.push_str(&err.to_string());
        source = err.source();
    }
    out
}

fn truncate(mut text: String) -> String {
    if text.len() > EXCERPT {
        let mut end = EXCERPT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_and_capped() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 10:05:00 GMT", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn excerpts_stay_within_4_kib_on_a_char_boundary() {
        assert_eq!(truncate("é".repeat(3000)).len(), EXCERPT);
        assert_eq!(truncate("ok".into()), "ok");
    }
}
