//! The access cache: tenants, users and API keys as authentication sees
//! them.
//!
//! Resolving the tenant and checking that a token's user still exists (and
//! with which role), or reading the API key presented, would cost database
//! round trips on every request. They are kept here for a short
//! time-to-live instead (an API key's row: its secret is checked against
//! the stored hash on every request), so that:
//!
//! - **a change is seen within the TTL in every process**, even one that never
//!   hears about it (the TTL is the bound; [`DEFAULT_ACCESS_TTL`] is 2 s);
//! - the process that made the change drops its entries at commit;
//! - on PostgreSQL every other process drops them at once too: changes
//!   `pg_notify` on [`ACCESS_CHANNEL`] inside their transaction (delivered only
//!   if it commits), and [`Db::watch_access_changes`] listens. A lost
//!   listener connection clears the whole cache.

use std::{future::Future, sync::Arc, time::Duration};

use moka::sync::Cache;

use super::Db;
use crate::{
    ApiKey, Result, Role, Tenant, TenantContext, TenantId, TenantSso, UserId, context::TenantRef,
};

/// How long a tenant or user is trusted from the cache by default.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(2);

/// The PostgreSQL notification channel access changes are announced on.
pub const ACCESS_CHANNEL: &str = "tenantkit_access";

/// At most this many tenants and this many users are cached.
const CAPACITY: u64 = 100_000;

/// How a tenant token names its user (see `docs/configuration.md`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserRef {
    /// By user id (the token's `sub`).
    Id(UserId),
    /// By e-mail address (a token from an external identity provider).
    Email(String),
}

/// A user as authentication needs it: who, and their current role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserAccess {
    /// The user's id.
    pub id: UserId,
    /// The user's role now.
    pub role: Role,
}

/// What changed, as announced on [`ACCESS_CHANNEL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::store) enum AccessChange {
    /// A tenant's status (or anything else about it).
    Tenant(TenantId),
    /// Some user of the tenant was created, changed or deleted, or one of
    /// its API keys revoked.
    Users(TenantId),
}

// Announced and heard on PostgreSQL only (and tested everywhere).
#[cfg(any(feature = "postgres", test))]
impl AccessChange {
    fn payload(self) -> String {
        match self {
            AccessChange::Tenant(id) => format!("tenant:{id}"),
            AccessChange::Users(id) => format!("users:{id}"),
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        let (kind, id) = payload.split_once(':')?;
        let id = id.parse().ok()?;
        match kind {
            "tenant" => Some(AccessChange::Tenant(id)),
            "users" => Some(AccessChange::Users(id)),
            _ => None,
        }
    }
}

impl AccessChange {
    /// Announces the change to other processes when the transaction commits.
    pub(in crate::store) async fn notify_in(self, tx: &mut super::driver::Tx) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let super::driver::Tx::Pg(_) = tx {
            tx.conn()
                .execute(
                    super::sql::NOTIFY,
                    vec![ACCESS_CHANNEL.into(), self.payload().into()],
                )
                .await?;
        }
        let _ = tx;
        Ok(())
    }
}

/// Cached tenants (by id and by subdomain) and users; clones share it.
#[derive(Clone, Debug)]
pub(in crate::store) struct AccessCache {
    inner: Option<Arc<Caches>>,
}

#[derive(Debug)]
struct Caches {
    tenants: Cache<TenantRef, Arc<Tenant>>,
    users: Cache<(TenantId, UserRef), Option<UserAccess>>,
    sso: Cache<TenantId, Option<Arc<TenantSso>>>,
    /// Which tenant an external id (provider, id) belongs to, if any.
    external: Cache<(String, String), Option<TenantId>>,
    /// API key rows by (tenant, prefix); only keys that exist.
    api_keys: Cache<(TenantId, String), ApiKey>,
}

impl AccessCache {
    /// A cache keeping entries for `ttl`; zero disables it.
    pub(in crate::store) fn new(ttl: Duration) -> Self {
        if ttl.is_zero() {
            return Self { inner: None };
        }
        Self {
            inner: Some(Arc::new(Caches {
                tenants: Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(ttl)
                    .support_invalidation_closures()
                    .build(),
                users: Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(ttl)
                    .support_invalidation_closures()
                    .build(),
                sso: Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(ttl)
                    .build(),
                external: Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(ttl)
                    .support_invalidation_closures()
                    .build(),
                api_keys: Cache::builder()
                    .max_capacity(CAPACITY)
                    .time_to_live(ttl)
                    .support_invalidation_closures()
                    .build(),
            })),
        }
    }

