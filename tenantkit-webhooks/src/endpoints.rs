//! Endpoints: a tenant's webhook URLs, stored through `TenantTx` (so every
//! change is audited and tenant-scoped), their URLs vetted by
//! [`crate::ssrf`], their secrets sealed by [`crate::secret_box`].

use std::{collections::BTreeMap, fmt, str::FromStr, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tenantkit::{
    Error, PageRequest, TenantId, TenantTx, audit::Audited, problem::Problem, store::Value,
};
use uuid::Uuid;

use crate::{
    catalogue::{ALL_EVENTS, EventCatalogue},
    headers::{CustomHeaders, HeaderRefusal},
    secret_box::{SecretBox, SecretBoxError},
    signature::SigningSecret,
    sql,
    ssrf::{UrlPolicy, UrlRefusal},
};

/// Identifies a webhook endpoint within its tenant.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
pub struct WebhookId(Uuid);

impl WebhookId {
    /// A new, time-ordered id.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for WebhookId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl From<WebhookId> for Value {
    fn from(id: WebhookId) -> Self {
        Value::Uuid(id.0)
    }
}

/// A secret as stored: sealed, and redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, sqlx::Type)]
#[sqlx(transparent)]
pub struct Sealed(String);

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed([redacted])")
    }
}

/// Whether an endpoint receives deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WebhookStatus {
    /// Receives deliveries.
    Active,
    /// Receives nothing until re-enabled (by the tenant, or after `410 Gone`
    /// or failing for too long).
    Disabled,
}

impl WebhookStatus {
    fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Active => "active",
            WebhookStatus::Disabled => "disabled",
        }
    }
}

impl TryFrom<String> for WebhookStatus {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        match s.as_str() {
            "active" => Ok(WebhookStatus::Active),
            "disabled" => Ok(WebhookStatus::Disabled),
            other => Err(Error::invalid(format!("unknown webhook status `{other}`"))),
        }
    }
}

/// A webhook endpoint. Its secrets are never serialized: not to API
/// responses, not to the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its id.
    pub id: WebhookId,
    /// Where deliveries go (vetted when set, and at every connection).
    pub url: String,
    /// A note for people.
    pub description: String,
    /// The event types it receives: names, wildcards (`user.*`: every type
    /// starting with `user.`), or `["*"]` for all.
    #[sqlx(json)]
    pub event_types: Vec<String>,
    /// Its channels: it receives only messages published on one of them;
    /// none (`[]`), every message of its types.
    #[sqlx(json)]
    pub channels: Vec<String>,
    /// The names of its custom headers, sent with every delivery; their
    /// values are stored sealed and never shown.
    #[sqlx(json)]
    pub header_names: Vec<String>,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    secret_headers: Option<Sealed>,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    secret: Sealed,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    previous_secret: Option<Sealed>,
    /// While a rotated-out secret still signs alongside the new one: until when.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Whether it receives deliveries.
    #[sqlx(try_from = "String")]
    pub status: WebhookStatus,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// When it was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Audited for Webhook {
    const RESOURCE_TYPE: &'static str = "webhook";

    fn resource_id(&self) -> String {
        self.id.to_string()
    }
}

impl Webhook {
    /// Whether it subscribes to events of `event_type`: by name, by a
    /// wildcard `prefix.*`, or `*`.
    pub fn subscribes_to(&self, event_type: &str) -> bool {
        self.event_types
            .iter()
            .any(|pattern| matches_type(pattern, event_type))
    }

    /// Whether it receives a message of `event_type` published on
    /// `channels`: it subscribes to the type, and has no channels or shares
    /// one. (The outbox routes by the same rule in SQL.)
    pub fn receives(&self, event_type: &str, channels: &[String]) -> bool {
        self.subscribes_to(event_type)
            && (self.channels.is_empty() || self.channels.iter().any(|c| channels.contains(c)))
    }
}

/// Whether the subscription `pattern` (a name, `prefix.*` or `*`) takes
/// `event_type`.
pub fn matches_type(pattern: &str, event_type: &str) -> bool {
    pattern == ALL_EVENTS
        || pattern == event_type
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| prefix.ends_with('.') && event_type.starts_with(prefix))
}

