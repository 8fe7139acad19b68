//! The transactional outbox: [`Webhooks::publish`] writes the message and
//! one queue row per subscribed, active endpoint **in the caller's
//! transaction**. Rolled back, nothing is ever sent; committed, it is
//! delivered even if the process dies right after the commit.
//!
//! Messages and queue rows are operational records
//! ([`tenantkit::store::OperationalTable`]): tenant-scoped and isolated like
//! everything else, but not audited (the change that caused the event is).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use tenantkit::{TenantTx, store::Value};
use uuid::Uuid;

use crate::{
    WebhookId, WebhookStatus, Webhooks,
    endpoints::WebhookError,
    schema::{MESSAGES, QUEUE},
    sql,
};

/// The largest message body (the `{"type", "timestamp", "data"}` document).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// Identifies a published message; sent as `webhook-id` on every attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct MessageId(Uuid);

impl MessageId {
    /// As sent in `webhook-id`: `msg_` and the id without dashes.
    pub fn webhook_id(&self) -> String {
        format!("msg_{}", self.0.simple())
    }
}

impl From<Uuid> for MessageId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl From<MessageId> for Uuid {
    fn from(id: MessageId) -> Self {
        id.0
    }
}

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<MessageId> for Value {
    fn from(id: MessageId) -> Self {
        Value::Uuid(id.0)
    }
}

/// What [`Webhooks::publish`] queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The message.
    pub id: MessageId,
    /// How many endpoints will receive it; with none, nothing was stored.
    pub endpoints: u64,
}

impl Webhooks {
    /// Publishes an event of `event_type` (from the catalogue) with `data`,
    /// inside `tx`: delivered to every active endpoint of the tenant that
    /// subscribes to it, once `tx` commits. A body over [`MAX_PAYLOAD`] is
    /// refused, never truncated.
    pub async fn publish(
        &self,
        tx: &mut TenantTx,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<Published, WebhookError> {
        let (payload, now) = self.message_body(event_type, data)?;
        // Nobody listening: nothing to store (most tenants, most events).
        let subscribed = tx.query(sql::ANY_SUBSCRIBER).bind(event_type);
        let (subscribed,): (bool,) = tx.fetch_one(subscribed).await?;
        if !subscribed {
            return Ok(Published {
                id: MessageId(Uuid::now_v7()),
                endpoints: 0,
            });
        }
        let id = self.store_message(tx, event_type, payload, now).await?;
        let fan_out = tx.query(sql::FAN_OUT).bind(id).bind(event_type).bind(now);
        let endpoints = tx.write_operational(QUEUE, fan_out).await?;
        if endpoints > 0 {
            tx.notify(crate::schema::CHANNEL).await?;
        }
        Ok(Published { id, endpoints })
    }

    /// Sends a `webhook.test` event to one active endpoint (and no other).
    pub async fn send_test(
        &self,
        tx: &mut TenantTx,
        webhook: WebhookId,
    ) -> Result<MessageId, WebhookError> {
        let endpoint = self.get(tx, webhook).await?;
        if endpoint.status != WebhookStatus::Active {
            return Err(WebhookError::Invalid(
                "the endpoint is disabled: enable it (PATCH status `active`) to test it".into(),
            ));
        }
        let data = serde_json::json!({
            "webhook_id": webhook,
            "message": "hello from tenantkit",
        });
        let (payload, now) = self.message_body(TEST_EVENT, data)?;
        let id = self.store_message(tx, TEST_EVENT, payload, now).await?;
        let queue = tx
            .query(sql::QUEUE_TEST_DELIVERY)
            .bind(id)
            .bind(webhook)
            .bind(now);
        tx.write_operational(QUEUE, queue).await?;
        tx.notify(crate::schema::CHANNEL).await?;
        Ok(id)
    }

    /// The message body `{"type", "timestamp", "data"}` of a catalogue
    /// event, refusing one over [`MAX_PAYLOAD`].
    fn message_body(
        &self,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<(String, DateTime<Utc>), WebhookError> {
        if self.catalogue().get(event_type).is_none() {
            return Err(WebhookError::Invalid(format!(
                "unknown event type `{event_type}`: add it to the catalogue first"
            )));
        }
        let now = Utc::now();
        let payload = serde_json::to_string(&serde_json::json!({
            "type": event_type,
            "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": data,
        }))
        .map_err(|e| WebhookError::Invalid(format!("the event data is not JSON: {e}")))?;
        if payload.len() > MAX_PAYLOAD {
            return Err(WebhookError::Invalid(format!(
                "the `{event_type}` message is {} bytes; at most {MAX_PAYLOAD} are sent, and nothing is truncated",
                payload.len()
            )));
        }
        Ok((payload, now))
    }

    async fn store_message(
        &self,
        tx: &mut TenantTx,
        event_type: &str,
        payload: String,
        now: DateTime<Utc>,
    ) -> Result<MessageId, WebhookError> {
        let id = MessageId(Uuid::now_v7());
        let insert = tx
            .query(sql::INSERT_MESSAGE)
            .bind(id)
            .bind(event_type)
            .bind(payload)
            .bind(now);
        tx.write_operational(MESSAGES, insert).await?;
        Ok(id)
    }
}

/// The event `POST /webhooks/{id}/test` sends.
pub const TEST_EVENT: &str = "webhook.test";
