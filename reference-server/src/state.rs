//! [`AppState`]: what handlers share, and how a process builds it: every
//! crate's service on one database, with the tasks they need (the access
//! listener, the analytics writers, the live hub's loops, the webhook
//! worker) spawned under the process's [`Supervisor`].
//!
//! `serve` builds it with [`AppState::start`]; so do the route tests, which
//! then drive [`crate::app::app`] without a socket.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tenantkit::{Db, auth::JwtKeys};
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    deletion::Deleter,
    metrics::Metrics,
    tasks::{Policy, Supervisor, Unit, until_stopped},
    webhooks,
};

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store.
    pub db: Db,
    /// Token keys.
    pub keys: Arc<JwtKeys>,
    /// Trusted token issuers, with their key caches.
    pub issuers: tenantkit::auth::Issuers,
    /// Tenants' own issuers (single sign-on), with their key caches.
    pub tenant_issuers: tenantkit::auth::TenantIssuers,
    /// Metrics registry.
    pub metrics: Metrics,
    /// Plans, subscriptions and Stripe.
    pub billing: tenantkit_billing::Billing,
    /// Endpoints, the outbox and deliveries.
    pub webhooks: tenantkit_webhooks::Webhooks,
    /// Each tenant's budget of messages published over HTTP.
    pub publish_budgets: webhooks::PublishBudgets,
    /// Event ingestion (the writer's handle).
    pub analytics: tenantkit_analytics::Analytics,
    /// The live stream's hub (`/ws/analytics`).
    pub live: tenantkit_analytics::Live,
    /// Timings of each live connection.
    pub live_limits: LiveLimits,
    /// How long `DELETE /tenants/{id}` waits before answering `202`.
    pub deletion_wait: Duration,
    /// The background tasks (`/readyz` fails once one the process needs has).
    pub tasks: Supervisor,
    /// The configuration it was built from (the router reads its layers' settings).
    pub config: Arc<Config>,
}

/// Timings of every connection (`[analytics.live]`).
#[derive(Clone, Copy, Debug)]
pub struct LiveLimits {
    /// Between the server's pings.
    pub ping_interval: Duration,
    /// Silence after which a connection is closed.
    pub idle_timeout: Duration,
    /// Between checks of the credential and the tenant.
    pub recheck: Duration,
}

/// The tasks [`AppState::start`] spawned, for an ordered shutdown.
#[derive(Debug)]
pub struct Services {
    /// The analytics writers (stopped by `Analytics::shutdown`, once flushed).
    pub writers: Vec<Unit>,
    /// The webhook delivery worker, unless `tenantkit-server worker` runs it.
    pub worker: Option<Unit>,
    /// The access listener and the live hub's loops.
    pub background: Vec<Unit>,
}

impl AppState {
    /// Builds every crate's service on `db` and spawns their tasks under
    /// `tasks`.
    pub async fn start(
        config: Config,
        db: Db,
        keys: JwtKeys,
        tasks: &Supervisor,
    ) -> anyhow::Result<(AppState, Services)> {
        let mut background = vec![access_listener(&db, tasks).await?];
        let webhooks = webhooks::build(&config)?;
        let billing = tenantkit_billing::Billing::new(db.clone(), config.billing.clone())?
            .with_observer(webhooks::SubscriptionEvents(webhooks.clone()));
        let worker = if config.webhooks.worker {
            let worker_db = webhooks::worker_db(&config, &db).await?;
            let worker = webhooks::worker(&config, &worker_db, &webhooks, &billing)?;
            Some(tasks.spawn("webhook-worker", Policy::Restart, move |stop| {
                let worker = worker.clone();
                async move { Ok(worker.run(stop.cancelled_owned()).await?) }
            }))
        } else {
            None
        };
        let (analytics, writers) = analytics_writers(&db, &config, tasks);
        let live = tenantkit_analytics::Live::new(db.clone(), config.analytics.live.hub())
            .await
            .context("starting the live stream")?;
        background.extend(live_loops(&live, &analytics, tasks));
        let live_config = &config.analytics.live;
        let issuers = tenantkit::auth::Issuers::new(&config.auth.issuers)?;
        let tenant_issuers = tenantkit::auth::TenantIssuers::new(config.auth.sso.url_policy()?);
        let state = AppState {
            db,
            keys: Arc::new(keys),
            issuers: issuers.clone(),
            tenant_issuers: tenant_issuers.clone(),
            metrics: Metrics::new(Some(analytics.clone()))
                .with_tasks(tasks.clone())
                .with_issuers(issuers, tenant_issuers),
            billing,
            publish_budgets: webhooks::PublishBudgets::new(&config),
            webhooks,
            analytics,
            live,
            live_limits: LiveLimits {
                ping_interval: Duration::from_secs(live_config.ping_interval_secs),
                idle_timeout: Duration::from_secs(live_config.idle_timeout_secs),
                recheck: Duration::from_secs(live_config.recheck_secs),
            },
            deletion_wait: Duration::from_secs(config.server.deletion_wait_secs),
            tasks: tasks.clone(),
            config: Arc::new(config),
        };
        let services = Services {
            writers,
            worker,
            background,
        };
        Ok((state, services))
    }

