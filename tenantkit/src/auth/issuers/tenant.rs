//! Tenants' own issuers (single sign-on): a tenant registers its identity
//! provider ([`crate::SsoSettings`]), and tokens whose `iss` is
//! that provider act in that tenant, and in no other.
//!
//! The addresses are the tenant's to give, so every fetch goes through the
//! operator's [`UrlPolicy`] (no internal address, by name or by literal, at
//! registration or at any later connection), with the limits of configured
//! issuers (5 s, 256 KiB, 64 keys, no redirects).

use std::{sync::Arc, time::Duration};

use super::{
    IssuerKeys, IssuerSettings, IssuerToken, KeyFetches, Refusal, default_algorithms, keys::Client,
};
use crate::{
    Error, Result, SsoSettings, TenantSso, auth::UserClaim, ssrf::UrlPolicy,
    store::SSO_ISSUER_PROVIDER,
};

/// At most this many tenants' key caches are kept (least recently used go).
const CAPACITY: u64 = 10_000;

/// Verifies tokens of tenants' own issuers; cheap to clone (one key cache
/// per issuer, shared).
#[derive(Clone)]
pub struct TenantIssuers {
    inner: Arc<Inner>,
}

struct Inner {
    client: Arc<Client>,
    policy: UrlPolicy,
    keys: moka::sync::Cache<(String, Option<String>), Arc<IssuerKeys>>,
}

impl std::fmt::Debug for TenantIssuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantIssuers")
            .field("policy", &self.inner.policy)
            .field("cached", &self.inner.keys.entry_count())
            .finish()
    }
}

impl Default for TenantIssuers {
    /// Issuers reached over `https` at public addresses only.
    fn default() -> Self {
        Self::new(UrlPolicy::strict())
    }
}

impl TenantIssuers {
    /// Tenants' issuers contacted only as `policy` allows (the server's
    /// `auth.sso` settings).
    pub fn new(policy: UrlPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: Arc::new(Client::vetting(policy.clone())),
                policy,
                keys: moka::sync::Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_idle(Duration::from_secs(86_400))
                    .build(),
            }),
        }
    }

    /// How many times tenants' issuers' key sets were fetched, and how many
    /// fetches failed (for metrics).
    pub fn key_fetches(&self) -> KeyFetches {
        self.inner.client.fetches()
    }

    /// Whether the addresses of `settings` may be contacted: the issuer and
    /// key set URLs pass the policy, and their host names resolve only to
    /// allowed addresses. [`Error::Invalid`] says why not.
    pub async fn vet(&self, settings: &SsoSettings) -> Result<()> {
        let urls = (settings.issuer.iter().map(|u| ("issuer", u)))
            .chain(settings.jwks_uri.iter().map(|u| ("jwks_uri", u)));
        for (field, url) in urls {
            self.inner
                .policy
                .vet_url_resolving(url)
                .await
                .map_err(|refusal| Error::invalid(format!("`{field}`: {refusal}")))?;
        }
        Ok(())
    }

    /// Verifies `token` as one of the tenant's issuer `sso` registered: its
    /// algorithm (RS256, ES256, EdDSA), key, signature, audience and times.
    pub async fn verify(&self, sso: &TenantSso, token: &str) -> Result<IssuerToken, Refusal> {
        let s = &sso.settings;
        let (Some(issuer), Some(audience)) = (&s.issuer, &s.audience) else {
            return Err(Refusal::UntrustedIssuer);
        };
        let settings = IssuerSettings {
            name: SSO_ISSUER_PROVIDER.to_owned(),
            issuer: issuer.clone(),
            audience: vec![audience.clone()],
            jwks_uri: s.jwks_uri.clone(),
            algorithms: default_algorithms()
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect(),
            tenant_claim: String::new(),
            user_claim: UserClaim::Email,
            email_claim: s.email_claim.clone(),
            role_claim: s.role_claim.clone(),
            leeway_secs: 30,
            allow_http_loopback: false,
            url_policy: Some(self.inner.policy.clone()),
            min_cache: Duration::from_secs(300),
            max_cache: Duration::from_secs(86_400),
            refetch_interval: Duration::from_secs(30),
        };
        let key = (issuer.clone(), s.jwks_uri.clone());
        let settings = Arc::new(settings);
        let keys = self.inner.keys.get_with(key, || {
            Arc::new(IssuerKeys::new(settings.clone(), self.inner.client.clone()))
        });
        let mut token = super::verify_with(&settings, &keys, token).await?;
        token.tenant = None;
        Ok(token)
    }
}
