//! `/api-keys`: the tenant's API keys.

use axum::{extract::State, response::IntoResponse};
use http::{StatusCode, header};
use tenantkit::{
    ApiKey, ApiKeyId, NewApiKey, PageRequest, TenantContext,
    auth::{Permission, Principal, Subject},
    problem::Problem,
};

use super::Page;
use crate::{
    error::{ApiResult, Json, Path, Query},
    state::AppState,
};

/// `GET /api-keys?after=&limit=` (hashes are never shown)
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", security(("bearer" = []), ("api_key" = [])), params(PageRequest<ApiKeyId>), responses((status = 200, description = "A page of API keys (never their secrets)", body = Page<ApiKey, ApiKeyId>)))]
pub async fn list(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Query(page): Query<PageRequest<ApiKeyId>>,
) -> ApiResult<Json<Page<ApiKey, ApiKeyId>>> {
    principal.require(Permission::ReadApiKeys)?;
    let keys = state
        .db
        .begin_snapshot(&tenant)
        .await?
        .list_api_keys(page)
        .await?;
    Ok(Json(Page::new(keys, page.limit, |k| k.id)))
}

/// `POST /api-keys` → `201`; the response holds the key, shown this once.
/// An API key can only create keys with scopes it has itself.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", security(("bearer" = []), ("api_key" = [])), request_body = NewApiKey, responses((status = 201, description = "Created; `key` is shown this once", body = tenantkit::CreatedApiKey, headers(("location" = String, description = "/api-keys/{id}")))))]
pub async fn create(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Json(new): Json<NewApiKey>,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::WriteApiKeys)?;
    if let Subject::ApiKey { scopes, .. } = &principal.subject
        && let Some(missing) = new.scopes.iter().find(|s| !scopes.contains(s))
    {
        return Err(Problem::new(StatusCode::FORBIDDEN, "Forbidden")
            .with_detail(format!(
                "an API key cannot grant the scope `{missing}` it does not have"
            ))
            .into());
    }
    let mut tx = state.db.begin(&tenant).await?;
    let created = tx.create_api_key(&new).await?;
    state
        .publish(&mut tx, "api_key.created", &created.api_key)
        .await?;
    tx.commit().await?;
    let location = format!("/api-keys/{}", created.api_key.id);
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        Json(created),
    ))
}

/// `DELETE /api-keys/{id}` → `204` (revokes; idempotent).
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys", security(("bearer" = []), ("api_key" = [])), params(("id" = ApiKeyId, Path, description = "The key id")), responses((status = 204, description = "Revoked (idempotent)")))]
pub async fn revoke(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<ApiKeyId>,
) -> ApiResult<StatusCode> {
    principal.require(Permission::WriteApiKeys)?;
    let mut tx = state.db.begin(&tenant).await?;
    let key = tx.revoke_api_key(id).await?;
    state.publish(&mut tx, "api_key.revoked", &key).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
