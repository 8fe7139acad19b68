//! Webhooks in the reference server: built from `[webhooks]`, the delivery
//! worker (inside `serve`, or alone as `tenantkit-server worker`), budgets
//! per plan, and the events the server publishes.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use anyhow::{Context, bail};
use tenantkit::{Db, Secret, TenantContext, TenantTx};
use tenantkit_billing::{Billing, Subscription, SubscriptionObserver};
use tenantkit_webhooks::{
    Webhooks,
    catalogue::EventCatalogue,
    secret_box::SecretBox,
    transport::Transport,
    worker::{DeliveryLimits, Worker, WorkerOptions},
};

use crate::config::Config;

/// Webhooks as configured: URL policy, sealing keys, rotation grace.
pub fn build(config: &Config) -> anyhow::Result<Webhooks> {
    let settings = &config.webhooks;
    let policy =
        crate::config::url_policy("webhooks", settings.allow_http, &settings.allow_networks)?;
    let keys: Vec<Secret> = if !settings.secret_keys.is_empty() {
        settings.secret_keys.clone()
    } else if config.is_embedded() {
        vec![embedded_key(&config.database.data_dir)?]
    } else {
        bail!(
            "webhooks.secret_keys (env TENANTKIT_WEBHOOKS__SECRET_KEYS) is required with PostgreSQL: \
             base64 of 32 random bytes, e.g. `openssl rand -base64 32`"
        );
    };
    let secrets = SecretBox::new(keys.iter().map(|k| k.expose()))
        .context("webhooks.secret_keys: each key is base64 of 32 bytes")?;
    Ok(
        Webhooks::new(policy, secrets, catalogue(config)?).with_rotation_grace(
            chrono::Duration::hours(i64::from(settings.rotation_grace_hours)),
        ),
    )
}

/// The built-in event types and `webhooks.event_types`, each schema
/// compiled and each example checked against it.
pub fn catalogue(config: &Config) -> anyhow::Result<EventCatalogue> {
    config
        .webhooks
        .event_types
        .iter()
        .try_fold(EventCatalogue::tenantkit(), |catalogue, t| {
            match &t.schema {
                Some(schema) => catalogue.with_schema(
                    &t.name,
                    &t.description,
                    schema.clone(),
                    t.example.clone(),
                ),
                None => catalogue.with(&t.name, &t.description, t.example.clone()),
            }
        })
        .map_err(|e| anyhow::anyhow!("webhooks.event_types: {e}"))
}

/// Each tenant's budget of messages published over HTTP
/// (`webhooks.publish_per_second`, `publish_burst`), kept in this process.
#[derive(Clone, Debug)]
pub struct PublishBudgets(Option<tenantkit::rate_limit::Budgets<tenantkit::TenantId>>);

impl PublishBudgets {
    /// As configured; none when `publish_per_second` is 0.
    pub fn new(config: &Config) -> Self {
        let settings = &config.webhooks;
        Self(
            std::num::NonZeroU32::new(settings.publish_per_second).map(|rate| {
                let burst = std::num::NonZeroU32::new(settings.publish_burst).unwrap_or(rate);
                tenantkit::rate_limit::Budgets::new(
                    tenantkit::rate_limit::Quota::per_second(rate).allow_burst(burst),
                )
            }),
        )
    }

    /// Takes `messages` from the tenant's budget, or says when to retry (`429`).
    pub fn take(
        &self,
        tenant: tenantkit::TenantId,
        messages: usize,
    ) -> Result<(), tenantkit::rate_limit::Exceeded> {
        match &self.0 {
            Some(budgets) => budgets.check_n(&tenant, u32::try_from(messages).unwrap_or(u32::MAX)),
            None => Ok(()),
        }
    }
}

/// The embedded default's sealing key, generated on first start.
fn embedded_key(data_dir: &Path) -> anyhow::Result<Secret> {
    let path = data_dir.join("webhook-keys");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let current = existing
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        return Ok(Secret::from(current));
    }
    std::fs::create_dir_all(data_dir)?;
    let key = SecretBox::generate_key();
    crate::setup::write_private(&path, &key)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Secret::from(key))
}

