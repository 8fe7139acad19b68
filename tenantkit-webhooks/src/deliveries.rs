//! Deliveries as the tenant sees them: an endpoint's history (filtered,
//! keyset-paginated, newest first), the attempts of one delivery, the dead
//! letters, and replay (one delivery, or an endpoint's failed and dead
//! deliveries since a time). Replays are audited; the queue rows they reset
//! are operational records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantkit::{Error, TenantTx, store::Value};
use uuid::Uuid;

use crate::{WebhookId, Webhooks, endpoints::WebhookError, outbox::MessageId, schema::QUEUE, sql};

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryState {
    /// Waiting for its first attempt or a retry.
    Pending,
    /// A 2xx came back.
    Succeeded,
    /// Stopped without every retry being spent: its endpoint was disabled
    /// (by the tenant, `410 Gone`, or failing too long). Recoverable.
    Failed,
    /// Every retry failed: the dead letter. Replayable.
    Dead,
}

impl DeliveryState {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Succeeded => "succeeded",
            DeliveryState::Failed => "failed",
            DeliveryState::Dead => "dead",
        }
    }
}

impl TryFrom<String> for DeliveryState {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        match s.as_str() {
            "pending" => Ok(DeliveryState::Pending),
            "succeeded" => Ok(DeliveryState::Succeeded),
            "failed" => Ok(DeliveryState::Failed),
            "dead" => Ok(DeliveryState::Dead),
            other => Err(Error::invalid(format!("unknown delivery state `{other}`"))),
        }
    }
}

/// One message to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// The message (sent as `webhook-id`: `msg_` and this id without dashes).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub message_id: MessageId,
    /// The endpoint.
    pub webhook_id: WebhookId,
    /// The message's event type.
    pub event_type: String,
    /// Where it stands.
    #[sqlx(try_from = "String")]
    pub state: DeliveryState,
    /// Attempts so far (since the last replay), the one in flight included.
    pub attempts: i64,
    /// Whether a worker is attempting it now.
    pub in_flight: bool,
    /// When the next attempt is due (pending deliveries not in flight).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the latest attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The latest attempt's HTTP status.
    pub last_status: Option<i64>,
    /// The latest attempt's error class, or why the delivery stopped.
    pub last_error: Option<String>,
    /// When the message was published.
    pub created_at: DateTime<Utc>,
}

/// One attempt of a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    /// The attempt's id.
    pub id: Uuid,
    /// 1 for the first attempt (numbering restarts after a replay).
    pub attempt: i64,
    /// When it was made.
    pub attempted_at: DateTime<Utc>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// The HTTP status, when one came.
    pub response_status: Option<i64>,
    /// Why none came: `timeout`, `connection_refused`, `tls`,
    /// `blocked_address`, `dns`, `too_large`, `connection`, `signing`.
    pub error_class: Option<String>,
    /// The start of the response body (at most 4 KiB), or the error.
    pub response_excerpt: String,
}

/// Filters and page of a delivery listing.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct DeliveryFilter {
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Only messages of this event type.
    pub event_type: Option<String>,
    /// Only messages published at or after this time.
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, pattern = r"^((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz])$"))]
    pub since: Option<DateTime<Utc>>,
    /// Only messages published before this time.
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, pattern = r"^((197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])|(1970|9999)-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?[Zz])$"))]
    pub until: Option<DateTime<Utc>>,
    /// The previous page's `next_after` (a message id).
    #[cfg_attr(feature = "openapi", param(value_type = Option<String>, format = Uuid))]
    pub after: Option<Uuid>,
    /// Page size, 1 to 500 (default 50).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 500))]
    pub limit: Option<u32>,
}

/// What a replay queued again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Replayed {
    /// How many deliveries are pending again.
    pub deliveries: u64,
}

/// The default page size.
const DEFAULT_LIMIT: u32 = 50;

impl Webhooks {
    /// An endpoint's deliveries, newest first, filtered; another tenant's
    /// endpoint is `NotFound`.
    pub async fn deliveries(
        &self,
        tx: &mut TenantTx,
        webhook: WebhookId,
        filter: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.get(tx, webhook).await?;
        let limit = tenantkit::validate::limit(filter.limit.unwrap_or(DEFAULT_LIMIT))?;
        let since = tenantkit::validate::optional_instant("since", filter.since)?;
        let until = tenantkit::validate::optional_instant("until", filter.until)?;
        let q = tx
            .query(sql::LIST_DELIVERIES)
            .bind(webhook)
            .bind(Value::OptText(filter.state.map(|s| s.as_str().to_owned())))
            .bind(Value::OptText(filter.event_type.clone()))
            .bind(Value::OptTime(since))
            .bind(Value::OptTime(until))
            .bind(Value::OptUuid(filter.after))
            .bind(limit);
        Ok(tx.fetch_all(q).await?)
    }

