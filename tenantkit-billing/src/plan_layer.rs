//! [`PlanLayer`]: refuses what the tenant's plan does not allow, with `402`.

use std::{future::Future, sync::Arc};

use http::{Extensions, Request};
use tenantkit::{
    TenantContext,
    auth::{Principal, Subject},
    guard::{Guard, Guarded},
    problem::Problem,
};
use tower::Layer;

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
        Guarded::new(inner, self.clone())
    }
}

/// The service made by [`PlanLayer`].
pub type PlanService<S, P> = Guarded<S, PlanLayer<P>>;

impl<P: PlanSource, B: Send + 'static> Guard<B> for PlanLayer<P> {
    async fn check(&self, mut req: Request<B>) -> Result<(Request<B>, Extensions), Problem> {
        let Some(ctx) = req.extensions().get::<TenantContext>().cloned() else {
            tracing::error!("PlanLayer needs TenantLayer in front of it");
            return Err(Problem::new(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error",
            )
            .with_detail("plan enforcement is misconfigured"));
        };
        let plan = self
            .source
            .plan_for(&ctx)
            .await
            .map_err(|e| Problem::from(&e))?;
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
            self.required.filter(|f| !plan.has(*f))
        };
        if let Some(feature) = missing {
            return Err(feature_problem(&plan, feature));
        }
        req.extensions_mut().insert(plan);
        Ok((req, Extensions::new()))
    }
}
