//! Harness: databases with billing's tables, configuration, signed Stripe events.

use std::{future::Future, pin::Pin};

use serde_json::{Value, json};
use tenantkit::{Db, Secret, TenantContext, testing};
use tenantkit_billing::{Billing, BillingConfig, signature};

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
    let dirs = [
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tenantkit/migrations/postgres"
        ),
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"),
    ];
    let database =
        testing::postgres_database_with("tenantkit_billing_test", &dirs, migrate_all).await?;
    Some(testing::runtime_db(&database, 20).await)
}

pub(crate) use tenantkit::testing::tenant;

/// Pro is `price_pro`, Enterprise `price_enterprise`; signing secret [`WEBHOOK_SECRET`].
pub(crate) fn config() -> BillingConfig {
    let mut config = BillingConfig::default();
    config.stripe_webhook_secrets = vec![Secret::from(WEBHOOK_SECRET.to_owned())];
    config.plans.plans.get_mut("pro").unwrap().stripe_price_ids = vec!["price_pro".into()];
    config
        .plans
        .plans
        .get_mut("enterprise")
        .unwrap()
        .stripe_price_ids = vec!["price_enterprise".into()];
    config.plan_cache_ttl_secs = 0;
    config
}

pub(crate) fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A Stripe event envelope, as Stripe sends it.
pub(crate) fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2025-06-30.basil",
        "created": created,
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind
    })
}

/// The tenant's Stripe customer id in these fixtures.
pub(crate) fn customer(tenant: &TenantContext) -> String {
    format!("cus_{}", &tenant.id().as_uuid().simple().to_string()[20..])
}

/// A subscription object (API 2025-06-30: the period sits on the item).
pub(crate) fn subscription(
    tenant: &TenantContext,
    status: &str,
    price: &str,
    period_end: i64,
) -> Value {
    json!({
        "id": "sub_1Pabc",
        "object": "subscription",
        "application": null,
        "billing_cycle_anchor": period_end - 2_592_000,
        "cancel_at": null,
        "cancel_at_period_end": false,
        "canceled_at": null,
        "collection_method": "charge_automatically",
        "created": period_end - 2_592_000,
        "currency": "usd",
        "customer": customer(tenant),
        "default_payment_method": "pm_1Pabc",
        "items": {
            "object": "list",
            "data": [{
                "id": "si_Pabc",
                "object": "subscription_item",
                "created": period_end - 2_592_000,
                "current_period_end": period_end,
                "current_period_start": period_end - 2_592_000,
                "metadata": {},
                "price": {
                    "id": price,
                    "object": "price",
                    "active": true,
                    "currency": "usd",
                    "product": "prod_Pabc",
                    "recurring": { "interval": "month", "interval_count": 1, "usage_type": "licensed" },
                    "type": "recurring",
                    "unit_amount": 2900
                },
                "quantity": 1,
                "subscription": "sub_1Pabc"
            }],
            "has_more": false,
            "url": "/v1/subscription_items?subscription=sub_1Pabc"
        },
        "latest_invoice": "in_1Pabc",
        "livemode": false,
        "metadata": { "tenant_id": tenant.id().to_string() },
        "start_date": period_end - 2_592_000,
        "status": status
    })
}

/// An invoice object for the subscription (API 2025-06-30: under `parent`).
pub(crate) fn invoice(tenant: &TenantContext, status: &str) -> Value {
    json!({
        "id": "in_1Pabc",
        "object": "invoice",
        "amount_due": 2900,
        "amount_paid": if status == "paid" { 2900 } else { 0 },
        "attempt_count": 1,
        "billing_reason": "subscription_cycle",
        "currency": "usd",
        "customer": customer(tenant),
        "livemode": false,
        "parent": {
            "type": "subscription_details",
            "subscription_details": { "metadata": {}, "subscription": "sub_1Pabc" }
        },
        "status": status
    })
}

/// A completed Checkout Session for the tenant.
pub(crate) fn checkout_session(tenant: &TenantContext) -> Value {
    json!({
        "id": "cs_test_a1",
        "object": "checkout.session",
        "client_reference_id": tenant.id().to_string(),
        "customer": customer(tenant),
        "livemode": false,
        "metadata": { "tenant_id": tenant.id().to_string() },
        "mode": "subscription",
        "payment_status": "paid",
        "status": "complete",
        "subscription": "sub_1Pabc"
    })
}

/// The body and `Stripe-Signature` header Stripe would send for `event` now.
pub(crate) fn signed(event: &Value) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(event).unwrap();
    let header = signature::sign(&body, &Secret::from(WEBHOOK_SECRET.to_owned()), now());
    (body, header)
}

/// Declares each `async fn name(db: Db)` as a test on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name($crate::common::sqlite().await).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = $crate::common::postgres().await else { return };
                super::$name(db).await;
            })+
        }
    };
}
pub(crate) use on_both_backends;