    /// One delivery; `NotFound` when it is not this endpoint's (or tenant's).
    pub async fn delivery(
        &self,
        tx: &mut TenantTx,
        webhook: WebhookId,
        message: MessageId,
    ) -> Result<Delivery, WebhookError> {
        let q = tx.query(sql::GET_DELIVERY).bind(webhook).bind(message);
        Ok(tx
            .fetch_optional(q)
            .await?
            .ok_or(Error::NotFound("delivery"))?)
    }

    /// The attempts of one delivery, in order.
    pub async fn attempts(
        &self,
        tx: &mut TenantTx,
        webhook: WebhookId,
        message: MessageId,
    ) -> Result<Vec<DeliveryAttempt>, WebhookError> {
        self.delivery(tx, webhook, message).await?;
        let q = tx.query(sql::LIST_ATTEMPTS).bind(webhook).bind(message);
        Ok(tx.fetch_all(q).await?)
    }

    /// The tenant's dead letters, newest first (`after`: the previous
    /// page's last message id).
    pub async fn dead_letters(
        &self,
        tx: &mut TenantTx,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Vec<Delivery>, WebhookError> {
        let limit = tenantkit::validate::limit(limit.unwrap_or(DEFAULT_LIMIT))?;
        let q = tx
            .query(sql::LIST_DEAD_LETTERS)
            .bind(Value::OptUuid(after))
            .bind(limit);
        Ok(tx.fetch_all(q).await?)
    }

    /// Queues one delivery again (any state but pending), with a fresh
    /// retry schedule; audited as `webhook.delivery_replayed`.
    pub async fn retry_delivery(
        &self,
        tx: &mut TenantTx,
        webhook: WebhookId,
        message: MessageId,
    ) -> Result<Delivery, WebhookError> {
        // The queue row is written before the audit entry: lock order first.
        tx.lock_tenant_writes().await?;
        let endpoint = self.get(tx, webhook).await?;
        self.delivery(tx, webhook, message).await?;
        ensure_active(&endpoint)?;
        let now = Utc::now();
        let q = tx
            .query(sql::RETRY_DELIVERY)
            .bind(webhook)
            .bind(message)
            .bind(now);
        let n = tx.write_operational(QUEUE, q).await?;
        if n == 0 {
            return Err(Error::Conflict("the delivery is already pending".into()).into());
        }
        tx.record_event(
            "webhook.delivery_replayed",
            "webhook",
            Some(webhook.to_string()),
            serde_json::json!({ "message_id": message.to_string() }),
        )
        .await?;
        tx.notify(crate::schema::CHANNEL).await?;
        self.delivery(tx, webhook, message).await
    }

    /// Queues again every failed and dead delivery of an endpoint whose
    /// message was published at or after `since`; audited as
    /// `webhook.recovered`.
    pub async fn recover(
        &self,
        tx: &mut TenantTx,
        webhook: WebhookId,
        since: DateTime<Utc>,
    ) -> Result<Replayed, WebhookError> {
        let since = tenantkit::validate::instant("since", since)?;
        tx.lock_tenant_writes().await?;
        let endpoint = self.get(tx, webhook).await?;
        ensure_active(&endpoint)?;
        let now = Utc::now();
        let q = tx
            .query(sql::RECOVER_DELIVERIES)
            .bind(webhook)
            .bind(since)
            .bind(now);
        let deliveries = tx.write_operational(QUEUE, q).await?;
        tx.record_event(
            "webhook.recovered",
            "webhook",
            Some(webhook.to_string()),
            serde_json::json!({ "since": since, "deliveries": deliveries }),
        )
        .await?;
        if deliveries > 0 {
            tx.notify(crate::schema::CHANNEL).await?;
        }
        Ok(Replayed { deliveries })
    }
}

fn ensure_active(endpoint: &crate::Webhook) -> Result<(), WebhookError> {
    if endpoint.status != crate::WebhookStatus::Active {
        return Err(WebhookError::Invalid(
            "the endpoint is disabled: enable it (PATCH status `active`) before replaying".into(),
        ));
    }
    Ok(())
}
