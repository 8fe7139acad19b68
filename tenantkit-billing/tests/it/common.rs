//! Harness: databases with billing's tables, configuration, signed Stripe events.

use std::{future::Future, pin::Pin};

use serde_json::Value;
use tenantkit::{Db, Secret, testing};
use tenantkit_billing::{Billing, BillingConfig};

pub(crate) const WEBHOOK_SECRET: &str = "whsec_test_secret";

fn migrate_all(db: &Db) -> Pin<Box<dyn Future<Output = tenantkit::Result<()>> + Send + '_>> {
    Box::pin(async move {
        db.migrate().await?;
        Billing::migrate(db).await
    })
}

pub(crate) async fn sqlite() -> Db {
    let db = testing::sqlite().await;
    Billing::migrate(&db).await.expect("billing migrations");
    db
}

pub(crate) async fn postgres() -> Option<Db> {
    let billing = tenantkit_billing::migrations();
    let migrators = [tenantkit::store::core_migrations(), &billing];
    let database =
        testing::postgres_database_with("tenantkit_billing_test", &migrators, migrate_all).await?;
    Some(testing::runtime_db(&database, 20).await)
}

pub(crate) use tenantkit::testing::tenant;
pub(crate) use tenantkit_billing::testing::{
    checkout_session, customer, event, invoice, now, subscription,
};

/// The body and `Stripe-Signature` header Stripe would send for `event` now.
pub(crate) fn signed(event: &Value) -> (Vec<u8>, String) {
    tenantkit_billing::testing::signed(event, &Secret::from(WEBHOOK_SECRET.to_owned()))
}

/// Pro is `price_pro`, Enterprise `price_enterprise`; signing secret [`WEBHOOK_SECRET`].
pub(crate) fn config() -> BillingConfig {
    let mut config = BillingConfig {
        stripe_webhook_secrets: vec![Secret::from(WEBHOOK_SECRET.to_owned())],
        plan_cache_ttl_secs: 0,
        ..BillingConfig::default()
    };
    config.plans.plans.get_mut("pro").unwrap().stripe_price_ids = vec!["price_pro".into()];
    config
        .plans
        .plans
        .get_mut("enterprise")
        .unwrap()
        .stripe_price_ids = vec!["price_enterprise".into()];
    config
}

/// Declares each `async fn name(db: Db)` as a test on SQLite and on
/// PostgreSQL ([`tenantkit::backend_tests`] with this harness).
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        tenantkit::backend_tests!(crate::common, multi_thread; $($name),+);
    };
}
pub(crate) use on_both_backends;
