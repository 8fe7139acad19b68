//! # tenantkit-webhooks
//!
//! Webhooks for the tenants of a tenantkit platform: endpoints, a
//! transactional outbox, a delivery worker with retries and dead letters,
//! signatures and SSRF defence.
//!
//! - [`schema`]: the crate's tables, its wake-up channel and its migrations.
//! - [`sql`]: every SQL statement of the crate, by name.
//! - [`signature`]: Standard Webhooks signatures (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`), with two signatures while a
//!   secret is rotated; the one place deliveries are signed.
//! - [`ssrf`]: the one place that decides whether a URL or an address may be
//!   contacted, used at registration and by the delivery worker's resolver
//!   at every connection.
//! - [`secret_box`]: endpoint secrets encrypted at rest (XChaCha20-Poly1305,
//!   bound to their row, with key rotation).
//! - [`endpoints`]: [`Webhooks`], the tenant's endpoints (create, list, get,
//!   update, delete, rotate the secret) through `tenantkit::TenantTx`, so
//!   every change is audited and tenant-scoped; its own migrations and
//!   history table.
//! - [`headers`]: custom headers per endpoint (sealed like secrets, names
//!   only shown) and the deny-list that keeps the platform's own headers
//!   its own; the one place they are checked.
//! - [`catalogue`]: the event types endpoints subscribe to, with examples.
//! - [`idempotency`]: the keys that make publishing over HTTP safe to
//!   retry (a request's `Idempotency-Key`, a message's own `id`), kept at
//!   least 24 hours.
//! - [`outbox`]: [`Webhooks::publish`], the transactional outbox (a message
//!   and its queue rows in the caller's transaction), and
//!   [`Webhooks::publish_messages`], the same for messages from outside
//!   (`POST /webhooks/messages`): batches, all or none, and idempotency;
//!   its `dispatch` hands a publish's deliveries to this process's running
//!   worker already leased, sent as soon as the publish commits.
//! - [`queue`]: the delivery queue as the worker sees it, one tenant at a
//!   time: due deliveries claimed under a lease and the tenant's rate
//!   budget, outcomes written, the rest released.
//! - [`worker`]: the delivery worker (`run(shutdown)`), which any number of
//!   processes may run against one database.
//! - [`retry`]: the retry schedule (1 s, 5 s, 30 s, 5 min, 1 h, ±10 %, then
//!   the dead letter), with the receiver's `Retry-After`.
//! - [`transport`]: one delivery attempt over HTTP (vetted at every
//!   connection, no redirects, 10 s, size limits) and its outcome.
//! - [`deliveries`]: deliveries, attempts and dead letters as a tenant sees
//!   them; retry, replay and recover.
//! - [`retention`]: messages past the retention period removed with their
//!   deliveries and attempts (unless one is still pending).
//!
//! [`Webhooks`] is the tenant-facing API; its methods are grouped by
//! concern, one module each: endpoints ([`Webhooks::create`], `list`, `get`,
//! `update`, `delete`, `rotate_secret`, `stop_deliveries`, `migrate`) in
//! [`endpoints`], publishing ([`Webhooks::publish`], `publish_messages`, `send_test`) in
//! [`outbox`], deliveries ([`Webhooks::deliveries`], `attempts`,
//! `dead_letters`, `retry_delivery`, `recover`) in [`deliveries`], and
//! [`Webhooks::purge_expired`] in [`retention`]. What only the worker does
//! to the queue (claim, record outcomes, release) is not on `Webhooks` but on
//! the crate-private queue type in [`queue`].
//!
//! The reference server (`tenantkit-server`) serves all of it over HTTP
//! (`/webhooks...`) and runs the worker under its supervisor.
//!
//! Publishing is part of the caller's transaction: the event is delivered
//! if and only if the change it announces commits.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{collections::HashMap, sync::Arc};
//!
//! use tenantkit::{Db, NewTenant, audit::Actor};
//! use tenantkit_webhooks::{
//!     NewWebhook, Webhooks,
//!     catalogue::EventCatalogue,
//!     secret_box::SecretBox,
//!     ssrf::{Lookup, UrlPolicy},
//! };
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! Webhooks::migrate(&db).await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! let acme = db.resolve_subdomain("acme").await?.unwrap();
//!
//! // Receivers must resolve to public addresses; this one is pinned.
//! let lookup = Lookup::Table(Arc::new(HashMap::from([(
//!     "hooks.example.com".to_owned(),
//!     vec!["93.184.215.14".parse().unwrap()],
//! )])));
//! let webhooks = Webhooks::new(
//!     UrlPolicy::strict().with_lookup(lookup),
//!     SecretBox::new([SecretBox::generate_key().as_str()]).unwrap(),
//!     // The built-in event types, and one of the application's own, whose
//!     // `data` must satisfy its JSON Schema.
//!     EventCatalogue::tenantkit()
//!         .with_schema(
//!             "invoice.paid",
//!             "An invoice was paid",
//!             serde_json::json!({ "type": "object", "required": ["amount"],
//!                                 "properties": { "amount": { "type": "integer" } } }),
//!             serde_json::json!({ "amount": 4200 }),
//!         )
//!         .unwrap(),
//! );
//!
//! let mut tx = db.begin(&acme).await?;
//! let endpoint = webhooks
//!     .create(&mut tx, &NewWebhook {
//!         url: "https://hooks.example.com/acme".into(),
//!         event_types: vec!["invoice.paid".into()],
//!         description: None,
//!         ..Default::default()
//!     })
//!     .await
//!     .unwrap();
//! assert!(endpoint.secret.starts_with("whsec_"), "shown once, stored sealed");
//! tx.commit().await?;
//!
//! // In the transaction of the change it announces:
//! let mut tx = db.begin(&acme).await?;
//! let published = webhooks
//!     .publish(&mut tx, "invoice.paid", serde_json::json!({ "amount": 4200 }))
//!     .await
//!     .unwrap();
//! tx.commit().await?;
//! assert_eq!(published.endpoints, 1, "queued for the one subscribed endpoint");
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

pub mod catalogue;
pub mod deliveries;
pub mod endpoints;
pub mod headers;
pub mod idempotency;
pub mod outbox;
pub mod queue;
pub mod retention;
pub mod retry;
pub mod schema;
pub mod secret_box;
pub mod signature;
pub mod sql;
/// SSRF defence, shared with core (single sign-on issuers): see [`tenantkit::ssrf`].
pub use tenantkit::ssrf;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;
pub mod worker;

pub use endpoints::{
    CreatedWebhook, NewWebhook, Webhook, WebhookError, WebhookId, WebhookPatch, WebhookStatus,
    Webhooks,
};
