//! The crate's tables as its code names them, its wake-up channel, and its
//! migrations: what every other module of the crate may know, knowing
//! nothing of them.
//!
//! `webhooks` (endpoints) is audited and goes through `TenantTx::insert` and
//! friends; the tables below are operational (unaudited, still scoped to the
//! tenant) and are written with `TenantTx::write_operational`.

use tenantkit::store::OperationalTable;

/// Published messages, one per event.
pub const MESSAGES: OperationalTable = OperationalTable::new("webhook_messages");
/// Deliveries to make: one per message and endpoint.
pub const QUEUE: OperationalTable = OperationalTable::new("webhook_queue");
/// The attempt log: one row per delivery attempt.
pub const DELIVERIES: OperationalTable = OperationalTable::new("webhook_deliveries");
/// Since when each endpoint has been failing.
pub const HEALTH: OperationalTable = OperationalTable::new("webhook_health");
/// Idempotency keys of publishing over HTTP, with their first answers.
pub const IDEMPOTENCY: OperationalTable = OperationalTable::new("webhook_idempotency");
/// Each tenant's delivery budget for the current minute.
pub const RATE_WINDOWS: OperationalTable = OperationalTable::new("webhook_rate_windows");

/// The notification channel new deliveries are announced on (PostgreSQL).
pub const CHANNEL: &str = "tenantkit_webhooks";

/// Webhooks' migrations (PostgreSQL, SQLite), in their own history table.
pub fn migrations() -> tenantkit::store::Migrations {
    tenantkit::migrations!(
        "_tenantkit_webhooks_migrations",
        "./migrations/postgres",
        "./migrations/sqlite"
    )
}
