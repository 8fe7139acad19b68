use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode, header};
use tower::Service;

use super::{TenantLayer, TenantRef, TenantResolver, layer::Config};
use crate::{Error, TenantContext, TenantStatus, audit::Actor, problem::Problem};

/// The service made by [`TenantLayer`].
#[derive(Clone, Debug)]
pub struct TenantService<S, R> {
    inner: S,
    layer: TenantLayer<R>,
}

impl<S, R> TenantService<S, R> {
    pub(super) fn new(inner: S, layer: TenantLayer<R>) -> Self {
        Self { inner, layer }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

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
    let without_port = match raw.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => raw,
    };
    Some(without_port.trim_end_matches('.').to_ascii_lowercase())
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

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for TenantService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    R: TenantResolver,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        let host = host_of(&req);
        let meta = crate::request::request_meta(&req);
        let header = req
            .headers()
            .get(&layer.config.header)
            .map(|v| v.to_str().map(|s| s.trim().to_owned()).map_err(|_| ()));
        Box::pin(async move {
            match resolve(&layer.resolver, &layer.config, host, header).await {
                Ok(ctx) => {
                    let ctx = ctx.with_actor(Actor::Anonymous).with_request(meta);
                    tracing::Span::current().record("tenant_id", tracing::field::display(ctx.id()));
                    req.extensions_mut().insert(ctx.clone());
                    let mut res = inner.call(req).await?;
                    res.extensions_mut().insert(ctx);
                    Ok(res)
                }
                Err(refusal) => Ok(refusal.problem(&layer.config).into_response()),
            }
        })
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
