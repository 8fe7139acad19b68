//! Applying Stripe webhook events: idempotent, and safe against out-of-order delivery.
//!
//! Stripe does not promise order. Each subscription row keeps the newest
//! applied event's `created` second and the *rank* of its kind; an event is
//! applied only if `(created, rank)` is newer. Within one second the rank
//! orders the kinds the way Stripe emits them for one subscription:
//! checkout completed, subscription created, invoice paid or failed,
//! subscription updated, subscription deleted. Duplicates are recognised by
//! their event id (a unique row per tenant), in the same transaction as the change.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tenantkit::{Db, TenantContext, TenantId, audit::Actor};

use crate::{
    BillingError,
    plans::Plans,
    subscription::{self, Subscription},
};

/// The provider name under which Stripe customers are linked to tenants.
pub const STRIPE_CUSTOMER: &str = "stripe_customer";

/// A Stripe event, as much of it as billing needs.
#[derive(Clone, Debug, Deserialize)]
pub struct StripeEvent {
    /// `evt_...`
    pub id: String,
    /// E.g. `customer.subscription.updated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds since the Unix epoch.
    pub created: i64,
    /// The object the event is about.
    pub data: EventData,
}

/// `data` of a [`StripeEvent`].
#[derive(Clone, Debug, Deserialize)]
pub struct EventData {
    /// The object (subscription, Checkout Session, invoice).
    pub object: Value,
}

/// What a delivery did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// State changed.
    Applied,
    /// This event id was applied before.
    Duplicate,
    /// A newer event was applied already; this one changed nothing.
    Stale,
    /// Not an event billing acts on, or for no known tenant.
    Ignored(&'static str),
}

/// The events billing acts on, with their order within one second.
fn rank(kind: &str) -> Option<i64> {
    Some(match kind {
        "checkout.session.completed" => 1,
        "customer.subscription.created" => 2,
        "invoice.paid" | "invoice.payment_failed" => 3,
        "customer.subscription.updated" => 4,
        "customer.subscription.deleted" => 5,
        _ => return None,
    })
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, key| v.get(key))?.as_str()
}

fn customer_of(object: &Value) -> Option<&str> {
    // `customer` is an id, or an expanded object with one.
    object
        .get("customer")
        .and_then(|c| c.as_str().or_else(|| c.get("id").and_then(Value::as_str)))
}

/// The subscription id an invoice belongs to (field moved between API versions).
fn invoice_subscription(object: &Value) -> Option<&str> {
    text(object, &["subscription"])
        .or_else(|| text(object, &["parent", "subscription_details", "subscription"]))
}

fn timestamp(v: Option<&Value>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(v?.as_i64()?, 0)
}

async fn tenant_of(
    db: &Db,
    kind: &str,
    object: &Value,
) -> Result<Option<TenantContext>, BillingError> {
    let by_id = match kind {
        "checkout.session.completed" => text(object, &["client_reference_id"])
            .or_else(|| text(object, &["metadata", "tenant_id"])),
        _ => text(object, &["metadata", "tenant_id"]),
    };
    if let Some(id) = by_id.and_then(|id| id.parse::<TenantId>().ok())
        && let Some(ctx) = db.resolve_id(id).await?
    {
        return Ok(Some(ctx));
    }
    match customer_of(object) {
        Some(customer) => Ok(db.resolve_external_id(STRIPE_CUSTOMER, customer).await?),
        None => Ok(None),
    }
}

