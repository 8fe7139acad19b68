//! Writing events and keeping the rollups fresh: [`store`] inserts one
//! tenant's events and updates every rollup in the same transaction, so a
//! query reflects an event as soon as its flush commits; [`rebuild`]
//! recomputes a span of rollups from the raw events (an independent, SQL-only
//! derivation that the tests hold the incremental path to).
//!
//! The rollups (see the migration for the tables):
//!
//! - `event_counts`: events per UTC hour, type and name, and
//!   `event_type_counts` the same summed over names (what totals read);
//! - `event_daily_users`: the distinct users of each UTC day, and
//!   `event_daily_active` its size (DAU);
//! - `event_user_blocks`: each user's active days as bit maps over 64-day
//!   blocks starting every 32 days, so any 30-day window (rolling MAU) lies
//!   inside one block and is counted from one row per user.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Timelike, Utc};
use serde::Serialize;
use tenantkit::{Backend, Db, Result, TenantContext, TenantTx, store::OperationalTable};
use uuid::Uuid;

use crate::{event::Event, sql};

mod postgres;
mod sqlite;

/// Events per tenant, UTC hour, type and name.
pub const COUNTS: OperationalTable = OperationalTable::new("event_counts");
/// Events per tenant, UTC hour and type (`event_counts` summed over names).
pub const TYPE_COUNTS: OperationalTable = OperationalTable::new("event_type_counts");
/// The distinct users of each tenant and UTC day.
pub const DAILY_USERS: OperationalTable = OperationalTable::new("event_daily_users");
/// How many distinct users each tenant had each UTC day.
pub const DAILY_ACTIVE: OperationalTable = OperationalTable::new("event_daily_active");
/// Each user's active days, as bit maps over 64-day blocks.
pub const USER_BLOCKS: OperationalTable = OperationalTable::new("event_user_blocks");
/// Events ever stored per tenant and type, with the newest id (the live stream's counters).
pub const LIVE_TOTALS: OperationalTable = OperationalTable::new("event_live_totals");

/// Days between two block starts; each block spans twice this.
pub(crate) const BLOCK_STRIDE: i64 = 32;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// Days since 1970-01-01.
pub(crate) fn epoch_day(day: NaiveDate) -> i64 {
    (day - EPOCH).num_days()
}

pub(crate) fn from_epoch_day(n: i64) -> NaiveDate {
    EPOCH + chrono::Duration::days(n)
}

/// The block whose first 32 days hold `day` (the other block holding it
/// starts [`BLOCK_STRIDE`] days earlier).
pub(crate) fn block_of(day: NaiveDate) -> NaiveDate {
    from_epoch_day(epoch_day(day).div_euclid(BLOCK_STRIDE) * BLOCK_STRIDE)
}

/// The bit of `day` in the map of the block starting at `block`.
pub(crate) fn day_bit(block: NaiveDate, day: NaiveDate) -> i64 {
    let offset = epoch_day(day) - epoch_day(block);
    debug_assert!((0..64).contains(&offset), "{day} is not in block {block}");
    1i64 << offset
}

/// How SQLite stores a point in time (the sqlx encoding), so text compares
/// in time order; PostgreSQL parses the same text.
pub(crate) fn time_text(t: DateTime<Utc>) -> String {
    // At the precision both backends store: PostgreSQL would round a
    // nanosecond text up, maybe into the next hour or day.
    tenantkit::validate::storage_precision(t).to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// The start of `t`'s UTC hour.
pub(crate) fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_minute(0))
        .expect("truncating to the hour is always valid")
}

/// One event as the insert reads it (`json_to_recordset` / `json_each`).
#[derive(Serialize)]
struct Row<'a> {
    t: String,
    id: String,
    ty: &'a str,
    u: Option<&'a str>,
    n: Option<&'a str>,
    m: &'a serde_json::Map<String, serde_json::Value>,
}

/// A list of rows as the JSON text one statement reads.
fn json_rows<T: Serialize>(rows: &[T]) -> Result<String> {
    serde_json::to_string(rows)
        .map_err(|e| tenantkit::Error::Internal(format!("serializing analytics rows: {e}")))
}

/// Stores one tenant's events and updates its rollups, in `tx`; returns how
/// many events were stored (the events and their per-user rollups first,
/// then the shared totals).
pub async fn store(
    tx: &mut TenantTx,
    events: &[&Event],
    received_at: DateTime<Utc>,
) -> Result<u64> {
    let (stored, totals) = store_events(tx, events, received_at).await?;
    add_totals(tx, &totals).await?;
    Ok(stored)
}

/// What [`add_totals`] adds: events per hour, type and name, and users new
/// to each day. Many flushes update the same few rows of these, so a writer
/// adds them last, just before it commits, to hold their locks briefly.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    counts: Vec<CountRow>,
    type_counts: Vec<TypeCountRow>,
    per_day: Vec<DayRow>,
    live: Vec<LiveRow>,
}

/// Events of one type in this flush, and the newest one's id.
#[derive(Debug, Serialize)]
struct LiveRow {
    ty: String,
    c: i64,
    id: String,
    at: String,
}

