//! The one entry point of platform (cross-tenant) operations.

use super::Db;

/// Platform operations: what the platform's operator does across tenants,
/// never what a tenant does. Create, list, suspend and reactivate tenants,
/// link their ids at other providers, and delete them. Get one with
/// [`Db::platform`].
///
/// Tenants are not tenant-owned data, so nothing here is scoped by a
/// [`TenantTx`](super::TenantTx); on PostgreSQL every change goes through a
/// narrow `SECURITY DEFINER` function, the runtime role's only way to
/// change the `tenants` table. Each change is audited in the tenant's own
/// trail. Resolving a tenant for a request ([`Db::resolve_id`] and friends)
/// is not a platform operation and stays on [`Db`].
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tenantkit::{Db, NewTenant, PageRequest, TenantStatus, audit::Actor};
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.migrate().await?;
/// let platform = db.platform();
/// let acme = platform
///     .create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System)
///     .await?;
/// platform.set_tenant_status(acme.id, TenantStatus::Suspended, &Actor::System).await?;
/// let tenants = platform.list_tenants(PageRequest::first(50)).await?;
/// assert_eq!(tenants[0].status, TenantStatus::Suspended);
/// # Ok::<_, tenantkit::Error>(()) }).unwrap();
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Platform<'a> {
    pub(in crate::store) db: &'a Db,
}

impl Db {
    /// Platform (cross-tenant) operations on this database: see [`Platform`].
    pub fn platform(&self) -> Platform<'_> {
        Platform { db: self }
    }
}
