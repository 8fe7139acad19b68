//! # tenantkit-server
//!
//! The reference server: every tenantkit crate composed into one multi-tenant
//! platform. `main.rs` is only the command line; everything it does is here so
//! that tests can start the same server on a real socket.

pub mod app;
pub mod config;
pub mod deletion;
pub mod error;
pub mod export;
pub mod metrics;
pub mod openapi;
pub mod overload;
pub mod routes;
pub mod tasks;
pub mod webhooks;

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use axum_server::Handle;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tenantkit::{
    Backend, Db, NewTenant, NewUser, PageRequest, Role,
    audit::Actor,
    auth::{JwtKeys, TokenRole, parse_algorithm},
    resolve::TenantRef,
    store::RuntimeRole,
};
use tokio_util::sync::CancellationToken;

use crate::{
    app::AppState,
    config::{Config, Secret},
    metrics::Metrics,
    tasks::{Policy, Supervisor, Unit},
};

/// Opens the database the way `serve` uses it.
///
/// - Embedded SQLite: creates the data directory and file, and migrates.
/// - PostgreSQL: connects as the runtime role and refuses (with a clear error)
///   a role that could bypass row-level security, or a database that was not
///   migrated.
pub async fn open_runtime_db(config: &Config) -> anyhow::Result<Db> {
    let url = config.database_url();
    if config.is_embedded() {
        if config.database.url.is_none() {
            std::fs::create_dir_all(&config.database.data_dir).with_context(|| {
                format!(
                    "creating data directory {}",
                    config.database.data_dir.display()
                )
            })?;
        }
        let db = Db::connect_with(&url, config.database.max_connections)
            .await
            .context("opening SQLite")?
            .with_access_ttl(config.access_ttl());
        db.migrate().await.context("migrating SQLite")?;
        tenantkit_billing::Billing::migrate(&db)
            .await
            .context("migrating SQLite (billing)")?;
        tenantkit_webhooks::Webhooks::migrate(&db)
            .await
            .context("migrating SQLite (webhooks)")?;
        tenantkit_analytics::storage::migrate(&db)
            .await
            .context("migrating SQLite (analytics)")?;
        return Ok(db);
    }
    let runtime_url = match &config.database.runtime_url {
        Some(url) => url.expose().to_owned(),
        None => runtime_role(config)?.connection_url(&url)?,
    };
    let db = Db::connect_with(&runtime_url, config.database.max_connections)
        .await
        .with_context(|| {
            format!(
                "connecting to {}",
                tenantkit::store::redact_url(&runtime_url)
            )
        })?
        .with_access_ttl(config.access_ttl());
    db.ensure_cannot_bypass_isolation().await?;
    if let Err(e) = db.list_tenants(PageRequest::first(1)).await {
        bail!("the database is not ready ({e}); run `tenantkit-server migrate` first");
    }
    Ok(db)
}

fn runtime_role(config: &Config) -> anyhow::Result<RuntimeRole> {
    let mut role = RuntimeRole::new(&config.database.runtime_role)?;
    if let Some(password) = &config.database.runtime_password {
        role = role.with_password(password.expose());
    }
    Ok(role)
}

/// `migrate`: applies migrations as the owner named by `database.url`, then
/// (PostgreSQL) creates or updates the runtime role and its grants.
pub async fn migrate(config: &Config) -> anyhow::Result<String> {
    if config.is_embedded() {
        let db = open_runtime_db(config).await?;
        db.close().await;
        return Ok(format!("migrated {}", config.database_url()));
    }
    let url = config.database_url();
    let owner = Db::connect_with(&url, 2)
        .await
        .with_context(|| format!("connecting to {}", tenantkit::store::redact_url(&url)))?;
    owner.migrate().await?;
    tenantkit_billing::Billing::migrate(&owner).await?;
    tenantkit_webhooks::Webhooks::migrate(&owner).await?;
    tenantkit_analytics::storage::migrate(&owner).await?;
    tenantkit_analytics::storage::set_retention_floor(&owner, config.analytics.retention_days)
        .await?;
    owner
        .set_audit_retention_floor(config.audit.retention_days.max(1))
        .await?;
    let role = runtime_role(config)?;
    owner.setup_runtime_role(&role).await?;
    owner.close().await;
    Ok(format!(
        "migrated {}; runtime role `{}` is ready (serve connects as it)",
        tenantkit::store::redact_url(&url),
        role.name()
    ))
}

