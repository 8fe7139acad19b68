//! The tenant-scoped store: PostgreSQL (row-level security) or embedded SQLite.
//!
//! [`Db`] is a cheap-to-clone handle on a connection pool of either backend.
//! Platform operations (tenants) are methods on [`Db`]; everything a tenant
//! owns goes through a [`TenantTx`] opened with [`Db::begin`], which is the
//! single place that scopes queries to a tenant. See `ARCHITECTURE.md` for how
//! a crate adds its own tenant-owned tables.

mod access;
mod api_keys;
mod audit;
mod catalog;
mod erase;
mod migrate;
mod scope;
mod sql;
mod tenants;
mod users;
mod work;

use std::{str::FromStr, time::Duration};

use access::AccessCache;
pub use access::{ACCESS_CHANNEL, AccessListener, DEFAULT_ACCESS_TTL, UserAccess, UserRef};
pub use api_keys::CreatedApiKey;
pub use audit::AUDIT_BATCH;
pub use catalog::{NOT_TENANT_DATA, SECRET_COLUMNS, TenantTable};
pub use erase::{ERASE_BATCH, TenantDeletion};
pub use migrate::RuntimeRole;
#[cfg(feature = "postgres")]
pub use migrate::postgres_migrator;
pub use scope::{BulkTx, OperationalTable, Scoped, TenantTx};
pub use sql::{PgRecord, Record, SqliteRecord, Value};
pub use tenants::TenantPages;
pub use work::{DueTenant, DueWork, Maintenance, Wakeups};

use crate::{Error, Result, TenantContext};

/// A connection pool of either backend; clones share the pool.
#[derive(Clone, Debug)]
pub struct Db {
    pool: Pool,
    access: AccessCache,
}

#[derive(Clone, Debug)]
enum Pool {
    #[cfg(feature = "postgres")]
    Pg(sqlx::PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

/// Which database a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL with row-level security.
    Postgres,
    /// Embedded SQLite.
    Sqlite,
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
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(url)
                    .await?;
                return Ok(Self::from(pool));
            }
        }
        if url.starts_with("sqlite:") {
            #[cfg(feature = "sqlite")]
            {
                use sqlx::sqlite::{
                    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
                };
                let in_memory = url.contains(":memory:") || url.contains("mode=memory");
                let options = SqliteConnectOptions::from_str(url)?
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
                    .await?;
                return Ok(Self::from(pool));
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

    /// The same pool, with tenants and users cached for `ttl` by
    /// [`Db::resolve_cached`] and [`Db::user_access`] (default
    /// [`DEFAULT_ACCESS_TTL`]; zero turns the cache off). The TTL bounds how
    /// long another process's change can go unseen here.
    pub fn with_access_ttl(mut self, ttl: Duration) -> Self {
        self.access = AccessCache::new(ttl);
        self
    }

    /// Opens a transaction scoped to the resolved tenant.
    pub async fn begin(&self, ctx: &TenantContext) -> Result<TenantTx> {
        TenantTx::begin(self, ctx).await
    }

    /// Opens a read-only snapshot of the tenant's data: every read sees the
    /// database as of the first one, and no writer waits for it (for exports
    /// and reports that read many tables). Writes through it fail.
    pub async fn begin_snapshot(&self, ctx: &TenantContext) -> Result<TenantTx> {
        TenantTx::begin_snapshot(self, ctx).await
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<()> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ())?,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ())?,
        };
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

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(p) => p.close().await,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::PgPool> for Db {
    fn from(pool: sqlx::PgPool) -> Self {
        Self {
            pool: Pool::Pg(pool),
            access: AccessCache::new(DEFAULT_ACCESS_TTL),
        }
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::SqlitePool> for Db {
    fn from(pool: sqlx::SqlitePool) -> Self {
        Self {
            pool: Pool::Sqlite(pool),
            access: AccessCache::new(DEFAULT_ACCESS_TTL),
        }
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}://{user}:***{}", &url[..scheme_end], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
