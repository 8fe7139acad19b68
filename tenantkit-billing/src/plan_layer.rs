//! [`PlanLayer`]: refuses what the tenant's plan does not allow, with `402`.

use std::{
    future::Future,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use tenantkit::{
    TenantContext,
    auth::{Principal, Subject},
    problem::Problem,
};
use tower::{Layer, Service};

use crate::{
    Billing, feature_problem,
    plans::{Feature, Plan},
};

/// Looks up a tenant's effective plan. Implemented by [`Billing`].
pub trait PlanSource: Clone + Send + Sync + 'static {
    /// The plan `ctx`'s tenant is on now.
    fn plan_for(
        &self,
        ctx: &TenantContext,
    ) -> impl Future<Output = tenantkit::Result<Arc<Plan>>> + Send;
}

impl PlanSource for Billing {
    async fn plan_for(&self, ctx: &TenantContext) -> tenantkit::Result<Arc<Plan>> {
        Billing::plan_for(self, ctx).await
    }
}

/// Checks the tenant's plan before the handler runs (behind `TenantLayer` and
/// `AuthLayer`):
///
/// - API-key (programmatic) access needs the `api_access` feature;
/// - [`PlanLayer::requiring`] makes a route need a feature (e.g. `webhooks`).
///
/// A refusal is `402 Payment Required` problem+json naming the plan, the
/// limit, the usage and how to upgrade. The plan goes into the request
/// extensions (`Arc<Plan>`) for handlers that enforce quotas.
#[derive(Clone, Debug)]
pub struct PlanLayer<P> {
    source: P,
    required: Option<Feature>,
}

impl<P: PlanSource> PlanLayer<P> {
    /// Enforces programmatic access only.
    pub fn new(source: P) -> Self {
        Self {
            source,
            required: None,
        }
    }

    /// Also requires `feature` on the routes it wraps.
    pub fn requiring(mut self, feature: Feature) -> Self {
        self.required = Some(feature);
        self
    }
}

impl<S, P: Clone> Layer<S> for PlanLayer<P> {
    type Service = PlanService<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        PlanService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`PlanLayer`].
#[derive(Clone, Debug)]
pub struct PlanService<S, P> {
    inner: S,
    layer: PlanLayer<P>,
}

impl<S, P> PlanService<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, P, ReqBody, ResBody> Service<Request<ReqBody>> for PlanService<S, P>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    P: PlanSource,
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
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let layer = self.layer.clone();
        Box::pin(async move {
            let Some(ctx) = req.extensions().get::<TenantContext>().cloned() else {
                tracing::error!("PlanLayer needs TenantLayer in front of it");
                return Ok(Problem::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error",
                )
                .with_detail("plan enforcement is misconfigured")
                .into_response());
            };
            let plan = match layer.source.plan_for(&ctx).await {
                Ok(plan) => plan,
                Err(e) => return Ok(Problem::from(&e).into_response()),
            };
            let programmatic = matches!(
                req.extensions().get::<Principal>(),
                Some(Principal {
                    subject: Subject::ApiKey { .. },
                    ..
                })
            );
            let missing = if programmatic && !plan.has(Feature::ApiAccess) {
                Some(Feature::ApiAccess)
            } else {
                layer.required.filter(|f| !plan.has(*f))
            };
            if let Some(feature) = missing {
                return Ok(feature_problem(&plan, feature).into_response());
            }
            req.extensions_mut().insert(plan);
            inner.call(req).await
        })
    }
}
