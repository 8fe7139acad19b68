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
use tokio::task::JoinHandle;

use crate::{
    app::AppState,
    config::{Config, Secret},
    metrics::Metrics,
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
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    purger: Option<JoinHandle<()>>,
    access_watcher: JoinHandle<()>,
    worker: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<()>)>,
    analytics: tenantkit_analytics::Analytics,
    live: tenantkit_analytics::Live,
    analytics_writer: JoinHandle<()>,
    analytics_retention: JoinHandle<()>,
    deletions: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish (up to `grace`), and waits.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<()> {
        if let Some(purger) = &self.purger {
            purger.abort();
        }
        self.access_watcher.abort();
        self.analytics_retention.abort();
        // An interrupted deletion resumed at start stops between batches
        // (its open batch rolls back) and resumes at the next start.
        self.deletions.abort();
        // Live streams end with 1001 (going away): their clients reconnect elsewhere.
        self.live.shutdown();
        self.handle.graceful_shutdown(Some(grace));
        self.task.await??;
        // Every buffered analytics event is stored before the pool closes.
        self.analytics.shutdown().await;
        self.analytics_writer.await.ok();
        // Stops claiming, lets deliveries in flight finish or gives them back.
        if let Some((stop, worker)) = self.worker {
            stop.send(()).ok();
            worker.await.ok();
        }
        self.db.close().await;
        Ok(())
    }
}

/// Opens the database, bootstraps on first start, and serves in the background.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    // One TLS crypto provider for the process (ring, which Stripe's client
    // uses too); with several in the dependency graph rustls cannot pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = open_runtime_db(&config).await?;
    let keys = load_keys(&config)?;
    let demo = bootstrap_demo(&db, &keys, &config).await?;
    // Other processes' user and tenant changes reach this one's cache at
    // once: listening before `start` returns.
    let listener = db
        .listen_for_access_changes()
        .await
        .context("listening for access changes")?;
    let webhooks = webhooks::build(&config)?;
    let billing = tenantkit_billing::Billing::new(db.clone(), config.billing.clone())?
        .with_observer(webhooks::SubscriptionEvents(webhooks.clone()));
    // The delivery worker, unless `tenantkit-server worker` processes do it.
    let worker = if config.webhooks.worker {
        let worker = webhooks::worker(&config, &db, &webhooks, &billing)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            if let Err(e) = worker
                .run(async {
                    stopped.await.ok();
                })
                .await
            {
                tracing::error!(error = %e, "webhook worker stopped");
            }
        });
        Some((stop, task))
    } else {
        None
    };
    let (analytics, analytics_writer) =
        tenantkit_analytics::Analytics::start(db.clone(), config.analytics.ingest());
    let analytics_retention = tokio::spawn(analytics_retention(
        db.clone(),
        config.analytics.retention_days,
    ));
    let live =
        tenantkit_analytics::Live::start(db.clone(), &analytics, config.analytics.live.hub())
            .await
            .context("starting the live stream")?;
    let live_config = &config.analytics.live;
    let state = AppState {
        db: db.clone(),
        keys: Arc::new(keys),
        metrics: Metrics::new(Some(analytics.clone())),
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
    };
    // Deletions a crash interrupted finish now.
    let deletions = tokio::spawn({
        let deleter = state.deleter();
        async move { deleter.resume_unfinished().await }
    });
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
    let access_watcher = tokio::spawn(async move {
        if let Err(e) = listener.run().await {
            tracing::error!(error = %e, "access-change listener stopped; relying on the cache TTL");
        }
    });
    let purger = (config.audit.purge_every_hours > 0).then(|| {
        let every = Duration::from_secs(config.audit.purge_every_hours * 3600);
        let (db, retention) = (db.clone(), config.audit.retention_days);
        tokio::spawn(async move {
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
    });
    Ok(Running {
        addr,
        tls,
        demo,
        db,
        handle,
        task,
        purger,
        access_watcher,
        worker,
        analytics,
        live,
        analytics_writer,
        analytics_retention,
        deletions,
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
