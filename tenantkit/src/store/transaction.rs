//! [`TenantTx`]: reads, audited writes (the row and its audit entry in one
//! transaction), operational writes, and commit. How it is bound to its
//! tenant is in `scope`.

use super::{
    access::AccessChange,
    checks,
    driver::{Conn, Record},
    operational::OperationalTable,
    scope::{Scoped, TenantTx},
};
use crate::{
    Error, Result, TenantContext,
    audit::{Actor, AuditEntry, Audited},
};

impl TenantTx {
    /// All rows of a `SELECT`.
    pub async fn fetch_all<O: Record>(&mut self, query: Scoped) -> Result<Vec<O>> {
        self.owns(&query)?;
        checks::expect_verb(query.sql, "SELECT");
        self.tx.conn().fetch_all(query.sql, query.values).await
    }

    /// The first row of a `SELECT`, if any.
    pub async fn fetch_optional<O: Record>(&mut self, query: Scoped) -> Result<Option<O>> {
        self.owns(&query)?;
        checks::expect_verb(query.sql, "SELECT");
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
        self.insert_as("create", query).await
    }

    /// Like [`TenantTx::insert`], audited under a named action such as
    /// `user.provisioned`.
    pub async fn insert_as<O: Audited + Record>(
        &mut self,
        action: &str,
        query: Scoped,
    ) -> Result<O> {
        self.owns(&query)?;
        checks::expect_verb(query.sql, "INSERT");
        self.lock_tenant_writes().await?;
        let row: O = self.tx.conn().fetch_one(query.sql, query.values).await?;
        self.append(Change::new(action, &row).after(&row)?).await?;
        Ok(row)
    }

    /// Runs an `INSERT … ON CONFLICT DO NOTHING RETURNING <row>`: audits and
    /// returns the row when it was inserted, `None` when it already existed
    /// (idempotent receipt of an event, say).
    pub async fn insert_if_absent<O: Audited + Record>(
        &mut self,
        query: Scoped,
    ) -> Result<Option<O>> {
        self.owns(&query)?;
        checks::expect_verb(query.sql, "INSERT");
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
        self.owns(&query)?;
        checks::expect_verb(query.sql, "UPDATE");
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
        self.delete_as("delete", before, query).await
    }

    /// Like [`TenantTx::delete`], audited under a named action such as
    /// `sso.removed`.
    pub async fn delete_as<O: Audited + Record>(
        &mut self,
        action: &str,
        before: &O,
        query: Scoped,
    ) -> Result<()> {
        self.owns(&query)?;
        checks::expect_verb(query.sql, "DELETE");
        self.lock_tenant_writes().await?;
        if self.tx.conn().execute(query.sql, query.values).await? == 0 {
            return Err(Error::NotFound(O::RESOURCE_TYPE));
        }
        self.append(Change::new(action, before).before(before)?)
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
        self.owns(&query)?;
        checks::expect_operational(query.sql, table);
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
        self.owns(&query)?;
        checks::expect_operational(query.sql, table);
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
        self.owns(&query)?;
        checks::expect_operational_all(query.sql, tables);
        self.wrote_unlocked |= !self.write_locked;
        self.tx.conn().fetch_all(query.sql, query.values).await
    }

    /// Commits every change, and its audit entries, at once.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        for change in self.changed {
            self.access.forget(change);
        }
        for channel in self.announce {
            self.db.announcer.committed(&self.db, channel);
        }
        for then in self.after_commit {
            then();
        }
        Ok(())
    }

    /// Runs `then` once this transaction has committed, and never if it
    /// does not (rolled back, dropped, or its commit failed): `then` is
    /// dropped unrun instead, so a guard it owns can give back what was
    /// reserved for it. It runs on the committing task: keep it short and
    /// non-blocking (hand work to a channel).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # use tenantkit::{Db, NewTenant, audit::Actor};
    /// # let db = Db::connect("sqlite::memory:").await?;
    /// # db.migrate().await?;
    /// # db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
    /// # let ctx = db.resolve_subdomain("acme").await?.expect("just created");
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    ///
    /// let done = Arc::new(AtomicBool::new(false));
    /// let mut tx = db.begin(&ctx).await?;
    /// let flag = done.clone();
    /// tx.after_commit(move || flag.store(true, Ordering::SeqCst));
    /// assert!(!done.load(Ordering::SeqCst));
    /// tx.commit().await?;
    /// assert!(done.load(Ordering::SeqCst));
    /// # Ok::<_, tenantkit::Error>(()) }).unwrap();
    /// ```
    pub fn after_commit(&mut self, then: impl FnOnce() + Send + Sync + 'static) {
        self.after_commit.push(Box::new(then));
    }

    /// Marks that this transaction changes what authentication sees (a
    /// user's existence or role, a tenant's status): other processes are told
    /// at commit, and this one drops its cached copy then.
    pub(in crate::store) async fn access_changed(&mut self, change: AccessChange) -> Result<()> {
        if !self.changed.contains(&change) {
            change.notify_in(&mut self.tx).await?;
            self.changed.push(change);
        }
        Ok(())
    }

    pub(in crate::store) fn conn(&mut self) -> Conn<'_> {
        self.tx.conn()
    }

    /// Which database this transaction runs on.
    pub fn backend(&self) -> super::Backend {
        self.tx.backend()
    }

    /// Audits what follows as done in `ctx` (its actor and request), which
    /// must be of this transaction's tenant.
    pub(in crate::store) fn set_context(&mut self, ctx: TenantContext) {
        debug_assert_eq!(ctx.id(), self.tenant, "a context of another tenant");
        if ctx.id() == self.tenant {
            self.ctx = ctx;
        }
    }

    /// Marks that this transaction changes the tenant's users or API keys as
    /// authentication sees them (one created or deleted, an e-mail or a role
    /// changed, a key revoked): when it commits, this process drops its
    /// cached users and keys of the tenant, and on PostgreSQL every other
    /// process is told to.
    pub async fn users_changed(&mut self) -> Result<()> {
        let tenant = self.tenant_id();
        self.access_changed(AccessChange::Users(tenant)).await
    }

    /// Marks that this transaction changes how authentication sees the
    /// tenant itself (its single sign-on, say): when it commits, this
    /// process drops the tenant's cached entries, and on PostgreSQL every
    /// other process is told to.
    pub async fn tenant_changed(&mut self) -> Result<()> {
        let tenant = self.tenant_id();
        self.access_changed(AccessChange::Tenant(tenant)).await
    }

    /// Audits what follows as done by `actor` (an API key recording its own
    /// use, for one), instead of the actor of the context the transaction was
    /// opened with.
    pub fn set_actor(&mut self, actor: Actor) {
        self.ctx = self.ctx.clone().with_actor(actor);
    }
}

/// What an audit entry records about a change.
pub(in crate::store) struct Change {
    pub(in crate::store) action: String,
    pub(in crate::store) resource_type: String,
    pub(in crate::store) resource_id: Option<String>,
    pub(in crate::store) before: Option<serde_json::Value>,
    pub(in crate::store) after: Option<serde_json::Value>,
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
