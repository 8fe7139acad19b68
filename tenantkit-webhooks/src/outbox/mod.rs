//! The transactional outbox: [`Webhooks::publish`] writes the message and
//! one queue row per subscribed, active endpoint **in the caller's
//! transaction**. Rolled back, nothing is ever sent; committed, it is
//! delivered even if the process dies right after the commit.
//!
//! Messages and queue rows are operational records
//! ([`tenantkit::store::OperationalTable`]): tenant-scoped and isolated like
//! everything else, but not audited (the change that caused the event is).

pub(crate) mod dispatch;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use tenantkit::{Backend, TenantTx, store::Value};
use uuid::Uuid;

use self::dispatch::{Handoff, Job, window_start};

use crate::{
    WebhookId, WebhookStatus, Webhooks,
    catalogue::Refused,
    endpoints::WebhookError,
    idempotency::{self, Claim},
    schema::{MESSAGES, QUEUE, RATE_WINDOWS},
    sql,
};

/// The largest message body (the `{"type", "timestamp", "data"}` document).
pub const MAX_PAYLOAD: usize = 1024 * 1024;

/// The most messages [`Webhooks::publish_messages`] takes at once.
pub const MAX_BATCH: usize = 100;

/// Identifies a published message; sent as `webhook-id` on every attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
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

/// An endpoint a PostgreSQL publish queued a delivery for, and whether
/// it was leased to this process's worker.
#[derive(sqlx::FromRow)]
struct PublishedRow {
    leased: bool,
    #[sqlx(flatten)]
    webhook: crate::Webhook,
}

/// What [`Webhooks::publish`] queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// The message.
    pub id: MessageId,
    /// How many endpoints will receive it; with none, nothing was stored.
    pub endpoints: u64,
}

/// A message published from outside a change's transaction, by
/// `POST /webhooks/messages`: checked and fanned out like any other.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMessage {
    /// An event type of the catalogue (`GET /webhooks/event-types`).
    pub event_type: String,
    /// The event's data, a JSON object (the message body, with `type` and
    /// `timestamp`, is at most 1 MiB).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Your own id of the message (1 to 255 of `A-Z a-z 0-9 _ . : -`): a
    /// message with an id published in the last 24 hours is not published
    /// again; the first answer is returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 255,
            pattern = r"^[A-Za-z0-9_.:-]{1,255}$"
        )
    )]
    pub id: Option<String>,
    /// Up to 10 channels (1 to 128 of `A-Z a-z 0-9 _ . : -`): it reaches the
    /// subscribed endpoints that have no channels or share one. Default:
    /// none, only the endpoints without channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub channels: Vec<String>,
}

/// One published message, as `POST /webhooks/messages` answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublishedMessage {
    /// The message (its deliveries carry `webhook-id: msg_<id without dashes>`).
    pub message_id: MessageId,
    /// Your id of it, when you gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its event type.
    pub event_type: String,
    /// The channels it was published on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// How many endpoints will receive it (0: none subscribes; nothing stored).
    pub endpoints: u64,
    /// Its `timestamp`, as sent in the body.
    pub timestamp: DateTime<Utc>,
}

