//! The tenant-binding rules, and nothing else: how a transaction is bound to
//! its tenant (on PostgreSQL `tenantkit.tenant_id`, transaction-local, and
//! optionally the tenant row held), and how every query it runs is bound to
//! it ([`Scoped`]: `$1` is the tenant, and a query runs only in the
//! transaction that built it). Reads and writes are in `transaction`,
//! several tenants in one transaction in `bulk`, the unaudited tables in
//! `operational`, what a statement's text must be in `checks`.

use super::{
    Backend, Db,
    access::{AccessCache, AccessChange},
    checks,
    dialect::Sql,
    driver::{Tx, Value},
    sql,
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
/// use tenantkit::{Db, NewTenant, audit::Actor, store::Value};
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.migrate().await?;
/// let acme = db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
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
    pub(super) tx: Tx,
    /// Which transaction this is: queries it builds run only in it.
    pub(super) id: u64,
    pub(super) tenant: TenantId,
    pub(super) ctx: TenantContext,
    pub(super) access: AccessCache,
    /// The handle it was opened on, and the channels it announces at commit
    /// (see [`TenantTx::notify`]).
    pub(super) db: Db,
    pub(super) announce: Vec<&'static str>,
    /// What runs once this commits (see [`TenantTx::after_commit`]).
    pub(super) after_commit: Vec<Box<dyn FnOnce() + Send + Sync>>,
    /// Access changes to drop from the cache once this commits.
    pub(super) changed: Vec<AccessChange>,
    /// Whether this transaction holds the tenant's write lock (the tenant
    /// row, then the audit head: see [`TenantTx::lock_tenant_writes`]).
    pub(super) write_locked: bool,
    /// Whether an operational write ran before the write lock was taken
    /// (allowed for transactions that never audit; a bug otherwise).
    pub(super) wrote_unlocked: bool,
}

/// A query built by [`TenantTx::query`], with the tenant already bound as `$1`.
#[must_use = "a query does nothing until a TenantTx runs it"]
#[derive(Debug)]
pub struct Scoped {
    pub(super) sql: &'static str,
    pub(super) values: Vec<Value>,
    /// The [`TenantTx`] that built it, the only one that may run it.
    pub(super) built_by: u64,
    /// Why it cannot run at all (a statement without a text for this
    /// backend), reported as [`Error::Internal`] by whatever runs it.
    pub(super) unrunnable: Option<String>,
}

impl Scoped {
    /// Binds the next parameter (`$2`, `$3`, ...).
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }
}

impl TenantTx {
    pub(in crate::store) async fn begin(db: &Db, ctx: &TenantContext) -> Result<Self> {
        let tx = Tx::begin_bound(&db.pool, ctx.id(), false).await?;
        Ok(Self::scoped(db, tx, ctx.clone()))
    }

    pub(in crate::store) async fn begin_snapshot(db: &Db, ctx: &TenantContext) -> Result<Self> {
        let tx = Tx::begin_bound(&db.pool, ctx.id(), true).await?;
        Ok(Self::scoped(db, tx, ctx.clone()))
    }

    /// Scopes an open transaction of `db` to `ctx`'s tenant (which must exist).
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    pub(in crate::store) async fn scope(db: &Db, mut tx: Tx, ctx: TenantContext) -> Result<Self> {
        #[cfg(feature = "postgres")]
        if let Tx::Pg(_) = tx {
            tx.conn()
                .execute(sql::BIND_TENANT, vec![Value::Text(ctx.id().to_string())])
                .await?;
        }
        Ok(Self::scoped(db, tx, ctx))
    }

    /// The transaction, once the database knows its tenant.
    fn scoped(db: &Db, tx: Tx, ctx: TenantContext) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            tx,
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            tenant: ctx.id(),
            ctx,
            access: db.access.clone(),
            db: db.clone(),
            announce: Vec::new(),
            after_commit: Vec::new(),
            changed: Vec::new(),
            write_locked: false,
            wrote_unlocked: false,
        }
    }

    /// Like [`TenantTx::scope`], and holds the tenant until the transaction
    /// ends (PostgreSQL `FOR KEY SHARE`, as a foreign key check does), for
    /// writers to tables without a foreign key to `tenants`: a tenant's
    /// deletion then waits for them, and a tenant already deleted is
    /// [`Error::NotFound`] instead of rows that outlive it.
    pub(in crate::store) async fn scope_held(
        db: &Db,
        mut tx: Tx,
        ctx: TenantContext,
    ) -> Result<Self> {
        // On SQLite, one writer at a time: nothing can delete the tenant
        // before this commits. PostgreSQL's `set_config` takes the id as text.
        let tenant = match tx.backend() {
            Backend::Postgres => Value::Text(ctx.id().to_string()),
            Backend::Sqlite => ctx.id().into(),
        };
        let held: Option<(i64,)> = tx
            .conn()
            .fetch_optional(sql::HOLD_TENANT, vec![tenant])
            .await?;
        match held {
            Some(_) => Ok(Self::scoped(db, tx, ctx)),
            None => Err(Error::NotFound("tenant")),
        }
    }

    /// The tenant every query of this transaction is scoped to.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// The context it was opened with (tenant, actor, request).
    pub fn context(&self) -> &TenantContext {
        &self.ctx
    }

    /// Starts a query whose `$1` is this transaction's tenant id. The query
    /// runs only in this transaction: another `TenantTx` (of this tenant or
    /// another) refuses it with [`Error::Internal`], so a query can never
    /// read or write one tenant's rows inside another's transaction.
    ///
    /// An [`Sql`] without a text for this transaction's backend (one of
    /// [`Sql::postgres_only`] or [`Sql::sqlite_only`] on the other
    /// backend's code path) is refused with [`Error::Internal`] when run,
    /// like every statement the store runs.
    ///
    /// # Panics
    ///
    /// When `sql` does not use the placeholder `$1` (in a comment, a string
    /// literal or as part of `$10` it does not count): a query that ignores
    /// the tenant is a bug.
    pub fn query(&self, sql: impl Into<Sql>) -> Scoped {
        let backend = self.tx.backend();
        let sql = sql.into();
        let (text, unrunnable) = match sql.on(backend) {
            Some(text) => {
                assert!(
                    checks::placeholders(text).any(|n| n == 1),
                    "tenant-scoped SQL must use $1 (the tenant id): {text}"
                );
                (text, None)
            }
            None => (
                "",
                Some(format!(
                    "a statement without a {backend:?} form ran on {backend:?}: {sql:?}"
                )),
            ),
        };
        Scoped {
            sql: text,
            values: vec![Value::from(self.tenant)],
            built_by: self.id,
            unrunnable,
        }
    }

    /// Refuses a query that cannot run here: one built by another
    /// transaction, or without a text for this backend.
    pub(super) fn owns(&self, query: &Scoped) -> Result<()> {
        if let Some(why) = &query.unrunnable {
            return Err(Error::Internal(why.clone()));
        }
        if query.built_by == self.id {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "refused: a query built by another TenantTx cannot run in this one (tenant {}): {}",
                self.tenant, query.sql
            )))
        }
    }
}
