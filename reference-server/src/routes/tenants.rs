//! `/tenants`: platform administration.

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantkit::{
    NewTenant, PageRequest, Tenant, TenantId, TenantStatus, User,
    audit::Actor,
    auth::{Permission, Principal},
    problem::Problem,
};

use super::Page;
use crate::{
    error::{ApiResult, Json, Path, Query},
    state::AppState,
};

/// `POST /tenants` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Display name (1 to 200 characters once white space around it is
    /// trimmed, no control characters).
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]([^\u0000-\u001f\u007f-\u009f]{0,198}[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub name: String,
    /// DNS label (1 to 63 of `a-z`, `0-9` and `-`, not starting or ending
    /// with `-`; stored lower-case).
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub subdomain: String,
    /// If given, the tenant's first owner is created with this e-mail.
    #[schema(format = Email, max_length = 254)]
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
    let tenants = state.db.platform().list_tenants(page).await?;
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
        .platform()
        .set_tenant_status(id, patch.status, &Actor::from(&principal))
        .await?;
    Ok(Json(tenant))
}

/// `DELETE /tenants/{id}` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteTenant {
    /// The tenant's subdomain, to confirm which tenant goes.
    pub confirm: String,
}

/// `DELETE /tenants/{id}?confirm=<subdomain>` (platform admin): deletes the
/// tenant for good (see `docs/tenant-lifecycle.md`): suspended, its Stripe
/// subscription canceled, its webhook deliveries stopped, every row it owns
/// in every crate's tables removed in batches, then the tenant; its
/// subdomain is free again. Answers `200` with the tombstone once done, or
/// `202` with the deletion under way if it takes longer than
/// `server.deletion_wait_secs` (it goes on; `Location` follows it). Asking
/// again finishes an interrupted deletion or returns the tombstone.
#[utoipa::path(delete, path = "/tenants/{id}", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id"), DeleteTenant), responses((status = 200, description = "Deleted: the tombstone (who deleted the tenant, when, the rows removed by table, the hash of its last export)", body = tenantkit::store::TenantDeletion), (status = 202, description = "Under way: the deletion so far; `Location` is `/tenants/{id}/deletion`", body = tenantkit::store::TenantDeletion, headers(("Location" = String, description = "Where to follow the deletion"))), (status = 400, description = "`confirm` is missing or is not the tenant's subdomain", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "No such tenant, and no deletion of it", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
    Query(query): Query<DeleteTenant>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    principal.require(Permission::ManageTenants)?;
    let subdomain = match state.db.resolve_id(id).await? {
        Some(ctx) => ctx.tenant().subdomain.clone(),
        None => deletion_of(&state, id).await?.subdomain,
    };
    if query.confirm != subdomain {
        return Err(
            Problem::new(StatusCode::BAD_REQUEST, "Confirmation does not match")
                .with_detail("`confirm` must be the subdomain of the tenant to delete")
                .into(),
        );
    }
    let deleter = state.deleter();
    let started = deleter
        .start(id, &Actor::from(&principal))
        .await
        .map_err(|e| Problem::from(&e))?;
    if started.finished_at.is_some() {
        return Ok(Json(started).into_response());
    }
    // The rest on its own task: neither the wait below nor a dropped
    // request stops it.
    let mut work = tokio::spawn(async move {
        let done = deleter.resume(id).await;
        if let Err(e) = &done {
            tracing::error!(tenant = %id, error = %e, "tenant deletion stopped; asking again resumes it");
        }
        done
    });
    match tokio::time::timeout(state.deletion_wait, &mut work).await {
        Ok(finished) => {
            let done = finished
                .map_err(|e| tenantkit::Error::Internal(format!("tenant deletion: {e}")))?
                .map_err(|e| Problem::from(&e))?;
            Ok(Json(done).into_response())
        }
        Err(_) => {
            let so_far = deletion_of(&state, id).await?;
            let location = format!("/tenants/{id}/deletion");
            Ok((
                StatusCode::ACCEPTED,
                [(http::header::LOCATION, location)],
                Json(so_far),
            )
                .into_response())
        }
    }
}

/// `GET /tenants/{id}/deletion` (platform admin): the tenant's deletion,
/// under way (`finished_at` null, `rows_removed` growing) or finished (the
/// tombstone, kept after the tenant is gone).
#[utoipa::path(get, path = "/tenants/{id}/deletion", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id")), responses((status = 200, description = "The deletion so far, or its tombstone", body = tenantkit::store::TenantDeletion), (status = 404, description = "The tenant was never being deleted", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn deletion(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
) -> ApiResult<Json<tenantkit::store::TenantDeletion>> {
    principal.require(Permission::ManageTenants)?;
    Ok(Json(deletion_of(&state, id).await?))
}

/// The deletion of tenant `id`, or `404`.
async fn deletion_of(
    state: &AppState,
    id: TenantId,
) -> tenantkit::Result<tenantkit::store::TenantDeletion> {
    state
        .db
        .platform()
        .tenant_deletion(id)
        .await?
        .ok_or(tenantkit::Error::NotFound("tenant deletion"))
}

/// `POST /tenants/{id}/export` (platform admin): every row the tenant owns
/// in every crate's tables, as a tar archive of NDJSON files with a
/// manifest (see `docs/tenant-lifecycle.md`); recorded in its audit trail.
/// The archive is built on disk first (memory stays bounded), then streamed;
/// `X-Archive-Sha256` is its hash, as in the audit entry.
#[utoipa::path(post, path = "/tenants/{id}/export", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id")), responses((status = 200, description = "The archive (tar): manifest.json, then tables/<table>.ndjson", content_type = "application/x-tar", body = Vec<u8>, headers(("X-Archive-Sha256" = String, description = "SHA-256 of the archive, hex")))))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    use tokio::io::AsyncReadExt;
    principal.require(Permission::ManageTenants)?;
    let ctx = super::named_tenant(&state.db, id)
        .await?
        .with_actor(Actor::from(&principal));
    let dir = tempfile::tempdir().map_err(internal)?;
    let path = dir.path().join("export.tar");
    let exported = crate::export::export_tenant(&state.db, &ctx, &path)
        .await
        .map_err(|e| internal(std::io::Error::other(format!("{e:#}"))))?;
    let file = tokio::fs::File::open(&path).await.map_err(internal)?;
    // The open file outlives its directory (removed here); it goes with the
    // last read.
    drop(dir);
    let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0; 64 * 1024];
        let n = file.read(&mut buf).await?;
        buf.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (bytes::Bytes::from(buf), file)))
    });
    let filename = format!(
        "attachment; filename=\"{}-export.tar\"",
        ctx.tenant().subdomain
    );
    Ok((
        [
            (http::header::CONTENT_TYPE, "application/x-tar".to_owned()),
            (http::header::CONTENT_DISPOSITION, filename),
            (http::header::CONTENT_LENGTH, exported.bytes.to_string()),
            (http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        [("x-archive-sha256", exported.archive_sha256)],
        axum::body::Body::from_stream(chunks),
    )
        .into_response())
}

fn internal(e: std::io::Error) -> tenantkit::Error {
    tenantkit::Error::Internal(format!("tenant export: {e}"))
}