/// What [`Webhooks::publish_messages`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    /// Each message, in the order asked.
    pub messages: Vec<PublishedMessage>,
    /// Whether this is the first answer to the same request, given again for
    /// its idempotency key (nothing was published now).
    pub replayed: bool,
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
        let now = Utc::now().trunc_subsecs(3);
        let payload = self.message_body(event_type, data, now)?;
        self.publish_body(tx, event_type, payload, now, &[], false)
            .await
    }

    /// Publishes `messages`, all or none, inside `tx` (commit it, then
    /// answer): each is checked and fanned out exactly like
    /// [`Webhooks::publish`]. With `request_key` (an `Idempotency-Key`), the
    /// same request sent again within [`idempotency::KEEP_KEYS`] answers as
    /// the first time and publishes nothing; a message's own `id` does the
    /// same for that message. A key or an id used before for something else
    /// is [`WebhookError::Conflict`].
    pub async fn publish_messages(
        &self,
        tx: &mut TenantTx,
        messages: &[NewMessage],
        request_key: Option<&str>,
    ) -> Result<Publication, WebhookError> {
        if messages.is_empty() || messages.len() > MAX_BATCH {
            return Err(WebhookError::Invalid(format!(
                "publish 1 to {MAX_BATCH} messages at once, not {}",
                messages.len()
            )));
        }
        let now = Utc::now().trunc_subsecs(3);
        let mut payloads = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let at = |e: WebhookError| match e {
                _ if messages.len() == 1 => e,
                WebhookError::Invalid(why) => WebhookError::Invalid(format!("message {i}: {why}")),
                WebhookError::Schema {
                    event_type,
                    violations,
                    ..
                } => WebhookError::Schema {
                    message: Some(i),
                    event_type,
                    violations,
                },
                other => other,
            };
            if let Some(id) = &message.id {
                idempotency::check_message_id(id).map_err(at)?;
                if messages[..i].iter().any(|m| m.id.as_ref() == Some(id)) {
                    return Err(at(WebhookError::Invalid(format!(
                        "the id `{id}` appears twice in one request"
                    ))));
                }
            }
            let channels = crate::endpoints::check_channels(&message.channels).map_err(at)?;
            let data = serde_json::Value::Object(message.data.clone());
            let payload = self
                .message_body(&message.event_type, data, now)
                .map_err(at)?;
            payloads.push((payload, channels));
        }
        if let Some(key) = request_key {
            idempotency::check_request_key(key)?;
            let asked = serde_json::to_value(messages)
                .map_err(|e| WebhookError::Invalid(format!("the messages are not JSON: {e}")))?;
            let key = format!("r:{key}");
            match idempotency::claim(tx, &key, &idempotency::fingerprint(&asked), now).await? {
                Claim::Answered(answer) => {
                    return Ok(Publication {
                        messages: stored_answer(&answer)?,
                        replayed: true,
                    });
                }
                Claim::Claimed => {}
            }
        }
        // Message ids in sorted order: two requests never wait for each other.
        let mut with_ids: Vec<(usize, &str)> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.id.as_deref().map(|id| (i, id)))
            .collect();
        with_ids.sort_by_key(|(_, id)| *id);
        let mut answers: Vec<Option<PublishedMessage>> = vec![None; messages.len()];
        let mut claimed = vec![false; messages.len()];
        for (i, id) in with_ids {
            let m = &messages[i];
            let asked = serde_json::json!({
                "event_type": m.event_type, "data": m.data, "channels": m.channels
            });
            match idempotency::claim(
                tx,
                &format!("m:{id}"),
                &idempotency::fingerprint(&asked),
                now,
            )
            .await?
            {
                Claim::Answered(answer) => answers[i] = Some(stored_answer(&answer)?),
                Claim::Claimed => claimed[i] = true,
            }
        }
        for (i, (message, (payload, channels))) in messages.iter().zip(payloads).enumerate() {
            if answers[i].is_some() {
                continue;
            }
            let published = self
                .publish_body(tx, &message.event_type, payload, now, &channels, true)
                .await?;
            let answer = PublishedMessage {
                message_id: published.id,
                id: message.id.clone(),
                event_type: message.event_type.clone(),
                channels,
                endpoints: published.endpoints,
                timestamp: now,
            };
            if claimed[i]
                && let Some(id) = &message.id
            {
                idempotency::record(tx, &format!("m:{id}"), &answer_text(&answer)?).await?;
            }
            answers[i] = Some(answer);
        }
        let messages: Vec<PublishedMessage> = answers.into_iter().flatten().collect();
        if let Some(key) = request_key {
            idempotency::record(tx, &format!("r:{key}"), &answer_text(&messages)?).await?;
        }
        Ok(Publication {
            messages,
            replayed: false,
        })
    }

    /// Stores a checked message body and its queue rows, for the endpoints
    /// that receive its type on `channels`. With `direct` (the transaction
    /// is the publish's own, so it may hold the tenant's budget window until
    /// it commits), deliveries go straight to this process's worker where it
    /// has room (see `crate::dispatch`; PostgreSQL).
    async fn publish_body(
        &self,
        tx: &mut TenantTx,
        event_type: &str,
        payload: String,
        now: DateTime<Utc>,
        channels: &[String],
        direct: bool,
    ) -> Result<Published, WebhookError> {
        let channels = serde_json::json!(channels);
        let mut direct = self
            .dispatch()
            .filter(|_| direct)
            .and_then(|dispatch| dispatch.prepare(tx.context()));
        let (id, endpoints, jobs) = if tx.backend() == Backend::Postgres {
            let id = MessageId(Uuid::now_v7());
            let body = direct.as_ref().map(|_| payload.clone());
            let publish = tx
                .query(sql::PUBLISH)
                .bind(id)
                .bind(event_type)
                .bind(now)
                .bind(channels)
                .bind(payload)
                .bind(Value::OptUuid(direct.as_ref().map(|d| d.lease)))
                .bind(Value::OptTime(direct.as_ref().map(|d| d.until)))
                .bind(direct.as_ref().map_or(0, |d| d.room.len() as i64))
                .bind(direct.as_ref().map_or(window_start(now), |d| d.window))
                .bind(Value::OptInt(
                    direct.as_ref().and_then(|d| d.per_minute).map(i64::from),
                ));
            let stored: Vec<PublishedRow> = tx
                .write_operational_all(&[MESSAGES, QUEUE, RATE_WINDOWS], publish)
                .await?;
            let endpoints = stored.len() as u64;
            let jobs = match (&direct, body) {
                (Some(d), Some(body)) => stored
                    .into_iter()
                    .filter(|row| row.leased)
                    .map(|row| Job {
                        message_id: id,
                        webhook: row.webhook,
                        attempt: 1,
                        payload: body.clone(),
                        lease: d.lease,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            (id, endpoints, jobs)
        } else {
            // Nobody listening: nothing to store (most tenants, most events).
            let subscribed = tx
                .query(sql::ANY_SUBSCRIBER)
                .bind(event_type)
                .bind(channels.clone());
            let (subscribed,): (bool,) = tx.fetch_one(subscribed).await?;
            if !subscribed {
                return Ok(Published {
                    id: MessageId(Uuid::now_v7()),
                    endpoints: 0,
                });
            }
            let id = self.store_message(tx, event_type, payload, now).await?;
            // One writer at a time: the budget left is read, then spent.
            let mut most = direct.as_ref().map_or(0, |d| d.room.len() as i64);
            if let Some(d) = &direct
                && let Some(limit) = d.per_minute
            {
                most = most.min(dispatch::budget_left(tx, d.window, limit).await?);
            }
            let lease = direct.as_ref().filter(|_| most > 0);
            let fan_out = tx
                .query(sql::FAN_OUT)
                .bind(id)
                .bind(event_type)
                .bind(now)
                .bind(channels)
                .bind(Value::OptUuid(lease.map(|d| d.lease)))
                .bind(Value::OptTime(lease.map(|d| d.until)))
                .bind(most);
            let endpoints = tx.write_operational(QUEUE, fan_out).await?;
            let jobs = match lease {
                Some(d) => dispatch::leased_on_sqlite(tx, d.lease, d.per_minute.is_some()).await?,
                None => Vec::new(),
            };
            (id, endpoints, jobs)
        };
        if endpoints > jobs.len() as u64 {
            tx.notify(crate::schema::CHANNEL).await?;
        }
        if let Some(mut direct) = direct.take() {
            direct.room.keep(jobs.len());
            if !jobs.is_empty() {
                let handoff = Handoff {
                    tenant: tx.tenant_id(),
                    jobs,
                    room: direct.room,
                };
                let dispatch = direct.dispatch;
                tx.after_commit(move || dispatch.hand_over(handoff));
            }
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
        let now = Utc::now().trunc_subsecs(3);
        let payload = self.message_body(TEST_EVENT, data, now)?;
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
        now: DateTime<Utc>,
    ) -> Result<String, WebhookError> {
        match self.catalogue().check(event_type, &data) {
            Ok(()) => {}
            Err(Refused::Unknown) => {
                return Err(WebhookError::Invalid(format!(
                    "unknown event type `{event_type}`: add it to the catalogue first"
                )));
            }
            Err(Refused::Schema(violations)) => {
                return Err(WebhookError::Schema {
                    message: None,
                    event_type: event_type.to_owned(),
                    violations,
                });
            }
        }
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
        Ok(payload)
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

fn answer_text(answer: &impl Serialize) -> Result<String, WebhookError> {
    serde_json::to_string(answer)
        .map_err(|e| WebhookError::Store(tenantkit::Error::Internal(format!("an answer: {e}"))))
}

fn stored_answer<T: serde::de::DeserializeOwned>(answer: &str) -> Result<T, WebhookError> {
    serde_json::from_str(answer).map_err(|e| {
        WebhookError::Store(tenantkit::Error::Internal(format!(
            "a stored idempotency answer does not read back: {e}"
        )))
    })
}

/// The event `POST /webhooks/{id}/test` sends.
pub const TEST_EVENT: &str = "webhook.test";
