//! Platform operations on the `tenants` table (not tenant-owned, so not
//! scoped), and resolving a tenant by id, subdomain or external id.

use chrono::Utc;

use super::{
    Backend, Db, Platform, Sql, TenantTx,
    access::AccessChange,
    driver::{Pooled, Tx, Value},
    sql,
    transaction::Change,
};
use crate::{
    Error, NewTenant, NewUser, PageRequest, Result, Tenant, TenantContext, TenantId, TenantStatus,
    User, audit::Actor, validate,
};

/// A tenant's row after a status change, with its status before.
#[derive(sqlx::FromRow)]
struct StatusChange {
    #[sqlx(try_from = "String")]
    before_status: TenantStatus,
    #[sqlx(flatten)]
    tenant: Tenant,
}

fn tenant_state(tenant: &Tenant) -> Result<serde_json::Value> {
    serde_json::to_value(tenant).map_err(|e| Error::Internal(e.to_string()))
}

impl<'a> Platform<'a> {
    /// Creates a tenant; [`Error::Conflict`] when the subdomain is taken.
    /// Its audit trail starts with the creation, by `by`.
    pub async fn create_tenant(&self, new: &NewTenant, by: &Actor) -> Result<Tenant> {
        let (tenant, scoped) = self.insert_tenant(new, by).await?;
        scoped.commit().await?;
        Ok(tenant)
    }

    /// Creates a tenant and its first user in one transaction: both or neither.
    pub async fn create_tenant_with_owner(
        &self,
        new: &NewTenant,
        owner: &NewUser,
        by: &Actor,
    ) -> Result<(Tenant, User)> {
        let (tenant, mut scoped) = self.insert_tenant(new, by).await?;
        let user = scoped.create_user(owner).await?;
        scoped.commit().await?;
        Ok((tenant, user))
    }

    /// Inserts the tenant and returns a transaction scoped to it, with the
    /// creation audited as its first entry.
    async fn insert_tenant(&self, new: &NewTenant, by: &Actor) -> Result<(Tenant, TenantTx)> {
        let mut tx = Tx::begin(&self.db.pool).await?;
        let tenant = insert_tenant(&mut tx, new).await?;
        let ctx = TenantContext::new(tenant.clone()).with_actor(by.clone());
        let mut scoped = TenantTx::scope(self.db, tx, ctx).await?;
        scoped
            .record_event(
                "create",
                "tenant",
                Some(tenant.id.to_string()),
                tenant_state(&tenant)?,
            )
            .await?;
        Ok((tenant, scoped))
    }

    /// Tenants in id (creation) order.
    pub async fn list_tenants(&self, page: PageRequest<TenantId>) -> Result<Vec<Tenant>> {
        let limit = validate::limit(page.limit)?;
        Pooled::acquire(&self.db.pool)
            .await?
            .conn()
            .fetch_all(
                sql::LIST_TENANTS,
                vec![
                    Value::OptUuid(page.after.map(|id| id.as_uuid())),
                    limit.into(),
                ],
            )
            .await
    }

