//! Trusted token issuers: tokens of the OpenID providers an operator names
//! (Auth0, Keycloak, Entra ID, Okta, Clerk, their own), verified with each
//! provider's published keys.
//!
//! An [`IssuerConfig`] names the issuer (`iss`), the audience tokens must be
//! for, the algorithms allowed (RS256, ES256, EdDSA; never HS* or `none`),
//! which claim names the tenant and which the user. [`Issuers`] verifies a
//! token of any of them: the keys come from the issuer's JWKS (found by
//! discovery unless `jwks_uri` is given), cached by `kid`, fetched again when
//! the cache goes stale or an unknown `kid` arrives, at most once per
//! refetch interval, so a provider's key rotation needs no restart and a
//! flood of made-up `kid`s cannot make the server hammer the provider.
//!
//! ```
//! use tenantkit::auth::{IssuerConfig, Issuers};
//!
//! let config: IssuerConfig = serde_json::from_value(serde_json::json!({
//!     "name": "corp",
//!     "issuer": "https://login.example.com/",
//!     "audience": "https://api.example.com",
//!     "tenant_claim": "org_id",
//!     "user_claim": "email",
//! }))
//! .unwrap();
//! let issuers = Issuers::new(&[config]).unwrap();
//! assert!(issuers.trusts("https://login.example.com/"));
//! assert!(!issuers.trusts("https://login.example.com"));
//! ```

mod keys;

use std::{collections::HashMap, sync::Arc, time::Duration};

use http::StatusCode;
use jsonwebtoken::{Algorithm, Validation, errors::ErrorKind};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

mod tenant;

pub use keys::{FETCH_TIMEOUT, KeyFetches, MAX_DOCUMENT_BYTES, MAX_KEYS};
use keys::{IssuerKeys, check_url};
pub use tenant::TenantIssuers;

use super::UserClaim;
use crate::{
    Error, Result, Role, problem::Problem, ssrf::UrlPolicy, store::SSO_ISSUER_PROVIDER,
    store::UserRef,
};

