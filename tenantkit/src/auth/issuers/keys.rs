//! One trusted issuer's signing keys: fetched from its JWKS (found by
//! discovery unless configured), cached by `kid` for as long as the
//! provider's `Cache-Control` says (within a floor and a ceiling), fetched
//! again at most once per refetch interval, whatever tokens arrive.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{
    DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse},
};
use serde::Deserialize;

use super::{IssuerSettings, Refusal};
use crate::{
    Error, Result,
    ssrf::{UrlPolicy, VettingResolver},
};

/// The largest discovery document or key set read, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The most keys kept of one key set (the rest are ignored).
pub const MAX_KEYS: usize = 64;

/// The time limit of one request for a discovery document or key set.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The HTTP client issuers fetch with, built at the first fetch (so
/// configuration can be checked before a TLS provider is chosen). Tenants'
/// issuers share one that resolves through their [`UrlPolicy`].
#[derive(Default)]
pub(super) struct Client {
    built: std::sync::OnceLock<reqwest::Client>,
    policy: Option<UrlPolicy>,
    succeeded: AtomicU64,
    failed: AtomicU64,
}

/// How many times the key sets of a group of issuers (configured ones, or
/// tenants' own) were fetched, and how many of those fetches failed (a
/// provider down, too slow, too large, or at a refused address).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyFetches {
    /// Fetches that brought a key set.
    pub succeeded: u64,
    /// Fetches that did not.
    pub failed: u64,
}

impl Client {
    /// A client connecting only to addresses `policy` allows.
    pub(super) fn vetting(policy: UrlPolicy) -> Self {
        Self {
            policy: Some(policy),
            ..Self::default()
        }
    }

    /// The fetches made with this client so far.
    pub(super) fn fetches(&self) -> KeyFetches {
        KeyFetches {
            succeeded: self.succeeded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    fn get(&self) -> Result<reqwest::Client> {
        if let Some(client) = self.built.get() {
            return Ok(client.clone());
        }
        // reqwest panics without one: refuse instead.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(Error::Misconfigured(
                "no rustls crypto provider is installed: install one \
                 (rustls::crypto::CryptoProvider::install_default) before tokens of \
                 trusted issuers are verified"
                    .into(),
            ));
        }
        let mut builder = reqwest::Client::builder();
        if let Some(policy) = &self.policy {
            builder = builder.dns_resolver(Arc::new(VettingResolver(policy.clone())));
        }
        let built = builder
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .user_agent(concat!("tenantkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Internal(format!("building the JWKS client: {e}")))?;
        Ok(self.built.get_or_init(|| built).clone())
    }
}

/// A verification key and the algorithm family it serves.
#[derive(Clone)]
pub(super) struct Key {
    pub(super) decoding: DecodingKey,
    /// The JWK's `alg`, when it names one: tokens must then use exactly it.
    pub(super) alg: Option<jsonwebtoken::Algorithm>,
}

/// The keys of one fetch.
struct KeySet {
    keys: HashMap<String, Key>,
    fresh_until: Instant,
}

/// When the keys were last asked for, and where they are.
struct Fetching {
    last_attempt: Option<Instant>,
    jwks_uri: Option<String>,
}

/// An issuer's key cache.
pub(super) struct IssuerKeys {
    settings: Arc<IssuerSettings>,
    client: Arc<Client>,
    current: RwLock<Option<Arc<KeySet>>>,
    fetching: tokio::sync::Mutex<Fetching>,
}

impl IssuerKeys {
    pub(super) fn new(settings: Arc<IssuerSettings>, client: Arc<Client>) -> Self {
        let jwks_uri = settings.jwks_uri.clone();
        Self {
            settings,
            client,
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(Fetching {
                last_attempt: None,
                jwks_uri,
            }),
        }
    }

    fn cached(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The key `kid` names (or the only key, for a token without `kid`).
    ///
    /// A cached key is used as long as it is fresh; a stale one triggers a
    /// fetch, and is still used when that fetch fails (a provider that is
    /// down does not stop tokens signed with keys already known). An
    /// unknown `kid` triggers a fetch only if none was tried in the last
    /// refetch interval.
    pub(super) async fn key(&self, kid: Option<&str>) -> Result<Key, Refusal> {
        if let Some(key) = self.fresh(kid) {
            return Ok(key);
        }
        // Stale, not fetched yet, or an unknown `kid`: one fetch at a time,
        // and at most one per refetch interval.
        let mut fetching = self.fetching.lock().await;
        if let Some(key) = self.fresh(kid) {
            // Another request fetched while this one waited.
            return Ok(key);
        }
        if self.may_fetch(&fetching) {
            fetching.last_attempt = Some(Instant::now());
            match self.fetch(&mut fetching).await {
                Ok(set) => {
                    self.client.succeeded.fetch_add(1, Ordering::Relaxed);
                    *self
                        .current
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(set));
                }
                Err(e) => {
                    self.client.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        issuer = %self.settings.issuer,
                        error = %e,
                        "could not fetch the issuer's keys; using those cached, if any"
                    );
                }
            }
        }
        match self.cached() {
            Some(set) => pick(&set, kid).ok_or(Refusal::UnknownKey),
            None => Err(Refusal::KeysUnavailable),
        }
    }