/// The database of the worker `serve` runs: on PostgreSQL a pool of its
/// own (`webhooks.worker_connections`) sharing `db`'s access cache, so the
/// API and the deliveries never wait for each other's connections and a
/// suspension reaches both at once; on SQLite, or with 0, `db`.
pub async fn worker_db(config: &Config, db: &Db) -> anyhow::Result<Db> {
    if config.webhooks.worker_connections == 0 {
        return Ok(db.clone());
    }
    db.with_own_pool(config.webhooks.worker_connections)
        .await
        .context("opening the webhook worker's database pool")
}

/// A delivery worker on `db` as configured.
pub fn worker(
    config: &Config,
    db: &Db,
    webhooks: &Webhooks,
    billing: &Billing,
) -> anyhow::Result<Worker> {
    let settings = &config.webhooks;
    let transport = Transport::new(webhooks.policy().clone()).context("webhook HTTP client")?;
    let options = WorkerOptions::default()
        .concurrency(settings.concurrency)
        .tenant_share(settings.tenant_share)
        .lease(std::time::Duration::from_secs(settings.lease_secs.max(11)))
        .retention((settings.retention_days > 0).then(|| {
            std::time::Duration::from_secs(u64::from(settings.retention_days) * 24 * 3600)
        }))
        .disable_after(std::time::Duration::from_secs(
            u64::from(settings.disable_after_hours) * 3600,
        ));
    Ok(Worker::new(db.clone(), webhooks.clone(), transport)
        .with_options(options)
        .with_limits(PlanLimits {
            billing: billing.clone(),
            default: settings.deliveries_per_minute,
            per_plan: Arc::new(settings.plan_deliveries_per_minute.clone()),
        }))
}

/// Each tenant's budget: its plan's, else the default; 0 means no limit.
struct PlanLimits {
    billing: Billing,
    default: u32,
    per_plan: Arc<BTreeMap<String, u32>>,
}

#[async_trait::async_trait]
impl DeliveryLimits for PlanLimits {
    async fn per_minute(&self, tenant: &TenantContext) -> Option<u32> {
        let limit = match self.billing.plan_for(tenant).await {
            Ok(plan) => self.per_plan.get(&plan.id).copied().unwrap_or(self.default),
            Err(e) => {
                tracing::warn!(tenant_id = %tenant.id(), error = %e, "plan unknown; default webhook budget");
                self.default
            }
        };
        (limit > 0).then_some(limit)
    }
}

/// Publishes `subscription.updated` when Stripe changes a plan or status.
pub struct SubscriptionEvents(pub Webhooks);

#[async_trait::async_trait]
impl SubscriptionObserver for SubscriptionEvents {
    async fn changed(
        &self,
        tx: &mut TenantTx,
        before: Option<&Subscription>,
        after: &Subscription,
    ) -> tenantkit::Result<()> {
        let data = serde_json::json!({
            "plan": after.plan,
            "status": after.status,
            "previous_plan": before.map(|b| &b.plan),
            "previous_status": before.map(|b| &b.status),
            "current_period_end": after.current_period_end,
            "cancel_at_period_end": after.cancel_at_period_end,
        });
        publish(&self.0, tx, "subscription.updated", data).await
    }
}

/// Publishes one of the server's events inside `tx`. Every event the server
/// publishes is in the catalogue and small, so a refusal is a bug: it fails
/// the change rather than losing the event.
pub async fn publish(
    webhooks: &Webhooks,
    tx: &mut TenantTx,
    event_type: &str,
    data: serde_json::Value,
) -> tenantkit::Result<()> {
    match webhooks.publish(tx, event_type, data).await {
        Ok(_) => Ok(()),
        Err(tenantkit_webhooks::WebhookError::Store(e)) => Err(e),
        Err(e) => Err(tenantkit::Error::Internal(format!(
            "publishing `{event_type}`: {e}"
        ))),
    }
}
