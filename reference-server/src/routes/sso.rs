//! A tenant's own identity provider (single sign-on): `/tenant/sso` for its
//! owner, on plans with the `sso` feature (`402` without), and
//! `/tenants/{id}/sso` for a platform admin, whatever the plan.
//!
//! The settings may name no provider of the tenant's own: provisioning and
//! the e-mail domain then apply to configured issuers' tokens naming the
//! tenant. Once registered, a token whose `iss` is the tenant's issuer acts in that
//! tenant only (see `docs/authentication.md`). Every change is audited.

use axum::extract::State;
use http::StatusCode;
use tenantkit::{
    SsoSettings, TenantContext, TenantId, TenantSso,
    auth::{Permission, Principal},
    problem::Problem,
};

use crate::{
    error::{ApiResult, Json, Path},
    state::AppState,
};

/// `GET /tenant/sso`
#[utoipa::path(get, path = "/tenant/sso", tag = "tenant", security(("bearer" = [])), responses((status = 200, description = "The tenant's identity provider", body = TenantSso), (status = 404, description = "The tenant registered none", body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
) -> ApiResult<Json<TenantSso>> {
    principal.require(Permission::ReadTenant)?;
    Ok(Json(read(&state, &tenant).await?))
}

/// `PUT /tenant/sso` (the tenant's owner): registers or changes the
/// tenant's identity provider.
#[utoipa::path(put, path = "/tenant/sso", tag = "tenant", security(("bearer" = [])), request_body = SsoSettings, responses((status = 200, description = "The tenant's identity provider, as registered", body = TenantSso), (status = 409, description = "The issuer is another tenant's, or trusted platform-wide", body = Problem, content_type = "application/problem+json"), (status = 422, description = "A field is out of bounds, or an address may not be contacted", body = Problem, content_type = "application/problem+json")))]
pub async fn put(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Json(settings): Json<SsoSettings>,
) -> ApiResult<Json<TenantSso>> {
    principal.require(Permission::ManageSso)?;
    Ok(Json(register(&state, &tenant, &settings).await?))
}

/// `DELETE /tenant/sso` (the tenant's owner): its provider's tokens stop
/// acting in the tenant at once.
#[utoipa::path(delete, path = "/tenant/sso", tag = "tenant", security(("bearer" = [])), responses((status = 204, description = "Removed"), (status = 404, description = "The tenant registered none", body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
) -> ApiResult<StatusCode> {
    principal.require(Permission::ManageSso)?;
    remove(&state, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /tenants/{id}/sso` (platform admin)
#[utoipa::path(get, path = "/tenants/{id}/sso", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id")), responses((status = 200, description = "The tenant's identity provider", body = TenantSso), (status = 404, description = "No such tenant, or it registered none", body = Problem, content_type = "application/problem+json")))]
pub async fn platform_get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
) -> ApiResult<Json<TenantSso>> {
    let tenant = admin_tenant(&state, &principal, id).await?;
    Ok(Json(read(&state, &tenant).await?))
}

/// `PUT /tenants/{id}/sso` (platform admin), whatever the tenant's plan.
#[utoipa::path(put, path = "/tenants/{id}/sso", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id")), request_body = SsoSettings, responses((status = 200, description = "The tenant's identity provider, as registered", body = TenantSso), (status = 409, description = "The issuer is another tenant's, or trusted platform-wide", body = Problem, content_type = "application/problem+json"), (status = 422, description = "A field is out of bounds, or an address may not be contacted", body = Problem, content_type = "application/problem+json")))]
pub async fn platform_put(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
    Json(settings): Json<SsoSettings>,
) -> ApiResult<Json<TenantSso>> {
    let tenant = admin_tenant(&state, &principal, id).await?;
    Ok(Json(register(&state, &tenant, &settings).await?))
}

/// `DELETE /tenants/{id}/sso` (platform admin)
#[utoipa::path(delete, path = "/tenants/{id}/sso", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id")), responses((status = 204, description = "Removed"), (status = 404, description = "No such tenant, or it registered none", body = Problem, content_type = "application/problem+json")))]
pub async fn platform_delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
) -> ApiResult<StatusCode> {
    let tenant = admin_tenant(&state, &principal, id).await?;
    remove(&state, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant a platform admin names, acting as that admin.
async fn admin_tenant(
    state: &AppState,
    principal: &Principal,
    id: TenantId,
) -> ApiResult<TenantContext> {
    principal.require(Permission::ManageTenants)?;
    let tenant = super::named_tenant(&state.db, id).await?;
    Ok(tenant.with_actor(principal.into()))
}

async fn read(state: &AppState, tenant: &TenantContext) -> ApiResult<TenantSso> {
    let mut tx = state.db.begin_snapshot(tenant).await?;
    let sso = tx.sso().await?;
    tx.commit().await?;
    Ok(sso.ok_or(tenantkit::Error::NotFound("single sign-on"))?)
}

async fn register(
    state: &AppState,
    tenant: &TenantContext,
    settings: &SsoSettings,
) -> ApiResult<TenantSso> {
    let settings = settings.checked()?;
    if settings
        .issuer
        .as_deref()
        .is_some_and(|issuer| state.issuers.trusts(issuer))
    {
        return Err(Problem::new(StatusCode::CONFLICT, "Conflict")
            .with_detail(
                "this issuer is trusted platform-wide (auth.issuers): its tokens name their \
                 tenant by claim, and cannot be one tenant's own",
            )
            .into());
    }
    // Names are resolved before the transaction, never inside it.
    state.tenant_issuers.vet(&settings).await?;
    let mut tx = state.db.begin(tenant).await?;
    let sso = tx.put_sso(&settings).await?;
    tx.commit().await?;
    Ok(sso)
}

async fn remove(state: &AppState, tenant: &TenantContext) -> ApiResult<()> {
    let mut tx = state.db.begin(tenant).await?;
    tx.delete_sso().await?;
    tx.commit().await?;
    Ok(())
}