/// At most this many channels on an endpoint or a message.
pub const MAX_CHANNELS: usize = 10;

/// Checks channel names (1 to 128 of `A-Z a-z 0-9 _ . : -`, at most
/// [`MAX_CHANNELS`]); each once, in the order given.
pub fn check_channels(channels: &[String]) -> Result<Vec<String>, WebhookError> {
    if channels.len() > MAX_CHANNELS {
        return Err(WebhookError::Invalid(format!(
            "`channels` may name at most {MAX_CHANNELS} channels"
        )));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
    let mut out: Vec<String> = Vec::with_capacity(channels.len());
    for c in channels {
        if c.is_empty() || c.len() > 128 || !c.bytes().all(allowed) {
            return Err(WebhookError::Invalid(format!(
                "channel `{c}` must be 1 to 128 of A-Z, a-z, 0-9, `_`, `.`, `:` and `-`"
            )));
        }
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// `POST /webhooks` body.
// `Debug` (below) shows the names of its headers only.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewWebhook {
    /// An absolute `https` URL whose host resolves to public addresses
    /// only (checked at registration and at every delivery).
    pub url: String,
    /// 1 to 100 event types from the catalogue (`GET /webhooks/event-types`),
    /// wildcards (`user.*`: every type starting with `user.`; at least one
    /// must exist), or `["*"]`.
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub event_types: Vec<String>,
    /// Up to 10 channels (1 to 128 of `A-Z a-z 0-9 _ . : -`): it then
    /// receives only messages published on one of them. Default: none, every
    /// message of its types.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub channels: Vec<String>,
    /// Custom headers sent with every delivery, checked by
    /// [`CustomHeaders::check`] (its OpenAPI description:
    /// [`crate::headers::openapi_schema`]).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::headers::openapi_schema))]
    pub headers: BTreeMap<String, String>,
    /// A note for people (at most 500 characters once white space around it
    /// is trimmed, no control characters).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]([^\u0000-\u001f\u007f-\u009f]{0,498}[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f])?)?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
        )
    )]
    pub description: Option<String>,
}

/// `PATCH /webhooks/{id}` body: absent fields stay as they are.
// `Debug` (below) shows the names of its headers only.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPatch {
    /// A new URL.
    pub url: Option<String>,
    /// New event types (1 to 100, as when creating).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub event_types: Option<Vec<String>>,
    /// New channels (up to 10, as when creating; `[]` for none).
    #[cfg_attr(feature = "openapi", schema(max_items = 10))]
    pub channels: Option<Vec<String>>,
    /// New custom headers, replacing all of them (`{}` for none).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::headers::openapi_patch_schema))]
    pub headers: Option<BTreeMap<String, String>>,
    /// A new description (as when creating).
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f]([^\u0000-\u001f\u007f-\u009f]{0,498}[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0000-\u001f\u007f-\u009f])?)?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
        )
    )]
    pub description: Option<String>,
    /// `active` re-enables a disabled endpoint (and clears its reason).
    pub status: Option<WebhookStatus>,
}

impl fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhook")
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("channels", &self.channels)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("description", &self.description)
            .finish()
    }
}

impl fmt::Debug for WebhookPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookPatch")
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("channels", &self.channels)
            .field(
                "headers",
                &self.headers.as_ref().map(|h| h.keys().collect::<Vec<_>>()),
            )
            .field("description", &self.description)
            .field("status", &self.status)
            .finish()
    }
}

/// An endpoint with its signing secret, shown this once.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedWebhook {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_...`: keep it to verify deliveries; it cannot be shown again.
    pub secret: String,
}

