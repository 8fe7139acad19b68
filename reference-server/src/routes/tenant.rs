//! `GET /tenant`: the tenant the request is for.

use tenantkit::{
    Tenant, TenantContext,
    auth::{Permission, Principal},
};

use crate::error::{ApiResult, Json};

/// `GET /tenant`
#[utoipa::path(get, path = "/tenant", tag = "tenant", security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The tenant the request is for", body = Tenant)))]
pub async fn get(tenant: TenantContext, principal: Principal) -> ApiResult<Json<Tenant>> {
    principal.require(Permission::ReadTenant)?;
    Ok(Json(tenant.tenant().clone()))
}
