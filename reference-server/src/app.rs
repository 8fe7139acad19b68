//! The router: which layers guard which routes.
//!
//! ```text
//! every route     problem+json for bare errors → metrics → request id → trace → catch panic → in-flight limit → timeout
//! (innermost in every group below: a request whose transaction lost a race runs again, RetryContendedLayer)
//! /healthz /readyz /openapi.json /webhooks/stripe   body limit → rate limit per client IP (Stripe events are signed)
//! /tenants /metrics   body limit → rate limit per client IP → auth (platform admin)
//! tenant routes       body limit (server.max_body_bytes) → TenantLayer → rate limit per client IP → AuthLayer → rate limit per tenant → PlanLayer → AnalyticsLayer (api_call events)
//! /webhooks…          the same, with PlanLayer requiring the `webhooks` feature (402)
//! /webhooks/messages… the same, with webhooks.max_publish_body_bytes (4 MiB: a 1 MiB message, a batch)
//! /tenants/{id}/webhooks/messages…   the platform stack, with that body limit
//! /analytics…         the same, with analytics.max_body_bytes (10 MiB: 1,000 events)
//! ```

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::Router;
use http::{HeaderName, Request};
use tenantkit::{
    auth::{AuthLayer, UserClaim},
    rate_limit::{Quota, RateLimitLayer},
    resolve::{TenantLayer, TenantRef},
    retry::RetryContendedLayer,
};
use tenantkit_billing::{PlanLayer, plans::Feature};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa_axum::router::OpenApiRouter;

pub use crate::state::AppState;
use crate::{error, metrics::Metrics, openapi, routes};

/// How many times a request whose transaction lost a race is run in all.
const RETRY_ATTEMPTS: u32 = 5;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

/// Routes that act inside a tenant (behind `TenantLayer`, `AuthLayer`, `PlanLayer`).
///
/// Every route is registered through `routes!`, so it is described in the
/// OpenAPI document by the same declaration ([`crate::openapi`]).
fn tenant_routes() -> OpenApiRouter<AppState> {
    use routes::{api_keys, audit_logs, billing, tenant, users};
    OpenApiRouter::default()
        .routes(utoipa_axum::routes!(tenant::get))
        .routes(utoipa_axum::routes!(users::list, users::create))
        .routes(utoipa_axum::routes!(
            users::get,
            users::update,
            users::delete
        ))
        .routes(utoipa_axum::routes!(api_keys::list, api_keys::create))
        .routes(utoipa_axum::routes!(api_keys::revoke))
        .routes(utoipa_axum::routes!(audit_logs::list))
        .routes(utoipa_axum::routes!(audit_logs::export))
        .routes(utoipa_axum::routes!(audit_logs::verify))
        .routes(utoipa_axum::routes!(billing::subscription))
        .routes(utoipa_axum::routes!(billing::checkout))
        .routes(utoipa_axum::routes!(billing::portal))
}

/// Webhooks: tenant routes that also need the plan's `webhooks` feature.
fn webhook_routes() -> OpenApiRouter<AppState> {
    use routes::webhooks;
    OpenApiRouter::default()
        .routes(utoipa_axum::routes!(webhooks::list, webhooks::create))
        .routes(utoipa_axum::routes!(webhooks::event_types))
        .routes(utoipa_axum::routes!(webhooks::dead_letters))
        .routes(utoipa_axum::routes!(
            webhooks::get,
            webhooks::update,
            webhooks::delete
        ))
        .routes(utoipa_axum::routes!(webhooks::rotate_secret))
        .routes(utoipa_axum::routes!(webhooks::test))
        .routes(utoipa_axum::routes!(webhooks::deliveries))
        .routes(utoipa_axum::routes!(webhooks::attempts))
        .routes(utoipa_axum::routes!(webhooks::retry))
        .routes(utoipa_axum::routes!(webhooks::recover))
}

/// Publishing webhook messages: webhook routes with a body limit fit for a
/// 1 MiB message or a batch (`webhooks.max_publish_body_bytes`).
fn publish_routes() -> OpenApiRouter<AppState> {
    use routes::webhooks;
    OpenApiRouter::default()
        .routes(utoipa_axum::routes!(webhooks::publish))
        .routes(utoipa_axum::routes!(webhooks::publish_batch))
}

/// The platform's own publishing to a tenant (platform admin), with the
/// same body limit.
fn platform_publish_routes() -> OpenApiRouter<AppState> {
    use routes::webhooks;
    OpenApiRouter::default()
        .routes(utoipa_axum::routes!(webhooks::platform_publish))
        .routes(utoipa_axum::routes!(webhooks::platform_publish_batch))
}

/// The tenant's own identity provider: tenant routes that also need the
/// plan's `sso` feature.
fn sso_routes() -> OpenApiRouter<AppState> {
    use routes::sso;
    OpenApiRouter::default().routes(utoipa_axum::routes!(sso::get, sso::put, sso::delete))
}

