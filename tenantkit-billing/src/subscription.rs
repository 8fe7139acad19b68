//! A tenant's subscription: what Stripe says, and the plan it grants.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tenantkit::{Result, TenantId, TenantTx, audit::Audited, store::Scoped};

use crate::{
    plans::{Plan, Plans},
    sql,
};

/// The stored subscription of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its Stripe customer.
    pub stripe_customer_id: Option<String>,
    /// Its Stripe subscription.
    pub stripe_subscription_id: Option<String>,
    /// The plan the subscription's price maps to.
    pub plan: String,
    /// Stripe's status: `active`, `trialing`, `past_due`, `canceled`, `unpaid`, `incomplete`, ...
    pub status: String,
    /// End of the paid period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends at `current_period_end`.
    pub cancel_at_period_end: bool,
    /// When it became `past_due` (the grace period runs from here).
    pub past_due_since: Option<DateTime<Utc>>,
    /// `created` of the newest Stripe event applied.
    pub last_event_at: Option<DateTime<Utc>>,
    /// Order of that event's kind within the same second (see [`crate::webhook`]).
    pub last_event_rank: i64,
    /// When this row last changed.
    pub updated_at: DateTime<Utc>,
}

impl Audited for Subscription {
    const RESOURCE_TYPE: &'static str = "subscription";

    fn resource_id(&self) -> String {
        self.stripe_subscription_id
            .clone()
            .unwrap_or_else(|| self.tenant_id.to_string())
    }
}

/// A Stripe event recorded as applied (its id is unique per tenant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ProcessedEvent {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Stripe's event id (`evt_...`).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// Its `created`.
    pub event_created: DateTime<Utc>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

impl Audited for ProcessedEvent {
    const RESOURCE_TYPE: &'static str = "stripe_event";

    fn resource_id(&self) -> String {
        self.event_id.clone()
    }
}

/// The plan `subscription` grants now.
///
/// - `active` and `trialing`: the subscribed plan;
/// - `past_due`: the subscribed plan for `grace` after it became past due,
///   then the default plan;
/// - anything else (`canceled`, `unpaid`, `incomplete`, none at all): the default plan.
///
/// A plan no longer in configuration also falls back to the default plan.
pub fn effective_plan<'a>(
    plans: &'a Plans,
    subscription: Option<&Subscription>,
    grace: Duration,
    now: DateTime<Utc>,
) -> &'a Plan {
    let Some(sub) = subscription else {
        return plans.default_plan();
    };
    let paid = match sub.status.as_str() {
        "active" | "trialing" => true,
        "past_due" => sub.past_due_since.is_none_or(|since| now < since + grace),
        _ => false,
    };
    if !paid {
        return plans.default_plan();
    }
    plans.get(&sub.plan).unwrap_or_else(|| {
        tracing::warn!(plan = %sub.plan, "subscribed plan is not configured; using the default plan");
        plans.default_plan()
    })
}

/// The tenant's subscription row, if any.
pub async fn load(tx: &mut TenantTx) -> Result<Option<Subscription>> {
    let q = tx.query(sql::LOAD_SUBSCRIPTION);
    tx.fetch_optional(q).await
}

/// Records a Stripe event as received; `false` when it was already (a duplicate delivery).
pub async fn record_event(
    tx: &mut TenantTx,
    event_id: &str,
    event_type: &str,
    created: DateTime<Utc>,
) -> Result<bool> {
    let q = tx
        .query(sql::RECORD_STRIPE_EVENT)
        .bind(event_id)
        .bind(event_type)
        .bind(created)
        .bind(Utc::now());
    Ok(tx.insert_if_absent::<ProcessedEvent>(q).await?.is_some())
}

/// Binds `$2` to `$11`: every column after `tenant_id`.
fn bind_state(q: Scoped, next: &Subscription) -> Scoped {
    q.bind(next.stripe_customer_id.clone())
        .bind(next.stripe_subscription_id.clone())
        .bind(next.plan.clone())
        .bind(next.status.clone())
        .bind(next.current_period_end)
        .bind(next.cancel_at_period_end)
        .bind(next.past_due_since)
        .bind(next.last_event_at)
        .bind(next.last_event_rank)
        .bind(Utc::now())
}

/// Writes `next` (audited, with the previous state when there was one).
pub async fn save(
    tx: &mut TenantTx,
    current: Option<&Subscription>,
    next: &Subscription,
) -> Result<Subscription> {
    match current {
        None => {
            let q = tx.query(sql::INSERT_SUBSCRIPTION);
            tx.insert(bind_state(q, next)).await
        }
        Some(before) => {
            let q = tx.query(sql::UPDATE_SUBSCRIPTION);
            tx.update(before, bind_state(q, next)).await
        }
    }
}

/// Told of every change of a tenant's plan or subscription status, inside
/// the transaction that makes it (so what it writes, e.g. a webhook event
/// in an outbox, commits or rolls back with the change).
#[async_trait::async_trait]
pub trait SubscriptionObserver: Send + Sync + 'static {
    /// `before` is `None` for the tenant's first subscription record.
    async fn changed(
        &self,
        tx: &mut tenantkit::TenantTx,
        before: Option<&Subscription>,
        after: &Subscription,
    ) -> tenantkit::Result<()>;
}
