//! [`TenantTx`]: the one place tenant scoping happens.

use super::{
    Db, Pool,
    sql::{Conn, Record, Value},
};
use crate::{Error, Result, TenantContext, TenantId};

/// A database transaction bound to one tenant.
///
/// It can only be opened from a [`TenantContext`] (see [`Db::begin`]), and it
/// is the only way to query tenant-owned tables:
///
/// - every query is built by [`TenantTx::query`], which binds the tenant id as
///   `$1` before anything else, so the SQL filters (and inserts) by
///   `tenant_id = $1` and a caller cannot pass another tenant;
/// - on PostgreSQL the transaction also sets `tenantkit.tenant_id` with
///   `set_config(.., true)` (transaction-local, never on the pooled session),
///   so row-level security enforces the same rule inside the database.
///
/// Dropping it without [`TenantTx::commit`] rolls back.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tenantkit::{Db, NewTenant, store::Value};
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.migrate().await?;
/// let acme = db.create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }).await?;
/// let ctx = db.resolve_subdomain("acme").await?.expect("just created");
///
/// let mut tx = db.begin(&ctx).await?;
/// // `$1` is already bound to the tenant; the caller binds from `$2` on.
/// let q = tx.query("SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1 AND role = $2").bind("owner");
/// let count: (i64,) = tx.fetch_one(q).await?;
/// assert_eq!(count.0, 0);
/// tx.commit().await?;
/// # assert_eq!(ctx.tenant().id, acme.id);
/// # Ok::<_, tenantkit::Error>(()) }).unwrap();
/// ```
pub struct TenantTx {
    tx: Tx,
    tenant: TenantId,
}

/// A query built by [`TenantTx::query`], with the tenant already bound as `$1`.
#[must_use = "a query does nothing until a TenantTx runs it"]
#[derive(Debug)]
pub struct Scoped {
    sql: &'static str,
    values: Vec<Value>,
}

impl Scoped {
    /// Binds the next parameter (`$2`, `$3`, ...).
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }
}

pub(crate) enum Tx {
    #[cfg(feature = "postgres")]
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// A pooled connection outside any transaction, for single reads.
pub(crate) enum Pooled {
    #[cfg(feature = "postgres")]
    Pg(sqlx::pool::PoolConnection<sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

impl Pooled {
    pub(crate) async fn acquire(db: &Db) -> Result<Self> {
        Ok(match &db.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => Pooled::Pg(pool.acquire().await?),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => Pooled::Sqlite(pool.acquire().await?),
        })
    }

    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            #[cfg(feature = "postgres")]
            Pooled::Pg(c) => Conn::Pg(c),
            #[cfg(feature = "sqlite")]
            Pooled::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

impl Tx {
    pub(crate) async fn begin(db: &Db) -> Result<Self> {
        Ok(match &db.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => Tx::Pg(pool.begin().await?),
            // IMMEDIATE takes the write lock up front, so two writers queue on
            // the busy timeout instead of failing on lock upgrade.
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    pub(crate) fn conn(&mut self) -> Conn<'_> {
        match self {
            #[cfg(feature = "postgres")]
            Tx::Pg(tx) => Conn::Pg(tx),
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            #[cfg(feature = "postgres")]
            Tx::Pg(tx) => tx.commit().await?,
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

impl TenantTx {
    pub(crate) async fn begin(db: &Db, ctx: &TenantContext) -> Result<Self> {
        Self::scope(Tx::begin(db).await?, ctx.tenant().id).await
    }

    /// Scopes an open transaction to `tenant` (which must exist).
    pub(crate) async fn scope(mut tx: Tx, tenant: TenantId) -> Result<Self> {
        #[cfg(feature = "postgres")]
        if let Tx::Pg(_) = tx {
            tx.conn()
                .execute(
                    "SELECT set_config('tenantkit.tenant_id', $1, true)",
                    vec![Value::Text(tenant.to_string())],
                )
                .await?;
        }
        Ok(Self { tx, tenant })
    }

    /// The tenant every query of this transaction is scoped to.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// Starts a query whose `$1` is this transaction's tenant id.
    ///
    /// # Panics
    ///
    /// When `sql` does not use `$1`: a query that ignores the tenant is a bug.
    pub fn query(&self, sql: &'static str) -> Scoped {
        assert!(
            sql.contains("$1"),
            "tenant-scoped SQL must use $1 (the tenant id): {sql}"
        );
        Scoped {
            sql,
            values: vec![Value::from(self.tenant)],
        }
    }

    /// All rows.
    pub async fn fetch_all<O: Record>(&mut self, query: Scoped) -> Result<Vec<O>> {
        self.tx.conn().fetch_all(query.sql, query.values).await
    }

    /// The first row, if any.
    pub async fn fetch_optional<O: Record>(&mut self, query: Scoped) -> Result<Option<O>> {
        self.tx.conn().fetch_optional(query.sql, query.values).await
    }

    /// Exactly one row; [`Error::NotFound`] when there is none.
    pub async fn fetch_one<O: Record>(&mut self, query: Scoped) -> Result<O> {
        self.fetch_optional(query)
            .await?
            .ok_or(Error::NotFound("row"))
    }

    /// Runs a statement and returns how many rows it affected.
    pub async fn execute(&mut self, query: Scoped) -> Result<u64> {
        self.tx.conn().execute(query.sql, query.values).await
    }

    /// Commits every change made through this transaction.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await
    }
}