/// One trusted issuer, as configuration names it (`[[auth.issuers]]` in the
/// reference server). Every field but `name`, `issuer` and `audience` has a
/// default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// A short name (1 to 50 characters) for logs, and the provider under
    /// which tenants' external ids for this issuer are linked.
    pub name: String,
    /// The `iss` its tokens carry, exactly (trailing slash included).
    pub issuer: String,
    /// What `aud` must contain (one of these); a string or a list.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// A public client (no secret) registered with the provider for
    /// browser sign-in by Authorization Code + PKCE (the reference server's
    /// dashboard); verification does not use it.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The key set's address; by default read from the issuer's
    /// `/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Algorithms allowed: `RS256`, `ES256`, `EdDSA` (default all three).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// The claim naming the tenant: a tenant id, or an external id linked to
    /// the tenant under this issuer's `name` (default `tenant`).
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Which claim names the user: `sub` (a tenantkit user id) or `email`
    /// (default `email`).
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim holding the user's e-mail address (default `email`).
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// A claim whose tenant role (`member`, `admin`, `owner`; or a list of
    /// them, the highest counts) caps the user's own; by default none, and
    /// the user acts with their tenantkit role.
    #[serde(default)]
    pub role_claim: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf` (default 30, at most 300).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Allows plain `http` to a loopback host (tests, local providers).
    #[serde(default)]
    pub allow_http_loopback: bool,
    /// Keys are kept at least this long whatever the provider's
    /// `Cache-Control` says (default 300 s)…
    #[serde(default = "default_min_cache")]
    pub key_cache_min_secs: u64,
    /// …and at most this long (default 86,400 s).
    #[serde(default = "default_max_cache")]
    pub key_cache_max_secs: u64,
    /// The least time between two fetches of the keys (default 30 s, at
    /// least 1 s): what a flood of unknown `kid`s can cost the provider.
    #[serde(default = "default_refetch_interval")]
    pub key_refetch_interval_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_tenant_claim() -> String {
    "tenant".into()
}
fn default_user_claim() -> String {
    "email".into()
}
fn default_email_claim() -> String {
    "email".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_min_cache() -> u64 {
    300
}
fn default_max_cache() -> u64 {
    86_400
}
fn default_refetch_interval() -> u64 {
    30
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl IssuerConfig {
    /// An issuer with every default: tokens for `audience` naming their
    /// tenant in `tenant` and their user in `email`.
    pub fn new(
        name: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            issuer: issuer.into(),
            audience: vec![audience.into()],
            client_id: None,
            jwks_uri: None,
            algorithms: default_algorithms(),
            tenant_claim: default_tenant_claim(),
            user_claim: default_user_claim(),
            email_claim: default_email_claim(),
            role_claim: None,
            leeway_secs: default_leeway(),
            allow_http_loopback: false,
            key_cache_min_secs: default_min_cache(),
            key_cache_max_secs: default_max_cache(),
            key_refetch_interval_secs: default_refetch_interval(),
        }
    }
}

/// An issuer's configuration, checked.
pub(super) struct IssuerSettings {
    name: String,
    issuer: String,
    audience: Vec<String>,
    jwks_uri: Option<String>,
    algorithms: Vec<Algorithm>,
    tenant_claim: String,
    user_claim: UserClaim,
    email_claim: String,
    role_claim: Option<String>,
    leeway_secs: u64,
    allow_http_loopback: bool,
    /// For a tenant's issuer: what its addresses may be (else https, or
    /// loopback http when allowed).
    url_policy: Option<UrlPolicy>,
    min_cache: Duration,
    max_cache: Duration,
    refetch_interval: Duration,
}

impl IssuerSettings {
    fn new(config: &IssuerConfig) -> Result<Self> {
        let bad = |what: String| Error::Misconfigured(format!("issuer `{}`: {what}", config.name));
        if config.name.is_empty() || config.name.chars().count() > 50 {
            return Err(bad("name must be 1 to 50 characters".into()));
        }
        if config.name == SSO_ISSUER_PROVIDER {
            return Err(bad(format!(
                "the name `{SSO_ISSUER_PROVIDER}` is reserved for tenants' own issuers"
            )));
        }
        if config.email_claim.is_empty() {
            return Err(bad("email_claim must name a claim".into()));
        }
        check_url(&config.issuer, config.allow_http_loopback).map_err(|e| bad(e.to_string()))?;
        if let Some(uri) = &config.jwks_uri {
            check_url(uri, config.allow_http_loopback).map_err(|e| bad(e.to_string()))?;
        }
        if config.audience.is_empty() || config.audience.iter().any(String::is_empty) {
            return Err(bad(
                "audience must name at least one non-empty audience".into()
            ));
        }
        if config.client_id.as_ref().is_some_and(String::is_empty) {
            return Err(bad("client_id must not be empty".into()));
        }
        if config.algorithms.is_empty() {
            return Err(bad("algorithms must name at least one".into()));
        }
        let algorithms = config
            .algorithms
            .iter()
            .map(|name| match name.as_str() {
                "RS256" => Ok(Algorithm::RS256),
                "ES256" => Ok(Algorithm::ES256),
                "EdDSA" => Ok(Algorithm::EdDSA),
                other => Err(bad(format!(
                    "algorithm `{other}` is not allowed: use RS256, ES256 or EdDSA \
                     (shared secrets and `none` never verify an issuer's tokens)"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        if config.tenant_claim.is_empty() {
            return Err(bad("tenant_claim must name a claim".into()));
        }
        let user_claim = config
            .user_claim
            .parse::<UserClaim>()
            .map_err(|e| bad(e.to_string()))?;
        if config.leeway_secs > 300 {
            return Err(bad("leeway_secs must be at most 300".into()));
        }
        if config.key_refetch_interval_secs == 0 {
            return Err(bad("key_refetch_interval_secs must be at least 1".into()));
        }
        if config.key_cache_min_secs > config.key_cache_max_secs {
            return Err(bad(
                "key_cache_min_secs must not exceed key_cache_max_secs".into()
            ));
        }
        Ok(Self {
            name: config.name.clone(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            jwks_uri: config.jwks_uri.clone(),
            algorithms,
            tenant_claim: config.tenant_claim.clone(),
            user_claim,
            email_claim: config.email_claim.clone(),
            role_claim: config.role_claim.clone(),
            leeway_secs: config.leeway_secs,
            allow_http_loopback: config.allow_http_loopback,
            url_policy: None,
            min_cache: Duration::from_secs(config.key_cache_min_secs),
            max_cache: Duration::from_secs(config.key_cache_max_secs),
            refetch_interval: Duration::from_secs(config.key_refetch_interval_secs),
        })
    }
}

impl IssuerSettings {
    /// Whether `url` (the issuer's, its discovery's or its key set's) may be
    /// fetched: a tenant's issuer by the operator's [`UrlPolicy`] (literal
    /// addresses here, names as they resolve), a configured one `https` or
    /// allowed loopback `http`.
    fn check_url(&self, url: &str) -> Result<()> {
        match &self.url_policy {
            Some(policy) => policy
                .vet_url(url)
                .map(drop)
                .map_err(|refusal| Error::invalid(format!("`{url}`: {refusal}"))),
            None => check_url(url, self.allow_http_loopback),
        }
    }
}

/// Why a token of a trusted issuer (or one claiming to be) was refused. The
/// reason's class is told to the client; key material never is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// `iss` names no trusted issuer.
    #[error("the token's issuer is not trusted")]
    UntrustedIssuer,
    /// `aud` names none of the issuer's audiences.
    #[error("the token is for another audience")]
    WrongAudience,
    /// The header's `alg` is not one the issuer (or its key) allows.
    #[error("the token's algorithm is not allowed for its issuer")]
    AlgorithmNotAllowed,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` has not come yet.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// No key of the issuer has the token's `kid`.
    #[error("no key of the token's issuer has its key id")]
    UnknownKey,
    /// The signature does not verify with the issuer's key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// Not a JWT, or a required claim is missing or of the wrong type.
    #[error("the token is malformed or lacks a required claim")]
    Malformed,
    /// The issuer's keys were never fetched and cannot be now.
    #[error("the token's issuer cannot be reached to verify it; try again")]
    KeysUnavailable,
}

