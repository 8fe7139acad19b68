//! [`TenantTx`]: the one place tenant scoping happens.

use super::{
    Db, Pool,
    access::{AccessCache, AccessChange},
    sql::{Conn, Record, Value},
};
use crate::{
    Error, Result, TenantContext, TenantId,
    audit::{Actor, AuditEntry, Audited},
};

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
/// let acme = db.create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
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
    /// Which transaction this is: queries it builds run only in it.
    id: u64,
    tenant: TenantId,
    ctx: TenantContext,
    access: AccessCache,
    /// Access changes to drop from the cache once this commits.
    changed: Vec<AccessChange>,
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
    sql: &'static str,
    values: Vec<Value>,
    /// The [`TenantTx`] that built it, the only one that may run it.
    built_by: u64,
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
    /// A read-only snapshot: every read sees the database as of its first
    /// one (PostgreSQL `REPEATABLE READ READ ONLY`; SQLite a deferred
    /// transaction, which in WAL mode blocks no writer).
    pub(crate) async fn begin_snapshot(db: &Db) -> Result<Self> {
        Ok(match &db.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => Tx::Pg(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN DEFERRED").await?),
        })
    }

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
        Self::scope(db, Tx::begin(db).await?, ctx.clone()).await
    }

    pub(crate) async fn begin_snapshot(db: &Db, ctx: &TenantContext) -> Result<Self> {
        Self::scope(db, Tx::begin_snapshot(db).await?, ctx.clone()).await
    }

    /// Scopes an open transaction of `db` to `ctx`'s tenant (which must exist).
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    pub(crate) async fn scope(db: &Db, mut tx: Tx, ctx: TenantContext) -> Result<Self> {
        #[cfg(feature = "postgres")]
        if let Tx::Pg(_) = tx {
            tx.conn()
                .execute(
                    "SELECT set_config('tenantkit.tenant_id', $1, true)",
                    vec![Value::Text(ctx.id().to_string())],
                )
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
    pub(crate) async fn scope_held(db: &Db, mut tx: Tx, ctx: TenantContext) -> Result<Self> {
        let held: Option<(i64,)> = match tx {
            #[cfg(feature = "postgres")]
            Tx::Pg(_) => {
                tx.conn()
                    .fetch_optional(
                        "SELECT 1::bigint WHERE tenantkit_hold_tenant($1::uuid) \
                         AND set_config('tenantkit.tenant_id', $1, true) IS NOT NULL",
                        vec![Value::Text(ctx.id().to_string())],
                    )
                    .await?
            }
            // One writer at a time: nothing can delete it before this commits.
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(_) => {
                tx.conn()
                    .fetch_optional("SELECT 1 FROM tenants WHERE id = $1", vec![ctx.id().into()])
                    .await?
            }
        };
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
    /// # Panics
    ///
    /// When `sql` does not use the placeholder `$1` (in a comment, a string
    /// literal or as part of `$10` it does not count): a query that ignores
    /// the tenant is a bug.
    pub fn query(&self, sql: &'static str) -> Scoped {
        assert!(
            placeholders(sql).any(|n| n == 1),
            "tenant-scoped SQL must use $1 (the tenant id): {sql}"
        );
        Scoped {
            sql,
            values: vec![Value::from(self.tenant)],
            built_by: self.id,
        }
    }

    /// Refuses a query built by another transaction.
    fn owns(&self, query: &Scoped) -> Result<()> {
        if query.built_by == self.id {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "refused: a query built by another TenantTx cannot run in this one (tenant {}): {}",
                self.tenant, query.sql
            )))
        }
    }

    /// All rows of a `SELECT`.
    pub async fn fetch_all<O: Record>(&mut self, query: Scoped) -> Result<Vec<O>> {
        query.expect_verb("SELECT");
        self.owns(&query)?;
        self.tx.conn().fetch_all(query.sql, query.values).await
    }

    /// The first row of a `SELECT`, if any.
    pub async fn fetch_optional<O: Record>(&mut self, query: Scoped) -> Result<Option<O>> {
        query.expect_verb("SELECT");
        self.owns(&query)?;
        self.tx.conn().fetch_optional(query.sql, query.values).await
    }

    /// Exactly one row of a `SELECT`; [`Error::NotFound`] when there is none.
    pub async fn fetch_one<O: Record>(&mut self, query: Scoped) -> Result<O> {
        self.fetch_optional(query)
            .await?
            .ok_or(Error::NotFound("row"))
    }

    /// Runs an `INSERT … RETURNING <row>` and audits it as `create` with the new state.
    pub async fn insert<O: Audited + Record>(&mut self, query: Scoped) -> Result<O> {
        query.expect_verb("INSERT");
        self.owns(&query)?;
        self.lock_tenant_writes().await?;
        let row: O = self.tx.conn().fetch_one(query.sql, query.values).await?;
        self.append(Change::new("create", &row).after(&row)?)
            .await?;
        Ok(row)
    }

    /// Runs an `INSERT … ON CONFLICT DO NOTHING RETURNING <row>`: audits and
    /// returns the row when it was inserted, `None` when it already existed
    /// (idempotent receipt of an event, say).
    pub async fn insert_if_absent<O: Audited + Record>(
        &mut self,
        query: Scoped,
    ) -> Result<Option<O>> {
        query.expect_verb("INSERT");
        self.owns(&query)?;
        self.lock_tenant_writes().await?;
        let row: Option<O> = self
            .tx
            .conn()
            .fetch_optional(query.sql, query.values)
            .await?;
        if let Some(row) = &row {
            self.append(Change::new("create", row).after(row)?).await?;
        }
        Ok(row)
    }

    /// Runs an `UPDATE … RETURNING <row>` of the row `before` and audits it as
    /// `update` with both states; [`Error::NotFound`] when no row matched.
    pub async fn update<O: Audited + Record>(&mut self, before: &O, query: Scoped) -> Result<O> {
        self.update_as("update", before, query).await
    }

    /// Like [`TenantTx::update`], audited under a named action such as
    /// `api_key.revoked` or `user.role_changed`.
    pub async fn update_as<O: Audited + Record>(
        &mut self,
        action: &str,
        before: &O,
        query: Scoped,
    ) -> Result<O> {
        query.expect_verb("UPDATE");
        self.owns(&query)?;
        self.lock_tenant_writes().await?;
        let row: O = self
            .tx
            .conn()
            .fetch_optional(query.sql, query.values)
            .await?
            .ok_or(Error::NotFound(O::RESOURCE_TYPE))?;
        self.append(Change::new(action, &row).before(before)?.after(&row)?)
            .await?;
        Ok(row)
    }

    /// Runs a `DELETE` of the row `before` and audits it as `delete` with the
    /// old state; [`Error::NotFound`] when no row matched.
    pub async fn delete<O: Audited + Record>(&mut self, before: &O, query: Scoped) -> Result<()> {
        query.expect_verb("DELETE");
        self.owns(&query)?;
        self.lock_tenant_writes().await?;
        if self.tx.conn().execute(query.sql, query.values).await? == 0 {
            return Err(Error::NotFound(O::RESOURCE_TYPE));
        }
        self.append(Change::new("delete", before).before(before)?)
            .await?;
        Ok(())
    }

    /// Records an event that changes no row (a failed login, a data export)
    /// with `details` as its `after` state.
    pub async fn record_event(
        &mut self,
        action: &str,
        resource_type: &str,
        resource_id: Option<String>,
        details: serde_json::Value,
    ) -> Result<AuditEntry> {
        self.append(Change {
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id,
            before: None,
            after: Some(details),
        })
        .await
    }

    /// Writes operational records to `table` (queue rows, delivery attempts,
    /// ingested events): scoped like every query (the tenant bound as `$1`,
    /// and row-level security on PostgreSQL), but **not audited**, so such
    /// records never make the audit chain a bottleneck. Returns the rows
    /// affected.
    ///
    /// Only for tables declared [`OperationalTable`]s; audited tables stay
    /// behind [`TenantTx::insert`]/[`TenantTx::update`]/[`TenantTx::delete`].
    ///
    /// # Panics
    ///
    /// When `query` is not an `INSERT INTO`, `UPDATE` or `DELETE FROM` of
    /// `table` (a bug, like a query without `$1`).
    pub async fn write_operational(
        &mut self,
        table: OperationalTable,
        query: Scoped,
    ) -> Result<u64> {
        query.expect_operational(table);
        self.owns(&query)?;
        self.wrote_unlocked |= !self.write_locked;
        self.tx.conn().execute(query.sql, query.values).await
    }

    /// Like [`TenantTx::write_operational`], for a statement with
    /// `RETURNING`: the rows it returns.
    pub async fn write_operational_returning<O: Record>(
        &mut self,
        table: OperationalTable,
        query: Scoped,
    ) -> Result<Vec<O>> {
        query.expect_operational(table);
        self.owns(&query)?;
        self.wrote_unlocked |= !self.write_locked;
        self.tx.conn().fetch_all(query.sql, query.values).await
    }

    /// Like [`TenantTx::write_operational_returning`], for one statement
    /// that writes several operational tables (PostgreSQL data-modifying
    /// `WITH` clauses): one round trip instead of one per table.
    ///
    /// # Panics
    ///
    /// When the statement writes nothing, or any `INSERT INTO`, `UPDATE` or
    /// `DELETE FROM` in it names a table not in `tables`.
    pub async fn write_operational_all<O: Record>(
        &mut self,
        tables: &[OperationalTable],
        query: Scoped,
    ) -> Result<Vec<O>> {
        query.expect_operational_all(tables);
        self.owns(&query)?;
        self.wrote_unlocked |= !self.write_locked;
        self.tx.conn().fetch_all(query.sql, query.values).await
    }

    /// Commits every change, and its audit entries, at once.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        for change in self.changed {
            self.access.forget(change);
        }
        Ok(())
    }

    /// Marks that this transaction changes what authentication sees (a
    /// user's existence or role, a tenant's status): other processes are told
    /// at commit, and this one drops its cached copy then.
    pub(crate) async fn access_changed(&mut self, change: AccessChange) -> Result<()> {
        if !self.changed.contains(&change) {
            change.notify_in(&mut self.tx).await?;
            self.changed.push(change);
        }
        Ok(())
    }

    pub(crate) fn conn(&mut self) -> Conn<'_> {
        self.tx.conn()
    }

    /// Which database this transaction runs on.
    pub fn backend(&self) -> super::Backend {
        match self.tx {
            #[cfg(feature = "postgres")]
            Tx::Pg(_) => super::Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(_) => super::Backend::Sqlite,
        }
    }

    /// Audits what follows as done in `ctx` (its actor and request), which
    /// must be of this transaction's tenant.
    pub(crate) fn set_context(&mut self, ctx: TenantContext) {
        debug_assert_eq!(ctx.id(), self.tenant, "a context of another tenant");
        if ctx.id() == self.tenant {
            self.ctx = ctx;
        }
    }

    pub(crate) fn set_actor(&mut self, actor: Actor) {
        self.ctx = self.ctx.clone().with_actor(actor);
    }
}

