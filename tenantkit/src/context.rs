//! [`TenantContext`]: proof that a request's tenant was resolved, and who acts in it.

use std::sync::Arc;

use crate::{
    Tenant, TenantId,
    audit::{Actor, RequestMeta},
};

/// A tenant that was looked up and found, the actor working in it, and the
/// request's details, carried in request extensions.
///
/// It is the only key to [`crate::Db::begin`], so no tenant-scoped query can
/// run without one, and every change made through that transaction is audited
/// with this actor and request. Only resolution creates it
/// ([`crate::Db::resolve_id`], [`crate::Db::resolve_subdomain`], or a
/// [`crate::resolve::TenantResolver`]); resolution outside a request gives the
/// [`Actor::System`] actor. [`crate::resolve::TenantLayer`] records the request
/// details and [`crate::auth::AuthLayer`] the authenticated actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantContext {
    tenant: Arc<Tenant>,
    actor: Actor,
    request: Arc<RequestMeta>,
}

impl TenantContext {
    pub(crate) fn new(tenant: Tenant) -> Self {
        Self {
            tenant: Arc::new(tenant),
            actor: Actor::System,
            request: Arc::default(),
        }
    }

    /// A context sharing an already resolved tenant (from the access cache).
    pub(crate) fn shared(tenant: Arc<Tenant>) -> Self {
        Self {
            tenant,
            actor: Actor::System,
            request: Arc::default(),
        }
    }

    pub(crate) fn shared_tenant(&self) -> Arc<Tenant> {
        Arc::clone(&self.tenant)
    }

    /// The resolved tenant.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Its id.
    pub fn id(&self) -> TenantId {
        self.tenant.id
    }

    /// Who acts: recorded on every audit entry written through this context.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The request's details, recorded on every audit entry.
    pub fn request(&self) -> &RequestMeta {
        &self.request
    }

    /// The same tenant, acted on by `actor` (a job declaring itself, say).
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = actor;
        self
    }

    /// The same tenant, for a request with these details.
    pub fn with_request(mut self, request: RequestMeta) -> Self {
        self.request = Arc::new(request.bounded());
        self
    }
}

/// A tenant named by id or by subdomain, as in `X-Tenant-Id` or configuration.
///
/// ```
/// use tenantkit::resolve::TenantRef;
///
/// assert!(matches!("acme".parse(), Ok(TenantRef::Subdomain(s)) if s == "acme"));
/// assert!(matches!("0190e5b2-7c1e-7000-8000-000000000000".parse(), Ok(TenantRef::Id(_))));
/// assert!("not a label!".parse::<TenantRef>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TenantRef {
    /// By id.
    Id(TenantId),
    /// By subdomain.
    Subdomain(String),
}

impl std::str::FromStr for TenantRef {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        if let Ok(id) = s.parse::<TenantId>() {
            return Ok(TenantRef::Id(id));
        }
        crate::validate::subdomain(s).map(TenantRef::Subdomain)
    }
}