    /// What deletes a tenant across every crate.
    pub fn deleter(&self) -> Deleter {
        Deleter {
            db: self.db.clone(),
            billing: self.billing.clone(),
            webhooks: self.webhooks.clone(),
            batch: tenantkit::store::ERASE_BATCH,
        }
    }

    /// Publishes one of the server's events in `tx` (see [`crate::webhooks::publish`]).
    pub async fn publish(
        &self,
        tx: &mut tenantkit::TenantTx,
        event_type: &str,
        data: &impl serde::Serialize,
    ) -> tenantkit::Result<()> {
        let data = serde_json::to_value(data)
            .map_err(|e| tenantkit::Error::Internal(format!("serializing `{event_type}`: {e}")))?;
        webhooks::publish(&self.webhooks, tx, event_type, data).await
    }
}

/// Other processes' user and tenant changes reach this one's cache at once:
/// listening before the state is returned (and again after a failure).
async fn access_listener(db: &Db, tasks: &Supervisor) -> anyhow::Result<Unit> {
    let listener = db
        .listen_for_access_changes()
        .await
        .context("listening for access changes")?;
    let first_listener = Arc::new(std::sync::Mutex::new(Some(listener)));
    let db = db.clone();
    Ok(
        tasks.spawn("access-listener", Policy::Restart, move |stop| {
            let (db, first) = (db.clone(), first_listener.clone());
            async move {
                let listener = first.lock().expect("not poisoned").take();
                let listener = match listener {
                    Some(listener) => listener,
                    None => db.listen_for_access_changes().await?,
                };
                tokio::select! {
                    result = listener.run() => Ok(result?),
                    () = stop.cancelled() => Ok(()),
                }
            }
        }),
    )
}

/// Event ingestion and its writers, one unit each.
fn analytics_writers(
    db: &Db,
    config: &Config,
    tasks: &Supervisor,
) -> (tenantkit_analytics::Analytics, Vec<Unit>) {
    let (analytics, writers) =
        tenantkit_analytics::Analytics::new(db.clone(), config.analytics.ingest());
    let writers = writers
        .into_iter()
        .map(|writer| {
            let writer = Arc::new(writer);
            let name = format!("analytics-writer-{}", writer.index());
            // It stops with `Analytics::shutdown`, once it has flushed.
            tasks.spawn(name, Policy::Restart, move |_stop| {
                let writer = writer.clone();
                async move {
                    writer.run().await;
                    Ok(())
                }
            })
        })
        .collect();
    (analytics, writers)
}

/// The live hub's loops: the periodic re-read, this process's flushes, and
/// every process's announcements.
fn live_loops(
    live: &tenantkit_analytics::Live,
    analytics: &tenantkit_analytics::Analytics,
    tasks: &Supervisor,
) -> [Unit; 3] {
    let refresh = tasks.spawn("live-refresh", Policy::Restart, {
        let live = live.clone();
        move |stop| until_stopped(stop, live.refresh())
    });
    let commits = tasks.spawn("live-commits", Policy::Restart, {
        let (live, analytics) = (live.clone(), analytics.clone());
        move |stop| until_stopped(stop, live.follow_commits(&analytics))
    });
    let announcements = tasks.spawn("live-announcements", Policy::Restart, {
        let live = live.clone();
        move |stop: CancellationToken| {
            let live = live.clone();
            async move {
                tokio::select! {
                    result = live.follow_announcements() => Ok(result?),
                    () = stop.cancelled() => Ok(()),
                }
            }
        }
    });
    [refresh, commits, announcements]
}
