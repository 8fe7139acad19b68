//! [`TenantContext`]: proof that a request's tenant was resolved.

use std::sync::Arc;

use crate::{Tenant, TenantId};

/// A tenant that was looked up and found, carried in request extensions by
/// [`crate::resolve::TenantLayer`].
///
/// It is the only key to [`crate::Db::begin`], so no tenant-scoped query can
/// run without one. Only resolution creates it ([`crate::Db::resolve_id`],
/// [`crate::Db::resolve_subdomain`], or a [`crate::resolve::TenantResolver`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantContext {
    tenant: Arc<Tenant>,
}

impl TenantContext {
    pub(crate) fn new(tenant: Tenant) -> Self {
        Self {
            tenant: Arc::new(tenant),
        }
    }

    /// The resolved tenant.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Its id.
    pub fn id(&self) -> TenantId {
        self.tenant.id
    }
}