impl Refusal {
    /// The refusal as a response: `401` with `WWW-Authenticate: Bearer`, or
    /// `503` when the issuer's keys cannot be had.
    pub fn problem(self) -> Problem {
        match self {
            Refusal::KeysUnavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Identity provider unavailable",
            )
            .with_detail(self.to_string())
            .with_header(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("5"),
            ),
            _ => super::layer::unauthorized(&self.to_string()),
        }
    }
}

/// A verified token of a trusted issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerToken {
    /// The issuer's configured `name`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// The tenant claim's value: a tenant id, or an external id linked
    /// under the issuer's name.
    pub tenant: Option<String>,
    /// The e-mail address (the issuer's e-mail claim), if the token has one.
    pub email: Option<String>,
    /// Whether the token says its e-mail address is not verified
    /// (`email_verified: false`).
    pub email_unverified: bool,
    /// The role the role claim caps the user's to, if configured and present.
    pub role: Option<Role>,
    /// `exp`, seconds since the Unix epoch.
    pub expires: u64,
    user_claim: UserClaim,
}

impl IssuerToken {
    /// The user the token names, by its issuer's user claim; never by an
    /// e-mail address the token says is not verified.
    pub fn user(&self) -> Result<UserRef, &'static str> {
        if self.user_claim == UserClaim::Email && self.email_unverified {
            return Err("the token's e-mail address is not verified");
        }
        self.user_claim
            .user_named(&self.subject, self.email.as_deref())
    }
}

struct Issuer {
    settings: Arc<IssuerSettings>,
    keys: IssuerKeys,
}

/// The trusted issuers; cheap to clone (one key cache per issuer, shared).
#[derive(Clone, Default)]
pub struct Issuers {
    by_iss: Arc<HashMap<String, Arc<Issuer>>>,
    client: Arc<keys::Client>,
}

