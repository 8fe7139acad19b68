//! The tenant-scoped store: PostgreSQL (row-level security) or embedded SQLite.
//!
//! [`Db`] is a cheap-to-clone handle on a connection pool of either backend.
//! Platform (cross-tenant) operations on tenants have one entry point,
//! [`Db::platform`]; everything a tenant owns goes through a [`TenantTx`]
//! opened with [`Db::begin`], which is the single place that scopes queries
//! to a tenant. The store lends nothing crate-wide: what is built on it (the
//! users and API keys of [`crate::accounts`], the tower layers) uses its
//! public API only. See `ARCHITECTURE.md` for how a crate adds its own
//! tenant-owned tables.

// With one backend compiled in, the backend enums (`Pool`, `Tx`, ...) have a
// single variant, and matching on it is irrefutable; the code stays written
// for both.
#![cfg_attr(
    not(all(feature = "postgres", feature = "sqlite")),
    allow(irrefutable_let_patterns)
)]

mod access;
mod audit;
mod bulk;
mod catalog;
mod checks;
mod dialect;
mod driver;
mod erase;
mod migrate;
mod operational;
mod platform;
mod refusals;
mod scope;
pub mod sql;
mod tenants;
mod transaction;
mod user_access;
mod work;

#[cfg(feature = "sqlite")]
use std::str::FromStr;
use std::time::Duration;

use access::AccessCache;
pub use access::{ACCESS_CHANNEL, AccessListener, DEFAULT_ACCESS_TTL, UserAccess, UserRef};
pub use audit::{AUDIT_BATCH, AUDIT_RETENTION_SETTING};
pub use bulk::BulkTx;
pub use catalog::{NOT_TENANT_DATA, SECRET_MARK, TenantTable};
pub use dialect::{Sql, Statement};
use driver::Pool;
pub use driver::{PgRecord, Record, SqliteRecord, Value};
pub use erase::{ERASE_BATCH, TenantDeletion};
pub use migrate::{
    Migrations, RUNTIME_FUNCTIONS, RuntimeRole, SCRAM_ITERATIONS, core_migrations,
    scram_sha256_verifier,
};
pub use operational::OperationalTable;
pub use platform::Platform;
pub use refusals::{MAX_PENDING_GROUPS, REFUSAL_FLUSH_EVERY, SecurityEvent};
pub use scope::{Scoped, TenantTx};
pub use tenants::{SSO_ISSUER_PROVIDER, TenantPages};
pub use work::{ANNOUNCE_EVERY, DueTenant, DueWork, Maintenance, Wakeups};

use crate::{Error, Result, TenantContext};

/// A connection pool of either backend; clones share the pool.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    access: AccessCache,
    refusals: std::sync::Arc<refusals::Refusals>,
    announcer: work::Announcer,
}

/// Which database a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL with row-level security.
    Postgres,
    /// Embedded SQLite.
    Sqlite,
}

/// How every PostgreSQL pool of a [`Db`] is made.
#[cfg(feature = "postgres")]
fn pg_pool_options(max_connections: u32) -> sqlx::postgres::PgPoolOptions {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
}