/// One transaction that writes for several tenants in turn: a batch
/// writer's flush (analytics events, say) commits many tenants' rows at once
/// and still scopes each tenant's writes exactly like [`TenantTx`].
///
/// [`BulkTx::tenant`] re-scopes the transaction to a tenant and hands out
/// the [`TenantTx`] for it: `$1` is that tenant, and on PostgreSQL
/// `tenantkit.tenant_id` is set to it, so row-level security checks every
/// row written. It also holds the tenant until commit, so a tenant's
/// deletion waits for the flush and a deleted tenant is [`Error::NotFound`]
/// (these tables need no foreign key to `tenants`). The borrow ends before
/// the next tenant is scoped, so no query can run under the wrong tenant.
/// Dropping it without
/// [`BulkTx::commit`] rolls everything back.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tenantkit::{Db, NewTenant, audit::Actor};
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.migrate().await?;
/// let mut contexts = Vec::new();
/// for sub in ["acme", "globex"] {
///     db.create_tenant(&NewTenant { name: sub.into(), subdomain: sub.into() }, &Actor::System).await?;
///     contexts.push(db.resolve_subdomain(sub).await?.expect("just created"));
/// }
/// let mut bulk = db.begin_bulk().await?;
/// for ctx in &contexts {
///     let tx = bulk.tenant(ctx).await?;
///     assert_eq!(tx.tenant_id(), ctx.id());
/// }
/// bulk.commit().await?;
/// # Ok::<_, tenantkit::Error>(()) }).unwrap();
/// ```
pub struct BulkTx {
    db: Db,
    state: BulkState,
}