    /// Every tenant, resolved, a page at a time: for jobs that work tenant by
    /// tenant (retention purges, say). Tenants deleted meanwhile are skipped.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let db = tenantkit::Db::connect("sqlite::memory:").await?;
    /// # db.migrate().await?;
    /// let mut pages = db.platform().tenant_pages(500);
    /// while let Some(page) = pages.next().await? {
    ///     for ctx in page {
    ///         let tx = db.begin(&ctx).await?; // ... one tenant's work
    ///         tx.commit().await?;
    ///     }
    /// }
    /// # Ok::<_, tenantkit::Error>(()) }).unwrap();
    /// ```
    pub fn tenant_pages(&self, page_size: u32) -> TenantPages<'a> {
        TenantPages {
            db: self.db,
            after: None,
            page_size,
            done: false,
        }
    }

    /// Sets a tenant's status (suspend or reactivate it), audited in the
    /// tenant's trail as `tenant.status_changed` by `by`. Requests of the
    /// tenant see it at once in this process and within the access TTL (at
    /// once on PostgreSQL) in every other.
    ///
    /// On PostgreSQL this goes through `tenantkit_set_tenant_status`: the
    /// runtime role has no `UPDATE` on `tenants`.
    pub async fn set_tenant_status(
        &self,
        id: TenantId,
        status: TenantStatus,
        by: &Actor,
    ) -> Result<Tenant> {
        let mut tx = Tx::begin(&self.db.pool).await?;
        let changed: StatusChange = match self.db.backend() {
            Backend::Postgres => {
                tx.conn()
                    .fetch_optional(sql::SET_TENANT_STATUS, vec![id.into(), status.into()])
                    .await?
            }
            // SQLite's write transaction is exclusive: nothing moves in between.
            Backend::Sqlite => {
                let before: Option<Tenant> = tx
                    .conn()
                    .fetch_optional(sql::TENANT_BY_ID, vec![id.into()])
                    .await?;
                match before {
                    Some(before) => Some(StatusChange {
                        before_status: before.status,
                        tenant: tx
                            .conn()
                            .fetch_one(sql::UPDATE_TENANT_STATUS, vec![id.into(), status.into()])
                            .await?,
                    }),
                    None => None,
                }
            }
        }
        .ok_or(Error::NotFound("tenant"))?;
        // The row is locked now, and starting a deletion locks it too: one
        // of the two sees the other.
        if status == TenantStatus::Active {
            let deleting: Option<(TenantId,)> = tx
                .conn()
                .fetch_optional(sql::TENANT_BEING_DELETED, vec![id.into()])
                .await?;
            if deleting.is_some() {
                return Err(Error::Conflict(
                    "the tenant is being deleted; it cannot be reactivated".into(),
                ));
            }
        }
        let after = changed.tenant;
        let before = Tenant {
            status: changed.before_status,
            ..after.clone()
        };
        let ctx = TenantContext::new(after.clone()).with_actor(by.clone());
        let mut scoped = TenantTx::scope(self.db, tx, ctx).await?;
        scoped.access_changed(AccessChange::Tenant(id)).await?;
        scoped
            .append(Change {
                action: "tenant.status_changed".into(),
                resource_type: "tenant".into(),
                resource_id: Some(id.to_string()),
                before: Some(tenant_state(&before)?),
                after: Some(tenant_state(&after)?),
            })
            .await?;
        scoped.commit().await?;
        Ok(after)
    }

    /// Records that `external_id` at `provider` (e.g. a Stripe customer)
    /// belongs to `tenant`. Linking the same pair again is a no-op; linking it
    /// to another tenant is [`Error::Conflict`] and changes nothing (on
    /// PostgreSQL through `tenantkit_link_external_id`, which never re-homes).
    pub async fn link_external_id(
        &self,
        provider: &str,
        external_id: &str,
        tenant: TenantId,
    ) -> Result<()> {
        let mut tx = Tx::begin(&self.db.pool).await?;
        let values = || vec![provider.into(), external_id.into(), tenant.into()];
        let (owner,): (TenantId,) = match self.db.backend() {
            Backend::Postgres => tx.conn().fetch_one(sql::LINK_EXTERNAL_ID, values()).await?,
            Backend::Sqlite => {
                tx.conn()
                    .execute(
                        sql::INSERT_EXTERNAL_ID,
                        vec![
                            provider.into(),
                            external_id.into(),
                            tenant.into(),
                            Utc::now().into(),
                        ],
                    )
                    .await?;
                tx.conn()
                    .fetch_one(
                        sql::EXTERNAL_ID_OWNER,
                        vec![provider.into(), external_id.into()],
                    )
                    .await?
            }
        };
        tx.commit().await?;
        self.db.access.forget_external(provider, external_id);
        if owner == tenant {
            Ok(())
        } else {
            Err(Error::Conflict(
                format!("{provider} id {external_id} belongs to another tenant").into(),
            ))
        }
    }
}

/// The provider under which a tenant's single sign-on issuer is linked in
/// `tenant_external_ids` (whose key makes it one tenant's at most).
pub const SSO_ISSUER_PROVIDER: &str = "sso_issuer";

