//! Opening the database, migrating it, and loading the token keys: what
//! every command does before its work.

use std::path::Path;

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use tenantkit::{
    Backend, Db, PageRequest,
    auth::{JwtKeys, parse_algorithm},
    store::RuntimeRole,
};

use crate::config::{Config, Secret};

/// Opens the database the way `serve` uses it.
///
/// - Embedded SQLite: creates the data directory and file, and migrates.
/// - PostgreSQL: connects as the runtime role and refuses (with a clear error)
///   a role that could bypass row-level security, or a database that was not
///   migrated.
pub async fn open_runtime_db(config: &Config) -> anyhow::Result<Db> {
    // Every process opens its database first: the place to choose the one
    // TLS crypto provider (ring, which Stripe's client uses too) before any
    // HTTP client is built; with several in the dependency graph rustls
    // cannot pick one itself.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
        migrate_schema(&db, config.analytics.retention_days)
            .await
            .context("migrating SQLite")?;
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
    if let Err(e) = db.platform().list_tenants(PageRequest::first(1)).await {
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

/// Every crate's migrations, in order, and the owner settings they read
/// (the analytics retention floor; a no-op on SQLite). On PostgreSQL `db`
/// connects as the owner.
pub(crate) async fn migrate_schema(
    db: &Db,
    analytics_retention_days: u32,
) -> tenantkit::Result<()> {
    db.migrate().await?;
    tenantkit_billing::Billing::migrate(db).await?;
    tenantkit_webhooks::Webhooks::migrate(db).await?;
    tenantkit_analytics::storage::migrate(db).await?;
    tenantkit_analytics::storage::set_retention_floor(db, analytics_retention_days).await
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
    migrate_schema(&owner, config.analytics.retention_days).await?;
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

/// Whether `db` is the embedded default.
pub fn is_sqlite(db: &Db) -> bool {
    db.backend() == Backend::Sqlite
}