#[derive(Debug, Serialize)]
struct TypeCountRow {
    ty: String,
    h: String,
    c: i64,
}

#[derive(Debug, Serialize)]
struct CountRow {
    ty: String,
    h: String,
    n: String,
    c: i64,
}

#[derive(Debug, Serialize)]
struct DayRow {
    d: NaiveDate,
    n: i64,
}

/// Inserts one tenant's events, the new (day, user) pairs and the users'
/// day maps; returns how many events were stored and the [`Totals`] still
/// to add.
pub(crate) async fn store_events(
    tx: &mut TenantTx,
    events: &[&Event],
    received_at: DateTime<Utc>,
) -> Result<(u64, Totals)> {
    if events.is_empty() {
        return Ok((0, Totals::default()));
    }
    let writer = writer(tx.backend());
    // Shared with other writers, exclusive for a rebuild of this tenant.
    writer.lock(tx, Lock::Shared).await?;

    let mut counts: BTreeMap<(&str, DateTime<Utc>, &str), i64> = BTreeMap::new();
    let mut active: BTreeSet<(NaiveDate, &str)> = BTreeSet::new();
    let mut rows = Vec::with_capacity(events.len());
    let mut live: BTreeMap<&str, (i64, String)> = BTreeMap::new();
    for event in events {
        // The rows travel as one JSON text, past the store's check of bound
        // text: an event built without validation is checked here.
        crate::event::check_text(&event.metadata).map_err(tenantkit::Error::invalid)?;
        for (field, text) in [("user_id", &event.user_id), ("name", &event.name)] {
            tenantkit::validate::text(field, text.as_deref().unwrap_or_default())?;
        }
        let hour = hour_of(event.timestamp);
        *counts
            .entry((
                event.event_type.as_str(),
                hour,
                event.name.as_deref().unwrap_or_default(),
            ))
            .or_default() += 1;
        if let Some(user) = &event.user_id {
            active.insert((event.timestamp.date_naive(), user.as_str()));
        }
        // Version 7: later events of a process get greater ids.
        let id = Uuid::now_v7().simple().to_string();
        let newest = live.entry(event.event_type.as_str()).or_default();
        newest.0 += 1;
        newest.1.clone_from(&id);
        rows.push(Row {
            t: time_text(event.timestamp),
            id,
            ty: &event.event_type,
            u: event.user_id.as_deref(),
            n: event.name.as_deref(),
            m: &event.metadata,
        });
    }
    let mut per_type: BTreeMap<(&str, DateTime<Utc>), i64> = BTreeMap::new();
    for ((ty, hour, _), c) in &counts {
        *per_type.entry((ty, *hour)).or_default() += c;
    }
    let mut totals = Totals {
        type_counts: per_type
            .into_iter()
            .map(|((ty, hour), c)| TypeCountRow {
                ty: ty.to_owned(),
                h: time_text(hour),
                c,
            })
            .collect(),
        counts: counts
            .into_iter()
            .map(|((ty, hour, n), c)| CountRow {
                ty: ty.to_owned(),
                h: time_text(hour),
                n: n.to_owned(),
                c,
            })
            .collect(),
        per_day: Vec::new(),
        live: live
            .into_iter()
            .map(|(ty, (c, id))| LiveRow {
                ty: ty.to_owned(),
                c,
                id,
                at: time_text(received_at),
            })
            .collect(),
    };
    let candidates: Vec<Active<'_>> = active.into_iter().map(|(d, u)| Active { d, u }).collect();
    let (stored, per_day) = writer
        .store_events(tx, &rows, received_at, &candidates)
        .await?;
    totals.per_day = per_day;
    Ok((stored, totals))
}

/// A (day, user) pair of a flush.
#[derive(Serialize)]
struct Active<'a> {
    d: NaiveDate,
    u: &'a str,
}

/// A user's bits in a block's day map.
#[derive(Serialize)]
struct Block {
    b: NaiveDate,
    u: String,
    m: i64,
}

/// The day-map bits of `pairs`: each (day, user) sets one bit in each of
/// the two blocks holding the day.
fn blocks_of<'a>(pairs: impl IntoIterator<Item = (NaiveDate, &'a str)>) -> Vec<Block> {
    let mut blocks: BTreeMap<(NaiveDate, &str), i64> = BTreeMap::new();
    for (day, user) in pairs {
        let later = block_of(day);
        let earlier = later - Days::new(BLOCK_STRIDE as u64);
        for block in [earlier, later] {
            *blocks.entry((block, user)).or_default() |= day_bit(block, day);
        }
    }
    blocks
        .into_iter()
        .map(|((b, u), m)| Block {
            b,
            u: u.to_owned(),
            m,
        })
        .collect()
}

/// Adds [`Totals`] to the hot rollup rows (`event_counts`,
/// `event_type_counts`, `event_daily_active`, `event_live_totals`).
pub(crate) async fn add_totals(tx: &mut TenantTx, totals: &Totals) -> Result<()> {
    writer(tx.backend()).add_totals(tx, totals).await
}