impl Db {
    /// Connects to `postgres://…`/`postgresql://…` or `sqlite:…` (a SQLite file
    /// is created when missing; `sqlite::memory:` is a private in-memory database).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, 10).await
    }

    /// Like [`Db::connect`] with a pool of at most `max_connections`.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            {
                let pool = pg_pool_options(max_connections)
                    .connect(url)
                    .await
                    .map_err(crate::Error::from_sqlx)?;
                return Ok(Self::on_pool(Pool::Pg(pool)));
            }
        }
        if url.starts_with("sqlite:") {
            #[cfg(feature = "sqlite")]
            {
                use sqlx::sqlite::{
                    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
                };
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(crate::Error::from_sqlx)?
                    .create_if_missing(true)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    .journal_mode(if in_memory {
                        SqliteJournalMode::Memory
                    } else {
                        SqliteJournalMode::Wal
                    })
                    .synchronous(SqliteSynchronous::Normal);
                // An in-memory database lives in one connection: keep exactly one.
                let max = if in_memory { 1 } else { max_connections };
                let pool = SqlitePoolOptions::new()
                    .max_connections(max)
                    .min_connections(if in_memory { 1 } else { 0 })
                    .idle_timeout(None::<Duration>)
                    .max_lifetime(None::<Duration>)
                    .connect_with(options)
                    .await
                    .map_err(crate::Error::from_sqlx)?;
                return Ok(Self::on_pool(Pool::Sqlite(pool)));
            }
        }
        Err(Error::Misconfigured(format!(
            "unsupported database URL `{}`: expected postgres://… or sqlite:… (with the matching feature enabled)",
            redact_url(url)
        )))
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(_) => Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// A pool of its own of `max_connections` to the same PostgreSQL
    /// database (same role), sharing this handle's access cache, so that
    /// what invalidates one (an access listener) invalidates both: for a
    /// part of a process, such as a delivery worker, that should neither
    /// wait for the rest's connections nor make it wait. On SQLite, `self`
    /// again (one writer at a time: a second pool would only contend).
    pub async fn with_own_pool(&self, max_connections: u32) -> Result<Db> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => {
                let options = (*pool.connect_options()).clone();
                let own = pg_pool_options(max_connections)
                    .connect_with(options)
                    .await
                    .map_err(crate::Error::from_sqlx)?;
                Ok(Self {
                    pool: Pool::Pg(own),
                    access: self.access.clone(),
                    refusals: self.refusals.clone(),
                    announcer: self.announcer.clone(),
                })
            }
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(_) => {
                let _ = max_connections;
                Ok(self.clone())
            }
        }
    }

    /// The same pool, with tenants and users cached for `ttl` by
    /// [`Db::resolve_cached`] and [`Db::user_access`] (default
    /// [`DEFAULT_ACCESS_TTL`]; zero turns the cache off). The TTL bounds how
    /// long another process's change can go unseen here.
    pub fn with_access_ttl(mut self, ttl: Duration) -> Self {
        self.access = AccessCache::new(ttl);
        self
    }

    /// Opens a read-write transaction scoped to the resolved tenant. On
    /// SQLite it takes the database's write lock at once (so writers queue
    /// instead of failing on a lock upgrade): read with
    /// [`Db::begin_snapshot`], which never does.
    pub async fn begin(&self, ctx: &TenantContext) -> Result<TenantTx> {
        TenantTx::begin(self, ctx).await
    }

    /// Opens a read-only snapshot of the tenant's data: every read sees the
    /// database as of the first one, and no writer waits for it, nor it for
    /// a writer (PostgreSQL `REPEATABLE READ READ ONLY`; SQLite a deferred
    /// transaction, which in WAL mode reads beside the writer). **Every read
    /// path uses it**: listings, lookups, chain verification, exports.
    /// Writes through it fail.
    pub async fn begin_snapshot(&self, ctx: &TenantContext) -> Result<TenantTx> {
        TenantTx::begin_snapshot(self, ctx).await
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        driver::Pooled::acquire(&self.pool)
            .await?
            .conn()
            .execute(sql::PING, Vec::new())
            .await?;
        Ok(())
    }

    /// Whether [`Db::close`] was called.
    pub fn is_closed(&self) -> bool {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => p.is_closed(),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => p.is_closed(),
        }
    }

    /// Writes the refused requests still counted in memory
    /// ([`Db::flush_refusals`]), then closes every connection of the pool.
    pub async fn close(&self) {
        if !self.is_closed() {
            self.flush_refusals().await;
        }
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => p.close().await,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

impl Db {
    /// A handle on `pool`, with a fresh access cache.
    fn on_pool(pool: Pool) -> Self {
        Self {
            pool,
            access: AccessCache::new(DEFAULT_ACCESS_TTL),
            refusals: Default::default(),
            announcer: Default::default(),
        }
    }
}

/// A test's own pool as a [`Db`] (feature `testing` only: sqlx's pools are
/// not part of the public API, so upgrading sqlx does not break it).
#[cfg(all(feature = "postgres", feature = "testing"))]
impl From<sqlx::PgPool> for Db {
    fn from(pool: sqlx::PgPool) -> Self {
        Self::on_pool(Pool::Pg(pool))
    }
}

/// A test's own pool as a [`Db`] (feature `testing` only).
#[cfg(all(feature = "sqlite", feature = "testing"))]
impl From<sqlx::SqlitePool> for Db {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Self::on_pool(Pool::Sqlite(pool))
    }
}

/// `url` with any password replaced by `***`, for messages and logs: the
/// one in its user info and a `password=` query parameter.
///
/// ```
/// use tenantkit::store::redact_url;
/// assert_eq!(redact_url("postgres://app:pw@db/x"), "postgres://app:***@db/x");
/// assert_eq!(
///     redact_url("postgres://db/x?user=app&password=pw&sslmode=require"),
///     "postgres://db/x?user=app&password=***&sslmode=require"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &base[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &base[..scheme_end], &base[at..]),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}
