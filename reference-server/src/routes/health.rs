//! Liveness, readiness and metrics.

use axum::{extract::State, response::IntoResponse};
use http::{StatusCode, header};
use tenantkit::{
    auth::{Permission, Principal},
    problem::Problem,
};

use crate::{error::ApiResult, state::AppState};

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers, and no background task the
/// process needs has failed (then `503`: the process is stopping).
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200, description = "The database answers and every task the process needs runs", body = String, content_type = "text/plain"), (status = 503, description = "A task the process needs failed; it is stopping", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    if let Some(task) = state.tasks.failure() {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Not ready")
            .with_detail(format!(
                "the background task `{task}` failed; the process is stopping"
            ))
            .into());
    }
    state.db.ping().await?;
    Ok("ready")
}

/// `GET /metrics` (platform admin): Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "platform", security(("bearer" = [])), responses((status = 200, description = "Prometheus/OpenMetrics text, with per-tenant request counts", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::ManageTenants)?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    ))
}
