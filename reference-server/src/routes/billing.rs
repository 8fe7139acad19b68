//! `/billing/*` and `POST /webhooks/stripe`.

use axum::{extract::State, response::IntoResponse};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use tenantkit::{
    TenantContext,
    auth::{Permission, Principal},
    problem::Problem,
};
use tenantkit_billing::{SubscriptionView, webhook::Outcome};

use crate::{
    app::AppState,
    error::{ApiError, ApiResult, Json},
};

impl From<tenantkit_billing::BillingError> for ApiError {
    fn from(e: tenantkit_billing::BillingError) -> Self {
        Self(Problem::from(&e))
    }
}

/// `GET /billing/subscription`: the plan in force and the stored subscription.
pub async fn subscription(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
) -> ApiResult<Json<SubscriptionView>> {
    principal.require(Permission::ReadTenant)?;
    Ok(Json(state.billing.subscription(&tenant).await?))
}

/// `POST /billing/checkout` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The plan to subscribe to, e.g. `pro`.
    pub plan: String,
    /// The billing e-mail for a new Stripe customer.
    pub email: Option<String>,
}

/// `POST /billing/checkout` → `{"url": "https://checkout.stripe.com/..."}`.
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
    Ok(Json(serde_json::json!({ "url": url })))
}

/// `POST /billing/portal` → `{"url": "https://billing.stripe.com/..."}`.
pub async fn portal(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::ManageBilling)?;
    let url = state.billing.portal(&tenant).await?;
    Ok(Json(serde_json::json!({ "url": url })))
}

/// `POST /webhooks/stripe`: verified by `Stripe-Signature`, applied once,
/// never older over newer. `200` for everything accepted (also duplicates and
/// ignored events, so Stripe stops retrying); `400` for a bad signature or
/// body (nothing changes); `500` when storage fails (Stripe retries).
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
        Json(serde_json::json!({ "received": true, "outcome": outcome })),
    ))
}
