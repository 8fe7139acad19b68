//! [`Billing`]: a tenant's effective plan (cached), Stripe sessions and
//! webhooks, and user creation within the plan's limit.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use serde::Serialize;
use tenantkit::{Db, NewUser, TenantContext, TenantId, TenantTx, User, problem::Problem};

use crate::{
    BillingConfig, BillingError, StripeApi, Subscription, SubscriptionObserver,
    plans::{Plan, Plans},
    signature, subscription, user_limit_problem, webhook,
};

/// A tenant's subscription as the API shows it.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionView {
    /// The plan in force now (after grace periods and cancellations).
    pub effective_plan: Plan,
    /// The stored subscription, if there is one.
    pub subscription: Option<Subscription>,
}

/// Effective plans by tenant: bounded (least recently used go first) and
/// kept `plan_cache_ttl_secs`; `None` when that is zero.
type PlanCache = Option<moka::sync::Cache<TenantId, Arc<Plan>>>;

/// How many tenants' plans one process keeps.
const PLAN_CACHE_CAPACITY: u64 = 100_000;

struct Inner {
    db: Db,
    plans: Plans,
    config: BillingConfig,
    stripe: Option<StripeApi>,
    cache: PlanCache,
    observer: Option<Arc<dyn SubscriptionObserver>>,
}

/// Billing for a platform; cheap to clone.
#[derive(Clone)]
pub struct Billing {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Billing's migrations (PostgreSQL, SQLite), in their own history table.
pub fn migrations() -> tenantkit::store::Migrations {
    tenantkit::migrations!(
        "_tenantkit_billing_migrations",
        "./migrations/postgres",
        "./migrations/sqlite"
    )
}

impl Billing {
    /// Applies billing's migrations (after tenantkit's; as the owner on PostgreSQL).
    pub async fn migrate(db: &Db) -> tenantkit::Result<()> {
        db.apply_migrations(&migrations()).await
    }