impl TenantTx {
    /// Claims single sign-on issuer `issuer` for this tenant, in this
    /// transaction; [`Error::Conflict`] when another tenant has it.
    pub async fn claim_sso_issuer(&mut self, issuer: &str) -> Result<()> {
        let tenant = self.tenant_id();
        let values = || vec![SSO_ISSUER_PROVIDER.into(), issuer.into(), tenant.into()];
        let (owner,): (TenantId,) = match self.backend() {
            Backend::Postgres => {
                self.conn()
                    .fetch_one(sql::LINK_EXTERNAL_ID, values())
                    .await?
            }
            Backend::Sqlite => {
                let mut insert = values();
                insert.push(Utc::now().into());
                self.conn().execute(sql::INSERT_EXTERNAL_ID, insert).await?;
                self.conn()
                    .fetch_one(
                        sql::EXTERNAL_ID_OWNER,
                        vec![SSO_ISSUER_PROVIDER.into(), issuer.into()],
                    )
                    .await?
            }
        };
        if owner == tenant {
            Ok(())
        } else {
            Err(Error::Conflict(
                "this issuer is already the single sign-on of another tenant".into(),
            ))
        }
    }

    /// Releases this tenant's claim on single sign-on issuer `issuer` (no
    /// other tenant's: on PostgreSQL through `tenantkit_release_sso_issuer`).
    pub async fn release_sso_issuer(&mut self, issuer: &str) -> Result<()> {
        let values = match self.backend() {
            Backend::Postgres => vec![issuer.into()],
            Backend::Sqlite => vec![issuer.into(), self.tenant_id().into()],
        };
        match self.backend() {
            Backend::Postgres => {
                let _: (bool,) = self
                    .conn()
                    .fetch_one(sql::RELEASE_SSO_ISSUER, values)
                    .await?;
            }
            Backend::Sqlite => {
                self.conn().execute(sql::RELEASE_SSO_ISSUER, values).await?;
            }
        }
        Ok(())
    }
}

impl Db {
    /// The tenant `external_id` at `provider` belongs to, if linked (on
    /// PostgreSQL through `tenantkit_resolve_external_id`: one id at a time).
    pub async fn resolve_external_id(
        &self,
        provider: &str,
        external_id: &str,
    ) -> Result<Option<TenantContext>> {
        let owner: Option<(Option<TenantId>,)> = Pooled::acquire(&self.pool)
            .await?
            .conn()
            .fetch_optional(
                sql::EXTERNAL_ID_OWNER,
                vec![provider.into(), external_id.into()],
            )
            .await?;
        match owner.and_then(|(id,)| id) {
            Some(id) => self.resolve_id(id).await,
            None => Ok(None),
        }
    }

    /// Resolves a tenant by id.
    pub async fn resolve_id(&self, id: TenantId) -> Result<Option<TenantContext>> {
        self.find_tenant(sql::TENANT_BY_ID, id.into()).await
    }

    /// Resolves a tenant by subdomain (case-insensitive).
    pub async fn resolve_subdomain(&self, subdomain: &str) -> Result<Option<TenantContext>> {
        self.find_tenant(
            sql::TENANT_BY_SUBDOMAIN,
            subdomain.to_ascii_lowercase().into(),
        )
        .await
    }

    async fn find_tenant(&self, sql: Sql, key: Value) -> Result<Option<TenantContext>> {
        let tenant: Option<Tenant> = Pooled::acquire(&self.pool)
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
    tx.conn()
        .fetch_one(
            sql::INSERT_TENANT,
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

impl TenantTx {
    /// This tenant's ids at `provider` (e.g. its Stripe customers), oldest
    /// first (on PostgreSQL through `tenantkit_linked_external_ids`, which
    /// answers for the current tenant only).
    pub async fn linked_external_ids(&mut self, provider: &str) -> Result<Vec<String>> {
        let q = self.query(sql::LINKED_EXTERNAL_IDS).bind(provider);
        let rows: Vec<(String,)> = self.fetch_all(q).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

/// Every tenant a page at a time; see [`Platform::tenant_pages`].
#[derive(Debug)]
pub struct TenantPages<'a> {
    db: &'a Db,
    after: Option<TenantId>,
    page_size: u32,
    done: bool,
}

impl TenantPages<'_> {
    /// The next page of tenants, resolved; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<TenantContext>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .db
            .platform()
            .list_tenants(PageRequest {
                after: self.after,
                limit: self.page_size,
            })
            .await?;
        let Some(last) = page.last() else {
            self.done = true;
            return Ok(None);
        };
        self.after = Some(last.id);
        let mut contexts = Vec::with_capacity(page.len());
        for tenant in &page {
            if let Some(ctx) = self.db.resolve_id(tenant.id).await? {
                contexts.push(ctx);
            }
        }
        Ok(Some(contexts))
    }
}
