//! Where events live: the crate's migrations (its own history table), the
//! `events` table (operational records, written through
//! `TenantTx::write_operational`) and, on PostgreSQL, its partitions: one
//! per UTC day, each split four ways by tenant, created ahead of time and
//! dropped whole for retention by owner-defined functions the runtime role
//! may call ([`ENSURE_PARTITIONS`], [`DROP_PARTITIONS_BEFORE`]).

use chrono::{Days, NaiveDate};
use tenantkit::{
    Db,
    store::{Maintenance, OperationalTable, Value},
};

/// Raw events.
pub const EVENTS: OperationalTable = OperationalTable::new("events");

/// How far back an event may be (see [`crate::event::MAX_BEHIND`]), in days,
/// and how far ahead partitions are made.
pub const DAYS_BACK: u64 = 35;
/// Days of partitions made ahead of today.
pub const DAYS_AHEAD: u64 = 7;

/// Creates the missing day partitions of a span: `(from, days)`.
pub const ENSURE_PARTITIONS: Maintenance = Maintenance::new(crate::sql::ENSURE_PARTITIONS);
/// Drops the day partitions before a day (at least one day ago).
pub const DROP_PARTITIONS_BEFORE: Maintenance =
    Maintenance::new(crate::sql::DROP_PARTITIONS_BEFORE);

/// Analytics' migrations (PostgreSQL, SQLite), in their own history table.
pub fn migrations() -> tenantkit::store::Migrations {
    tenantkit::migrations!(
        "_tenantkit_analytics_migrations",
        "./migrations/postgres",
        "./migrations/sqlite"
    )
}

/// Applies the analytics migrations (after tenantkit's; as the owner on PostgreSQL).
pub async fn migrate(db: &Db) -> tenantkit::Result<()> {
    db.apply_migrations(&migrations()).await
}

/// Writes the retention floor into the database (PostgreSQL; as the owner,
/// as `migrate` does from `analytics.retention_days`): partitions younger
/// than `days` can then never be dropped, whatever a caller passes to
/// [`drop_partitions_before`]. Without a floor nothing is dropped.
pub async fn set_retention_floor(db: &Db, days: u32) -> tenantkit::Result<()> {
    db.set_owner_setting(RETENTION_SETTING, &days.to_string())
        .await
}

/// The owner setting holding the retention floor, in days.
pub const RETENTION_SETTING: &str = "analytics.retention_days";

/// Makes sure every day an event may be stamped with has its partition:
/// from [`DAYS_BACK`] days before `today` to [`DAYS_AHEAD`] after. Returns
/// how many days were made (0 on SQLite, or when all exist).
pub async fn ensure_partitions(db: &Db, today: NaiveDate) -> tenantkit::Result<i64> {
    let from = today
        .checked_sub_days(Days::new(DAYS_BACK))
        .unwrap_or(today);
    let days = (DAYS_BACK + 1 + DAYS_AHEAD) as i64;
    db.maintain(
        &ENSURE_PARTITIONS,
        vec![Value::Text(from.to_string()), Value::Int(days)],
    )
    .await
}

/// Drops the partitions of days before `before` (retention); returns how
/// many days went.
pub async fn drop_partitions_before(db: &Db, before: NaiveDate) -> tenantkit::Result<i64> {
    db.maintain(
        &DROP_PARTITIONS_BEFORE,
        vec![Value::Text(before.to_string())],
    )
    .await
}
