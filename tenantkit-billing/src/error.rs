//! What can go wrong in billing, and the problems (`402`) a plan's limits answer with.

use http::StatusCode;
use tenantkit::problem::Problem;

use crate::{
    plans::{Feature, Plan},
    signature,
};

/// What can go wrong in billing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BillingError {
    /// The store failed, or refused (not found, invalid, limit).
    #[error(transparent)]
    Store(#[from] tenantkit::Error),
    /// Stripe is not configured (no secret key, no webhook secret).
    #[error("billing is not configured: {0}")]
    NotConfigured(&'static str),
    /// No such plan, or it has no Stripe price.
    #[error("{0}")]
    UnknownPlan(String),
    /// The tenant has no Stripe customer yet (no checkout happened).
    #[error("this tenant has no Stripe customer yet; start a checkout first")]
    NoCustomer,
    /// Stripe answered with an error.
    #[error("Stripe request failed: {0}")]
    Stripe(String),
    /// A webhook signature was missing, stale or wrong.
    #[error(transparent)]
    Signature(#[from] signature::SignatureError),
    /// A webhook body is not a Stripe event.
    #[error("malformed Stripe event: {0}")]
    Malformed(String),
}

impl From<&BillingError> for Problem {
    fn from(err: &BillingError) -> Self {
        match err {
            BillingError::Store(e) => Problem::from(e),
            BillingError::NotConfigured(what) => {
                tracing::error!(%what, "billing not configured");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Billing unavailable")
                    .with_detail("billing is not configured on this server")
            }
            BillingError::UnknownPlan(msg) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Unknown plan").with_detail(msg)
            }
            BillingError::NoCustomer => Problem::new(StatusCode::CONFLICT, "No billing account")
                .with_detail(err.to_string()),
            BillingError::Stripe(msg) => {
                tracing::error!(error = %msg, "Stripe request failed");
                Problem::new(StatusCode::BAD_GATEWAY, "Payment provider error")
                    .with_detail("the payment provider could not complete the request; try again")
            }
            BillingError::Signature(e) => {
                Problem::new(StatusCode::BAD_REQUEST, "Invalid signature")
                    .with_detail(e.to_string())
            }
            BillingError::Malformed(msg) => {
                Problem::new(StatusCode::BAD_REQUEST, "Malformed event").with_detail(msg)
            }
        }
    }
}

/// The `402` for a plan that lacks `feature`.
pub fn feature_problem(plan: &Plan, feature: Feature) -> Problem {
    Problem::new(StatusCode::PAYMENT_REQUIRED, "Payment required")
        .with_type("https://tenantkit.dev/problems/plan-limit")
        .with_detail(format!(
            "the {} plan does not include {}",
            plan.name,
            feature.as_str()
        ))
        .with_extension("plan", plan.id.clone())
        .with_extension("limit", feature.as_str())
        .with_extension("usage", serde_json::Value::Null)
        .with_extension(
            "upgrade",
            "POST /billing/checkout with a plan that includes it",
        )
}

/// The `402` for a plan whose user limit is reached.
pub fn user_limit_problem(plan: &Plan, limit: u64, usage: u64) -> Problem {
    Problem::new(StatusCode::PAYMENT_REQUIRED, "Payment required")
        .with_type("https://tenantkit.dev/problems/plan-limit")
        .with_detail(format!(
            "the {} plan allows {limit} users and {usage} exist",
            plan.name
        ))
        .with_extension("plan", plan.id.clone())
        .with_extension("limit", serde_json::json!({ "max_users": limit }))
        .with_extension("usage", serde_json::json!({ "users": usage }))
        .with_extension("upgrade", "POST /billing/checkout with a larger plan")
}