enum BulkState {
    Open(Tx),
    Scoped(TenantTx),
    /// A re-scope failed: the transaction is gone (rolled back).
    Broken,
}

impl Db {
    /// Opens a transaction that writes for several tenants in turn (see [`BulkTx`]).
    pub async fn begin_bulk(&self) -> Result<BulkTx> {
        Ok(BulkTx {
            db: self.clone(),
            state: BulkState::Open(Tx::begin(self).await?),
        })
    }
}

impl BulkTx {
    /// Scopes the transaction to `ctx`'s tenant; what ran for earlier
    /// tenants stays in it, uncommitted.
    pub async fn tenant(&mut self, ctx: &TenantContext) -> Result<&mut TenantTx> {
        let (tx, changed) = match std::mem::replace(&mut self.state, BulkState::Broken) {
            BulkState::Open(tx) => (tx, Vec::new()),
            BulkState::Scoped(scoped) => (scoped.tx, scoped.changed),
            BulkState::Broken => {
                return Err(Error::Internal(
                    "a bulk transaction was used after it failed".into(),
                ));
            }
        };
        let mut scoped = TenantTx::scope_held(&self.db, tx, ctx.clone()).await?;
        scoped.changed = changed;
        self.state = BulkState::Scoped(scoped);
        match &mut self.state {
            BulkState::Scoped(scoped) => Ok(scoped),
            _ => unreachable!("just scoped"),
        }
    }