/// Which way [`RollupWriter::lock`] takes a tenant's rollup lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lock {
    /// A flush: other flushes go on beside it.
    Shared,
    /// A rebuild: nothing else writes the tenant's rollups meanwhile.
    Exclusive,
}

/// How one backend writes a flush. The algorithms differ (PostgreSQL writes
/// the events and every per-user rollup in one data-modifying `WITH`, and
/// the hot totals in another; SQLite has no such `WITH` and runs an upsert
/// per table, reading the new (day, user) pairs back first); what they
/// write is the same, and the tests hold both to [`rebuild`].
#[async_trait::async_trait]
trait RollupWriter: Sync {
    /// Takes the tenant's rollup lock until the transaction ends.
    async fn lock(&self, tx: &mut TenantTx, lock: Lock) -> Result<()>;

    /// Inserts the events, the (day, user) pairs and the users' day maps;
    /// returns how many events were stored and how many pairs were new on
    /// each day (what daily active users grow by).
    async fn store_events(
        &self,
        tx: &mut TenantTx,
        rows: &[Row<'_>],
        received_at: DateTime<Utc>,
        candidates: &[Active<'_>],
    ) -> Result<(u64, Vec<DayRow>)>;

    /// Adds [`Totals`] to the hot rollup rows.
    async fn add_totals(&self, tx: &mut TenantTx, totals: &Totals) -> Result<()>;
}

/// The writer of `backend`.
fn writer(backend: Backend) -> &'static dyn RollupWriter {
    match backend {
        Backend::Postgres => &postgres::Postgres,
        Backend::Sqlite => &sqlite::Sqlite,
    }
}

/// What [`rebuild`] recomputed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// Raw events read.
    pub events: i64,
    /// Hour/type/name rows written.
    pub count_rows: u64,
    /// (day, user) rows written.
    pub daily_user_rows: u64,
}

/// Recomputes the rollups of the UTC days `from..=to` of `ctx`'s tenant from
/// its raw events, in one transaction (live ingestion of the tenant waits
/// for it on PostgreSQL; SQLite has one writer anyway). Needed only after
/// raw events were changed by hand, or to check the incremental rollups.
pub async fn rebuild(
    db: &Db,
    ctx: &TenantContext,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Rebuilt> {
    if to < from {
        return Err(tenantkit::Error::Invalid("`to` is before `from`".into()));
    }
    let start = from.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let end = (to + Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    // Every block overlapping the span is recomputed whole, from the daily
    // users of its 64 days.
    let first_block = block_of(from) - Days::new(BLOCK_STRIDE as u64);
    let last_block = block_of(to);
    let blocks_end = last_block + Days::new(2 * BLOCK_STRIDE as u64);

    let mut tx = db.begin(ctx).await?;
    writer(tx.backend()).lock(&mut tx, Lock::Exclusive).await?;
    let (events,): (i64,) = tx
        .fetch_one(tx.query(sql::COUNT_EVENTS_BETWEEN).bind(start).bind(end))
        .await?;

    tx.write_operational(
        COUNTS,
        tx.query(sql::DELETE_COUNTS_BETWEEN).bind(start).bind(end),
    )
    .await?;
    let count_rows = tx
        .write_operational(COUNTS, tx.query(sql::REBUILD_COUNTS).bind(start).bind(end))
        .await?;

    tx.write_operational(
        TYPE_COUNTS,
        tx.query(sql::DELETE_TYPE_COUNTS_BETWEEN)
            .bind(start)
            .bind(end),
    )
    .await?;
    tx.write_operational(
        TYPE_COUNTS,
        tx.query(sql::REBUILD_TYPE_COUNTS).bind(start).bind(end),
    )
    .await?;

    tx.write_operational(
        DAILY_USERS,
        tx.query(sql::DELETE_DAILY_USERS_BETWEEN)
            .bind(from)
            .bind(to),
    )
    .await?;
    let daily_user_rows = tx
        .write_operational(
            DAILY_USERS,
            tx.query(sql::REBUILD_DAILY_USERS).bind(start).bind(end),
        )
        .await?;

    tx.write_operational(
        DAILY_ACTIVE,
        tx.query(sql::DELETE_DAILY_ACTIVE_BETWEEN)
            .bind(from)
            .bind(to),
    )
    .await?;
    tx.write_operational(
        DAILY_ACTIVE,
        tx.query(sql::REBUILD_DAILY_ACTIVE).bind(from).bind(to),
    )
    .await?;

    tx.write_operational(
        USER_BLOCKS,
        tx.query(sql::DELETE_USER_BLOCKS_BETWEEN)
            .bind(first_block)
            .bind(last_block),
    )
    .await?;
    tx.write_operational(
        USER_BLOCKS,
        tx.query(sql::REBUILD_USER_BLOCKS)
            .bind(first_block)
            .bind(last_block)
            .bind(blocks_end),
    )
    .await?;
    tx.commit().await?;
    Ok(Rebuilt {
        events,
        count_rows,
        daily_user_rows,
    })
}
