//! `[billing]` configuration.

use serde::{Deserialize, Serialize};
use tenantkit::Secret;

use crate::plans::PlansConfig;

/// Billing configuration; keys come from configuration or the environment only.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BillingConfig {
    /// Stripe secret key (`sk_...`); without it checkout and portal answer 503.
    #[serde(skip_serializing)]
    pub stripe_secret_key: Option<Secret>,
    /// Webhook signing secrets (`whsec_...`); several during a secret roll.
    #[serde(skip_serializing)]
    pub stripe_webhook_secrets: Vec<Secret>,
    /// The Stripe API base URL (tests point it at a local fake).
    pub stripe_api_base: Option<String>,
    /// How old (or far in the future) a signed webhook may be, in seconds.
    pub signature_tolerance_secs: u64,
    /// How long `past_due` keeps the paid plan, in days.
    pub past_due_grace_days: u32,
    /// How long a tenant's plan is cached in process, in seconds. Other
    /// server processes see a change within this time.
    pub plan_cache_ttl_secs: u64,
    /// Where Checkout sends the customer after paying.
    pub success_url: String,
    /// Where Checkout sends the customer after giving up.
    pub cancel_url: String,
    /// Where the billing portal sends the customer back to.
    pub portal_return_url: String,
    /// Plans and their Stripe prices.
    #[serde(flatten)]
    pub plans: PlansConfig,
}

impl Default for BillingConfig {
    fn default() -> Self {
        Self {
            stripe_secret_key: None,
            stripe_webhook_secrets: Vec::new(),
            stripe_api_base: None,
            signature_tolerance_secs: 300,
            past_due_grace_days: 7,
            plan_cache_ttl_secs: 5,
            success_url: "http://localhost:8080/billing/success".into(),
            cancel_url: "http://localhost:8080/billing/cancel".into(),
            portal_return_url: "http://localhost:8080/".into(),
            plans: PlansConfig::default(),
        }
    }
}
