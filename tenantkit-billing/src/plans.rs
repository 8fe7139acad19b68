//! Plans: what a tenant may do, loaded from configuration.
//!
//! ```
//! use tenantkit_billing::plans::{Feature, Plans, PlansConfig};
//!
//! let plans = Plans::new(PlansConfig::default()).unwrap();
//! let free = plans.default_plan();
//! assert_eq!((free.id.as_str(), free.max_users), ("free", Some(100)));
//! assert!(!free.has(Feature::ApiAccess));
//! assert!(plans.get("enterprise").unwrap().max_users.is_none(), "unlimited");
//! ```

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Something a plan may include.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Feature {
    /// Programmatic access with API keys.
    ApiAccess,
    /// Outbound webhooks.
    Webhooks,
    /// Custom integrations.
    CustomIntegrations,
    /// The tenant's own identity provider (single sign-on), registered by
    /// its owner.
    Sso,
}

impl Feature {
    /// The configuration and problem-detail name.
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::ApiAccess => "api_access",
            Feature::Webhooks => "webhooks",
            Feature::CustomIntegrations => "custom_integrations",
            Feature::Sso => "sso",
        }
    }
}

/// One plan in configuration (`[billing.plans.<id>]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// Display name; the id when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Most users the tenant may have; absent means unlimited.
    #[serde(default)]
    pub max_users: Option<u64>,
    /// Programmatic (API-key) access.
    #[serde(default)]
    pub api_access: bool,
    /// Outbound webhooks.
    #[serde(default)]
    pub webhooks: bool,
    /// Custom integrations.
    #[serde(default)]
    pub custom_integrations: bool,
    /// The tenant's owner registers its own identity provider.
    #[serde(default)]
    pub sso: bool,
    /// Stripe price ids that put a tenant on this plan.
    #[serde(default)]
    pub stripe_price_ids: Vec<String>,
}

/// All plans (`[billing]` `default_plan` and `[billing.plans.*]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlansConfig {
    /// The plan of tenants without a paid subscription (and of canceled ones).
    pub default_plan: String,
    /// The plans by id.
    pub plans: BTreeMap<String, PlanConfig>,
}

impl Default for PlansConfig {
    /// Free (100 users, no API, no webhooks), Pro (1000 users, API, webhooks),
    /// Enterprise (unlimited users, API, webhooks, custom integrations,
    /// single sign-on).
    fn default() -> Self {
        let plan = |name: &str, max_users, api_access, webhooks, custom_integrations| PlanConfig {
            name: Some(name.to_owned()),
            max_users,
            api_access,
            webhooks,
            custom_integrations,
            sso: custom_integrations,
            stripe_price_ids: Vec::new(),
        };
        Self {
            default_plan: "free".into(),
            plans: BTreeMap::from([
                ("free".into(), plan("Free", Some(100), false, false, false)),
                ("pro".into(), plan("Pro", Some(1000), true, true, false)),
                (
                    "enterprise".into(),
                    plan("Enterprise", None, true, true, true),
                ),
            ]),
        }
    }
}

/// A plan, ready to check against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// Its id, e.g. `pro`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Most users; `None` is unlimited.
    pub max_users: Option<u64>,
    /// Its features.
    pub features: Vec<Feature>,
}

impl Plan {
    /// Whether the plan includes `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }
}

/// Why a plan configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid plan configuration: {0}")]
pub struct PlanConfigError(String);

/// The validated plans.
#[derive(Clone, Debug)]
pub struct Plans {
    plans: HashMap<String, Plan>,
    by_price: HashMap<String, String>,
    default_plan: String,
}

impl Plans {
    /// Validates `config`: at least one plan, ids of `a-z0-9_-`, the default
    /// plan exists, no price id maps to two plans, no empty price id.
    pub fn new(config: PlansConfig) -> Result<Self, PlanConfigError> {
        if config.plans.is_empty() {
            return Err(PlanConfigError("no plans are configured".into()));
        }
        let mut plans = HashMap::new();
        let mut by_price: HashMap<String, String> = HashMap::new();
        for (id, plan) in config.plans {
            let valid_id = !id.is_empty()
                && id.len() <= 50
                && id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !valid_id {
                return Err(PlanConfigError(format!(
                    "plan id `{id}` must be 1 to 50 of a-z, 0-9, _ and -"
                )));
            }
            for price in &plan.stripe_price_ids {
                if price.trim().is_empty() {
                    return Err(PlanConfigError(format!(
                        "plan `{id}` has an empty Stripe price id"
                    )));
                }
                if let Some(other) = by_price.insert(price.clone(), id.clone()) {
                    return Err(PlanConfigError(format!(
                        "Stripe price `{price}` is mapped to both `{other}` and `{id}`"
                    )));
                }
            }
            let features = [
                (plan.api_access, Feature::ApiAccess),
                (plan.webhooks, Feature::Webhooks),
                (plan.custom_integrations, Feature::CustomIntegrations),
                (plan.sso, Feature::Sso),
            ]
            .into_iter()
            .filter_map(|(on, f)| on.then_some(f))
            .collect();
            let name = plan.name.unwrap_or_else(|| id.clone());
            plans.insert(
                id.clone(),
                Plan {
                    id,
                    name,
                    max_users: plan.max_users,
                    features,
                },
            );
        }
        if !plans.contains_key(&config.default_plan) {
            return Err(PlanConfigError(format!(
                "default_plan `{}` is not one of the configured plans",
                config.default_plan
            )));
        }
        Ok(Self {
            plans,
            by_price,
            default_plan: config.default_plan,
        })
    }

    /// The plan with this id.
    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.get(id)
    }

    /// The plan of tenants without a paid subscription.
    pub fn default_plan(&self) -> &Plan {
        &self.plans[&self.default_plan]
    }

    /// The plan a Stripe price puts a tenant on.
    pub fn by_price(&self, price_id: &str) -> Option<&Plan> {
        self.by_price
            .get(price_id)
            .and_then(|id| self.plans.get(id))
    }

    /// A Stripe price of `plan`, for checkout.
    pub fn price_of(&self, plan: &str) -> Option<&str> {
        self.by_price
            .iter()
            .filter(|(_, p)| p.as_str() == plan)
            .map(|(price, _)| price.as_str())
            .min()
    }
}