/// The JWT keys from configuration. On the embedded default with no key
/// configured, a random secret is created once in the data directory.
pub fn load_keys(config: &Config) -> anyhow::Result<JwtKeys> {
    let auth = &config.auth;
    let algorithm = parse_algorithm(&auth.jwt_algorithm)?;
    if algorithm != jsonwebtoken::Algorithm::HS256 {
        let public = auth
            .jwt_public_key
            .as_ref()
            .context("auth.jwt_public_key is required for RS256/EdDSA")?;
        let pem = std::fs::read(public).with_context(|| format!("reading {}", public.display()))?;
        let mut keys = JwtKeys::public_pem(algorithm, &pem)?;
        if let Some(private) = &auth.jwt_private_key {
            let pem =
                std::fs::read(private).with_context(|| format!("reading {}", private.display()))?;
            keys = keys.with_private_pem(&pem)?;
        }
        return Ok(keys);
    }
    let secret = match &auth.jwt_secret {
        Some(secret) => secret.clone(),
        None if config.is_embedded() => embedded_secret(&config.database.data_dir)?,
        None => bail!(
            "auth.jwt_secret (env TENANTKIT_AUTH__JWT_SECRET) is required with PostgreSQL: \
             a shared secret of at least 32 bytes, or use RS256/EdDSA keys"
        ),
    };
    Ok(JwtKeys::hs256(secret.expose().as_bytes())?)
}

fn embedded_secret(data_dir: &Path) -> anyhow::Result<Secret> {
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(Secret::from(existing.trim().to_owned()));
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 48];
    rand::fill(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(Secret::from(secret))
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// What first start created, to print.
#[derive(Debug)]
pub struct Demo {
    /// The demo tenant's subdomain.
    pub subdomain: String,
    /// An owner token for it.
    pub token: String,
}

/// On an empty database, creates tenant `demo` with an owner and mints a token.
pub async fn bootstrap_demo(
    db: &Db,
    keys: &JwtKeys,
    config: &Config,
) -> anyhow::Result<Option<Demo>> {
    if !db.list_tenants(PageRequest::first(1)).await?.is_empty() {
        return Ok(None);
    }
    let created = db
        .create_tenant_with_owner(
            &NewTenant {
                name: "Demo".into(),
                subdomain: "demo".into(),
            },
            &NewUser {
                email: "owner@demo.example".into(),
                role: Role::Owner,
            },
            &Actor::System,
        )
        .await;
    let (tenant, owner) = match created {
        Ok(created) => created,
        // Another server process sharing this database bootstrapped first.
        Err(tenantkit::Error::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let token = keys.issue(
        &owner.id.to_string(),
        Some(tenant.id),
        TokenRole::Owner,
        config.auth.token_ttl_secs,
    )?;
    Ok(Some(Demo {
        subdomain: tenant.subdomain,
        token,
    }))
}

/// Creates a tenant and, when `owner_email` is given, its first owner in the
/// same transaction (`POST /tenants` and `tenant create`).
pub async fn create_tenant(
    db: &Db,
    new: &NewTenant,
    owner_email: Option<String>,
    by: &Actor,
) -> tenantkit::Result<(tenantkit::Tenant, Option<tenantkit::User>)> {
    match owner_email {
        Some(email) => {
            let owner = NewUser {
                email,
                role: Role::Owner,
            };
            let (tenant, owner) = db.create_tenant_with_owner(new, &owner, by).await?;
            Ok((tenant, Some(owner)))
        }
        None => Ok((db.create_tenant(new, by).await?, None)),
    }
}

/// Purges every tenant's audit entries older than `retention_days`, each
/// through the audited purge path. Returns `(tenants purged, entries removed)`.
pub async fn purge_audit_logs(db: &Db, retention_days: u32) -> tenantkit::Result<(u64, u64)> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days.max(1)));
    let (mut tenants, mut entries) = (0, 0);
    let mut pages = db.tenant_pages(500);
    while let Some(page) = pages.next().await? {
        for ctx in page {
            let mut tx = db.begin(&ctx).await?;
            let purged = tx.purge_audit_logs(cutoff).await?;
            tx.commit().await?;
            if purged > 0 {
                tenants += 1;
                entries += purged;
            }
        }
    }
    Ok((tenants, entries))
}