/// Analytics: tenant routes, with a body limit fit for 1,000 events.
fn analytics_routes() -> OpenApiRouter<AppState> {
    use routes::analytics;
    OpenApiRouter::default()
        .routes(utoipa_axum::routes!(analytics::ingest))
        .routes(utoipa_axum::routes!(analytics::summary))
        .routes(utoipa_axum::routes!(analytics::timeseries))
        .routes(utoipa_axum::routes!(routes::live::stream))
}

/// Platform administration (platform-admin token).
fn platform_routes() -> OpenApiRouter<AppState> {
    use routes::{audit_logs, health, tenants};
    OpenApiRouter::default()
        .routes(utoipa_axum::routes!(tenants::list, tenants::create))
        .routes(utoipa_axum::routes!(
            tenants::get,
            tenants::update,
            tenants::delete
        ))
        .routes(utoipa_axum::routes!(tenants::export))
        .routes(utoipa_axum::routes!(tenants::deletion))
        .routes(utoipa_axum::routes!(
            routes::sso::platform_get,
            routes::sso::platform_put,
            routes::sso::platform_delete
        ))
        .routes(utoipa_axum::routes!(audit_logs::platform_list))
        .routes(utoipa_axum::routes!(health::metrics))
}

/// Routes without authentication (Stripe's events are signed).
fn public_routes() -> OpenApiRouter<AppState> {
    use routes::{billing, health};
    OpenApiRouter::default()
        .routes(utoipa_axum::routes!(health::healthz))
        .routes(utoipa_axum::routes!(health::readyz))
        .routes(utoipa_axum::routes!(crate::openapi::serve))
        .routes(utoipa_axum::routes!(billing::stripe_webhook))
        // Static: the page signs in through the API.
        .routes(utoipa_axum::routes!(routes::dashboard::page))
        .routes(utoipa_axum::routes!(routes::dashboard::asset))
        .routes(utoipa_axum::routes!(routes::dashboard::sign_in))
}

/// Every route, without layers: what the OpenAPI document is built from.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    tenant_routes()
        .merge(webhook_routes())
        .merge(publish_routes())
        .merge(sso_routes())
        .merge(analytics_routes())
        .merge(platform_routes())
        .merge(platform_publish_routes())
        .merge(public_routes())
}

/// The OpenAPI document of the whole server ([`openapi::describe`] of every
/// route).
pub fn document() -> utoipa::openapi::OpenApi {
    openapi::describe(routes().into_openapi())
}

/// The document as served for `catalogue`'s event types: [`document`] and
/// their `webhooks` ([`openapi::document_json`]).
pub fn document_json(catalogue: &tenantkit_webhooks::catalogue::EventCatalogue) -> Arc<str> {
    openapi::document_json(&document(), catalogue).into()
}