    async fn tenant<F>(&self, key: &TenantRef, load: F) -> Result<Option<TenantContext>>
    where
        F: Future<Output = Result<Option<TenantContext>>>,
    {
        let Some(c) = &self.inner else {
            return load.await;
        };
        if let Some(t) = c.tenants.get(key) {
            return Ok(Some(TenantContext::shared(t)));
        }
        let found = load.await?;
        // Only tenants that exist are kept: a tenant created a moment ago in
        // another process must not stay unknown here.
        if let Some(ctx) = &found {
            c.tenants.insert(key.clone(), ctx.shared_tenant());
        }
        Ok(found)
    }

    async fn user<F>(&self, tenant: TenantId, user: &UserRef, load: F) -> Result<Option<UserAccess>>
    where
        F: Future<Output = Result<Option<UserAccess>>>,
    {
        let Some(c) = &self.inner else {
            return load.await;
        };
        let key = (tenant, user.clone());
        if let Some(found) = c.users.get(&key) {
            return Ok(found);
        }
        let found = load.await?;
        c.users.insert(key, found);
        Ok(found)
    }

    async fn sso<F>(&self, tenant: TenantId, load: F) -> Result<Option<Arc<TenantSso>>>
    where
        F: Future<Output = Result<Option<TenantSso>>>,
    {
        let Some(c) = &self.inner else {
            return Ok(load.await?.map(Arc::new));
        };
        if let Some(found) = c.sso.get(&tenant) {
            return Ok(found);
        }
        let found = load.await?.map(Arc::new);
        c.sso.insert(tenant, found.clone());
        Ok(found)
    }

    async fn external<F>(&self, key: (String, String), load: F) -> Result<Option<TenantId>>
    where
        F: Future<Output = Result<Option<TenantId>>>,
    {
        let Some(c) = &self.inner else {
            return load.await;
        };
        if let Some(found) = c.external.get(&key) {
            return Ok(found);
        }
        let found = load.await?;
        c.external.insert(key, found);
        Ok(found)
    }

    async fn api_key<F>(&self, tenant: TenantId, prefix: &str, load: F) -> Result<Option<ApiKey>>
    where
        F: Future<Output = Result<Option<ApiKey>>>,
    {
        let Some(c) = &self.inner else {
            return load.await;
        };
        let key = (tenant, prefix.to_owned());
        if let Some(found) = c.api_keys.get(&key) {
            return Ok(Some(found));
        }
        // Only keys that exist are kept: one created a moment ago in another
        // process must not stay unknown here.
        let found = load.await?;
        if let Some(row) = &found {
            c.api_keys.insert(key, row.clone());
        }
        Ok(found)
    }

    /// Drops what is cached of one external id (linked in this process).
    pub(in crate::store) fn forget_external(&self, provider: &str, external_id: &str) {
        if let Some(c) = &self.inner {
            c.external
                .invalidate(&(provider.to_owned(), external_id.to_owned()));
        }
    }

    pub(in crate::store) fn forget(&self, change: AccessChange) {
        let Some(c) = &self.inner else { return };
        let result = match change {
            AccessChange::Tenant(id) => {
                c.sso.invalidate(&id);
                c.tenants
                    .invalidate_entries_if(move |_, t| t.id == id)
                    .and_then(|_| c.external.invalidate_entries_if(move |_, v| *v == Some(id)))
            }
            AccessChange::Users(id) => c
                .users
                .invalidate_entries_if(move |k, _| k.0 == id)
                .and_then(|_| c.api_keys.invalidate_entries_if(move |k, _| k.0 == id)),
        };
        if result.is_err() {
            // Closures are enabled at build time; should this ever fail, forget everything.
            self.forget_all();
        }
    }

    pub(in crate::store) fn forget_all(&self) {
        if let Some(c) = &self.inner {
            c.tenants.invalidate_all();
            c.users.invalidate_all();
            c.sso.invalidate_all();
            c.external.invalidate_all();
            c.api_keys.invalidate_all();
        }
    }
}

impl Db {
    /// The tenant `tenant` names, from the access cache when fresh (what
    /// [`crate::resolve::TenantLayer`] uses through [`crate::resolve::TenantResolver`]).
    pub async fn resolve_cached(&self, tenant: &TenantRef) -> Result<Option<TenantContext>> {
        self.access
            .tenant(tenant, async {
                match tenant {
                    TenantRef::Id(id) => self.resolve_id(*id).await,
                    TenantRef::Subdomain(s) => self.resolve_subdomain(s).await,
                }
            })
            .await
    }

    /// The user `user` names in `tenant` and their current role, from the
    /// access cache when fresh; `None` when no such user exists.
    pub async fn user_access(
        &self,
        tenant: &TenantContext,
        user: &UserRef,
    ) -> Result<Option<UserAccess>> {
        self.access
            .user(tenant.id(), user, async {
                let mut tx = self.begin_snapshot(tenant).await?;
                let found = tx.find_user_access(user).await?;
                tx.commit().await?;
                Ok(found)
            })
            .await
    }

