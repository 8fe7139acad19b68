//! `/webhooks`: the tenant's endpoints, their deliveries and dead letters,
//! and publishing messages over HTTP (`/webhooks/messages`, and the
//! platform's `/tenants/{id}/webhooks/messages`). Behind
//! `PlanLayer::requiring(Feature::Webhooks)` (402 without it).

use axum::{
    extract::State,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use tenantkit::{
    PageRequest, TenantContext, TenantId, TenantStatus,
    auth::{Permission, Principal},
    problem::Problem,
};
use tenantkit_billing::plans::Feature;
use tenantkit_webhooks::{
    CreatedWebhook, NewWebhook, Webhook, WebhookError, WebhookId, WebhookPatch,
    catalogue::EventType,
    deliveries::{Delivery, DeliveryAttempt, DeliveryFilter, Replayed},
    outbox::{MessageId, NewMessage, Publication, PublishedMessage},
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

/// `POST /webhooks/messages/batch` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessages {
    /// 1 to 100 messages, published all or none.
    #[schema(min_items = 1, max_items = 100)]
    pub messages: Vec<NewMessage>,
}

/// What `POST /webhooks/messages/batch` published, in the order asked.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PublishedMessages {
    /// Each message.
    pub messages: Vec<PublishedMessage>,
}

/// `Idempotency-Key`: a retry with the same key and request answers as the
/// first time (for 24 hours at least) and publishes nothing new.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on an answer given again for its idempotency key.
const REPLAYED: &str = "idempotent-replayed";

/// `POST /webhooks/messages` → `202` once the message and its deliveries
/// are committed: fanned out to every active endpoint of the tenant that
/// subscribes to its event type.
#[utoipa::path(post, path = "/webhooks/messages", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters: a retry with the same key and body answers as the first time (for 24 hours) and publishes nothing new; another body with the key is 409", pattern = "^[!-~]{1,255}$")), request_body = NewMessage, responses((status = 202, description = "Published (durably queued for each subscribed endpoint)", body = PublishedMessage, headers(("idempotent-replayed" = String, description = "`true` when this is the first answer given again"))), (status = 409, description = "The idempotency key or the message id was used for another request", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 422, description = "Unknown event type, a body over 1 MiB, or an invalid key or id", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "Over the tenant's publish rate", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn publish(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    headers: HeaderMap,
    Json(message): Json<NewMessage>,
) -> ApiResult<Response> {
    principal.require(Permission::PublishWebhooks)?;
    let published = publish_for(&state, &tenant, &headers, vec![message]).await?;
    Ok(published.answer(|mut messages| messages.remove(0)))
}

/// `POST /webhooks/messages/batch` → `202`: up to 100 messages, published
/// all or none.
#[utoipa::path(post, path = "/webhooks/messages/batch", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("Idempotency-Key" = Option<String>, Header, description = "As for POST /webhooks/messages, for the whole batch", pattern = "^[!-~]{1,255}$")), request_body = NewMessages, responses((status = 202, description = "Every message published", body = PublishedMessages, headers(("idempotent-replayed" = String, description = "`true` when this is the first answer given again"))), (status = 409, description = "The idempotency key or a message id was used for another request", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 422, description = "A message is refused (its index is named); nothing was published", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "Over the tenant's publish rate", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn publish_batch(
    State(state): State<AppState>,
    tenant: TenantContext,
    principal: Principal,
    headers: HeaderMap,
    Json(batch): Json<NewMessages>,
) -> ApiResult<Response> {
    principal.require(Permission::PublishWebhooks)?;
    let published = publish_for(&state, &tenant, &headers, batch.messages).await?;
    Ok(published.answer(|messages| PublishedMessages { messages }))
}

/// `POST /tenants/{id}/webhooks/messages`: the platform's own services
/// publish to a tenant's endpoints (platform admin), as the tenant would.
#[utoipa::path(post, path = "/tenants/{id}/webhooks/messages", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant"), ("Idempotency-Key" = Option<String>, Header, description = "As for POST /webhooks/messages", pattern = "^[!-~]{1,255}$")), request_body = NewMessage, responses((status = 202, description = "Published", body = PublishedMessage, headers(("idempotent-replayed" = String, description = "`true` when this is the first answer given again"))), (status = 402, description = "The tenant's plan has no webhooks", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "No such tenant", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 409, description = "The tenant is suspended, or the key or id was used for another request", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 422, description = "The message is refused", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "Over the tenant's publish rate", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn platform_publish(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
    headers: HeaderMap,
    Json(message): Json<NewMessage>,
) -> ApiResult<Response> {
    let tenant = publishing_tenant(&state, &principal, id).await?;
    let published = publish_for(&state, &tenant, &headers, vec![message]).await?;
    Ok(published.answer(|mut messages| messages.remove(0)))
}