    /// Commits every tenant's writes at once.
    pub async fn commit(self) -> Result<()> {
        match self.state {
            BulkState::Open(tx) => tx.commit().await,
            BulkState::Scoped(scoped) => scoped.commit().await,
            BulkState::Broken => Err(Error::Internal(
                "a bulk transaction was committed after it failed".into(),
            )),
        }
    }
}

/// A table of operational records, written unaudited through
/// [`TenantTx::write_operational`]. Declare one constant per table next to the
/// crate's migrations, and mark the table in its PostgreSQL migration with
/// `COMMENT ON TABLE <t> IS 'tenantkit:operational'` (a crate's tests check
/// the two agree). tenantkit's own audited tables cannot be declared.
///
/// ```
/// use tenantkit::store::OperationalTable;
///
/// pub const QUEUE: OperationalTable = OperationalTable::new("webhook_queue");
/// assert_eq!(QUEUE.name(), "webhook_queue");
/// ```
///
/// ```should_panic
/// use tenantkit::store::OperationalTable;
///
/// // A `const` of it would not even compile.
/// let side_door = OperationalTable::new("audit_logs");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationalTable(&'static str);

/// Tables whose every change must be audited: never operational.
const AUDITED_CORE: [&str; 5] = ["tenants", "users", "api_keys", "audit_logs", "audit_heads"];

