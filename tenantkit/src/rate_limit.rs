//! Rate limiting as a tower layer: per tenant, or per client IP.
//!
//! A request over the quota gets `429 Too Many Requests` (problem+json) with
//! `Retry-After` in whole seconds. Limits are kept in this process (GCRA, by
//! the `governor` crate); with several server processes each enforces its own.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{convert::Infallible, net::SocketAddr, num::NonZeroU32};
//! use http::{Request, Response};
//! use tenantkit::rate_limit::{RateLimitLayer, Quota};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let svc = ServiceBuilder::new()
//!     .layer(RateLimitLayer::per_client_ip(Quota::per_minute(NonZeroU32::new(1).unwrap())))
//!     .service_fn(|_req: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) });
//!
//! let request = || {
//!     let mut req = Request::new(String::new());
//!     req.extensions_mut().insert("203.0.113.7:5000".parse::<SocketAddr>().unwrap());
//!     req
//! };
//! assert_eq!(svc.clone().oneshot(request()).await.unwrap().status(), 200);
//! let refused = svc.oneshot(request()).await.unwrap();
//! assert_eq!(refused.status(), 429);
//! assert!(refused.headers().contains_key("retry-after"));
//! # });
//! ```

use std::{
    net::IpAddr,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::{Either, Ready, ready};
pub use governor::Quota;
use governor::{DefaultKeyedRateLimiter, RateLimiter, clock::Clock};
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service};

use crate::{TenantContext, TenantId, problem::Problem};

/// What a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Tenant(TenantId),
    Ip(IpAddr),
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyBy {
    Tenant,
    ClientIp,
}

/// Limits request rates; see the [module docs](self).
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Arc<DefaultKeyedRateLimiter<Key>>,
    key_by: KeyBy,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("key_by", &self.key_by)
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// One budget per resolved tenant (behind [`crate::resolve::TenantLayer`]);
    /// requests without a tenant fall back to their client IP.
    pub fn per_tenant(quota: Quota) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            key_by: KeyBy::Tenant,
        }
    }

    /// One budget per client IP, for unauthenticated routes. The IP is the
    /// peer address: a `SocketAddr` in the request extensions (or axum's
    /// `ConnectInfo<SocketAddr>` with the `axum` feature).
    pub fn per_client_ip(quota: Quota) -> Self {
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            key_by: KeyBy::ClientIp,
        }
    }

    fn key<B>(&self, req: &Request<B>) -> Key {
        if self.key_by == KeyBy::Tenant
            && let Some(ctx) = req.extensions().get::<TenantContext>()
        {
            return Key::Tenant(ctx.id());
        }
        crate::request::client_ip(req).map_or(Key::Unknown, Key::Ip)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`RateLimitLayer`].
#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    layer: RateLimitLayer,
}

impl<S> RateLimit<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Keys idle long enough to be full again are dropped past this many.
const MAX_TRACKED_KEYS: usize = 100_000;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response<ResBody>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let limiter = &self.layer.limiter;
        if limiter.len() > MAX_TRACKED_KEYS {
            limiter.retain_recent();
        }
        match limiter.check_key(&self.layer.key(&req)) {
            Ok(()) => Either::Left(self.inner.call(req)),
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let problem = Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
                    .with_detail(format!("rate limit exceeded; retry in {secs} s"))
                    .with_header(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
                Either::Right(ready(Ok(problem.into_response())))
            }
        }
    }
}
