//! `/tenants`: platform administration.

use axum::extract::{Path, State};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantkit::{
    NewTenant, PageRequest, Tenant, TenantId, TenantStatus, User,
    audit::Actor,
    auth::{Permission, Principal},
};

use super::Page;
use crate::{
    app::AppState,
    error::{ApiResult, Json, Query},
};

/// `POST /tenants` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Display name.
    pub name: String,
    /// DNS label.
    pub subdomain: String,
    /// If given, the tenant's first owner is created with this e-mail.
    pub owner_email: Option<String>,
}

/// `POST /tenants` response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedTenant {
    /// The tenant.
    #[serde(flatten)]
    pub tenant: Tenant,
    /// Its first owner, when requested.
    pub owner: Option<User>,
}

/// `POST /tenants` (platform admin)
#[utoipa::path(post, path = "/tenants", tag = "platform", security(("bearer" = [])), request_body = CreateTenant, responses((status = 201, description = "The tenant, and its first owner when asked for", body = CreatedTenant), (status = 409, description = "The subdomain is taken", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateTenant>,
) -> ApiResult<(StatusCode, Json<CreatedTenant>)> {
    principal.require(Permission::ManageTenants)?;
    let new = NewTenant {
        name: body.name,
        subdomain: body.subdomain,
    };
    let (tenant, owner) =
        crate::create_tenant(&state.db, &new, body.owner_email, &Actor::from(&principal)).await?;
    Ok((StatusCode::CREATED, Json(CreatedTenant { tenant, owner })))
}

/// `GET /tenants?after=&limit=` (platform admin)
#[utoipa::path(get, path = "/tenants", tag = "platform", security(("bearer" = [])), params(PageRequest<TenantId>), responses((status = 200, description = "A page of tenants, in creation order", body = Page<Tenant, TenantId>)))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(page): Query<PageRequest<TenantId>>,
) -> ApiResult<Json<Page<Tenant, TenantId>>> {
    principal.require(Permission::ManageTenants)?;
    let tenants = state.db.list_tenants(page).await?;
    Ok(Json(Page::new(tenants, page.limit, |t| t.id)))
}

/// `GET /tenants/{id}` (platform admin), whatever its status.
#[utoipa::path(get, path = "/tenants/{id}", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id")), responses((status = 200, description = "The tenant", body = Tenant)))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
) -> ApiResult<Json<Tenant>> {
    principal.require(Permission::ManageTenants)?;
    let tenant = super::named_tenant(&state.db, id).await?;
    Ok(Json(tenant.tenant().clone()))
}

/// `PATCH /tenants/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// `suspended` stops everything of the tenant: its requests and
    /// WebSockets (closed within 5 s), its event ingestion and its webhook
    /// deliveries (paused, not dead-lettered); `active` resumes them.
    pub status: TenantStatus,
}

/// `PATCH /tenants/{id}` (platform admin): suspend or reactivate a tenant,
/// recorded in its audit trail.
#[utoipa::path(patch, path = "/tenants/{id}", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id")), request_body = TenantPatch, responses((status = 200, description = "The tenant with its new status", body = Tenant)))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
    Json(patch): Json<TenantPatch>,
) -> ApiResult<Json<Tenant>> {
    principal.require(Permission::ManageTenants)?;
    let tenant = state
        .db
        .set_tenant_status(id, patch.status, &Actor::from(&principal))
        .await?;
    Ok(Json(tenant))
}
