//! # tenantkit-billing
//!
//! Stripe subscriptions and plan enforcement for tenantkit:
//!
//! - [`plans`]: plans from configuration (defaults Free, Pro, Enterprise) and
//!   the Stripe prices that map to them;
//! - [`Billing`]: a tenant's effective plan (cached in process), Checkout and
//!   billing-portal sessions, and verified, idempotent, order-safe Stripe
//!   webhooks ([`webhook`], [`signature`]);
//! - [`PlanLayer`]: a tower layer that refuses what the tenant's plan does not
//!   allow with `402 Payment Required`;
//! - the user limit, enforced atomically with user creation
//!   ([`Billing::create_user`]).
//!
//! Its tables (`subscriptions`, `stripe_events`) are tenant-owned: every
//! change goes through `tenantkit::TenantTx` and is audited.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tenantkit::{Db, NewTenant, audit::Actor};
//! use tenantkit_billing::{Billing, BillingConfig};
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! Billing::migrate(&db).await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! let acme = db.resolve_subdomain("acme").await?.unwrap();
//!
//! let billing = Billing::new(db, BillingConfig::default()).unwrap();
//! assert_eq!(billing.plan_for(&acme).await?.id, "free", "no subscription yet");
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

mod auth_store;
mod billing;
pub mod config;
mod error;
mod plan_layer;
pub mod plans;
pub mod signature;
pub mod sql;
mod stripe_api;
pub mod subscription;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

pub use billing::{Billing, SubscriptionView, migrations};
pub use config::BillingConfig;
pub use error::{BillingError, feature_problem, user_limit_problem};
pub use plan_layer::{PlanLayer, PlanService, PlanSource};
pub use stripe_api::StripeApi;
pub use subscription::{Subscription, SubscriptionObserver};
