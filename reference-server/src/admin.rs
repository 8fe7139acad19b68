//! The platform operations the command line runs (and `POST /tenants`):
//! first-start bootstrap, tenants, tokens, audit retention, deletion.

use anyhow::{Context, bail};
use tenantkit::{
    Db, NewTenant, NewUser, PageRequest, Role,
    audit::Actor,
    auth::{JwtKeys, TokenRole},
    resolve::TenantRef,
};

use crate::{config::Config, deletion, setup::open_runtime_db, webhooks};

/// What first start created, to print.
#[derive(Debug)]
pub struct Demo {
    /// The demo tenant's subdomain.
    pub subdomain: String,
    /// An owner token for it.
    pub token: String,
}

/// On an empty database, creates tenant `demo` with an owner and mints a token.
pub async fn bootstrap_demo(
    db: &Db,
    keys: &JwtKeys,
    config: &Config,
) -> anyhow::Result<Option<Demo>> {
    if !db
        .platform()
        .list_tenants(PageRequest::first(1))
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    let created = db
        .platform()
        .create_tenant_with_owner(
            &NewTenant {
                name: "Demo".into(),
                subdomain: "demo".into(),
            },
            &NewUser {
                email: "owner@demo.example".into(),
                role: Role::Owner,
            },
            &Actor::System,
        )
        .await;
    let (tenant, owner) = match created {
        Ok(created) => created,
        // Another server process sharing this database bootstrapped first.
        Err(tenantkit::Error::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let token = keys.issue(
        &owner.id.to_string(),
        Some(tenant.id),
        TokenRole::Owner,
        config.auth.token_ttl_secs,
    )?;
    Ok(Some(Demo {
        subdomain: tenant.subdomain,
        token,
    }))
}

/// Creates a tenant and, when `owner_email` is given, its first owner in the
/// same transaction (`POST /tenants` and `tenant create`).
pub async fn create_tenant(
    db: &Db,
    new: &NewTenant,
    owner_email: Option<String>,
    by: &Actor,
) -> tenantkit::Result<(tenantkit::Tenant, Option<tenantkit::User>)> {
    match owner_email {
        Some(email) => {
            let owner = NewUser {
                email,
                role: Role::Owner,
            };
            let (tenant, owner) = db
                .platform()
                .create_tenant_with_owner(new, &owner, by)
                .await?;
            Ok((tenant, Some(owner)))
        }
        None => Ok((db.platform().create_tenant(new, by).await?, None)),
    }
}

/// Purges every tenant's audit entries older than `retention_days`, each
/// through the audited purge path. Returns `(tenants purged, entries removed)`.
pub async fn purge_audit_logs(db: &Db, retention_days: u32) -> tenantkit::Result<(u64, u64)> {
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(retention_days.max(1)));
    let (mut tenants, mut entries) = (0, 0);
    let mut pages = db.platform().tenant_pages(500);
    while let Some(page) = pages.next().await? {
        for ctx in page {
            let mut tx = db.begin(&ctx).await?;
            let purged = tx.purge_audit_logs(cutoff).await?;
            tx.commit().await?;
            if purged > 0 {
                tenants += 1;
                entries += purged;
            }
        }
    }
    Ok((tenants, entries))
}

/// `token issue` for a tenant: a token for `user` (an id or an e-mail; the
/// tenant's first owner when `None`) with `role` (the user's own role when
/// `None`; never more than it).
pub async fn issue_user_token(
    db: &Db,
    keys: &JwtKeys,
    tenant: &tenantkit::TenantContext,
    user: Option<&str>,
    role: Option<Role>,
    ttl_secs: u64,
) -> anyhow::Result<String> {
    let mut tx = db.begin(tenant).await?;
    let user = match user {
        None => tx
            .first_owner()
            .await
            .context("the tenant has no owner; name a user with --user")?,
        Some(named) => {
            let by = match named.parse() {
                Ok(id) => tenantkit::store::UserRef::Id(id),
                Err(_) => tenantkit::store::UserRef::Email(named.to_owned()),
            };
            let access = tx.find_user_access(&by).await?.with_context(|| {
                format!(
                    "no user `{named}` in tenant `{}`",
                    tenant.tenant().subdomain
                )
            })?;
            tx.get_user(access.id).await?
        }
    };
    tx.commit().await?;
    let role = role.unwrap_or(user.role);
    if role > user.role {
        bail!(
            "user {} is {}; a token cannot carry the higher role {role}",
            user.email,
            user.role
        );
    }
    Ok(keys.issue(
        &user.id.to_string(),
        Some(tenant.id()),
        role.into(),
        ttl_secs,
    )?)
}

/// `tenant delete`: deletes the tenant named by `tenant` (id or subdomain;
/// its id once it is gone) if `confirm` is its subdomain, or finishes its
/// interrupted deletion; the tombstone.
pub async fn delete_tenant(
    config: &Config,
    tenant: &str,
    confirm: &str,
    batch: u32,
) -> anyhow::Result<tenantkit::store::TenantDeletion> {
    let db = open_runtime_db(config).await?;
    let (id, subdomain) = match find_tenant(&db, tenant).await {
        Ok(ctx) => (ctx.id(), ctx.tenant().subdomain.clone()),
        Err(not_found) => match tenant.parse::<TenantRef>()? {
            TenantRef::Id(id) => {
                let gone = db.platform().tenant_deletion(id).await?.ok_or(not_found)?;
                (id, gone.subdomain)
            }
            TenantRef::Subdomain(_) => return Err(not_found),
        },
    };
    anyhow::ensure!(
        confirm == subdomain,
        "--confirm must be the tenant's subdomain (`{subdomain}`)"
    );
    let deleter = deletion::Deleter {
        db: db.clone(),
        billing: tenantkit_billing::Billing::new(db.clone(), config.billing.clone())?,
        webhooks: webhooks::build(config)?,
        batch,
    };
    let done = deleter
        .delete(id, &Actor::PlatformAdmin("cli".into()))
        .await?;
    db.close().await;
    Ok(done)
}

/// Resolves `tenant` (id or subdomain) to its id, for the command line.
pub async fn find_tenant(db: &Db, tenant: &str) -> anyhow::Result<tenantkit::TenantContext> {
    let r: TenantRef = tenant.parse()?;
    let found = match &r {
        TenantRef::Id(id) => db.resolve_id(*id).await?,
        TenantRef::Subdomain(s) => db.resolve_subdomain(s).await?,
    };
    found.with_context(|| format!("no tenant `{tenant}`"))
}
