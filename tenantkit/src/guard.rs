//! [`Guard`] and [`Guarded`]: the one tower `Service` behind tenantkit's
//! checking layers ([`crate::resolve::TenantLayer`], [`crate::auth::AuthLayer`],
//! and those of crates built on tenantkit such as billing's `PlanLayer`).
//!
//! A guard looks at a request and either lets it through, possibly with more
//! request extensions, or answers it with a [`Problem`]. Refusals are
//! `Ok(response)`, so every guard drops into axum without `HandleErrorLayer`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use http::{Extensions, Request, Response, StatusCode};
//! use tenantkit::{guard::{Guard, Guarded}, problem::Problem};
//! use tower::{ServiceExt, service_fn};
//!
//! /// Lets only requests with a `x-beta` header through.
//! #[derive(Clone)]
//! struct BetaOnly;
//!
//! impl<B: Send + 'static> Guard<B> for BetaOnly {
//!     async fn check(&self, req: Request<B>) -> Result<(Request<B>, Extensions), Problem> {
//!         if req.headers().contains_key("x-beta") {
//!             Ok((req, Extensions::new()))
//!         } else {
//!             Err(Problem::new(StatusCode::FORBIDDEN, "Beta only"))
//!         }
//!     }
//! }
//!
//! let svc = Guarded::new(service_fn(|_req: Request<String>| async {
//!     Ok::<_, std::convert::Infallible>(Response::new(String::from("welcome")))
//! }), BetaOnly);
//! let refused = svc.clone().oneshot(Request::new(String::new())).await.unwrap();
//! assert_eq!(refused.status(), 403);
//! let beta = Request::builder().header("x-beta", "1").body(String::new()).unwrap();
//! assert_eq!(svc.oneshot(beta).await.unwrap().body(), "welcome");
//! # });
//! ```

use std::{
    future::Future,
    task::{Context, Poll},
};

use futures_util::future::BoxFuture;
use http::{Extensions, Request, Response};
use tower::Service;

use crate::problem::Problem;

/// An asynchronous check in front of a service.
pub trait Guard<B>: Clone + Send + Sync + 'static {
    /// `Ok((request, extensions))` passes the request on and adds
    /// `extensions` to the response; `Err(problem)` answers with the problem.
    fn check(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<(Request<B>, Extensions), Problem>> + Send;
}

/// A service behind a [`Guard`].
#[derive(Clone, Debug)]
pub struct Guarded<S, G> {
    inner: S,
    guard: G,
}

impl<S, G> Guarded<S, G> {
    /// `inner`, behind `guard`.
    pub fn new(inner: S, guard: G) -> Self {
        Self { inner, guard }
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

impl<S, G, ReqBody, ResBody> Service<Request<ReqBody>> for Guarded<S, G>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    G: Guard<ReqBody>,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.check(req).await {
                Ok((req, extensions)) => {
                    let mut res = inner.call(req).await?;
                    res.extensions_mut().extend(extensions);
                    Ok(res)
                }
                Err(problem) => Ok(problem.into_response()),
            }
        })
    }
}