impl OperationalTable {
    /// Declares `name` an operational table.
    ///
    /// # Panics
    ///
    /// For one of tenantkit's audited tables, or a name that is not a plain
    /// lower-case identifier.
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "an operational table needs a name");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
                "operational table names are lower-case identifiers"
            );
            i += 1;
        }
        let mut t = 0;
        while t < AUDITED_CORE.len() {
            assert!(
                !const_eq(name, AUDITED_CORE[t]),
                "tenantkit's audited tables cannot be written unaudited"
            );
            t += 1;
        }
        Self(name)
    }

    /// The table's name.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl Scoped {
    /// Panics unless the statement is an `INSERT INTO`, `UPDATE` or
    /// `DELETE FROM` of `table`.
    fn expect_operational(&self, table: OperationalTable) {
        let words: Vec<&str> = self.sql.split_whitespace().take(3).collect();
        let target = match words.as_slice() {
            [verb, into, t, ..]
                if verb.eq_ignore_ascii_case("INSERT") && into.eq_ignore_ascii_case("INTO") =>
            {
                *t
            }
            [verb, from, t, ..]
                if verb.eq_ignore_ascii_case("DELETE") && from.eq_ignore_ascii_case("FROM") =>
            {
                *t
            }
            [verb, t, ..] if verb.eq_ignore_ascii_case("UPDATE") => *t,
            _ => "",
        };
        let target = target.split('(').next().unwrap_or_default();
        assert!(
            target == table.name(),
            "an operational write must be an INSERT INTO, UPDATE or DELETE FROM `{}`: {}",
            table.name(),
            self.sql
        );
    }

    /// Panics unless every table the statement writes is one of `tables`
    /// (and it writes at least one).
    fn expect_operational_all(&self, tables: &[OperationalTable]) {
        let words: Vec<&str> = self
            .sql
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
            .filter(|w| !w.is_empty())
            .collect();
        let mut writes = 0;
        for (i, word) in words.iter().enumerate() {
            let next = |k: usize| words.get(i + k).copied().unwrap_or_default();
            let target = if word.eq_ignore_ascii_case("INSERT")
                && next(1).eq_ignore_ascii_case("INTO")
                || word.eq_ignore_ascii_case("DELETE") && next(1).eq_ignore_ascii_case("FROM")
            {
                next(2)
            } else if word.eq_ignore_ascii_case("UPDATE")
                && !(i > 0 && words[i - 1].eq_ignore_ascii_case("DO"))
            {
                next(1)
            } else {
                continue;
            };
            assert!(
                tables.iter().any(|t| t.name() == target),
                "an operational write may only write {:?}, not `{target}`: {}",
                tables.iter().map(|t| t.name()).collect::<Vec<_>>(),
                self.sql
            );
            writes += 1;
        }
        assert!(writes > 0, "an operational write must write: {}", self.sql);
    }

    /// Panics unless the statement starts with `verb`: reads cannot write, and
    /// writes go only through the audited methods.
    fn expect_verb(&self, verb: &str) {
        let first = self.sql.split_whitespace().next().unwrap_or_default();
        assert!(
            first.eq_ignore_ascii_case(verb),
            "expected a {verb} statement here (writes must go through TenantTx::insert/update/delete): {}",
            self.sql
        );
    }
}

/// The numbers of the placeholders (`$1`, `$12`, ...) in `sql`, leaving out
/// whatever only looks like one: inside a string literal, a quoted
/// identifier, a dollar-quoted string or a comment.
pub(crate) fn placeholders(sql: &str) -> impl Iterator<Item = u32> + '_ {
    let bytes = sql.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() {
            let rest = &sql[i..];
            match bytes[i] {
                quote @ (b'\'' | b'"') => {
                    // Up to the closing quote; a doubled one is an escape.
                    i += 1;
                    while i < bytes.len() {
                        if bytes[i] == quote {
                            if bytes.get(i + 1) == Some(&quote) {
                                i += 2;
                                continue;
                            }
                            break;
                        }
                        i += 1;
                    }
                    i += 1;
                }
                b'-' if rest.starts_with("--") => {
                    i += rest.find('\n').unwrap_or(rest.len());
                }
                b'/' if rest.starts_with("/*") => {
                    i += rest[2..].find("*/").map_or(rest.len(), |end| end + 4);
                }
                b'$' => {
                    let digits = rest[1..].bytes().take_while(u8::is_ascii_digit).count();
                    if digits > 0 {
                        i += 1 + digits;
                        if let Ok(n) = rest[1..=digits].parse() {
                            return Some(n);
                        }
                        continue;
                    }
                    // `$tag$ ... $tag$` (or `$$ ... $$`): a string.
                    let tag_len = rest[1..]
                        .bytes()
                        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                        .count();
                    if rest.as_bytes().get(1 + tag_len) == Some(&b'$') {
                        let tag = &rest[..tag_len + 2];
                        i += tag.len();
                        i += sql[i..]
                            .find(tag)
                            .map_or(sql.len() - i, |end| end + tag.len());
                    } else {
                        i += 1;
                    }
                }
                _ => i += 1,
            }
        }
        None
    })
}