impl fmt::Debug for CreatedWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedWebhook")
            .field("webhook", &self.webhook)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Why a webhook operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL is malformed or may not be contacted (`422`).
    #[error("the webhook URL is refused: {0}")]
    Url(#[from] UrlRefusal),
    /// Another input is invalid (`422`).
    #[error("{0}")]
    Invalid(String),
    /// A message's `data` does not satisfy its event type's schema (`422`,
    /// with the violations).
    #[error("{}`data` does not satisfy the `{event_type}` schema: {}", message.map(|i| format!("message {i}: ")).unwrap_or_default(), violations.first().map(|v| format!("at `{}`: {}", v.path, v.reason)).unwrap_or_default())]
    Schema {
        /// The message's index in a batch.
        message: Option<usize>,
        /// Its event type.
        event_type: String,
        /// Where and why, the first ones.
        violations: Vec<crate::catalogue::Violation>,
    },
    /// The request conflicts with an earlier one: an idempotency key or a
    /// message id used for another request (`409`).
    #[error("{0}")]
    Conflict(String),
    /// A stored secret does not open (wrong or missing key): `500`.
    #[error("a webhook secret could not be opened: {0}")]
    Sealed(#[from] SecretBoxError),
    /// The store failed, or the endpoint does not exist (`404`).
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<HeaderRefusal> for WebhookError {
    fn from(refusal: HeaderRefusal) -> Self {
        WebhookError::Invalid(refusal.to_string())
    }
}

impl From<&WebhookError> for Problem {
    fn from(err: &WebhookError) -> Self {
        use http::StatusCode;
        match err {
            WebhookError::Url(refusal) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Webhook URL refused")
                    .with_detail(refusal.to_string())
            }
            WebhookError::Invalid(detail) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid request")
                    .with_detail(detail.clone())
            }
            WebhookError::Schema {
                message,
                violations,
                ..
            } => {
                let mut problem =
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid event data")
                        .with_detail(err.to_string())
                        .with_extension(
                            "violations",
                            serde_json::to_value(violations).unwrap_or_default(),
                        );
                if let Some(i) = message {
                    problem = problem.with_extension("message", *i);
                }
                problem
            }
            WebhookError::Conflict(detail) => {
                Problem::new(StatusCode::CONFLICT, "Conflict").with_detail(detail.clone())
            }
            WebhookError::Sealed(e) => {
                // Names a key id at most, never a key or a secret.
                tracing::error!(error = %e, "a webhook secret could not be opened");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
                    .with_detail("the server failed; the error has been logged")
            }
            WebhookError::Store(e) => Problem::from(e),
        }
    }
}

/// See `Inner::dispatch`.
pub(crate) type DispatchSlot = Arc<std::sync::RwLock<Option<Arc<dyn std::any::Any + Send + Sync>>>>;

/// Webhooks of a platform: the URL policy, the secret keys and the event
/// catalogue. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug)]
struct Inner {
    policy: UrlPolicy,
    secrets: SecretBox,
    catalogue: EventCatalogue,
    rotation_grace: Duration,
    /// This process's running worker, for publishes to hand deliveries to
    /// (shared by every clone): an `outbox::dispatch::Dispatch`, opaque
    /// here, since endpoints come before the outbox.
    dispatch: DispatchSlot,
}

impl Webhooks {
    /// Endpoints vetted by `policy`, secrets sealed by `secrets`, event
    /// types from `catalogue`; rotated secrets keep signing for 24 hours.
    pub fn new(policy: UrlPolicy, secrets: SecretBox, catalogue: EventCatalogue) -> Self {
        Self {
            inner: Arc::new(Inner {
                policy,
                secrets,
                catalogue,
                rotation_grace: Duration::hours(24),
                dispatch: Arc::default(),
            }),
        }
    }

    /// How long a rotated-out secret keeps signing alongside the new one.
    pub fn with_rotation_grace(mut self, grace: Duration) -> Self {
        Arc::make_mut(&mut self.inner).rotation_grace = grace;
        self
    }

    /// Applies the webhooks migrations (after tenantkit's; as the owner on PostgreSQL).
    pub async fn migrate(db: &tenantkit::Db) -> tenantkit::Result<()> {
        db.apply_migrations(&crate::schema::migrations()).await
    }

    /// The event types endpoints can subscribe to.
    pub fn catalogue(&self) -> &EventCatalogue {
        &self.inner.catalogue
    }

