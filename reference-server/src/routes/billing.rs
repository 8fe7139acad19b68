//! `/billing/*` and `POST /webhooks/stripe`.

use axum::{extract::State, response::IntoResponse};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tenantkit::{
    TenantContext,
    auth::{Permission, Principal},
    problem::Problem,
};
use tenantkit_billing::{SubscriptionView, webhook::Outcome};

use crate::{
    error::{ApiError, ApiResult, Json},
    state::AppState,
};

impl From<tenantkit_billing::BillingError> for ApiError {
    fn from(e: tenantkit_billing::BillingError) -> Self {
        Self(Problem::from(&e))
    }
}

/// `GET /billing/subscription`: the plan in force and the stored subscription.
#[utoipa::path(get, path = "/billing/subscription", tag = "billing", security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The plan in force and the stored subscription", body = SubscriptionView)))]
pub async fn subscription(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
) -> ApiResult<Json<SubscriptionView>> {
    principal.require(Permission::ReadTenant)?;
    Ok(Json(state.billing.subscription(&tenant).await?))
}

/// `POST /billing/checkout` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The plan to subscribe to, e.g. `pro`.
    pub plan: String,
    /// The billing e-mail for a new Stripe customer.
    pub email: Option<String>,
}

/// A Stripe-hosted page to send the customer to.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionUrl {
    /// `https://checkout.stripe.com/...` or `https://billing.stripe.com/...`.
    pub url: String,
}

/// What `POST /webhooks/stripe` answers to Stripe.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookReceipt {
    /// Always `true`: Stripe stops retrying.
    pub received: bool,
    /// `applied`, `duplicate`, `stale` (older than what is stored) or `ignored`.
    pub outcome: &'static str,
}

/// `POST /billing/checkout` → `{"url": "https://checkout.stripe.com/..."}`.
#[utoipa::path(post, path = "/billing/checkout", tag = "billing", security(("bearer" = []), ("api_key" = [])), request_body = CheckoutRequest, responses((status = 200, description = "A Stripe Checkout session to send the customer to", body = SessionUrl), (status = 502, description = "Stripe failed", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 503, description = "Billing unavailable: no Stripe secret key is configured (`billing.stripe_secret_key`)", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn checkout(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Json(body): Json<CheckoutRequest>,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::ManageBilling)?;
    let url = state
        .billing
        .checkout(&tenant, &body.plan, body.email.as_deref())
        .await?;
    Ok(Json(SessionUrl { url }))
}

/// `POST /billing/portal` → `{"url": "https://billing.stripe.com/..."}`.
#[utoipa::path(post, path = "/billing/portal", tag = "billing", security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "A Stripe billing-portal session", body = SessionUrl), (status = 409, description = "The tenant has no Stripe customer yet", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 502, description = "Stripe failed", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 503, description = "Billing unavailable: no Stripe secret key is configured (`billing.stripe_secret_key`)", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn portal(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::ManageBilling)?;
    let url = state.billing.portal(&tenant).await?;
    Ok(Json(SessionUrl { url }))
}

/// `POST /webhooks/stripe`: verified by `Stripe-Signature`, applied once,
/// never older over newer. `200` for everything accepted (also duplicates and
/// ignored events, so Stripe stops retrying); `400` for a bad signature or
/// body (nothing changes); `500` when storage fails (Stripe retries).
#[utoipa::path(post, path = "/webhooks/stripe", tag = "billing", params(("stripe-signature" = String, Header, description = "Stripe's signature of the body")), request_body(content = Object, description = "A Stripe event, as Stripe sends it", content_type = "application/json"), responses((status = 200, description = "Accepted (also duplicates, stale and ignored events)", body = WebhookReceipt), (status = 400, description = "Bad signature or body; nothing changed", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let outcome = state.billing.receive_webhook(&body, signature).await?;
    let outcome = match outcome {
        Outcome::Applied => "applied",
        Outcome::Duplicate => "duplicate",
        Outcome::Stale => "stale",
        Outcome::Ignored(_) => "ignored",
    };
    Ok((
        StatusCode::OK,
        Json(WebhookReceipt {
            received: true,
            outcome,
        }),
    ))
}
