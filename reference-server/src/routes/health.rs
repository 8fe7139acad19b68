//! Liveness, readiness and metrics.

use axum::{extract::State, response::IntoResponse};
use http::{StatusCode, header};
use tenantkit::auth::{Permission, Principal};

use crate::{app::AppState, error::ApiResult};

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AppState>) -> ApiResult<&'static str> {
    state.db.ping().await?;
    Ok("ready")
}

/// `GET /metrics` (platform admin): Prometheus text format.
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