/// `POST /tenants/{id}/webhooks/messages/batch`: the platform's batch form.
#[utoipa::path(post, path = "/tenants/{id}/webhooks/messages/batch", tag = "platform", security(("bearer" = [])), params(("id" = TenantId, Path, description = "The tenant"), ("Idempotency-Key" = Option<String>, Header, description = "As for POST /webhooks/messages, for the whole batch", pattern = "^[!-~]{1,255}$")), request_body = NewMessages, responses((status = 202, description = "Every message published", body = PublishedMessages, headers(("idempotent-replayed" = String, description = "`true` when this is the first answer given again"))), (status = 402, description = "The tenant's plan has no webhooks", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "No such tenant", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 409, description = "The tenant is suspended, or the key or an id was used for another request", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 422, description = "A message is refused (its index is named); nothing was published", body = tenantkit::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "Over the tenant's publish rate", body = tenantkit::problem::Problem, content_type = "application/problem+json")))]
pub async fn platform_publish_batch(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<TenantId>,
    headers: HeaderMap,
    Json(batch): Json<NewMessages>,
) -> ApiResult<Response> {
    let tenant = publishing_tenant(&state, &principal, id).await?;
    let published = publish_for(&state, &tenant, &headers, batch.messages).await?;
    Ok(published.answer(|messages| PublishedMessages { messages }))
}

/// The tenant a platform admin publishes to: active, on a plan with webhooks.
async fn publishing_tenant(
    state: &AppState,
    principal: &Principal,
    id: TenantId,
) -> ApiResult<TenantContext> {
    principal.require(Permission::ManageTenants)?;
    let tenant = super::named_tenant(&state.db, id)
        .await?
        .with_actor(principal.into());
    if tenant.tenant().status != TenantStatus::Active {
        return Err(Problem::new(StatusCode::CONFLICT, "Tenant suspended")
            .with_detail("the tenant is suspended: reactivate it to publish to its endpoints")
            .into());
    }
    let plan = state
        .billing
        .plan_for(&tenant)
        .await
        .map_err(|e| Problem::from(&e))?;
    if !plan.has(Feature::Webhooks) {
        return Err(tenantkit_billing::feature_problem(&plan, Feature::Webhooks).into());
    }
    Ok(tenant)
}

/// The one publishing path of every form: the key read, the tenant's rate
/// taken, the messages published and committed.
async fn publish_for(
    state: &AppState,
    tenant: &TenantContext,
    headers: &HeaderMap,
    messages: Vec<NewMessage>,
) -> ApiResult<Publication> {
    let mut keys = headers.get_all(IDEMPOTENCY_KEY).iter();
    let key = match (keys.next(), keys.next()) {
        (None, _) => None,
        (Some(value), None) => Some(value.to_str().map_err(|_| {
            WebhookError::Invalid("`Idempotency-Key` must be visible ASCII characters".into())
        })?),
        (Some(_), Some(_)) => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "Bad request")
                .with_detail("send one `Idempotency-Key`, not several")
                .into());
        }
    };
    state
        .publish_budgets
        .take(tenant.id(), messages.len())
        .map_err(Problem::from)?;
    let mut tx = state.db.begin(tenant).await?;
    let published = state
        .webhooks
        .publish_messages(&mut tx, &messages, key)
        .await?;
    tx.commit().await?;
    Ok(published)
}

/// A publication as its route answers it: `202`, marked when replayed.
trait Answer {
    fn answer<T: Serialize>(self, body: impl FnOnce(Vec<PublishedMessage>) -> T) -> Response;
}

impl Answer for Publication {
    fn answer<T: Serialize>(self, body: impl FnOnce(Vec<PublishedMessage>) -> T) -> Response {
        let mut response = (StatusCode::ACCEPTED, Json(body(self.messages))).into_response();
        if self.replayed {
            response
                .headers_mut()
                .insert(REPLAYED, http::HeaderValue::from_static("true"));
        }
        response
    }
}