    /// The stored key `presented` names in `tenant` (by its prefix), from the
    /// access cache when fresh; revoked or not, its secret not yet checked:
    /// see [`crate::api_key::matches`]. A revocation committed here drops it
    /// at once; on PostgreSQL one committed elsewhere too.
    pub async fn api_key_row(
        &self,
        tenant: &TenantContext,
        presented: &str,
    ) -> Result<Option<ApiKey>> {
        let Some(prefix) = crate::api_key::prefix_of(presented) else {
            return Ok(None);
        };
        self.access
            .api_key(tenant.id(), prefix, async {
                let mut tx = self.begin_snapshot(tenant).await?;
                let q = tx.query(super::sql::API_KEY_BY_PREFIX).bind(prefix);
                let found = tx.fetch_optional::<ApiKey>(q).await?;
                tx.commit().await?;
                Ok(found)
            })
            .await
    }

    /// Drops the cached row of the key `presented` (its use was just
    /// recorded, say).
    pub fn forget_api_key(&self, tenant: TenantId, presented: &str) {
        if let (Some(c), Some(prefix)) = (&self.access.inner, crate::api_key::prefix_of(presented))
        {
            c.api_keys.invalidate(&(tenant, prefix.to_owned()));
        }
    }

    /// The tenant's own identity provider (single sign-on), from the access
    /// cache when fresh; `None` when it registered none.
    pub async fn tenant_sso(&self, tenant: &TenantContext) -> Result<Option<Arc<TenantSso>>> {
        self.access
            .sso(tenant.id(), async {
                let mut tx = self.begin_snapshot(tenant).await?;
                let found = tx.sso().await?;
                tx.commit().await?;
                Ok(found)
            })
            .await
    }

    /// The tenant `external_id` at `provider` is linked to, from the access
    /// cache when fresh (an id not linked is remembered as such for the TTL
    /// too, so a flood of made-up ids costs one read per id and TTL).
    pub async fn external_id_owner(
        &self,
        provider: &str,
        external_id: &str,
    ) -> Result<Option<TenantId>> {
        let key = (provider.to_owned(), external_id.to_owned());
        self.access
            .external(key, async {
                Ok(self
                    .resolve_external_id(provider, external_id)
                    .await?
                    .map(|ctx| ctx.id()))
            })
            .await
    }

    /// Starts listening for other processes' access changes on
    /// [`ACCESS_CHANNEL`]; once this returns, every change committed from
    /// then on is heard. Run the result with [`AccessListener::run`] (or use
    /// [`Db::watch_access_changes`]). On SQLite (one process) there is
    /// nothing to hear, and `run` returns at once.
    pub async fn listen_for_access_changes(&self) -> Result<AccessListener> {
        Ok(AccessListener {
            db: self.clone(),
            #[cfg(feature = "postgres")]
            pg: self.pool.listen(ACCESS_CHANNEL).await?,
        })
    }

    /// Keeps this process's access cache in step with changes made by other
    /// processes: [`Db::listen_for_access_changes`], then
    /// [`AccessListener::run`]. Spawn it once per process; without it, other
    /// processes' changes are still seen within the TTL.
    pub async fn watch_access_changes(&self) -> Result<()> {
        self.listen_for_access_changes().await?.run().await
    }
}

/// Listens for access changes of other processes and drops what changed from
/// this process's cache (see [`Db::listen_for_access_changes`]).
pub struct AccessListener {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    db: Db,
    #[cfg(feature = "postgres")]
    pg: Option<sqlx::postgres::PgListener>,
}

impl std::fmt::Debug for AccessListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessListener").finish_non_exhaustive()
    }
}

impl AccessListener {
    /// Runs until the pool closes. A lost connection is re-made, and the
    /// whole cache is dropped, since announcements may have been missed.
    pub async fn run(self) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let (Some(mut listener), super::Pool::Pg(pool)) = (self.pg, &self.db.pool) {
            let access = &self.db.access;
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => match AccessChange::parse(n.payload()) {
                        Some(change) => access.forget(change),
                        None => access.forget_all(),
                    },
                    // The connection was lost (and is re-made on the next
                    // call): whatever was announced meanwhile is unknown.
                    Ok(None) => access.forget_all(),
                    Err(e) if pool.is_closed() => {
                        tracing::debug!(error = %e, "access-change listener stopped");
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "access-change listener failed; retrying");
                        access.forget_all();
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::AccessChange;
    use crate::TenantId;

    #[test]
    fn change_payloads_round_trip() {
        let id = TenantId::new();
        for change in [AccessChange::Tenant(id), AccessChange::Users(id)] {
            assert_eq!(AccessChange::parse(&change.payload()), Some(change));
        }
        assert_eq!(AccessChange::parse("users:nope"), None);
        assert_eq!(AccessChange::parse("other:{id}"), None);
    }
}