    /// Where this process's running worker waits for publishes.
    pub(crate) fn dispatch_slot(&self) -> &DispatchSlot {
        &self.inner.dispatch
    }

    /// The URL policy (registration and delivery use the same).
    pub fn policy(&self) -> &UrlPolicy {
        &self.inner.policy
    }

    /// Creates an endpoint with a new secret, shown this once.
    pub async fn create(
        &self,
        tx: &mut TenantTx,
        new: &NewWebhook,
    ) -> Result<CreatedWebhook, WebhookError> {
        let url = self.inner.policy.vet_url_resolving(&new.url).await?;
        let event_types = self.event_types(&new.event_types)?;
        let channels = check_channels(&new.channels)?;
        let headers = CustomHeaders::check(&new.headers)?;
        let description = description(new.description.as_deref().unwrap_or_default())?;
        let id = WebhookId::new();
        let secret = SigningSecret::generate();
        let sealed = self.seal(tx.tenant_id(), id, &secret);
        let sealed_headers = self.seal_headers(tx.tenant_id(), id, &headers);
        let now = Utc::now();
        let q = tx
            .query(sql::INSERT_WEBHOOK)
            .bind(id)
            .bind(url.as_str())
            .bind(description)
            .bind(serde_json::json!(event_types))
            .bind(sealed)
            .bind(WebhookStatus::Active.as_str())
            .bind(now)
            .bind(serde_json::json!(channels))
            .bind(serde_json::json!(headers.names()))
            .bind(sealed_headers);
        let webhook: Webhook = tx.insert(q).await?;
        Ok(CreatedWebhook {
            webhook,
            secret: secret.expose(),
        })
    }

    /// The tenant's endpoints, oldest first.
    pub async fn list(
        &self,
        tx: &mut TenantTx,
        page: PageRequest<WebhookId>,
    ) -> Result<Vec<Webhook>, WebhookError> {
        let limit = tenantkit::validate::limit(page.limit)?;
        let q = tx
            .query(sql::LIST_WEBHOOKS)
            .bind(Value::OptUuid(page.after.map(|id| id.0)))
            .bind(limit);
        Ok(tx.fetch_all(q).await?)
    }

    /// One endpoint; another tenant's is `NotFound`.
    pub async fn get(&self, tx: &mut TenantTx, id: WebhookId) -> Result<Webhook, WebhookError> {
        let q = tx.query(sql::GET_WEBHOOK).bind(id);
        Ok(tx
            .fetch_optional(q)
            .await?
            .ok_or(Error::NotFound("webhook"))?)
    }

    /// Changes an endpoint; `status: active` re-enables it.
    pub async fn update(
        &self,
        tx: &mut TenantTx,
        id: WebhookId,
        patch: &WebhookPatch,
    ) -> Result<Webhook, WebhookError> {
        let current = self.get(tx, id).await?;
        let url = match &patch.url {
            Some(url) => self.inner.policy.vet_url_resolving(url).await?.to_string(),
            None => current.url.clone(),
        };
        let event_types = match &patch.event_types {
            Some(types) => self.event_types(types)?,
            None => current.event_types.clone(),
        };
        let description = match &patch.description {
            Some(d) => description(d)?,
            None => current.description.clone(),
        };
        let channels = match &patch.channels {
            Some(channels) => check_channels(channels)?,
            None => current.channels.clone(),
        };
        let (header_names, sealed_headers) = match &patch.headers {
            Some(headers) => {
                let headers = CustomHeaders::check(headers)?;
                let sealed = self.seal_headers(tx.tenant_id(), id, &headers);
                (headers.names(), sealed)
            }
            None => (
                current.header_names.clone(),
                current.secret_headers.clone().map(|s| s.0),
            ),
        };
        let (status, reason, disabled_at) = match patch.status {
            Some(WebhookStatus::Active) => (WebhookStatus::Active, None, None),
            Some(WebhookStatus::Disabled) => (
                WebhookStatus::Disabled,
                Some("disabled by the tenant".to_owned()),
                Some(Utc::now()),
            ),
            None => (
                current.status,
                current.disabled_reason.clone(),
                current.disabled_at,
            ),
        };
        let q = tx
            .query(sql::UPDATE_WEBHOOK)
            .bind(id)
            .bind(url)
            .bind(serde_json::json!(event_types))
            .bind(description)
            .bind(status.as_str())
            .bind(reason)
            .bind(disabled_at)
            .bind(Utc::now())
            .bind(serde_json::json!(channels))
            .bind(serde_json::json!(header_names))
            .bind(sealed_headers);
        let updated = tx.update(&current, q).await?;
        if current.status == WebhookStatus::Active && status == WebhookStatus::Disabled {
            stop_pending(
                tx,
                Some(id),
                "endpoint disabled: disabled by the tenant",
                Utc::now(),
            )
            .await?;
        }
        Ok(updated)
    }

