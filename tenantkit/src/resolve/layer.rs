use std::sync::Arc;

use http::HeaderName;
use tower::Layer;

use super::{TENANT_HEADER, TenantRef, TenantResolver, TenantService};
use crate::{Error, Result};

/// Resolves each request's tenant; see the [module docs](super).
#[derive(Clone, Debug)]
pub struct TenantLayer<R> {
    pub(super) resolver: R,
    pub(super) config: Arc<Config>,
}

#[derive(Clone, Debug)]
pub(super) struct Config {
    /// Lower-case, no leading dot, no port.
    pub(super) base_domain: Option<String>,
    pub(super) header: HeaderName,
    pub(super) default_tenant: Option<TenantRef>,
}

impl<R: TenantResolver> TenantLayer<R> {
    /// Resolves by `X-Tenant-Id` only, until configured further.
    pub fn new(resolver: R) -> Self {
        Self {
            resolver,
            config: Arc::new(Config {
                base_domain: None,
                header: HeaderName::from_static(TENANT_HEADER),
                default_tenant: None,
            }),
        }
    }

    /// Resolves `<tenant>.<base_domain>` hosts. `base_domain` is a host name
    /// such as `example.com` (no scheme, port or leading dot).
    pub fn with_base_domain(mut self, base_domain: &str) -> Result<Self> {
        let domain = base_domain
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let valid = !domain.is_empty()
            && domain.len() <= 253
            && domain
                .split('.')
                .all(|label| crate::validate::subdomain(label).is_ok_and(|l| l == label));
        if !valid {
            return Err(Error::Misconfigured(format!(
                "base domain `{base_domain}` must be a host name such as `example.com`"
            )));
        }
        Arc::make_mut(&mut self.config).base_domain = Some(domain);
        Ok(self)
    }

    /// Reads the tenant from `header` instead of `X-Tenant-Id`.
    pub fn with_header(mut self, header: HeaderName) -> Self {
        Arc::make_mut(&mut self.config).header = header;
        self
    }

    /// Sends requests that name no tenant to `tenant` (an id or a subdomain),
    /// for backward compatibility with single-tenant clients.
    pub fn with_default_tenant(mut self, tenant: TenantRef) -> Self {
        Arc::make_mut(&mut self.config).default_tenant = Some(tenant);
        self
    }
}

impl<S, R: Clone> Layer<S> for TenantLayer<R> {
    type Service = TenantService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        crate::guard::Guarded::new(inner, self.clone())
    }
}
