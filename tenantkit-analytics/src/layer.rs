//! [`AnalyticsLayer`]: counts every tenant request as an `api_call` event,
//! without waiting on the database and never slowing the request.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use chrono::Utc;
use futures_util::future::BoxFuture;
use http::{Extensions, Request, Response};
use serde_json::{Map, Value};
use tenantkit::{TenantContext, audit::Actor};
use tower::{Layer, Service};

use crate::{Analytics, event::Event};

/// How the layer learns a request's route template (`/users/{id}`, not
/// `/users/42`) from its extensions: with axum, from `MatchedPath`.
pub type RouteOf = Arc<dyn Fn(&Extensions) -> Option<String> + Send + Sync>;

/// Records an `api_call` event for each request that carries a
/// [`TenantContext`] (so place it inside `TenantLayer`, and inside the
/// router when the route template comes from it): name `METHOD template`,
/// the caller's user id when a user made it, and `method`, `route`,
/// `status` and `latency_ms` in the metadata.
///
/// The event is handed to the buffer with [`Analytics::try_record`]: the
/// request never waits for the database, and when the buffer is full the
/// event is dropped and counted ([`crate::IngestStats::dropped`]).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use tenantkit_analytics::{Analytics, AnalyticsLayer, IngestConfig};
///
/// let db = tenantkit::Db::connect("sqlite::memory:").await.unwrap();
/// let (analytics, _writer) = Analytics::start(db, IngestConfig::default());
/// // With axum: `Arc::new(|ext| ext.get::<axum::extract::MatchedPath>().map(|p| p.as_str().to_owned()))`.
/// let layer = AnalyticsLayer::new(analytics, Arc::new(|_| Some("/users/{id}".to_owned())));
/// # let _ = layer; });
/// ```
#[derive(Clone)]
pub struct AnalyticsLayer {
    analytics: Analytics,
    route_of: RouteOf,
}

impl AnalyticsLayer {
    /// Records into `analytics`, naming routes with `route_of`.
    pub fn new(analytics: Analytics, route_of: RouteOf) -> Self {
        Self {
            analytics,
            route_of,
        }
    }
}

impl std::fmt::Debug for AnalyticsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsLayer").finish_non_exhaustive()
    }
}

impl<S> Layer<S> for AnalyticsLayer {
    type Service = AnalyticsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AnalyticsService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`AnalyticsLayer`].
#[derive(Clone, Debug)]
pub struct AnalyticsService<S> {
    inner: S,
    layer: AnalyticsLayer,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for AnalyticsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let call = req.extensions().get::<TenantContext>().cloned().map(|ctx| {
            let route = (self.layer.route_of)(req.extensions());
            (ctx, req.method().as_str().to_owned(), route)
        });
        let analytics = self.layer.analytics.clone();
        let started = Instant::now();
        let future = self.inner.call(req);
        Box::pin(async move {
            let res = future.await?;
            if let Some((ctx, method, route)) = call {
                let route = route.unwrap_or_else(|| "(unmatched)".to_owned());
                let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
                let mut metadata = Map::new();
                metadata.insert("method".into(), Value::from(method.clone()));
                metadata.insert("route".into(), Value::from(route.clone()));
                metadata.insert("status".into(), Value::from(res.status().as_u16()));
                metadata.insert(
                    "latency_ms".into(),
                    Value::from((latency_ms * 1000.0).round() / 1000.0),
                );
                let user_id = match ctx.actor() {
                    Actor::User(id) => Some(id.clone()),
                    _ => None,
                };
                let event = Event {
                    event_type: "api_call".into(),
                    user_id,
                    name: Some(format!("{method} {route}")),
                    metadata,
                    timestamp: Utc::now(),
                };
                analytics.try_record(&ctx, event);
            }
            Ok(res)
        })
    }
}