/// `token issue` for a tenant: a token for `user` (an id or an e-mail; the
/// tenant's first owner when `None`) with `role` (the user's own role when
/// `None`; never more than it).
pub async fn issue_user_token(
    db: &Db,
    keys: &JwtKeys,
    tenant: &tenantkit::TenantContext,
    user: Option<&str>,
    role: Option<Role>,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    let mut tx = db.begin(tenant).await?;
    let user = match user {
        None => tx
            .first_owner()
            .await
            .context("the tenant has no owner; name a user with --user")?,
        Some(named) => {
            let by = match named.parse() {
                Ok(id) => tenantkit::store::UserRef::Id(id),
                Err(_) => tenantkit::store::UserRef::Email(named.to_owned()),
            };
            let access = tx.find_user_access(&by).await?.with_context(|| {
                format!(
                    "no user `{named}` in tenant `{}`",
                    tenant.tenant().subdomain
                )
            })?;
            tx.get_user(access.id).await?
        }
    };
    tx.commit().await?;
    let role = role.unwrap_or(user.role);
    if role > user.role {
        bail!(
            "user {} is {}; a token cannot carry the higher role {role}",
            user.email,
            user.role
        );
    }
    Ok(keys.issue(
        &user.id.to_string(),
        Some(tenant.id()),
        role.into(),
        ttl_secs,
    )?)
}

/// `tenant delete`: deletes the tenant named by `tenant` (id or subdomain;
/// its id once it is gone) if `confirm` is its subdomain, or finishes its
/// interrupted deletion; the tombstone.
pub async fn delete_tenant(
    config: &Config,
    tenant: &str,
    confirm: &str,
    batch: u32,
) -> anyhow::Result<tenantkit::store::TenantDeletion> {
    let db = open_runtime_db(config).await?;
    let (id, subdomain) = match find_tenant(&db, tenant).await {
        Ok(ctx) => (ctx.id(), ctx.tenant().subdomain.clone()),
        Err(not_found) => match tenant.parse::<TenantRef>()? {
            TenantRef::Id(id) => {
                let gone = db.tenant_deletion(id).await?.ok_or(not_found)?;
                (id, gone.subdomain)
            }
            TenantRef::Subdomain(_) => return Err(not_found),
        },
    };
    anyhow::ensure!(
        confirm == subdomain,
        "--confirm must be the tenant's subdomain (`{subdomain}`)"
    );
    let deleter = deletion::Deleter {
        db: db.clone(),
        billing: tenantkit_billing::Billing::new(db.clone(), config.billing.clone())?,
        webhooks: webhooks::build(config)?,
        batch,
    };
    let done = deleter
        .delete(id, &Actor::PlatformAdmin("cli".into()))
        .await?;
    db.close().await;
    Ok(done)
}

/// Resolves `tenant` (id or subdomain) to its id, for the command line.
pub async fn find_tenant(db: &Db, tenant: &str) -> anyhow::Result<tenantkit::TenantContext> {
    let r: TenantRef = tenant.parse()?;
    let found = match &r {
        TenantRef::Id(id) => db.resolve_id(*id).await?,
        TenantRef::Subdomain(s) => db.resolve_subdomain(s).await?,
    };
    found.with_context(|| format!("no tenant `{tenant}`"))
}

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

/// `fut` until `stop` is cancelled (for units whose loops have no
/// graceful stop of their own).
async fn until_stopped(
    stop: CancellationToken,
    fut: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::select! {
        () = fut => {}
        () = stop.cancelled() => {}
    }
    Ok(())
}

