//! Rate limiting as a tower layer: per tenant, or per client IP.
//!
//! A request over the quota gets `429 Too Many Requests` (problem+json) with
//! `Retry-After` in whole seconds. Limits are kept in this process (GCRA, by
//! the `governor` crate); with several server processes each enforces its own.
//!
//! Budgets live in a bounded cache ([`MAX_TRACKED_KEYS`] keys, amortised
//! O(1) per request however many keys are sprayed at it): a key idle long
//! enough to be full again is dropped (nothing is lost), and past the bound
//! the least used go first, so a client spraying addresses cannot grow the
//! memory or slow the requests of the others.
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
    time::Duration,
};

use futures_util::future::{Either, Ready, ready};
pub use governor::Quota;
use governor::{
    DefaultDirectRateLimiter, RateLimiter,
    clock::{Clock, DefaultClock},
};
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

/// One rate budget per key (a tenant, a client address, ...), each with the
/// same quota, kept in a bounded cache (see the [module docs](self)). The
/// layer counts requests with it; a handler can count anything else, e.g.
/// the messages of a batch.
///
/// ```
/// use std::num::NonZeroU32;
/// use tenantkit::rate_limit::{Budgets, Quota};
///
/// let budgets = Budgets::new(Quota::per_second(NonZeroU32::new(10).unwrap()));
/// assert!(budgets.check_n(&"acme", 10).is_ok(), "a full burst");
/// let wait = budgets.check_n(&"acme", 1).unwrap_err();
/// assert!(wait.retry_after_secs() >= 1);
/// assert!(budgets.check_n(&"globex", 10).is_ok(), "each key its own budget");
/// ```
pub struct Budgets<K> {
    budgets: moka::sync::Cache<K, Arc<DefaultDirectRateLimiter>>,
    quota: Quota,
    /// One clock for every budget (making one calibrates it: far too slow
    /// for each new key).
    clock: DefaultClock,
}

impl<K> Clone for Budgets<K> {
    fn clone(&self) -> Self {
        Self {
            budgets: self.budgets.clone(),
            quota: self.quota,
            clock: self.clock.clone(),
        }
    }
}

impl<K> std::fmt::Debug for Budgets<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

/// A budget had too little left: when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded; retry in {} s", self.retry_after_secs())]
pub struct Exceeded {
    wait: Duration,
    /// Whether asking for that many at once could never succeed (more than
    /// the burst).
    pub never: bool,
}

impl Exceeded {
    /// Whole seconds until the budget has room again (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        (self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0)).max(1)
    }
}

impl From<Exceeded> for Problem {
    fn from(e: Exceeded) -> Self {
        Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
            .with_detail(e.to_string())
            .with_header(header::RETRY_AFTER, HeaderValue::from(e.retry_after_secs()))
    }
}

impl<K> Budgets<K>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    /// A budget of `quota` per key, made on first use.
    pub fn new(quota: Quota) -> Self {
        // Idle this long, a budget is full again: forgetting it changes nothing.
        let refill = quota
            .replenish_interval()
            .saturating_mul(quota.burst_size().get())
            .max(Duration::from_secs(1));
        Self {
            budgets: moka::sync::Cache::builder()
                .max_capacity(MAX_TRACKED_KEYS)
                .time_to_idle(refill)
                .build(),
            quota,
            clock: DefaultClock::default(),
        }
    }

    /// The quota of each key.
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// Takes `n` from `key`'s budget, all or none.
    pub fn check_n(&self, key: &K, n: u32) -> Result<(), Exceeded>
    where
        K: Clone,
    {
        let budget = self.budgets.get_with_by_ref(key, || {
            Arc::new(RateLimiter::direct_with_clock(
                self.quota,
                self.clock.clone(),
            ))
        });
        let Some(n) = std::num::NonZeroU32::new(n) else {
            return Ok(());
        };
        match budget.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Exceeded {
                wait: not_until.wait_time_from(self.clock.now()),
                never: false,
            }),
            Err(_insufficient) => Err(Exceeded {
                wait: self.quota.replenish_interval().saturating_mul(n.get()),
                never: true,
            }),
        }
    }

    /// How many keys have a budget now (at most [`MAX_TRACKED_KEYS`], once
    /// the cache's pending evictions have run).
    pub fn tracked_keys(&self) -> u64 {
        self.budgets.run_pending_tasks();
        self.budgets.entry_count()
    }
}

/// Limits request rates; see the [module docs](self).
#[derive(Clone)]
pub struct RateLimitLayer {
    budgets: Budgets<Key>,
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
        Self::keyed_by(quota, KeyBy::Tenant)
    }

    /// One budget per client IP, for unauthenticated routes. The IP is the
    /// peer address: a `SocketAddr` in the request extensions (or axum's
    /// `ConnectInfo<SocketAddr>` with the `axum` feature).
    pub fn per_client_ip(quota: Quota) -> Self {
        Self::keyed_by(quota, KeyBy::ClientIp)
    }

    fn keyed_by(quota: Quota, key_by: KeyBy) -> Self {
        Self {
            budgets: Budgets::new(quota),
            key_by,
        }
    }

    /// How many keys have a budget now (at most [`MAX_TRACKED_KEYS`], once
    /// the cache's pending evictions have run).
    pub fn tracked_keys(&self) -> u64 {
        self.budgets.tracked_keys()
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

/// At most this many keys have a budget at once, per layer.
pub const MAX_TRACKED_KEYS: u64 = 100_000;

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
        match self.layer.budgets.check_n(&self.layer.key(&req), 1) {
            Ok(()) => Either::Left(self.inner.call(req)),
            Err(exceeded) => Either::Right(ready(Ok(Problem::from(exceeded).into_response()))),
        }
    }
}