    /// Deletes an endpoint.
    pub async fn delete(&self, tx: &mut TenantTx, id: WebhookId) -> Result<(), WebhookError> {
        let current = self.get(tx, id).await?;
        let q = tx.query(sql::DELETE_WEBHOOK).bind(id);
        Ok(tx.delete(&current, q).await?)
    }

    /// Stops every waiting delivery of the tenant (`failed`, with
    /// `reason`; none is sent or retried after this commits), as its
    /// deletion starts. Returns how many were waiting.
    pub async fn stop_deliveries(
        &self,
        tx: &mut TenantTx,
        reason: &str,
    ) -> Result<u64, WebhookError> {
        stop_pending(tx, None, reason, Utc::now()).await
    }

    /// Gives an endpoint a new secret, shown this once. The old one keeps
    /// signing alongside it for the rotation grace period (24 h by default).
    pub async fn rotate_secret(
        &self,
        tx: &mut TenantTx,
        id: WebhookId,
    ) -> Result<CreatedWebhook, WebhookError> {
        let current = self.get(tx, id).await?;
        let secret = SigningSecret::generate();
        let sealed = self.seal(tx.tenant_id(), id, &secret);
        let now = Utc::now();
        let q = tx
            .query(sql::ROTATE_SECRET)
            .bind(id)
            .bind(now + self.inner.rotation_grace)
            .bind(sealed)
            .bind(now);
        let webhook = tx.update_as("webhook.secret_rotated", &current, q).await?;
        Ok(CreatedWebhook {
            webhook,
            secret: secret.expose(),
        })
    }

