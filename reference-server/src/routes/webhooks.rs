//! `/webhooks`: the tenant's endpoints, their deliveries and dead letters.
//! Behind `PlanLayer::requiring(Feature::Webhooks)` (402 without it).

use axum::{extract::State, response::IntoResponse};
use chrono::{DateTime, Utc};
use http::{StatusCode, header};
use serde::{Deserialize, Serialize};
use tenantkit::{
    PageRequest, TenantContext,
    auth::{Permission, Principal},
    problem::Problem,
};
use tenantkit_webhooks::{
    CreatedWebhook, NewWebhook, Webhook, WebhookError, WebhookId, WebhookPatch,
    catalogue::EventType,
    deliveries::{Delivery, DeliveryAttempt, DeliveryFilter, Replayed},
    outbox::MessageId,
};
use uuid::Uuid;

use super::Page;
use crate::{
    error::{ApiError, ApiResult, Json, Path, Query},
    state::AppState,
};

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        Self(Problem::from(&e))
    }
}

/// `GET /webhooks?after=&limit=`
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(PageRequest<WebhookId>), responses((status = 200, description = "A page of endpoints (never their secrets)", body = Page<Webhook, WebhookId>)))]
pub async fn list(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Query(page): Query<PageRequest<WebhookId>>,
) -> ApiResult<Json<Page<Webhook, WebhookId>>> {
    principal.require(Permission::ReadWebhooks)?;
    let mut tx = state.db.begin_snapshot(&tenant).await?;
    let hooks = state.webhooks.list(&mut tx, page).await?;
    Ok(Json(Page::new(hooks, page.limit, |w| w.id)))
}

/// `POST /webhooks` → `201`; the secret is shown this once. A URL that is
/// malformed or may not be contacted is `422`, saying why.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), request_body = NewWebhook, responses((status = 201, description = "Created; `secret` (`whsec_...`) is shown this once", body = CreatedWebhook, headers(("location" = String, description = "/webhooks/{id}"))), (status = 422, description = "The URL is refused (scheme, address, name) or an event type is unknown", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Json(new): Json<NewWebhook>,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::WriteWebhooks)?;
    let mut tx = state.db.begin(&tenant).await?;
    let created = state.webhooks.create(&mut tx, &new).await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                format!("/webhooks/{}", created.webhook.id),
            ),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        Json(created),
    ))
}

/// `GET /webhooks/event-types`: what endpoints can subscribe to, with an
/// example payload each.
#[utoipa::path(get, path = "/webhooks/event-types", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The event catalogue", body = Vec<EventType>)))]
pub async fn event_types(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<EventType>>> {
    principal.require(Permission::ReadWebhooks)?;
    Ok(Json(state.webhooks.catalogue().types().to_vec()))
}

/// `GET /webhooks/{id}`
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id")), responses((status = 200, description = "The endpoint", body = Webhook)))]
pub async fn get(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<WebhookId>,
) -> ApiResult<Json<Webhook>> {
    principal.require(Permission::ReadWebhooks)?;
    let mut tx = state.db.begin_snapshot(&tenant).await?;
    Ok(Json(state.webhooks.get(&mut tx, id).await?))
}

/// `PATCH /webhooks/{id}`: URL, event types, description; `status: active`
/// re-enables, `disabled` stops its pending deliveries.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id")), request_body = WebhookPatch, responses((status = 200, description = "The changed endpoint", body = Webhook), (status = 422, description = "The URL is refused or an event type is unknown", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<WebhookId>,
    Json(patch): Json<WebhookPatch>,
) -> ApiResult<Json<Webhook>> {
    principal.require(Permission::WriteWebhooks)?;
    let mut tx = state.db.begin(&tenant).await?;
    let webhook = state.webhooks.update(&mut tx, id, &patch).await?;
    tx.commit().await?;
    Ok(Json(webhook))
}