    /// Validates `config` (plans, Stripe client) and builds the service.
    pub fn new(db: Db, config: BillingConfig) -> Result<Self, BillingError> {
        let plans = Plans::new(config.plans.clone())
            .map_err(|e| BillingError::Store(tenantkit::Error::Misconfigured(e.to_string())))?;
        let stripe = match &config.stripe_secret_key {
            Some(key) => Some(StripeApi::new(key, config.stripe_api_base.as_deref())?),
            None => None,
        };
        let cache = (config.plan_cache_ttl_secs > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(PLAN_CACHE_CAPACITY)
                .time_to_live(Duration::from_secs(config.plan_cache_ttl_secs))
                .build()
        });
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                plans,
                config,
                stripe,
                cache,
                observer: None,
            }),
        })
    }

    /// Tells `observer` of every plan or status change, in its transaction.
    ///
    /// # Panics
    ///
    /// When called on a clone (configure billing before sharing it).
    pub fn with_observer(mut self, observer: impl SubscriptionObserver) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("configure billing before cloning it")
            .observer = Some(Arc::new(observer));
        self
    }

    /// The database billing reads and writes.
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The configured plans.
    pub fn plans(&self) -> &Plans {
        &self.inner.plans
    }

    fn grace(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.inner.config.past_due_grace_days))
    }

    /// The plan `ctx`'s tenant is on now; cached for `plan_cache_ttl_secs`.
    pub async fn plan_for(&self, ctx: &TenantContext) -> tenantkit::Result<Arc<Plan>> {
        if let Some(plan) = self.inner.cache.as_ref().and_then(|c| c.get(&ctx.id())) {
            return Ok(plan);
        }
        let sub = subscription::load(&mut self.inner.db.begin_snapshot(ctx).await?).await?;
        let plan = Arc::new(
            subscription::effective_plan(&self.inner.plans, sub.as_ref(), self.grace(), Utc::now())
                .clone(),
        );
        if let Some(cache) = &self.inner.cache {
            cache.insert(ctx.id(), plan.clone());
        }
        Ok(plan)
    }

    /// Forgets the cached plan of `tenant` (after its subscription changed).
    pub fn invalidate(&self, tenant: TenantId) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(&tenant);
        }
    }

    /// The tenant's subscription and effective plan.
    pub async fn subscription(&self, ctx: &TenantContext) -> tenantkit::Result<SubscriptionView> {
        let sub = subscription::load(&mut self.inner.db.begin_snapshot(ctx).await?).await?;
        let effective_plan =
            subscription::effective_plan(&self.inner.plans, sub.as_ref(), self.grace(), Utc::now())
                .clone();
        Ok(SubscriptionView {
            effective_plan,
            subscription: sub,
        })
    }

    /// Ends the tenant's Stripe subscription at once, for its deletion:
    /// cancels it at Stripe and records it `canceled` (audited), so running
    /// it again does nothing. Returns the subscription canceled, if there was
    /// one still running. [`BillingError::NotConfigured`] when there is one
    /// and no Stripe key to cancel it with.
    pub async fn cancel_for_deletion(
        &self,
        ctx: &TenantContext,
    ) -> Result<Option<String>, BillingError> {
        let running = |s: &Subscription| {
            s.stripe_subscription_id.is_some()
                && !matches!(s.status.as_str(), "canceled" | "incomplete_expired")
        };
        let current = subscription::load(&mut self.inner.db.begin_snapshot(ctx).await?).await?;
        let Some(id) = current
            .filter(running)
            .and_then(|s| s.stripe_subscription_id)
        else {
            return Ok(None);
        };
        let stripe = self
            .inner
            .stripe
            .as_ref()
            .ok_or(BillingError::NotConfigured("billing.stripe_secret_key"))?;
        // No transaction is open across the call to Stripe.
        let status = stripe.cancel_subscription(&id).await?;
        let mut tx = self.inner.db.begin(ctx).await?;
        if let Some(current) = subscription::load(&mut tx).await?.filter(running) {
            let next = Subscription {
                status,
                cancel_at_period_end: false,
                updated_at: Utc::now(),
                ..current.clone()
            };
            subscription::save(&mut tx, Some(&current), &next).await?;
        }
        tx.commit().await?;
        self.invalidate(ctx.id());
        Ok(Some(id))
    }

    /// Creates a user within the plan's user limit; the count and the insert
    /// are atomic, so concurrent creations never end above the limit. At the
    /// limit the error is the `402` to send.
    pub async fn create_user(
        &self,
        tx: &mut TenantTx,
        plan: &Plan,
        new: &NewUser,
    ) -> Result<User, Problem> {
        match tx.create_user_within(new, plan.max_users).await {
            Ok(user) => Ok(user),
            Err(tenantkit::Error::LimitExceeded { limit, usage, .. }) => {
                Err(user_limit_problem(plan, limit, usage))
            }
            Err(e) => Err(Problem::from(&e)),
        }
    }

    fn stripe(&self) -> Result<&StripeApi, BillingError> {
        self.inner
            .stripe
            .as_ref()
            .ok_or(BillingError::NotConfigured("billing.stripe_secret_key"))
    }

    /// A Checkout Session URL for `plan_id`, creating the tenant's Stripe
    /// customer first if it has none.
    pub async fn checkout(
        &self,
        ctx: &TenantContext,
        plan_id: &str,
        email: Option<&str>,
    ) -> Result<String, BillingError> {
        // Every input is checked before Stripe hears of anything.
        let email = email.map(tenantkit::validate::email).transpose()?;
        let stripe = self.stripe()?;
        let plan = self
            .inner
            .plans
            .get(plan_id)
            .ok_or_else(|| BillingError::UnknownPlan(format!("no plan `{plan_id}`")))?;
        let price = self.inner.plans.price_of(&plan.id).ok_or_else(|| {
            BillingError::UnknownPlan(format!("plan `{plan_id}` has no Stripe price"))
        })?;
        let customer = match self.customer_of(ctx).await? {
            Some(customer) => customer,
            None => {
                let customer = stripe
                    .create_customer(ctx.tenant(), email.as_deref())
                    .await?;
                self.inner
                    .db
                    .platform()
                    .link_external_id(webhook::STRIPE_CUSTOMER, &customer, ctx.id())
                    .await?;
                customer
            }
        };
        let config = &self.inner.config;
        stripe
            .create_checkout_session(
                &customer,
                price,
                ctx.id(),
                &config.success_url,
                &config.cancel_url,
            )
            .await
    }

    /// A billing-portal session URL for the tenant's Stripe customer.
    pub async fn portal(&self, ctx: &TenantContext) -> Result<String, BillingError> {
        let stripe = self.stripe()?;
        let customer = self
            .customer_of(ctx)
            .await?
            .ok_or(BillingError::NoCustomer)?;
        stripe
            .create_portal_session(&customer, &self.inner.config.portal_return_url)
            .await
    }

    async fn customer_of(&self, ctx: &TenantContext) -> Result<Option<String>, BillingError> {
        let mut tx = self.inner.db.begin(ctx).await?;
        let sub = subscription::load(&mut tx).await?;
        if let Some(customer) = sub.and_then(|s| s.stripe_customer_id) {
            return Ok(Some(customer));
        }
        // A customer created by an earlier, unfinished checkout.
        let linked = tx.linked_external_ids(webhook::STRIPE_CUSTOMER).await?;
        Ok(linked.into_iter().next())
    }

    /// Verifies and applies a Stripe webhook delivery (`POST /webhooks/stripe`).
    pub async fn receive_webhook(
        &self,
        payload: &[u8],
        signature: Option<&str>,
    ) -> Result<webhook::Outcome, BillingError> {
        let header = signature.ok_or(signature::SignatureError::Missing)?;
        let config = &self.inner.config;
        signature::verify(
            payload,
            header,
            &config.stripe_webhook_secrets,
            config.signature_tolerance_secs,
            Utc::now().timestamp(),
        )?;
        let event: webhook::StripeEvent =
            serde_json::from_slice(payload).map_err(|e| BillingError::Malformed(e.to_string()))?;
        let (outcome, tenant) = webhook::apply(
            &self.inner.db,
            &self.inner.plans,
            self.inner.observer.as_deref(),
            &event,
        )
        .await?;
        if let (webhook::Outcome::Applied, Some(tenant)) = (&outcome, tenant) {
            self.invalidate(tenant);
        }
        tracing::info!(event = %event.id, kind = %event.kind, ?outcome, "Stripe webhook");
        Ok(outcome)
    }
}
