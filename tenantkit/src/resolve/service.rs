use http::{Extensions, Request, StatusCode, header};

use super::{TenantLayer, TenantRef, TenantResolver, layer::Config};
use crate::{
    Error, TenantContext, TenantStatus,
    audit::Actor,
    guard::{Guard, Guarded},
    problem::Problem,
};

/// The service made by [`TenantLayer`].
pub type TenantService<S, R> = Guarded<S, TenantLayer<R>>;

/// Why no tenant could be resolved; each maps to one problem response.
enum Refusal {
    Unknown(String),
    Suspended,
    Conflicting,
    Malformed(String),
    Unnamed,
    Failed(Error),
}

impl Refusal {
    fn problem(self, config: &Config) -> Problem {
        match self {
            Refusal::Unknown(what) => Problem::new(StatusCode::NOT_FOUND, "Unknown tenant")
                .with_detail(format!("no tenant is known as `{what}`")),
            Refusal::Suspended => Problem::new(StatusCode::FORBIDDEN, "Tenant suspended")
                .with_detail("this tenant is suspended"),
            Refusal::Conflicting => Problem::new(StatusCode::BAD_REQUEST, "Conflicting tenant")
                .with_detail(format!(
                    "the host and the `{}` header name different tenants",
                    config.header
                )),
            Refusal::Malformed(detail) => {
                Problem::new(StatusCode::BAD_REQUEST, "Malformed tenant").with_detail(detail)
            }
            Refusal::Unnamed => {
                let via_host = config
                    .base_domain
                    .as_ref()
                    .map(|d| format!("a subdomain of `{d}` or "))
                    .unwrap_or_default();
                Problem::new(StatusCode::BAD_REQUEST, "Tenant required").with_detail(format!(
                    "name the tenant with {via_host}the `{}` header",
                    config.header
                ))
            }
            Refusal::Failed(err) => Problem::from(&err),
        }
    }
}

/// The subdomain label of `host` under `base`, if `host` is under it.
/// `Err` when the host is under `base` with more than one label.
fn subdomain_of<'h>(host: &'h str, base: &str) -> Result<Option<&'h str>, String> {
    let Some(prefix) = host.strip_suffix(base).and_then(|p| p.strip_suffix('.')) else {
        return Ok(None);
    };
    if prefix.is_empty() || prefix.contains('.') {
        return Err(prefix.to_owned());
    }
    Ok(Some(prefix))
}

/// The request's host name: lower-case, without port or trailing dot.
fn host_of<B>(req: &Request<B>) -> Option<String> {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())?;
    Some(host_name(raw))
}

/// The tenant subdomain a `Host` header's value names under `base_domain`,
/// read as [`crate::resolve::TenantLayer`] reads it: `acme.example.com:8080`
/// under `example.com` is `acme`; a host not under it, or more than one
/// label under it, names none.
///
/// ```
/// use tenantkit::resolve::subdomain_of_host;
///
/// assert_eq!(subdomain_of_host("Acme.Example.com:8080", "example.com").as_deref(), Some("acme"));
/// assert_eq!(subdomain_of_host("example.com", "example.com"), None);
/// assert_eq!(subdomain_of_host("a.b.example.com", "example.com"), None);
/// ```
pub fn subdomain_of_host(host: &str, base_domain: &str) -> Option<String> {
    let host = host_name(host);
    let base = base_domain
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    subdomain_of(&host, &base).ok().flatten().map(str::to_owned)
}

/// A `Host` value's name: lower-case, without port or trailing dot.
fn host_name(raw: &str) -> String {
    let without_port = match raw.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => raw,
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

async fn resolve<R: TenantResolver>(
    resolver: &R,
    config: &Config,
    host: Option<String>,
    header: Option<Result<String, ()>>,
) -> Result<TenantContext, Refusal> {
    let from_host = match (&config.base_domain, host.as_deref()) {
        (Some(base), Some(host)) => match subdomain_of(host, base) {
            Ok(Some(label)) => Some(TenantRef::Subdomain(label.to_owned())),
            Ok(None) => None,
            Err(_) => return Err(Refusal::Unknown(host.to_owned())),
        },
        _ => None,
    };
    let from_header = match header {
        None => None,
        Some(Err(())) => {
            return Err(Refusal::Malformed(format!(
                "the `{}` header is not valid text",
                config.header
            )));
        }
        Some(Ok(value)) => Some(value.parse::<TenantRef>().map_err(|_| {
            Refusal::Malformed(format!(
                "the `{}` header must hold a tenant id or subdomain, got `{value}`",
                config.header
            ))
        })?),
    };
    let lookup = |r: TenantRef| async move {
        let name = match &r {
            TenantRef::Id(id) => id.to_string(),
            TenantRef::Subdomain(s) => s.clone(),
        };
        match resolver.resolve(&r).await {
            Ok(Some(ctx)) => Ok(ctx),
            Ok(None) => Err(Refusal::Unknown(name)),
            Err(e) => Err(Refusal::Failed(e)),
        }
    };
    let ctx = match (from_host, from_header) {
        (Some(h), Some(x)) => {
            let (a, b) = (lookup(h).await?, lookup(x).await?);
            if a.id() != b.id() {
                return Err(Refusal::Conflicting);
            }
            a
        }
        (Some(r), None) | (None, Some(r)) => lookup(r).await?,
        (None, None) => match &config.default_tenant {
            Some(default) => lookup(default.clone()).await?,
            None => return Err(Refusal::Unnamed),
        },
    };
    match ctx.tenant().status {
        TenantStatus::Active => Ok(ctx),
        TenantStatus::Suspended => Err(Refusal::Suspended),
    }
}

impl<R: TenantResolver, B: Send + 'static> Guard<B> for TenantLayer<R> {
    async fn check(&self, mut req: Request<B>) -> Result<(Request<B>, Extensions), Problem> {
        let host = host_of(&req);
        let meta = crate::request::request_meta(&req);
        let mut values = req.headers().get_all(&self.config.header).iter();
        let header = values
            .next()
            .map(|v| v.to_str().map(|s| s.trim().to_owned()).map_err(|_| ()));
        if values.next().is_some() {
            // Behind proxies, which of two would win is anybody's guess.
            return Err(Refusal::Malformed(format!(
                "send the `{}` header once, not several times",
                self.config.header
            ))
            .problem(&self.config));
        }
        let ctx = resolve(&self.resolver, &self.config, host, header)
            .await
            .map_err(|refusal| refusal.problem(&self.config))?
            .with_actor(Actor::Anonymous)
            .with_request(meta);
        tracing::Span::current().record("tenant_id", tracing::field::display(ctx.id()));
        req.extensions_mut().insert(ctx.clone());
        // Outer layers (metrics, logs) see the tenant on the response.
        let mut extensions = Extensions::new();
        extensions.insert(ctx);
        Ok((req, extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::subdomain_of;

    #[test]
    fn subdomains_under_base() {
        assert_eq!(
            subdomain_of("acme.example.com", "example.com"),
            Ok(Some("acme"))
        );
        assert_eq!(subdomain_of("example.com", "example.com"), Ok(None));
        assert_eq!(subdomain_of("evil-example.com", "example.com"), Ok(None));
        assert_eq!(subdomain_of("other.org", "example.com"), Ok(None));
        assert_eq!(
            subdomain_of("a.b.example.com", "example.com"),
            Err("a.b".to_owned())
        );
    }
}