/// What an audit entry records about a change.
pub(crate) struct Change {
    pub(crate) action: String,
    pub(crate) resource_type: String,
    pub(crate) resource_id: Option<String>,
    pub(crate) before: Option<serde_json::Value>,
    pub(crate) after: Option<serde_json::Value>,
}

impl Change {
    fn new<O: Audited>(action: &str, row: &O) -> Self {
        Self {
            action: action.to_owned(),
            resource_type: O::RESOURCE_TYPE.to_owned(),
            resource_id: Some(row.resource_id()),
            before: None,
            after: None,
        }
    }

    fn before<O: Audited>(mut self, row: &O) -> Result<Self> {
        self.before = Some(state(row)?);
        Ok(self)
    }

    fn after<O: Audited>(mut self, row: &O) -> Result<Self> {
        self.after = Some(state(row)?);
        Ok(self)
    }
}

fn state<O: Audited>(row: &O) -> Result<serde_json::Value> {
    serde_json::to_value(row).map_err(|e| Error::Internal(format!("serializing audit state: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENTS: OperationalTable = OperationalTable::new("events");
    const COUNTS: OperationalTable = OperationalTable::new("event_counts");

    fn scoped(sql: &'static str) -> Scoped {
        Scoped {
            sql,
            values: Vec::new(),
            built_by: 0,
        }
    }

    fn numbers(sql: &str) -> Vec<u32> {
        placeholders(sql).collect()
    }

    #[test]
    fn placeholders_are_read_as_sql_reads_them() {
        assert_eq!(
            numbers("SELECT * FROM t WHERE tenant_id = $1 AND a = $2"),
            [1, 2]
        );
        assert_eq!(numbers("SELECT $10, $12"), [10, 12], "`$10` is not `$1`");
        assert_eq!(numbers("SELECT 1 -- tenant_id = $1\n, $2"), [2]);
        assert_eq!(numbers("SELECT /* $1 */ $3"), [3]);
        assert_eq!(numbers("SELECT '$1', 'it''s $1', $4"), [4]);
        assert_eq!(numbers(r#"SELECT "$1" FROM t WHERE x = $5"#), [5]);
        assert_eq!(numbers("SELECT $$ $1 $$, $tag$ $1 $tag$, $6"), [6]);
        assert_eq!(numbers("SELECT $1::uuid"), [1]);
        assert!(numbers("SELECT 'unterminated $1").is_empty());
    }

    #[test]
    fn a_statement_writing_only_its_operational_tables_passes() {
        scoped(
            "WITH a AS (INSERT INTO events (tenant_id) SELECT $1), \
             b AS (INSERT INTO event_counts(tenant_id) SELECT $1 ON CONFLICT (tenant_id) DO UPDATE SET count = 1) \
             SELECT 1",
        )
        .expect_operational_all(&[EVENTS, COUNTS]);
    }

    #[test]
    #[should_panic(expected = "not `audit_logs`")]
    fn a_write_to_another_table_is_refused() {
        scoped("WITH a AS (INSERT INTO events SELECT $1), b AS (DELETE FROM audit_logs WHERE tenant_id = $1) SELECT 1")
            .expect_operational_all(&[EVENTS]);
    }

    #[test]
    #[should_panic(expected = "not `users`")]
    fn an_update_is_checked_too() {
        scoped("WITH a AS (UPDATE users SET role = 'owner' WHERE tenant_id = $1) INSERT INTO events SELECT $1")
            .expect_operational_all(&[EVENTS]);
    }

    #[test]
    #[should_panic(expected = "must write")]
    fn a_read_is_not_an_operational_write() {
        scoped("SELECT * FROM events WHERE tenant_id = $1").expect_operational_all(&[EVENTS]);
    }
}