    /// The key `kid` names in a key set still fresh.
    fn fresh(&self, kid: Option<&str>) -> Option<Key> {
        let set = self.cached()?;
        (set.fresh_until > Instant::now())
            .then(|| pick(&set, kid))
            .flatten()
    }

    fn may_fetch(&self, fetching: &Fetching) -> bool {
        fetching
            .last_attempt
            .is_none_or(|at| at.elapsed() >= self.settings.refetch_interval)
    }

    /// Discovers the key set's address if needed, then fetches the keys.
    async fn fetch(&self, fetching: &mut Fetching) -> Result<KeySet> {
        let jwks_uri = match &fetching.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover().await?;
                fetching.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let (body, max_age) = self.get(&jwks_uri).await?;
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(&body).map_err(|e| {
            Error::Internal(format!("the key set at {jwks_uri} is not a JWKS: {e}"))
        })?;
        let mut keys = HashMap::new();
        for value in raw.keys.into_iter().take(MAX_KEYS) {
            // A key of a kind this crate cannot use is skipped, not fatal.
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            if let Some((kid, key)) = usable(&jwk) {
                keys.insert(kid, key);
            }
        }
        let ttl = max_age
            .unwrap_or(self.settings.min_cache)
            .clamp(self.settings.min_cache, self.settings.max_cache);
        tracing::info!(issuer = %self.settings.issuer, keys = keys.len(), ttl_secs = ttl.as_secs(), "fetched the issuer's keys");
        Ok(KeySet {
            keys,
            fresh_until: Instant::now() + ttl,
        })
    }

    /// The `jwks_uri` of the issuer's discovery document, which must name
    /// the configured issuer.
    async fn discover(&self) -> Result<String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url).await?;
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let found: Discovery = serde_json::from_slice(&body).map_err(|e| {
            Error::Internal(format!("the discovery document at {url} is invalid: {e}"))
        })?;
        if found.issuer != self.settings.issuer {
            return Err(Error::Internal(format!(
                "the discovery document at {url} names issuer {} instead",
                found.issuer
            )));
        }
        self.settings.check_url(&found.jwks_uri)?;
        Ok(found.jwks_uri)
    }

    /// GETs `url` (bounded in size and time): the body, and the
    /// `Cache-Control` max-age if there is one.
    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<Duration>)> {
        self.settings.check_url(url)?;
        let failed = |e: reqwest::Error| Error::Internal(format!("GET {url}: {e}"));
        let mut response = self
            .client
            .get()?
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(failed)?;
        if !response.status().is_success() {
            return Err(Error::Internal(format!(
                "GET {url}: status {}",
                response.status()
            )));
        }
        let max_age = response
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(Error::Internal(format!(
                    "GET {url}: the response is larger than {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// The key for `kid` in `set`; without a `kid`, the set's only key.
fn pick(set: &KeySet, kid: Option<&str>) -> Option<Key> {
    match kid {
        Some(kid) => set.keys.get(kid).cloned(),
        None if set.keys.len() == 1 => set.keys.values().next().cloned(),
        None => None,
    }
}

/// A signing key (`kid`, `use` absent or `sig`) of a public-key kind this
/// crate verifies: RSA, P-256 or Ed25519. Shared secrets (`oct`) never.
fn usable(jwk: &Jwk) -> Option<(String, Key)> {
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let kind_ok = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => true,
        AlgorithmParameters::EllipticCurve(p) => p.curve == EllipticCurve::P256,
        AlgorithmParameters::OctetKeyPair(p) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    if !kind_ok {
        return None;
    }
    let alg = jwk
        .common
        .key_algorithm
        .and_then(|a| a.to_string().parse::<jsonwebtoken::Algorithm>().ok());
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, Key { decoding, alg }))
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache`: zero).
fn max_age(value: &str) -> Option<Duration> {
    let mut found = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(secs) = lower.strip_prefix("max-age=") {
            found = secs
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    found
}

/// An issuer, discovery or key-set address must be `https`, or `http` to a
/// loopback host when the issuer allows it (tests, local providers).
pub(super) fn check_url(url: &str, allow_http_loopback: bool) -> Result<()> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::Misconfigured(format!("`{url}` is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_http_loopback && is_loopback(&parsed) => Ok(()),
        "http" => Err(Error::Misconfigured(format!(
            "`{url}` must use https (plain http only to a loopback host, with allow_http_loopback)"
        ))),
        other => Err(Error::Misconfigured(format!(
            "`{url}`: unsupported scheme `{other}`; use https"
        ))),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_no_store_is_zero() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=oops"), None);
    }

    #[test]
    fn only_https_or_loopback_http_when_allowed() {
        assert!(check_url("https://idp.example.com/", false).is_ok());
        assert!(check_url("http://127.0.0.1:9000/", true).is_ok());
        assert!(check_url("http://localhost:9000/", true).is_ok());
        assert!(check_url("http://127.0.0.1:9000/", false).is_err());
        assert!(check_url("http://idp.example.com/", true).is_err());
        assert!(check_url("ftp://idp.example.com/", true).is_err());
        assert!(check_url("not a url", true).is_err());
    }
}
