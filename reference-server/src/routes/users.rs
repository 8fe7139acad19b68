//! `/users`: the tenant's users.

use std::sync::Arc;

use axum::{Extension, extract::State, response::IntoResponse};
use http::{StatusCode, header};
use tenantkit::{
    NewUser, PageRequest, Role, TenantContext, User, UserId, UserPatch,
    auth::{Permission, Principal},
};
use tenantkit_billing::plans::Plan;

use super::Page;
use crate::{
    error::{ApiResult, Json, Path, Query},
    state::AppState,
};

/// `GET /users?after=&limit=`
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = []), ("api_key" = [])), params(PageRequest<UserId>), responses((status = 200, description = "A page of users, in creation order", body = Page<User, UserId>)))]
pub async fn list(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Query(page): Query<PageRequest<UserId>>,
) -> ApiResult<Json<Page<User, UserId>>> {
    principal.require(Permission::ReadUsers)?;
    let mut tx = state.db.begin_snapshot(&tenant).await?;
    let users = tx.list_users(page).await?;
    Ok(Json(Page::new(users, page.limit, |u| u.id)))
}

/// `GET /users/{id}`
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = []), ("api_key" = [])), params(("id" = UserId, Path, description = "The user id")), responses((status = 200, description = "The user", body = User)))]
pub async fn get(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<UserId>,
) -> ApiResult<Json<User>> {
    principal.require(Permission::ReadUsers)?;
    Ok(Json(
        state.db.begin_snapshot(&tenant).await?.get_user(id).await?,
    ))
}

/// `POST /users` → `201` with `Location`. Only owners create owners. The
/// plan's user limit is enforced atomically with the creation (`402` at it).
#[utoipa::path(post, path = "/users", tag = "users", security(("bearer" = []), ("api_key" = [])), request_body = NewUser, responses((status = 201, description = "Created; `Location` names it", body = User, headers(("location" = String, description = "/users/{id}"))), (status = 409, description = "The e-mail is taken in this tenant", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Extension(plan): Extension<Arc<Plan>>,
    Json(new): Json<NewUser>,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::WriteUsers)?;
    if new.role == Role::Owner {
        principal.require(Permission::GrantOwner)?;
    }
    let mut tx = state.db.begin(&tenant).await?;
    let user = state.billing.create_user(&mut tx, &plan, &new).await?;
    state.publish(&mut tx, "user.created", &user).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/users/{}", user.id))],
        Json(user),
    ))
}

/// `PATCH /users/{id}`. Only owners change owners or make new ones.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = []), ("api_key" = [])), params(("id" = UserId, Path, description = "The user id")), request_body = UserPatch, responses((status = 200, description = "The changed user", body = User), (status = 409, description = "The e-mail is taken, or this would remove the last owner", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<UserId>,
    Json(patch): Json<UserPatch>,
) -> ApiResult<Json<User>> {
    principal.require(Permission::WriteUsers)?;
    let mut tx = state.db.begin(&tenant).await?;
    let current = tx.get_user(id).await?;
    if current.role == Role::Owner || patch.role == Some(Role::Owner) {
        principal.require(Permission::GrantOwner)?;
    }
    let user = tx.update_user(id, &patch).await?;
    state.publish(&mut tx, "user.updated", &user).await?;
    tx.commit().await?;
    Ok(Json(user))
}

/// `DELETE /users/{id}` → `204`. Only owners delete owners.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = []), ("api_key" = [])), params(("id" = UserId, Path, description = "The user id")), responses((status = 204, description = "Deleted; the user's tokens stop working"), (status = 409, description = "The last owner cannot be deleted", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<UserId>,
) -> ApiResult<StatusCode> {
    principal.require(Permission::WriteUsers)?;
    let mut tx = state.db.begin(&tenant).await?;
    if tx.get_user(id).await?.role == Role::Owner {
        principal.require(Permission::GrantOwner)?;
    }
    let user = tx.delete_user(id).await?;
    state.publish(&mut tx, "user.deleted", &user).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
