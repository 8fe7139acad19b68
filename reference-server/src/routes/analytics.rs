//! `/analytics`: event ingestion (acknowledged once durable), the summary
//! and the time series. Any tenant user, or an API key with
//! `analytics:write` / `analytics:read`.

use axum::{body::Bytes, extract::State, response::IntoResponse};
use chrono::Utc;
use http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use tenantkit::{
    TenantContext,
    auth::{Permission, Principal},
    problem::Problem,
};
use tenantkit_analytics::{
    IngestError,
    event::{BatchError, Body, parse_batch},
    query::{
        self, ParamError, Point, SeriesParams, SeriesQuery, Summary, SummaryParams, SummaryQuery,
    },
};

use crate::{
    error::{ApiError, ApiResult, Json, Query},
    state::AppState,
};

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        Self(Problem::from(&e))
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        Self(Problem::from(&e))
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        Self(Problem::from(&e))
    }
}

/// The answer to an accepted batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// How many events were stored.
    pub accepted: usize,
}

/// The JSON body of `POST /analytics/events`, as the OpenAPI document
/// states it: one event, or an array of 1 to
/// [`MAX_BATCH`](tenantkit_analytics::event::MAX_BATCH) of them.
pub struct EventBatch;

impl utoipa::PartialSchema for EventBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{
            Ref,
            schema::{ArrayBuilder, OneOfBuilder},
        };
        OneOfBuilder::new()
            .description(Some(
                "One event, or an array of 1 to 1,000 events (all stored or none)",
            ))
            .item(Ref::from_schema_name("NewEvent"))
            .item(
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("NewEvent"))
                    .min_items(Some(1))
                    .max_items(Some(tenantkit_analytics::event::MAX_BATCH)),
            )
            .into()
    }
}

impl utoipa::ToSchema for EventBatch {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use tenantkit_analytics::event::NewEvent;
        use utoipa::PartialSchema;
        schemas.push((NewEvent::name().into_owned(), NewEvent::schema()));
        NewEvent::schemas(schemas);
    }
}

/// `POST /analytics/events` → `202` once the events are durably stored.
///
/// One event object, a JSON array of up to 1,000, or NDJSON
/// (`content-type: application/x-ndjson`). All or nothing: any invalid event
/// refuses the batch with `422` listing each bad index. `503` with
/// `Retry-After` means nothing was stored and the batch may be retried.
#[utoipa::path(post, path = "/analytics/events", tag = "analytics", security(("bearer" = []), ("api_key" = [])),
    request_body(content(
        (EventBatch = "application/json"),
        (String = "application/x-ndjson")
    ), description = "One event, an array of up to 1,000, or NDJSON (one event per line)"),
    responses(
        (status = 202, description = "Every event is stored (committed)", body = Accepted),
        (status = 415, description = "Neither JSON nor NDJSON", body = tenantkit::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid events, each named in `invalid` by index; nothing stored", body = tenantkit::problem::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Not stored (buffer full, shutting down, database error): retry after `Retry-After`", body = tenantkit::problem::Problem, content_type = "application/problem+json")
    ))]
pub async fn ingest(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::WriteAnalytics)?;
    let framing = framing(&headers).map_err(|other| {
        ApiError(
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type").with_detail(
                format!("`{other}`: send application/json or application/x-ndjson"),
            ),
        )
    })?;
    let events = parse_batch(&body, framing, Utc::now())?;
    let accepted = events.len();
    state.analytics.ingest(&tenant, events).await?;
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted })))
}

/// The body's framing, from its media type (JSON when none is given); the
/// media type when it is neither JSON nor NDJSON.
fn framing(headers: &HeaderMap) -> Result<Body, String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(Body::Json);
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(Body::Json),
        "application/x-ndjson" | "application/jsonl" => Ok(Body::Ndjson),
        other => Err(other.to_owned()),
    }
}

/// `GET /analytics/summary?from=&to=&tz=` (default: the last 30 days).
#[utoipa::path(get, path = "/analytics/summary", tag = "analytics", security(("bearer" = []), ("api_key" = [])), params(SummaryParams),
    responses(
        (status = 200, description = "DAU and MAU of the range's last day, counts, top features", body = Summary),
        (status = 422, description = "A bad parameter, named in `parameter`", body = tenantkit::problem::Problem, content_type = "application/problem+json")
    ))]
pub async fn summary(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Query(params): Query<SummaryParams>,
) -> ApiResult<Json<Summary>> {
    principal.require(Permission::ReadAnalytics)?;
    let q = SummaryQuery::parse(&params, Utc::now())?;
    Ok(Json(query::summary(&state.db, &tenant, &q).await?))
}

/// `GET /analytics/timeseries?metric=&interval=&from=&to=&tz=`: one point
/// per bucket, zeros included, at most 1,000.
#[utoipa::path(get, path = "/analytics/timeseries", tag = "analytics", security(("bearer" = []), ("api_key" = [])), params(SeriesParams),
    responses(
        (status = 200, description = "`[{t, value}]`, one per bucket", body = Vec<Point>),
        (status = 422, description = "A bad parameter (or more than 1,000 points), named in `parameter`", body = tenantkit::problem::Problem, content_type = "application/problem+json")
    ))]
pub async fn timeseries(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Query(params): Query<SeriesParams>,
) -> ApiResult<Json<Vec<Point>>> {
    principal.require(Permission::ReadAnalytics)?;
    let q = SeriesQuery::parse(&params, Utc::now())?;
    Ok(Json(query::timeseries(&state.db, &tenant, &q).await?))
}