/// Opens the database, bootstraps on first start, and serves in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    // One TLS crypto provider for the process (ring, which Stripe's client
    // uses too); with several in the dependency graph rustls cannot pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = open_runtime_db(&config).await?;
    let keys = load_keys(&config)?;
    let demo = bootstrap_demo(&db, &keys, &config).await?;
    let tasks = Supervisor::new();
    let mut background = Vec::new();
    // Other processes' user and tenant changes reach this one's cache at
    // once: listening before `start` returns (and again after a failure).
    let listener = db
        .listen_for_access_changes()
        .await
        .context("listening for access changes")?;
    let first_listener = Arc::new(std::sync::Mutex::new(Some(listener)));
    background.push(tasks.spawn("access-listener", Policy::Restart, {
        let db = db.clone();
        move |stop| {
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
        }
    }));
    let webhooks = webhooks::build(&config)?;
    let billing = tenantkit_billing::Billing::new(db.clone(), config.billing.clone())?
        .with_observer(webhooks::SubscriptionEvents(webhooks.clone()));
    // The delivery worker, unless `tenantkit-server worker` processes do it.
    let worker = if config.webhooks.worker {
        let worker = webhooks::worker(&config, &db, &webhooks, &billing)?;
        Some(tasks.spawn("webhook-worker", Policy::Restart, move |stop| {
            let worker = worker.clone();
            async move { Ok(worker.run(stop.cancelled_owned()).await?) }
        }))
    } else {
        None
    };
    let (analytics, writers) =
        tenantkit_analytics::Analytics::new(db.clone(), config.analytics.ingest());
    let writers: Vec<Unit> = writers
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
    background.push(tasks.spawn("analytics-retention", Policy::Restart, {
        let (db, days) = (db.clone(), config.analytics.retention_days);
        move |stop| until_stopped(stop, analytics_retention(db.clone(), days))
    }));
    let live = tenantkit_analytics::Live::new(db.clone(), config.analytics.live.hub())
        .await
        .context("starting the live stream")?;
    background.push(tasks.spawn("live-refresh", Policy::Restart, {
        let live = live.clone();
        move |stop| until_stopped(stop, live.refresh())
    }));
    background.push(tasks.spawn("live-commits", Policy::Restart, {
        let (live, analytics) = (live.clone(), analytics.clone());
        move |stop| until_stopped(stop, live.follow_commits(&analytics))
    }));
    background.push(tasks.spawn("live-announcements", Policy::Restart, {
        let live = live.clone();
        move |stop| {
            let live = live.clone();
            async move {
                tokio::select! {
                    result = live.follow_announcements() => Ok(result?),
                    () = stop.cancelled() => Ok(()),
                }
            }
        }
    }));
    let live_config = &config.analytics.live;
    let state = AppState {
        db: db.clone(),
        keys: Arc::new(keys),
        metrics: Metrics::new(Some(analytics.clone())).with_tasks(tasks.clone()),
        billing,
        webhooks,
        analytics: analytics.clone(),
        live: live.clone(),
        live_limits: routes::live::LiveLimits {
            ping_interval: Duration::from_secs(live_config.ping_interval_secs),
            idle_timeout: Duration::from_secs(live_config.idle_timeout_secs),
            recheck: Duration::from_secs(live_config.recheck_secs),
        },
        deletion_wait: Duration::from_secs(config.server.deletion_wait_secs),
        tasks: tasks.clone(),
    };
    // Deletions a crash interrupted finish now (once: it returns when done).
    background.push(tasks.spawn("deletion-resumer", Policy::Restart, {
        let deleter = state.deleter();
        move |stop| {
            let deleter = deleter.clone();
            until_stopped(stop, async move { deleter.resume_unfinished().await })
        }
    }));
    if config.audit.purge_every_hours > 0 {
        let every = Duration::from_secs(config.audit.purge_every_hours * 3600);
        let (db, retention) = (db.clone(), config.audit.retention_days);
        background.push(tasks.spawn("audit-purge", Policy::Restart, move |stop| {
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
    let app = app::router(state, &config)?.into_make_service_with_connect_info::<SocketAddr>();

    let handle = Handle::new();
    let tls = config.server.tls_cert.is_some();
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
    // The server itself cannot be restarted in place: should it end before
    // it is told to, the process is not ready and `serve` exits.
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
    Ok(Running {
        addr,
        tls,
        demo,
        db,
        tasks,
        handle,
        http,
        writers,
        worker,
        background,
        analytics,
        live,
    })
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
    let _ = rustls::crypto::ring::default_provider().install_default();
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

/// Whether `db` is the embedded default.
pub fn is_sqlite(db: &Db) -> bool {
    db.backend() == Backend::Sqlite
}
