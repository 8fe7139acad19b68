//! # tenantkit-webhooks
//!
//! Webhooks for the tenants of a tenantkit platform. This crate is being
//! built in steps (see the project's issue tracker); what is here now:
//!
//! - [`signature`]: Standard Webhooks signatures (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`), with two signatures while a
//!   secret is rotated; the one place deliveries are signed.
//! - [`ssrf`]: the one place that decides whether a URL or an address may be
//!   contacted, used at registration and (next) by the delivery worker's
//!   resolver at every connection.
//!
//! - [`secret_box`]: endpoint secrets encrypted at rest (XChaCha20-Poly1305,
//!   bound to their row, with key rotation).
//! - [`endpoints`]: [`Webhooks`], the tenant's endpoints (create, list, get,
//!   update, delete, rotate the secret) through `tenantkit::TenantTx`, so
//!   every change is audited and tenant-scoped; its own migrations and
//!   history table.
//! - [`catalogue`]: the event types endpoints subscribe to, with examples.
//! - [`outbox`]: [`Webhooks::publish`], the transactional outbox (a message
//!   and its queue rows in the caller's transaction).
//! - [`retry`]: the retry schedule (1 s, 5 s, 30 s, 5 min, 1 h, ±10 %, then
//!   the dead letter), with the receiver's `Retry-After`.
//! - [`transport`]: one delivery attempt over HTTP (vetted at every
//!   connection, no redirects, 10 s, size limits) and its outcome.
//!
//! Still to come: the delivery worker with retries
//! and dead letters, the fair per-tenant rate limit, and the routes of the
//! reference server.

pub mod catalogue;
pub mod deliveries;
pub mod endpoints;
pub mod outbox;
pub mod queue;
pub mod retention;
pub mod retry;
pub mod secret_box;
pub mod signature;
pub mod ssrf;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transport;
pub mod worker;

pub use endpoints::{
    CreatedWebhook, NewWebhook, Webhook, WebhookError, WebhookId, WebhookPatch, WebhookStatus,
    Webhooks,
};