/// `DELETE /webhooks/{id}` → `204`; its pending deliveries stop.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id")), responses((status = 204, description = "Deleted, with its deliveries")))]
pub async fn delete(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<WebhookId>,
) -> ApiResult<StatusCode> {
    principal.require(Permission::WriteWebhooks)?;
    let mut tx = state.db.begin(&tenant).await?;
    state.webhooks.delete(&mut tx, id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /webhooks/{id}/rotate-secret`: a new secret, shown this once; the
/// old one keeps signing beside it for the grace period (24 h by default).
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id")), responses((status = 200, description = "The endpoint with its new secret, shown this once", body = CreatedWebhook)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<WebhookId>,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::WriteWebhooks)?;
    let mut tx = state.db.begin(&tenant).await?;
    let rotated = state.webhooks.rotate_secret(&mut tx, id).await?;
    tx.commit().await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(rotated)))
}

/// What `POST /webhooks/{id}/test` queued.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestSent {
    /// The message; follow it under `/webhooks/{id}/deliveries`.
    #[schema(value_type = String, format = Uuid)]
    pub message_id: MessageId,
}

/// `POST /webhooks/{id}/test` → `202`: sends a `webhook.test` event to
/// this endpoint alone.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id")), responses((status = 202, description = "Queued", body = TestSent), (status = 422, description = "The endpoint is disabled", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn test(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<WebhookId>,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::WriteWebhooks)?;
    let mut tx = state.db.begin(&tenant).await?;
    let message_id = state.webhooks.send_test(&mut tx, id).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(TestSent { message_id })))
}

/// `GET /webhooks/{id}/deliveries?state=&event_type=&since=&until=&after=&limit=`:
/// newest first.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id"), DeliveryFilter), responses((status = 200, description = "A page of deliveries, newest first", body = Page<Delivery, Uuid>)))]
pub async fn deliveries(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<WebhookId>,
    Query(filter): Query<DeliveryFilter>,
) -> ApiResult<Json<Page<Delivery, Uuid>>> {
    principal.require(Permission::ReadWebhooks)?;
    let mut tx = state.db.begin_snapshot(&tenant).await?;
    let items = state.webhooks.deliveries(&mut tx, id, &filter).await?;
    let limit = filter.limit.unwrap_or(50);
    Ok(Json(Page::new(items, limit, |d| d.message_id.into())))
}

/// `GET /webhooks/{id}/deliveries/{message_id}/attempts`
#[utoipa::path(get, path = "/webhooks/{id}/deliveries/{message_id}/attempts", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id"), ("message_id" = String, Path, format = Uuid, description = "The message id")), responses((status = 200, description = "Every attempt, in order", body = Vec<DeliveryAttempt>)))]
pub async fn attempts(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path((id, message)): Path<(WebhookId, Uuid)>,
) -> ApiResult<Json<Vec<DeliveryAttempt>>> {
    principal.require(Permission::ReadWebhooks)?;
    let mut tx = state.db.begin_snapshot(&tenant).await?;
    Ok(Json(
        state
            .webhooks
            .attempts(&mut tx, id, MessageId::from(message))
            .await?,
    ))
}

/// `POST /webhooks/{id}/deliveries/{message_id}/retry`: queues it again
/// (a dead letter, a failed or a succeeded delivery), with a fresh retry
/// schedule.
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{message_id}/retry", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id"), ("message_id" = String, Path, format = Uuid, description = "The message id")), responses((status = 202, description = "Pending again", body = Delivery), (status = 409, description = "It is already pending", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 422, description = "The endpoint is disabled", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn retry(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path((id, message)): Path<(WebhookId, Uuid)>,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::WriteWebhooks)?;
    let mut tx = state.db.begin(&tenant).await?;
    let delivery = state
        .webhooks
        .retry_delivery(&mut tx, id, MessageId::from(message))
        .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(delivery)))
}

/// `POST /webhooks/{id}/recover` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// Failed and dead deliveries of messages published at or after this
    /// time are queued again.
    #[schema(value_type = String, pattern = r"^((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz])$")]
    pub since: DateTime<Utc>,
}

/// `POST /webhooks/{id}/recover`: queues again the endpoint's failed and
/// dead deliveries since a time.
#[utoipa::path(post, path = "/webhooks/{id}/recover", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("id" = WebhookId, Path, description = "The endpoint id")), request_body = Recover, responses((status = 202, description = "How many are pending again", body = Replayed), (status = 422, description = "The endpoint is disabled", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn recover(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Path(id): Path<WebhookId>,
    Json(body): Json<Recover>,
) -> ApiResult<impl IntoResponse> {
    principal.require(Permission::WriteWebhooks)?;
    let mut tx = state.db.begin(&tenant).await?;
    let replayed = state.webhooks.recover(&mut tx, id, body.since).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(replayed)))
}

/// `GET /webhooks/dead-letters?after=&limit=`: every endpoint's dead
/// letters, newest first.
#[utoipa::path(get, path = "/webhooks/dead-letters", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(PageRequest<Uuid>), responses((status = 200, description = "A page of dead letters, newest first", body = Page<Delivery, Uuid>)))]
pub async fn dead_letters(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    Query(page): Query<PageRequest<Uuid>>,
) -> ApiResult<Json<Page<Delivery, Uuid>>> {
    principal.require(Permission::ReadWebhooks)?;
    let mut tx = state.db.begin_snapshot(&tenant).await?;
    let items = state
        .webhooks
        .dead_letters(&mut tx, page.after, Some(page.limit))
        .await?;
    Ok(Json(Page::new(items, page.limit, |d| d.message_id.into())))
}
