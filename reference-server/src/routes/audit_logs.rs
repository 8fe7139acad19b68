//! `/audit-logs`: the tenant's audit trail; and the platform's audited read path.

use axum::{
    body::Body,
    extract::{RawQuery, State},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use http::header;
use serde::{Deserialize, Serialize};
use tenantkit::{
    TenantContext, TenantId,
    audit::{Actor, AuditEntry, AuditFilter, ChainReport},
    auth::{Permission, Principal},
};

use crate::{
    error::{ApiResult, Json, Path, Query},
    state::AppState,
};

/// A page of entries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub items: Vec<AuditEntry>,
    /// Pass as `before_seq` for the next (older) page; `null` on the last page.
    pub next_before_seq: Option<i64>,
}

impl AuditPage {
    fn new(items: Vec<AuditEntry>, filter: &AuditFilter) -> Self {
        let full = items.len() == filter.limit.unwrap_or(50) as usize;
        let next_before_seq = if full {
            items.last().map(|e| e.seq)
        } else {
            None
        };
        Self {
            items,
            next_before_seq,
        }
    }
}

/// `GET /audit-logs?actor_type=&actor_id=&action=&resource_type=&resource_id=&from=&to=&before_seq=&limit=`
#[utoipa::path(get, path = "/audit-logs", tag = "audit-logs", security(("bearer" = []), ("api_key" = [])), params(AuditFilter), responses((status = 200, description = "Entries, newest first", body = AuditPage)))]
pub async fn list(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Query(filter): Query<AuditFilter>,
) -> ApiResult<Json<AuditPage>> {
    principal.require(Permission::ReadAuditLogs)?;
    let items = state
        .db
        .begin_snapshot(&tenant)
        .await?
        .list_audit_logs(&filter)
        .await?;
    Ok(Json(AuditPage::new(items, &filter)))
}

/// `GET /audit-logs/export` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportRange {
    /// At or after this time.
    #[param(value_type = Option<String>, pattern = r"^((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz])$")]
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    #[param(value_type = Option<String>, pattern = r"^((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz])$")]
    pub to: Option<DateTime<Utc>>,
}

/// `GET /audit-logs/export?from=&to=`: NDJSON, oldest first, streamed in
/// batches so memory stays bounded. The export itself is audited.
#[utoipa::path(get, path = "/audit-logs/export", tag = "audit-logs", security(("bearer" = []), ("api_key" = [])), params(ExportRange), responses((status = 200, description = "NDJSON, one entry a line, oldest first, streamed; the export itself is audited", body = AuditEntry, content_type = "application/x-ndjson")))]
pub async fn export(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Query(range): Query<ExportRange>,
) -> ApiResult<Response> {
    principal.require(Permission::ReadAuditLogs)?;
    tenantkit::validate::optional_instant("from", range.from)?;
    tenantkit::validate::optional_instant("to", range.to)?;
    let mut tx = state.db.begin(&tenant).await?;
    tx.record_event(
        "audit_log.exported",
        "audit_log",
        None,
        serde_json::json!({ "from": range.from, "to": range.to }),
    )
    .await?;
    tx.commit().await?;
    let stream = state
        .db
        .export_audit_logs(tenant, range.from, range.to)
        .map(|chunk| {
            chunk.inspect_err(|e| tracing::error!(error = %e, "audit export failed mid-stream"))
        });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit-logs.ndjson\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `GET /audit-logs/verify`: checks the tenant's hash chain.
#[utoipa::path(get, path = "/audit-logs/verify", tag = "audit-logs", security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The result of checking the hash chain", body = ChainReport)))]
pub async fn verify(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
) -> ApiResult<Json<ChainReport>> {
    principal.require(Permission::ReadAuditLogs)?;
    Ok(Json(
        // A snapshot: the whole walk sees one state and blocks no writer.
        state
            .db
            .begin_snapshot(&tenant)
            .await?
            .verify_audit_chain()
            .await?,
    ))
}

/// `GET /tenants/{id}/audit-logs` (platform admin): the one path across
/// tenants. Every use is recorded in that tenant's own trail.
#[utoipa::path(get, path = "/tenants/{id}/audit-logs", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant id"), AuditFilter), responses((status = 200, description = "The tenant's entries, newest first; the read is recorded in that tenant's trail", body = AuditPage)))]
pub async fn platform_list(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
    RawQuery(raw): RawQuery,
    Query(filter): Query<AuditFilter>,
) -> ApiResult<Json<AuditPage>> {
    principal.require(Permission::ManageTenants)?;
    let ctx = super::named_tenant(&state.db, id)
        .await?
        .with_actor(Actor::from(&principal));
    let mut tx = state.db.begin(&ctx).await?;
    tx.record_event(
        "audit_log.platform_read",
        "audit_log",
        None,
        serde_json::json!({ "query": raw }),
    )
    .await?;
    let items = tx.list_audit_logs(&filter).await?;
    tx.commit().await?;
    Ok(Json(AuditPage::new(items, &filter)))
}