impl std::fmt::Debug for Issuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_iss.keys()).finish()
    }
}

impl Issuers {
    /// Checks every configuration (names and issuers unique, addresses
    /// https or allowed loopback, algorithms allowed); fetches nothing yet.
    /// The first fetch builds the HTTP client, which needs a process-wide
    /// rustls crypto provider (`rustls::crypto::CryptoProvider::install_default`).
    pub fn new(configs: &[IssuerConfig]) -> Result<Self> {
        let client = Arc::new(keys::Client::default());
        let mut by_iss = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for config in configs {
            let settings = Arc::new(IssuerSettings::new(config)?);
            if !names.insert(settings.name.clone()) {
                return Err(Error::Misconfigured(format!(
                    "two issuers are named `{}`",
                    settings.name
                )));
            }
            let issuer = Arc::new(Issuer {
                keys: IssuerKeys::new(settings.clone(), client.clone()),
                settings,
            });
            if by_iss.insert(config.issuer.clone(), issuer).is_some() {
                return Err(Error::Misconfigured(format!(
                    "issuer {} is configured twice",
                    config.issuer
                )));
            }
        }
        Ok(Self {
            by_iss: Arc::new(by_iss),
            client,
        })
    }

    /// How many times these issuers' key sets were fetched, and how many
    /// fetches failed (for metrics).
    pub fn key_fetches(&self) -> KeyFetches {
        self.client.fetches()
    }

    /// Whether no issuer is trusted.
    pub fn is_empty(&self) -> bool {
        self.by_iss.is_empty()
    }

    /// Whether `iss` is a trusted issuer.
    pub fn trusts(&self, iss: &str) -> bool {
        self.by_iss.contains_key(iss)
    }

    /// The `iss` of `token`, unverified: which issuer to verify it with.
    pub fn issuer_of(token: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Peek {
            iss: Option<String>,
        }
        jsonwebtoken::dangerous::insecure_decode_claims::<Peek>(token)
            .ok()
            .and_then(|p| p.iss)
    }

    /// Verifies a token of a trusted issuer: its issuer, algorithm, key,
    /// signature, audience and times; then reads who it names.
    pub async fn verify(&self, token: &str) -> Result<IssuerToken, Refusal> {
        let iss = Self::issuer_of(token).ok_or(Refusal::Malformed)?;
        self.verify_as(&iss, token).await
    }

    /// [`Issuers::verify`] for a caller that has read the token's `iss`
    /// already ([`Issuers::issuer_of`]): the payload is not decoded twice.
    /// The signature check still requires `iss` to be exactly this.
    pub async fn verify_as(&self, iss: &str, token: &str) -> Result<IssuerToken, Refusal> {
        let issuer = self.by_iss.get(iss).ok_or(Refusal::UntrustedIssuer)?;
        verify_with(&issuer.settings, &issuer.keys, token).await
    }
}

/// Verifies `token` as one of the issuer `settings` describes, with its `keys`.
async fn verify_with(
    settings: &IssuerSettings,
    keys: &IssuerKeys,
    token: &str,
) -> Result<IssuerToken, Refusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
    if !settings.algorithms.contains(&header.alg) {
        return Err(Refusal::AlgorithmNotAllowed);
    }
    let key = keys.key(header.kid.as_deref()).await?;
    if key.alg.is_some_and(|alg| alg != header.alg) || key.decoding.family() != header.alg.family()
    {
        return Err(Refusal::AlgorithmNotAllowed);
    }
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&settings.issuer]);
    validation.set_audience(&settings.audience);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = settings.leeway_secs;
    validation.validate_nbf = true;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
        .map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => Refusal::Expired,
            ErrorKind::ImmatureSignature => Refusal::NotYetValid,
            ErrorKind::InvalidAudience => Refusal::WrongAudience,
            ErrorKind::InvalidIssuer => Refusal::UntrustedIssuer,
            ErrorKind::InvalidAlgorithm => Refusal::AlgorithmNotAllowed,
            ErrorKind::InvalidSignature => Refusal::BadSignature,
            _ => Refusal::Malformed,
        })?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    Ok(IssuerToken {
        issuer: settings.name.clone(),
        subject: text("sub").ok_or(Refusal::Malformed)?,
        tenant: text(&settings.tenant_claim),
        email: text(&settings.email_claim),
        email_unverified: claims.get("email_verified") == Some(&Value::Bool(false)),
        role: settings
            .role_claim
            .as_deref()
            .and_then(|name| claims.get(name))
            .and_then(highest_role),
        expires: claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(Refusal::Malformed)?,
        user_claim: settings.user_claim,
    })
}