/// Applies one verified event.
pub async fn apply(
    db: &Db,
    plans: &Plans,
    observer: Option<&dyn crate::SubscriptionObserver>,
    event: &StripeEvent,
) -> Result<(Outcome, Option<TenantId>), BillingError> {
    let Some(rank) = rank(&event.kind) else {
        return Ok((Outcome::Ignored("event type not handled"), None));
    };
    let object = &event.data.object;
    let Some(ctx) = tenant_of(db, &event.kind, object).await? else {
        tracing::warn!(event = %event.id, kind = %event.kind, "Stripe event for no known tenant");
        return Ok((Outcome::Ignored("no known tenant"), None));
    };
    let tenant = ctx.id();
    // Invoices name only the customer: remember whose customer it is.
    if let Some(customer) = customer_of(object)
        && let Err(e) = db
            .platform()
            .link_external_id(STRIPE_CUSTOMER, customer, tenant)
            .await
    {
        tracing::warn!(event = %event.id, customer, error = %e, "could not link the Stripe customer to the tenant");
    }
    let created = DateTime::from_timestamp(event.created, 0)
        .ok_or_else(|| BillingError::Malformed("event `created` is out of range".into()))?;

    let mut tx = db.begin(&ctx.with_actor(Actor::System)).await?;
    tx.lock_tenant_writes().await?;
    if !subscription::record_event(&mut tx, &event.id, &event.kind, created).await? {
        return Ok((Outcome::Duplicate, Some(tenant)));
    }
    let current = subscription::load(&mut tx).await?;
    if let Some(cur) = &current
        && let Some(last) = cur.last_event_at
        && (last, cur.last_event_rank) >= (created, rank)
    {
        tx.commit().await?;
        return Ok((Outcome::Stale, Some(tenant)));
    }
    let mut next = current.clone().unwrap_or_else(|| Subscription {
        tenant_id: tenant,
        stripe_customer_id: None,
        stripe_subscription_id: None,
        plan: plans.default_plan().id.clone(),
        status: "incomplete".into(),
        current_period_end: None,
        cancel_at_period_end: false,
        past_due_since: None,
        last_event_at: None,
        last_event_rank: 0,
        updated_at: Utc::now(),
    });
    if let Some(customer) = customer_of(object) {
        next.stripe_customer_id = Some(customer.to_owned());
    }
    match event.kind.as_str() {
        "checkout.session.completed" => {
            if let Some(sub) = text(object, &["subscription"]) {
                next.stripe_subscription_id = Some(sub.to_owned());
            }
        }
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted" => {
            next.stripe_subscription_id = text(object, &["id"])
                .map(str::to_owned)
                .or(next.stripe_subscription_id);
            let status = text(object, &["status"])
                .ok_or_else(|| BillingError::Malformed("subscription without status".into()))?;
            next.status = if event.kind.ends_with("deleted") {
                "canceled".to_owned()
            } else {
                status.to_owned()
            };
            let item = object.pointer("/items/data/0");
            if let Some(price) = item.and_then(|i| text(i, &["price", "id"])) {
                match plans.by_price(price) {
                    Some(plan) => next.plan = plan.id.clone(),
                    None => tracing::warn!(
                        price,
                        "Stripe price maps to no configured plan; plan unchanged"
                    ),
                }
            }
            next.current_period_end = timestamp(object.get("current_period_end"))
                .or_else(|| timestamp(item.and_then(|i| i.get("current_period_end"))));
            next.cancel_at_period_end = object
                .get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false);
        }
        "invoice.paid" | "invoice.payment_failed" => {
            let same = match (invoice_subscription(object), &next.stripe_subscription_id) {
                (Some(inv), Some(ours)) => inv == ours,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if !same {
                tx.commit().await?;
                return Ok((
                    Outcome::Ignored("invoice for another subscription"),
                    Some(tenant),
                ));
            }
            next.status = if event.kind == "invoice.paid" {
                "active".into()
            } else {
                "past_due".into()
            };
        }
        _ => unreachable!("ranked above"),
    }
    next.past_due_since = match (
        next.status.as_str(),
        current.as_ref().and_then(|c| c.past_due_since),
    ) {
        ("past_due", Some(since)) => Some(since),
        ("past_due", None) => Some(created),
        _ => None,
    };
    next.last_event_at = Some(created);
    next.last_event_rank = rank;
    subscription::save(&mut tx, current.as_ref(), &next).await?;
    if let Some(observer) = observer
        && current
            .as_ref()
            .is_none_or(|c| (&c.plan, &c.status) != (&next.plan, &next.status))
    {
        observer.changed(&mut tx, current.as_ref(), &next).await?;
    }
    tx.commit().await?;
    Ok((Outcome::Applied, Some(tenant)))
}