/// The full application: every route behind its layers, as configured in
/// `state.config`. Tests drive it with `tower::ServiceExt::oneshot`, no
/// socket needed; `serve` binds it.
pub fn app(state: AppState) -> anyhow::Result<Router> {
    let config = state.config.clone();
    let mut tenant_layer = TenantLayer::new(state.db.clone());
    if let Some(base) = &config.server.base_domain {
        tenant_layer = tenant_layer.with_base_domain(base)?;
    }
    if let Some(default) = &config.server.default_tenant {
        tenant_layer = tenant_layer.with_default_tenant(default.parse::<TenantRef>()?);
    }
    // Billing's store: a user provisioned on first sign-in counts against the plan.
    let auth = AuthLayer::new((*state.keys).clone(), state.billing.clone())
        .with_user_claim(config.auth.user_claim.parse::<UserClaim>()?)
        .with_issuers(state.issuers.clone())
        .with_tenant_issuers(state.tenant_issuers.clone());
    let per_ip = RateLimitLayer::per_client_ip(per_minute(config.rate_limit.per_ip_per_minute));

    // One limiter of each kind, shared by every tenant route.
    let tenant_per_ip =
        RateLimitLayer::per_client_ip(per_minute(config.rate_limit.per_ip_per_minute));
    let per_tenant =
        RateLimitLayer::per_tenant(per_minute(config.rate_limit.per_tenant_per_minute));
    // Every tenant request counted as an `api_call` event, by route template.
    let count_calls = config.analytics.count_api_calls.then(|| {
        tenantkit_analytics::AnalyticsLayer::new(
            state.analytics.clone(),
            Arc::new(|ext: &http::Extensions| {
                ext.get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
            }),
        )
    });
    let body_limit = body_limit(config.server.max_body_bytes);
    // Innermost, so only the handler runs again (not the rate limits or the
    // audited refusals of the layers above it).
    let retry =
        RetryContendedLayer::new(RETRY_ATTEMPTS).with_retries(state.metrics.transaction_retries());
    let tenant_stack = |plan: PlanLayer<tenantkit_billing::Billing>, limit: BodyLimit| {
        ServiceBuilder::new()
            .layer(limit)
            .layer(tenant_layer.clone())
            // Per client IP before authentication: bounds how fast one
            // client can guess credentials (each refusal is audited).
            .layer(tenant_per_ip.clone())
            .layer(auth.clone())
            .layer(per_tenant.clone())
            // The tenant's plan: API-key access needs `api_access` (402 otherwise).
            .layer(plan)
            .option_layer(count_calls.clone())
            .layer(retry.clone())
    };
    let (tenant_routes, _) = tenant_routes().split_for_parts();
    let tenant_routes = tenant_routes.route_layer(tenant_stack(
        PlanLayer::new(state.billing.clone()),
        body_limit.clone(),
    ));
    let (webhook_routes, _) = webhook_routes().split_for_parts();
    let webhook_routes = webhook_routes.route_layer(tenant_stack(
        PlanLayer::new(state.billing.clone()).requiring(Feature::Webhooks),
        body_limit.clone(),
    ));
    let publish_limit = self::body_limit(config.webhooks.max_publish_body_bytes);
    let (publish_routes, _) = publish_routes().split_for_parts();
    let publish_routes = publish_routes.route_layer(tenant_stack(
        PlanLayer::new(state.billing.clone()).requiring(Feature::Webhooks),
        publish_limit.clone(),
    ));
    let (sso_routes, _) = sso_routes().split_for_parts();
    let sso_routes = sso_routes.route_layer(tenant_stack(
        PlanLayer::new(state.billing.clone()).requiring(Feature::Sso),
        body_limit.clone(),
    ));
    let (analytics_routes, _) = analytics_routes().split_for_parts();
    let analytics_routes = analytics_routes.route_layer(tenant_stack(
        PlanLayer::new(state.billing.clone()),
        self::body_limit(config.analytics.max_body_bytes),
    ));
    let platform_stack = |limit: BodyLimit| {
        ServiceBuilder::new()
            .layer(limit)
            .layer(per_ip.clone())
            .layer(auth.clone())
            .layer(retry.clone())
    };
    let (platform_routes, _) = platform_routes().split_for_parts();
    let platform_routes = platform_routes.route_layer(platform_stack(body_limit.clone()));
    let (platform_publish_routes, _) = platform_publish_routes().split_for_parts();
    let platform_publish_routes =
        platform_publish_routes.route_layer(platform_stack(publish_limit));
    let (public_routes, _) = public_routes().split_for_parts();
    let public_routes = public_routes.route_layer(
        ServiceBuilder::new()
            .layer(body_limit)
            .layer(per_ip)
            .layer(retry),
    );

    let app = Router::new()
        .merge(tenant_routes)
        .merge(webhook_routes)
        .merge(publish_routes)
        .merge(sso_routes)
        .merge(analytics_routes)
        .merge(platform_routes)
        .merge(platform_publish_routes)
        .merge(public_routes)
        .fallback(error::not_found)
        .layer(axum::Extension(openapi::DocumentJson(document_json(
            state.webhooks.catalogue(),
        ))))
        .with_state(state.clone());
    Ok(with_server_layers(
        app,
        &state.metrics,
        config.server.max_in_flight_requests,
    ))
}

/// A route group's body limit: tower-http's, which refuses a declared or a
/// streamed body past `bytes` with `413`, and axum's extractor limit set to
/// the same figure (else its 2 MiB default would be the effective limit of
/// a larger configured one).
type BodyLimit = ServiceBuilder<
    tower::layer::util::Stack<
        axum::extract::DefaultBodyLimit,
        tower::layer::util::Stack<RequestBodyLimitLayer, tower::layer::util::Identity>,
    >,
>;

fn body_limit(bytes: usize) -> BodyLimit {
    ServiceBuilder::new()
        .layer(RequestBodyLimitLayer::new(bytes))
        .layer(axum::extract::DefaultBodyLimit::max(bytes))
}

/// What every route passes through, around `app`: metrics, the request id,
/// tracing, the panic catcher, the in-flight limit and the timeout; and,
/// around all of it, problem+json for whatever answers with a bare error.
pub(crate) fn with_server_layers(app: Router, metrics: &Metrics, max_in_flight: usize) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<_>| {
            let request_id = req
                .headers()
                .get(REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %request_id,
                tenant_id = tracing::field::Empty,
            )
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO));

    let app = app.layer(
        ServiceBuilder::new()
            .layer(metrics.clone())
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(trace)
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            // The last defence: a handler's panic is a 500, not a reset.
            .layer(CatchPanicLayer::custom(error::panic_response))
            .layer(axum::middleware::from_fn_with_state(
                crate::overload::InFlight::new(max_in_flight),
                crate::overload::limit,
            ))
            .layer(TimeoutLayer::with_status_code(
                http::StatusCode::REQUEST_TIMEOUT,
                Duration::from_secs(30),
            )),
    );
    // Whatever answers with a bare error (the body limit's 413, the timeout's
    // 408, the router's 405) answers problem+json. Around the whole router, so
    // it sees the `Allow` header the router adds to a 405 after every layer.
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::map_response(error::ensure_problem))
}

#[cfg(test)]
#[path = "app_panic_tests.rs"]
mod panic_tests;