/// The highest tenant role a role claim names (a string or a list).
fn highest_role(value: &Value) -> Option<Role> {
    let parse = |v: &Value| v.as_str().and_then(|s| s.parse::<Role>().ok());
    match value {
        Value::Array(items) => items.iter().filter_map(parse).max(),
        other => parse(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IssuerConfig {
        IssuerConfig::new("corp", "https://idp.example.com/", "api")
    }

    #[test]
    fn configurations_are_checked() {
        assert!(Issuers::new(&[config()]).is_ok());
        let mut hs = config();
        hs.algorithms = vec!["HS256".into()];
        assert!(Issuers::new(&[hs]).is_err(), "shared secrets never");
        let mut none = config();
        none.algorithms = vec!["none".into()];
        assert!(Issuers::new(&[none]).is_err());
        let mut plain = config();
        plain.issuer = "http://idp.example.com/".into();
        assert!(Issuers::new(&[plain]).is_err(), "https only");
        let mut unnamed = config();
        unnamed.name = String::new();
        assert!(Issuers::new(&[unnamed]).is_err());
        let mut other = config();
        other.issuer = "https://other.example.com/".into();
        assert!(
            Issuers::new(&[config(), other]).is_err(),
            "names are unique"
        );
        let mut no_audience = config();
        no_audience.audience.clear();
        assert!(Issuers::new(&[no_audience]).is_err());
        let mut flood = config();
        flood.key_refetch_interval_secs = 0;
        assert!(Issuers::new(&[flood]).is_err());
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        let one: IssuerConfig = serde_json::from_value(serde_json::json!({
            "name": "a", "issuer": "https://a.example/", "audience": "x"
        }))
        .unwrap();
        assert_eq!(one.audience, vec!["x"]);
        let many: IssuerConfig = serde_json::from_value(serde_json::json!({
            "name": "a", "issuer": "https://a.example/", "audience": ["x", "y"]
        }))
        .unwrap();
        assert_eq!(many.audience, vec!["x", "y"]);
        assert!(
            serde_json::from_value::<IssuerConfig>(serde_json::json!({
                "name": "a", "issuer": "https://a.example/", "audience": "x", "typo": 1
            }))
            .is_err()
        );
    }

    #[test]
    fn the_highest_listed_role_counts() {
        use serde_json::json;
        assert_eq!(highest_role(&json!("admin")), Some(Role::Admin));
        assert_eq!(
            highest_role(&json!(["member", "owner", "viewer"])),
            Some(Role::Owner)
        );
        assert_eq!(highest_role(&json!("viewer")), None);
        assert_eq!(highest_role(&json!(3)), None);
    }

    #[tokio::test]
    async fn an_unlisted_issuer_or_a_garbled_token_is_refused_before_any_fetch() {
        let issuers = Issuers::new(&[config()]).unwrap();
        assert_eq!(
            issuers.verify("not.a.jwt").await.unwrap_err(),
            Refusal::Malformed
        );
        let keys = crate::auth::JwtKeys::hs256(&[7; 32]).unwrap();
        let token = keys
            .issue("u", None, crate::auth::TokenRole::PlatformAdmin, 60)
            .unwrap();
        assert_eq!(
            issuers.verify(&token).await.unwrap_err(),
            Refusal::Malformed,
            "no iss"
        );
    }

    /// A loopback HTTP server answering each request with what `answer`
    /// gives for its path (`None`: never answers); its base URL.
    async fn serve(
        answer: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static,
    ) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(answer);
        let me = base.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (answer, me) = (answer.clone(), me.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    match answer(&me, &path) {
                        Some(response) => {
                            let _ = socket.write_all(response.as_bytes()).await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(60)).await,
                    }
                });
            }
        });
        base
    }

    fn json(body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    fn discovery(base: &str) -> Option<String> {
        json(&serde_json::json!({ "issuer": base, "jwks_uri": format!("{base}/jwks") }).to_string())
    }

    /// An Ed25519 public key (RFC 8037, appendix A) as a JWK named `kid`.
    fn ed25519(kid: &str) -> Value {
        serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" })
    }

    /// An EdDSA token of `iss` with key id `kid` (and a signature no key makes).
    fn token(iss: &str, kid: &str) -> String {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let header = b64(serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid }));
        let claims = b64(
            serde_json::json!({ "iss": iss, "aud": "api", "sub": "u", "exp": 4_000_000_000u64 }),
        );
        format!("{header}.{claims}.{}", "A".repeat(86))
    }

    /// A token of the issuer at `base` finds no keys to verify with.
    async fn assert_no_keys(base: &str) {
        assert_eq!(
            issuers_of(base)
                .verify(&token(base, "k"))
                .await
                .unwrap_err(),
            Refusal::KeysUnavailable
        );
    }

    fn issuers_of(base: &str) -> Issuers {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = IssuerConfig::new("local", base, "api");
        config.allow_http_loopback = true;
        Issuers::new(&[config]).unwrap()
    }

    #[tokio::test]
    async fn at_most_max_keys_of_a_key_set_are_kept() {
        let base = serve(|base, path| match path {
            "/.well-known/openid-configuration" => discovery(base),
            "/jwks" => {
                let keys: Vec<Value> = (0..MAX_KEYS + 36)
                    .map(|i| ed25519(&format!("k{i}")))
                    .collect();
                json(&serde_json::json!({ "keys": keys }).to_string())
            }
            _ => None,
        })
        .await;
        let issuers = issuers_of(&base);
        let last_kept = format!("k{}", MAX_KEYS - 1);
        assert_eq!(
            issuers.verify(&token(&base, &last_kept)).await.unwrap_err(),
            Refusal::BadSignature,
            "the key is there; the signature is not its"
        );
        let past = format!("k{MAX_KEYS}");
        assert_eq!(
            issuers.verify(&token(&base, &past)).await.unwrap_err(),
            Refusal::UnknownKey
        );
    }

    #[tokio::test]
    async fn an_oversized_key_set_a_redirect_or_a_discovery_naming_another_issuer_gives_no_keys() {
        // A key set one byte past the limit.
        let base = serve(|base, path| match path {
            "/.well-known/openid-configuration" => discovery(base),
            "/jwks" => {
                let pad = " ".repeat(MAX_DOCUMENT_BYTES - 11);
                json(&format!("{{\"keys\": []{pad}}}"))
            }
            _ => None,
        })
        .await;
        assert_no_keys(&base).await;
        // Redirects are not followed.
        let base = serve(|_, _| {
            Some("HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".into())
        })
        .await;
        assert_no_keys(&base).await;
        // A discovery document naming another issuer is not believed.
        let base = serve(|_, path| match path {
            "/.well-known/openid-configuration" => discovery("http://127.0.0.1:9"),
            "/jwks" => json(&serde_json::json!({ "keys": [ed25519("k")] }).to_string()),
            _ => None,
        })
        .await;
        assert_no_keys(&base).await;
    }

    #[tokio::test]
    async fn a_provider_that_never_answers_is_given_up_on_after_the_time_limit() {
        let base = serve(|_, _| None).await;
        let started = std::time::Instant::now();
        assert_no_keys(&base).await;
        let took = started.elapsed();
        assert!(
            took >= FETCH_TIMEOUT && took < FETCH_TIMEOUT + Duration::from_secs(2),
            "{took:?}"
        );
    }
}
