//! `GET /tenant`: the tenant the request is for.

use tenantkit::{
    Tenant, TenantContext,
    auth::{Permission, Principal},
};

use crate::error::{ApiResult, Json};

/// `GET /tenant`
pub async fn get(tenant: TenantContext, principal: Principal) -> ApiResult<Json<Tenant>> {
    principal.require(Permission::ReadTenant)?;
    Ok(Json(tenant.tenant().clone()))
}
