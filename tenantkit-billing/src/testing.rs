//! Stripe fixtures (feature `testing`): events and objects in Stripe's wire
//! format, signed exactly as Stripe signs them, for tests of this crate and
//! of servers built on it.

use serde_json::{Value, json};
use tenantkit::{Secret, TenantContext};

use crate::signature;

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A Stripe event envelope, as Stripe sends it.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
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
pub fn customer(tenant: &TenantContext) -> String {
    format!("cus_{}", &tenant.id().as_uuid().simple().to_string()[20..])
}

/// A subscription object (API 2025-06-30: the period sits on the item).
pub fn subscription(tenant: &TenantContext, status: &str, price: &str, period_end: i64) -> Value {
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
pub fn invoice(tenant: &TenantContext, status: &str) -> Value {
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
pub fn checkout_session(tenant: &TenantContext) -> Value {
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

/// The body and `Stripe-Signature` header Stripe would send for `event` now,
/// signed with `secret`.
pub fn signed(event: &Value, secret: &Secret) -> (Vec<u8>, String) {
    let body = serde_json::to_vec(event).expect("JSON");
    let header = signature::sign(&body, secret, now());
    (body, header)
}

/// The signed webhook call (body and `Stripe-Signature` header) that puts
/// `tenant` on an active subscription to `price` for a day: a fresh
/// `customer.subscription.updated` event, signed with `secret`. What a test
/// posts to its Stripe webhook route to subscribe a tenant.
///
/// ```
/// use tenantkit_billing::testing;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # use tenantkit::{Db, NewTenant, audit::Actor};
/// # let db = Db::connect("sqlite::memory:").await?;
/// # db.migrate().await?;
/// # let t = db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
/// # let acme = db.resolve_id(t.id).await?.unwrap();
/// let (body, signature) =
///     testing::subscription_activated(&acme, "price_pro", &"whsec_test".to_owned().into());
/// assert!(signature.starts_with("t="));
/// assert_eq!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["type"], "customer.subscription.updated");
/// # Ok::<_, tenantkit::Error>(()) }).unwrap();
/// ```
pub fn subscription_activated(
    tenant: &TenantContext,
    price: &str,
    secret: &Secret,
) -> (Vec<u8>, String) {
    let now = now();
    let event = event(
        &format!("evt_{}", uuid::Uuid::new_v4().simple()),
        "customer.subscription.updated",
        now,
        subscription(tenant, "active", price, now + 86_400),
    );
    signed(&event, secret)
}
