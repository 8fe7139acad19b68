//! [`BulkTx`]: one transaction that writes for several tenants in turn, each
//! tenant's writes scoped exactly as a [`TenantTx`]'s.

use super::{Db, TenantTx, driver::Tx};
use crate::{Error, Result, TenantContext};

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
///     db.platform().create_tenant(&NewTenant { name: sub.into(), subdomain: sub.into() }, &Actor::System).await?;
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
            state: BulkState::Open(Tx::begin(&self.pool).await?),
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
