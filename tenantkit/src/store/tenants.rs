//! Platform operations on the `tenants` table (not tenant-owned, so not scoped).

use chrono::Utc;

use super::{
    Db, TenantTx,
    scope::{Pooled, Tx},
    sql::Value,
};
use crate::{
    Error, NewTenant, NewUser, PageRequest, Result, Tenant, TenantContext, TenantId, TenantStatus,
    User, validate,
};

impl Db {
    /// Creates a tenant; [`Error::Conflict`] when the subdomain is taken.
    pub async fn create_tenant(&self, new: &NewTenant) -> Result<Tenant> {
        let mut tx = Tx::begin(self).await?;
        let tenant = insert_tenant(&mut tx, new).await?;
        tx.commit().await?;
        Ok(tenant)
    }

    /// Creates a tenant and its first user in one transaction: both or neither.
    pub async fn create_tenant_with_owner(
        &self,
        new: &NewTenant,
        owner: &NewUser,
    ) -> Result<(Tenant, User)> {
        let mut tx = Tx::begin(self).await?;
        let tenant = insert_tenant(&mut tx, new).await?;
        let mut scoped = TenantTx::scope(tx, tenant.id).await?;
        let user = scoped.create_user(owner).await?;
        scoped.commit().await?;
        Ok((tenant, user))
    }

    /// Tenants in id (creation) order.
    pub async fn list_tenants(&self, page: PageRequest<TenantId>) -> Result<Vec<Tenant>> {
        let limit = validate::limit(page.limit)?;
        Pooled::acquire(self)
            .await?
            .conn()
            .fetch_all(
                "SELECT id, name, subdomain, status, created_at FROM tenants \
                 WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
                vec![
                    Value::OptUuid(page.after.map(|id| id.as_uuid())),
                    limit.into(),
                ],
            )
            .await
    }

    /// Sets a tenant's status (suspend or reactivate it).
    pub async fn set_tenant_status(&self, id: TenantId, status: TenantStatus) -> Result<Tenant> {
        let mut tx = Tx::begin(self).await?;
        let tenant = tx
            .conn()
            .fetch_optional(
                "UPDATE tenants SET status = $2 WHERE id = $1 RETURNING id, name, subdomain, status, created_at",
                vec![id.into(), status.into()],
            )
            .await?
            .ok_or(Error::NotFound("tenant"))?;
        tx.commit().await?;
        Ok(tenant)
    }

    /// Resolves a tenant by id.
    pub async fn resolve_id(&self, id: TenantId) -> Result<Option<TenantContext>> {
        self.find_tenant(
            "SELECT id, name, subdomain, status, created_at FROM tenants WHERE id = $1",
            id.into(),
        )
        .await
    }

    /// Resolves a tenant by subdomain (case-insensitive).
    pub async fn resolve_subdomain(&self, subdomain: &str) -> Result<Option<TenantContext>> {
        self.find_tenant(
            "SELECT id, name, subdomain, status, created_at FROM tenants WHERE subdomain = $1",
            subdomain.to_ascii_lowercase().into(),
        )
        .await
    }

    async fn find_tenant(&self, sql: &'static str, key: Value) -> Result<Option<TenantContext>> {
        let tenant: Option<Tenant> = Pooled::acquire(self)
            .await?
            .conn()
            .fetch_optional(sql, vec![key])
            .await?;
        Ok(tenant.map(TenantContext::new))
    }
}

async fn insert_tenant(tx: &mut Tx, new: &NewTenant) -> Result<Tenant> {
    let name = validate::name("name", &new.name)?;
    let subdomain = validate::subdomain(&new.subdomain)?;
    tx            .conn()
            .fetch_one(
                "INSERT INTO tenants (id, name, subdomain, status, created_at) VALUES ($1, $2, $3, $4, $5) \
                 RETURNING id, name, subdomain, status, created_at",
                vec![
                    TenantId::new().into(),
                    name.into(),
                    subdomain.into(),
                    TenantStatus::Active.into(),
                    Utc::now().into(),
                ],
            )
            .await
            .map_err(|e| e.conflict_if_unique("a tenant with this subdomain already exists"))
}
