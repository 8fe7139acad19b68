//! `serve` and `worker`: the supervised tasks of a running process.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use axum_server::Handle;
use tenantkit::Db;

use crate::{
    admin::{Demo, bootstrap_demo, purge_audit_logs},
    app,
    app::AppState,
    config::Config,
    setup::{load_keys, open_runtime_db},
    tasks::{Policy, Supervisor, Unit, until_stopped},
    webhooks,
};

/// A server started by [`start`].
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether it serves HTTPS.
    pub tls: bool,
    /// What first start created, if anything.
    pub demo: Option<Demo>,
    /// The store it uses.
    pub db: Db,
    /// Every background task, supervised.
    pub tasks: Supervisor,
    handle: Handle<SocketAddr>,
    http: Unit,
    /// Stopped, in this order, by [`Running::shutdown`].
    writers: Vec<Unit>,
    worker: Option<Unit>,
    /// Everything else: periodic jobs, listeners, the live hub's loops.
    background: Vec<Unit>,
    analytics: tenantkit_analytics::Analytics,
    live: tenantkit_analytics::Live,
}

impl Running {
    /// Shuts down in a stated order: stop accepting (in-flight requests
    /// finish, up to `grace`; live streams close with 1001), drain the
    /// analytics writers (every accepted event is stored), stop the webhook
    /// worker (deliveries in flight finish or are given back), stop the
    /// rest, close the pool.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        // 1. Stop accepting.
        self.live.shutdown();
        self.handle.graceful_shutdown(Some(grace));
        self.http.finished().await;
        // 2. Drain the writers: every buffered event is stored.
        self.analytics.shutdown().await;
        for writer in &self.writers {
            writer.finished().await;
        }
        // 3. Stop the worker: it stops claiming and gives back what it holds.
        if let Some(worker) = &self.worker {
            worker.stop_within(grace + Duration::from_secs(15)).await;
        }
        // 4. The rest: an interrupted deletion or purge rolls back its open
        // batch and resumes at the next start.
        for unit in &self.background {
            unit.stop_within(Duration::from_secs(5)).await;
        }
        // 5. Close the pool.
        self.db.close().await;
        Ok(())
    }

    /// Waits until a task the process cannot go on without failed (the
    /// HTTP server); its name. `/readyz` answers 503 from then on.
    pub async fn failed(&self) -> String {
        self.tasks.failed().await
    }
}

/// Opens the database, bootstraps on first start, and serves in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let db = open_runtime_db(&config).await?;
    let keys = load_keys(&config)?;
    let demo = bootstrap_demo(&db, &keys, &config).await?;
    let tasks = Supervisor::new();
    let (state, services) = AppState::start(config.clone(), db.clone(), keys, &tasks).await?;
    let mut background = services.background;
    background.extend(maintenance(&config, &state, &tasks));
    let (analytics, live) = (state.analytics.clone(), state.live.clone());
    let (addr, handle, http) = serve_http(app::app(state)?, &config, &tasks).await?;
    Ok(Running {
        addr,
        tls: config.server.tls_cert.is_some(),
        demo,
        db,
        tasks,
        handle,
        http,
        writers: services.writers,
        worker: services.worker,
        background,
        analytics,
        live,
    })
}

/// The periodic jobs: analytics retention, resuming interrupted deletions,
/// and (if configured) the audit retention purge.
fn maintenance(config: &Config, state: &AppState, tasks: &Supervisor) -> Vec<Unit> {
    let mut units = vec![tasks.spawn("analytics-retention", Policy::Restart, {
        let (db, days) = (state.db.clone(), config.analytics.retention_days);
        move |stop| until_stopped(stop, analytics_retention(db.clone(), days))
    })];
    // Deletions a crash interrupted finish now (once: it returns when done).
    units.push(tasks.spawn("deletion-resumer", Policy::Restart, {
        let deleter = state.deleter();
        move |stop| {
            let deleter = deleter.clone();
            until_stopped(stop, async move { deleter.resume_unfinished().await })
        }
    }));
    if config.audit.purge_every_hours > 0 {
        let every = Duration::from_secs(config.audit.purge_every_hours * 3600);
        let (db, retention) = (state.db.clone(), config.audit.retention_days);
        units.push(tasks.spawn("audit-purge", Policy::Restart, move |stop| {
            let db = db.clone();
            until_stopped(stop, async move {
                let mut ticks = tokio::time::interval(every);
                loop {
                    ticks.tick().await;
                    match purge_audit_logs(&db, retention).await {
                        Ok((tenants, entries)) => {
                            tracing::info!(tenants, entries, "audit retention purge")
                        }
                        Err(e) => tracing::error!(error = %e, "audit retention purge failed"),
                    }
                }
            })
        }));
    }
    units
}

/// Binds `server.listen` (with TLS if configured) and serves `app` as a
/// unit that must not end: should it, the process is not ready and `serve`
/// exits.
async fn serve_http(
    app: axum::Router,
    config: &Config,
    tasks: &Supervisor,
) -> anyhow::Result<(SocketAddr, Handle<SocketAddr>, Unit)> {
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let handle = Handle::new();
    let task = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .with_context(|| {
                    format!(
                        "loading TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            let server = axum_server::bind_rustls(config.server.listen, tls).handle(handle.clone());
            tokio::spawn(server.serve(app))
        }
        _ => {
            let server = axum_server::bind(config.server.listen).handle(handle.clone());
            tokio::spawn(server.serve(app))
        }
    };
    let Some(addr) = handle.listening().await else {
        let err = match task.await {
            Ok(Err(e)) => e.to_string(),
            _ => "unknown error".into(),
        };
        bail!("could not listen on {}: {err}", config.server.listen);
    };
    let server = Arc::new(tokio::sync::Mutex::new(Some(task)));
    let http = tasks.spawn("http-server", Policy::Fatal, move |_stop| {
        let server = server.clone();
        async move {
            let Some(task) = server.lock().await.take() else {
                anyhow::bail!("the HTTP server cannot be started again");
            };
            match task.await {
                Ok(result) => Ok(result?),
                Err(e) => anyhow::bail!("the HTTP server task ended: {e}"),
            }
        }
    });
    Ok((addr, handle, http))
}

/// Removes analytics events and rollups older than `retention_days`, now
/// and then once a day.
async fn analytics_retention(db: Db, retention_days: u32) {
    let mut ticks = tokio::time::interval(Duration::from_secs(24 * 3600));
    loop {
        ticks.tick().await;
        let before = chrono::Utc::now().date_naive() - chrono::Days::new(u64::from(retention_days));
        match tenantkit_analytics::retention::purge(&db, before).await {
            Ok(purged) => tracing::info!(
                partitions = purged.partitions,
                rows = purged.rows,
                %before,
                "analytics retention"
            ),
            Err(e) => tracing::error!(error = %e, "analytics retention failed"),
        }
    }
}

/// `tenantkit-server worker`: delivers webhooks until SIGINT/SIGTERM, then
/// shuts down gracefully.
pub async fn run_worker(config: Config) -> anyhow::Result<()> {
    let db = open_runtime_db(&config).await?;
    let webhooks = webhooks::build(&config)?;
    let billing = tenantkit_billing::Billing::new(db.clone(), config.billing.clone())?;
    let worker = webhooks::worker(&config, &db, &webhooks, &billing)?;
    worker.run(shutdown_signal()).await?;
    db.close().await;
    Ok(())
}

/// SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