    /// Disables an endpoint for `reason` (the worker: `410 Gone`, or failing
    /// too long), audited as `webhook.disabled` by the system; its pending
    /// deliveries stop (state `failed`, recoverable). Nothing when it is
    /// gone or disabled already.
    pub(crate) async fn disable_by_worker(
        &self,
        tx: &mut TenantTx,
        id: WebhookId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(), WebhookError> {
        let current = match self.get(tx, id).await {
            Ok(current) if current.status == WebhookStatus::Active => current,
            Ok(_) | Err(WebhookError::Store(Error::NotFound(_))) => return Ok(()),
            Err(e) => return Err(e),
        };
        let q = tx
            .query(sql::DISABLE_WEBHOOK)
            .bind(id)
            .bind(reason.clone())
            .bind(now);
        let _: Webhook = tx.update_as("webhook.disabled", &current, q).await?;
        stop_pending(tx, Some(id), &format!("endpoint disabled: {reason}"), now).await?;
        tracing::warn!(tenant_id = %tx.tenant_id(), webhook_id = %id, %reason, "webhook endpoint disabled");
        Ok(())
    }

    /// The secrets that sign a delivery to `webhook` at `now`: the current
    /// one, and the rotated-out one until it expires.
    pub fn signing_secrets(
        &self,
        webhook: &Webhook,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigningSecret>, WebhookError> {
        let aad = aad(webhook.tenant_id, webhook.id);
        let open = |sealed: &Sealed| -> Result<SigningSecret, WebhookError> {
            let bytes = self.inner.secrets.open(&sealed.0, &aad)?;
            let text = String::from_utf8(bytes).map_err(|_| SecretBoxError::Tampered)?;
            SigningSecret::parse(&text).map_err(|_| WebhookError::Sealed(SecretBoxError::Tampered))
        };
        let mut secrets = vec![open(&webhook.secret)?];
        if let (Some(previous), Some(until)) =
            (&webhook.previous_secret, webhook.previous_secret_expires_at)
            && now < until
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }

    /// The custom headers sent with every delivery to `webhook`.
    pub fn custom_headers(&self, webhook: &Webhook) -> Result<CustomHeaders, WebhookError> {
        let Some(sealed) = &webhook.secret_headers else {
            return Ok(CustomHeaders::default());
        };
        let plain = self
            .inner
            .secrets
            .open(&sealed.0, &headers_aad(webhook.tenant_id, webhook.id))?;
        CustomHeaders::from_plain(&plain).ok_or(WebhookError::Sealed(SecretBoxError::Tampered))
    }

    /// Seals custom headers for the row of `id` (none: nothing stored).
    fn seal_headers(
        &self,
        tenant: TenantId,
        id: WebhookId,
        headers: &CustomHeaders,
    ) -> Option<String> {
        (!headers.is_empty()).then(|| {
            self.inner
                .secrets
                .seal(&headers.to_plain(), &headers_aad(tenant, id))
        })
    }

    fn seal(&self, tenant: TenantId, id: WebhookId, secret: &SigningSecret) -> String {
        self.inner
            .secrets
            .seal(secret.expose().as_bytes(), &aad(tenant, id))
    }

    fn event_types(&self, types: &[String]) -> Result<Vec<String>, WebhookError> {
        if types.is_empty() {
            return Err(WebhookError::Invalid(
                "`event_types` must name at least one event type, or `*` for all".into(),
            ));
        }
        if types.len() > 100 {
            return Err(WebhookError::Invalid(
                "`event_types` may name at most 100 event types".into(),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(types.len());
        for t in types {
            let known = if let Some(prefix) = t.strip_suffix(".*") {
                // A wildcard must be well formed and take some type now.
                crate::catalogue::valid_name(prefix)
                    && self
                        .inner
                        .catalogue
                        .types()
                        .iter()
                        .any(|known| matches_type(t, &known.name))
            } else {
                t == ALL_EVENTS || self.inner.catalogue.get(t).is_some()
            };
            if !known {
                return Err(WebhookError::Invalid(format!(
                    "unknown event type `{t}`; see GET /webhooks/event-types \
                     (a wildcard `prefix.*` must take at least one of them)"
                )));
            }
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        if out.iter().any(|t| t == ALL_EVENTS) {
            out = vec![ALL_EVENTS.to_owned()];
        }
        Ok(out)
    }
}

/// Waiting deliveries stop (of one endpoint, or all of the tenant's):
/// `failed`, with the reason, to be recovered once it is enabled again.
async fn stop_pending(
    tx: &mut TenantTx,
    id: Option<WebhookId>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, WebhookError> {
    let q = tx
        .query(sql::STOP_PENDING_DELIVERIES)
        .bind(Value::OptUuid(id.map(|id| id.0)))
        .bind(reason)
        .bind(now);
    Ok(tx.write_operational(crate::schema::QUEUE, q).await?)
}

/// What binds a sealed secret to its row.
fn aad(tenant: TenantId, id: WebhookId) -> Vec<u8> {
    format!("webhooks/{tenant}/{id}").into_bytes()
}

/// What binds an endpoint's sealed headers to its row (and keeps them
/// apart from its secrets).
fn headers_aad(tenant: TenantId, id: WebhookId) -> Vec<u8> {
    format!("webhooks/{tenant}/{id}/headers").into_bytes()
}

fn description(text: &str) -> Result<String, WebhookError> {
    let text = text.trim();
    if text.chars().count() > 500 || text.chars().any(char::is_control) {
        return Err(WebhookError::Invalid(
            "`description` must be at most 500 characters, without control characters".into(),
        ));
    }
    Ok(text.to_owned())
}
