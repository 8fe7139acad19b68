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

use crate::{event::Event, storage::EVENTS};

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
    let sqlite = tx.backend() == Backend::Sqlite;
    if !sqlite {
        // Shared with other writers, exclusive for a rebuild of this tenant.
        let lock = tx.query(
            "SELECT pg_advisory_xact_lock_shared(hashtext('tenantkit_analytics_rollups'), hashtext($1::text))::text",
        );
        let _: Option<(String,)> = tx.fetch_optional(lock).await?;
    }

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
    if sqlite {
        let stored = store_sqlite(tx, &rows, received_at, &candidates, &mut totals).await?;
        return Ok((stored, totals));
    }
    // PostgreSQL: the events, the (day, user) pairs and the users' day maps
    // in one statement. Setting a bit that is already set changes nothing
    // (and writes nothing), so the maps take every pair; only the pairs not
    // seen before come back, to count towards DAU.
    let blocks = blocks_of(candidates.iter().map(|a| (a.d, a.u)));
    let written: Vec<(i64, String)> = tx
        .write_operational_all(
            &[EVENTS, DAILY_USERS, USER_BLOCKS],
            tx.query(
                "WITH stored AS ( \
                     INSERT INTO events (tenant_id, occurred_at, id, event_type, user_id, name, metadata, received_at) \
                     SELECT $1, e.t, e.id, e.ty, e.u, e.n, e.m, $3 \
                       FROM json_to_recordset($2::json) AS e(t timestamptz, id uuid, ty text, u text, n text, m jsonb) \
                     RETURNING 1), \
                 fresh AS ( \
                     INSERT INTO event_daily_users (tenant_id, day, user_id) \
                     SELECT $1, d.d, d.u FROM json_to_recordset($4::json) AS d(d date, u text) \
                     ON CONFLICT DO NOTHING RETURNING day), \
                 maps AS ( \
                     INSERT INTO event_user_blocks (tenant_id, block, user_id, days) \
                     SELECT $1, b.b, b.u, b.m FROM json_to_recordset($5::json) AS b(b date, u text, m bigint) \
                     ON CONFLICT (tenant_id, block, user_id) DO UPDATE SET days = event_user_blocks.days | EXCLUDED.days \
                     WHERE event_user_blocks.days | EXCLUDED.days <> event_user_blocks.days) \
                 SELECT (SELECT count(*) FROM stored)::bigint, \
                        COALESCE((SELECT json_agg(json_build_array(day, n)) \
                                    FROM (SELECT day, count(*) AS n FROM fresh GROUP BY day) AS f)::text, '[]')",
            )
            .bind(json_rows(&rows)?)
            .bind(received_at)
            .bind(json_rows(&candidates)?)
            .bind(json_rows(&blocks)?),
        )
        .await?;
    let (stored, per_day) = written.into_iter().next().unwrap_or_default();
    let per_day: Vec<(NaiveDate, i64)> = serde_json::from_str(&per_day)
        .map_err(|e| tenantkit::Error::Internal(format!("new daily users: {e}")))?;
    totals.per_day = per_day.into_iter().map(|(d, n)| DayRow { d, n }).collect();
    Ok((stored as u64, totals))
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

/// SQLite (no data-modifying `WITH`): the events, then the (day, user)
/// pairs, then the day maps of the new ones; adds the new pairs' days to
/// `totals`. Returns how many events were stored.
async fn store_sqlite(
    tx: &mut TenantTx,
    rows: &[Row<'_>],
    received_at: DateTime<Utc>,
    candidates: &[Active<'_>],
    totals: &mut Totals,
) -> Result<u64> {
    let stored = tx
        .write_operational(
            EVENTS,
            tx.query(
                "INSERT INTO events (tenant_id, occurred_at, id, event_type, user_id, name, metadata, received_at) \
                 SELECT $1, json_extract(e.value, '$.t'), unhex(json_extract(e.value, '$.id')), \
                        json_extract(e.value, '$.ty'), json_extract(e.value, '$.u'), json_extract(e.value, '$.n'), \
                        json(json_extract(e.value, '$.m')), $3 \
                   FROM json_each($2) AS e",
            )
            .bind(json_rows(rows)?)
            .bind(received_at),
        )
        .await?;
    if candidates.is_empty() {
        return Ok(stored);
    }
    // Only the (day, user) pairs not seen before count towards DAU and MAU.
    let fresh: Vec<(NaiveDate, String)> = tx
        .write_operational_returning(
            DAILY_USERS,
            tx.query(
                "INSERT INTO event_daily_users (tenant_id, day, user_id) \
                 SELECT $1, json_extract(d.value, '$.d'), json_extract(d.value, '$.u') FROM json_each($2) AS d WHERE true \
                 ON CONFLICT DO NOTHING RETURNING day, user_id",
            )
            .bind(json_rows(candidates)?),
        )
        .await?;
    if fresh.is_empty() {
        return Ok(stored);
    }
    let mut per_day: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for (day, _) in &fresh {
        *per_day.entry(*day).or_default() += 1;
    }
    totals.per_day = per_day.into_iter().map(|(d, n)| DayRow { d, n }).collect();
    let blocks = blocks_of(fresh.iter().map(|(d, u)| (*d, u.as_str())));
    tx.write_operational(
        USER_BLOCKS,
        tx.query(
            "INSERT INTO event_user_blocks (tenant_id, block, user_id, days) \
             SELECT $1, json_extract(b.value, '$.b'), json_extract(b.value, '$.u'), json_extract(b.value, '$.m') \
               FROM json_each($2) AS b WHERE true \
             ON CONFLICT (tenant_id, block, user_id) DO UPDATE SET days = days | excluded.days",
        )
        .bind(json_rows(&blocks)?),
    )
    .await?;
    Ok(stored)
}

/// Adds [`Totals`] to the hot rollup rows (`event_counts`,
/// `event_type_counts`, `event_daily_active`, `event_live_totals`).
pub(crate) async fn add_totals(tx: &mut TenantTx, totals: &Totals) -> Result<()> {
    let sqlite = tx.backend() == Backend::Sqlite;
    if !sqlite {
        // PostgreSQL: the four upserts in one statement (one round trip).
        let _: Vec<(i32,)> = tx
            .write_operational_all(
                &[LIVE_TOTALS, COUNTS, TYPE_COUNTS, DAILY_ACTIVE],
                tx.query(
                    "WITH live AS ( \
                         INSERT INTO event_live_totals (tenant_id, event_type, events, last_event_id, updated_at) \
                         SELECT $1, l.ty, l.c, l.id, l.at FROM json_to_recordset($2::json) AS l(ty text, c bigint, id uuid, at timestamptz) \
                         ON CONFLICT (tenant_id, event_type) DO UPDATE SET events = event_live_totals.events + EXCLUDED.events, \
                            last_event_id = GREATEST(event_live_totals.last_event_id, EXCLUDED.last_event_id), \
                            updated_at = EXCLUDED.updated_at), \
                     counts AS ( \
                         INSERT INTO event_counts (tenant_id, event_type, hour, name, count) \
                         SELECT $1, c.ty, c.h, c.n, c.c FROM json_to_recordset($3::json) AS c(ty text, h timestamptz, n text, c bigint) \
                         ON CONFLICT (tenant_id, event_type, hour, name) DO UPDATE SET count = event_counts.count + EXCLUDED.count), \
                     types AS ( \
                         INSERT INTO event_type_counts (tenant_id, event_type, hour, count) \
                         SELECT $1, c.ty, c.h, c.c FROM json_to_recordset($4::json) AS c(ty text, h timestamptz, c bigint) \
                         ON CONFLICT (tenant_id, hour, event_type) DO UPDATE SET count = event_type_counts.count + EXCLUDED.count), \
                     active AS ( \
                         INSERT INTO event_daily_active (tenant_id, day, users) \
                         SELECT $1, a.d, a.n FROM json_to_recordset($5::json) AS a(d date, n bigint) \
                         ON CONFLICT (tenant_id, day) DO UPDATE SET users = event_daily_active.users + EXCLUDED.users) \
                     SELECT 1",
                )
                .bind(json_rows(&totals.live)?)
                .bind(json_rows(&totals.counts)?)
                .bind(json_rows(&totals.type_counts)?)
                .bind(json_rows(&totals.per_day)?),
            )
            .await?;
        return Ok(());
    }
    // SQLite: one upsert per rollup table, in the same transaction.
    if !totals.live.is_empty() {
        tx.write_operational(
            LIVE_TOTALS,
            tx.query(
                "INSERT INTO event_live_totals (tenant_id, event_type, events, last_event_id, updated_at) \
                 SELECT $1, json_extract(l.value, '$.ty'), json_extract(l.value, '$.c'), \
                        unhex(json_extract(l.value, '$.id')), json_extract(l.value, '$.at') \
                   FROM json_each($2) AS l WHERE true \
                 ON CONFLICT (tenant_id, event_type) DO UPDATE SET events = events + excluded.events, \
                    last_event_id = max(last_event_id, excluded.last_event_id), updated_at = excluded.updated_at",
            )
            .bind(json_rows(&totals.live)?),
        )
        .await?;
    }
    if !totals.counts.is_empty() {
        tx.write_operational(
            COUNTS,
            tx.query(
                "INSERT INTO event_counts (tenant_id, event_type, hour, name, count) \
                 SELECT $1, json_extract(c.value, '$.ty'), json_extract(c.value, '$.h'), \
                        json_extract(c.value, '$.n'), json_extract(c.value, '$.c') \
                   FROM json_each($2) AS c WHERE true \
                 ON CONFLICT (tenant_id, event_type, hour, name) DO UPDATE SET count = count + excluded.count",
            )
            .bind(json_rows(&totals.counts)?),
        )
        .await?;
        tx.write_operational(
            TYPE_COUNTS,
            tx.query(
                "INSERT INTO event_type_counts (tenant_id, event_type, hour, count) \
                 SELECT $1, json_extract(c.value, '$.ty'), json_extract(c.value, '$.h'), json_extract(c.value, '$.c') \
                   FROM json_each($2) AS c WHERE true \
                 ON CONFLICT (tenant_id, hour, event_type) DO UPDATE SET count = count + excluded.count",
            )
            .bind(json_rows(&totals.type_counts)?),
        )
        .await?;
    }
    if !totals.per_day.is_empty() {
        tx.write_operational(
            DAILY_ACTIVE,
            tx.query(
                "INSERT INTO event_daily_active (tenant_id, day, users) \
                 SELECT $1, json_extract(a.value, '$.d'), json_extract(a.value, '$.n') FROM json_each($2) AS a WHERE true \
                 ON CONFLICT (tenant_id, day) DO UPDATE SET users = users + excluded.users",
            )
            .bind(json_rows(&totals.per_day)?),
        )
        .await?;
    }
    Ok(())
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
    let sqlite = tx.backend() == Backend::Sqlite;
    if !sqlite {
        let lock = tx.query(
            "SELECT pg_advisory_xact_lock(hashtext('tenantkit_analytics_rollups'), hashtext($1::text))::text",
        );
        let _: Option<(String,)> = tx.fetch_optional(lock).await?;
    }
    let (events,): (i64,) = tx
        .fetch_one(
            tx.query("SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3")
                .bind(start)
                .bind(end),
        )
        .await?;

    tx.write_operational(
        COUNTS,
        tx.query("DELETE FROM event_counts WHERE tenant_id = $1 AND hour >= $2 AND hour < $3")
            .bind(start)
            .bind(end),
    )
    .await?;
    let count_rows = tx
        .write_operational(
            COUNTS,
            tx.query(if sqlite {
                "INSERT INTO event_counts (tenant_id, event_type, hour, name, count) \
                 SELECT $1, event_type, strftime('%Y-%m-%dT%H:00:00+00:00', occurred_at), coalesce(name, ''), COUNT(*) \
                   FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
                  GROUP BY 2, 3, 4"
            } else {
                "INSERT INTO event_counts (tenant_id, event_type, hour, name, count) \
                 SELECT $1, event_type, date_trunc('hour', occurred_at, 'UTC'), coalesce(name, ''), COUNT(*) \
                   FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
                  GROUP BY 2, 3, 4"
            })
            .bind(start)
            .bind(end),
        )
        .await?;

    tx.write_operational(
        TYPE_COUNTS,
        tx.query("DELETE FROM event_type_counts WHERE tenant_id = $1 AND hour >= $2 AND hour < $3")
            .bind(start)
            .bind(end),
    )
    .await?;
    tx.write_operational(
        TYPE_COUNTS,
        tx.query(if sqlite {
            "INSERT INTO event_type_counts (tenant_id, event_type, hour, count) \
             SELECT $1, event_type, strftime('%Y-%m-%dT%H:00:00+00:00', occurred_at), COUNT(*) \
               FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
              GROUP BY 2, 3"
        } else {
            "INSERT INTO event_type_counts (tenant_id, event_type, hour, count) \
             SELECT $1, event_type, date_trunc('hour', occurred_at, 'UTC'), COUNT(*) \
               FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
              GROUP BY 2, 3"
        })
        .bind(start)
        .bind(end),
    )
    .await?;

    tx.write_operational(
        DAILY_USERS,
        tx.query("DELETE FROM event_daily_users WHERE tenant_id = $1 AND day >= $2 AND day <= $3")
            .bind(from)
            .bind(to),
    )
    .await?;
    let daily_user_rows = tx
        .write_operational(
            DAILY_USERS,
            tx.query(if sqlite {
                "INSERT INTO event_daily_users (tenant_id, day, user_id) \
                 SELECT DISTINCT $1, date(occurred_at), user_id FROM events \
                  WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND user_id IS NOT NULL"
            } else {
                "INSERT INTO event_daily_users (tenant_id, day, user_id) \
                 SELECT DISTINCT $1, (occurred_at AT TIME ZONE 'UTC')::date, user_id FROM events \
                  WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND user_id IS NOT NULL"
            })
            .bind(start)
            .bind(end),
        )
        .await?;

    tx.write_operational(
        DAILY_ACTIVE,
        tx.query("DELETE FROM event_daily_active WHERE tenant_id = $1 AND day >= $2 AND day <= $3")
            .bind(from)
            .bind(to),
    )
    .await?;
    tx.write_operational(
        DAILY_ACTIVE,
        tx.query(
            "INSERT INTO event_daily_active (tenant_id, day, users) \
             SELECT $1, day, COUNT(*) FROM event_daily_users \
              WHERE tenant_id = $1 AND day >= $2 AND day <= $3 GROUP BY day",
        )
        .bind(from)
        .bind(to),
    )
    .await?;

    tx.write_operational(
        USER_BLOCKS,
        tx.query(
            "DELETE FROM event_user_blocks WHERE tenant_id = $1 AND block >= $2 AND block <= $3",
        )
        .bind(first_block)
        .bind(last_block),
    )
    .await?;
    // Each (day, user) sets one bit in each of its two blocks; the bits of a
    // user in a block are distinct, so their sum is their union.
    tx.write_operational(
        USER_BLOCKS,
        tx.query(if sqlite {
            "INSERT INTO event_user_blocks (tenant_id, block, user_id, days) \
             SELECT $1, b.block, b.user_id, SUM(1 << b.bit) FROM ( \
                 SELECT s.user_id, date('1970-01-01', '+' || (s.start + k.shift) || ' days') AS block, \
                        s.e - (s.start + k.shift) AS bit \
                   FROM (SELECT user_id, e, (e / 32) * 32 AS start FROM ( \
                           SELECT user_id, CAST(julianday(day) - 2440587.5 AS INTEGER) AS e FROM event_daily_users \
                            WHERE tenant_id = $1 AND day >= $2 AND day < $4)) AS s \
                  CROSS JOIN (SELECT 0 AS shift UNION ALL SELECT -32) AS k) AS b \
              WHERE b.block >= $2 AND b.block <= $3 GROUP BY b.block, b.user_id"
        } else {
            "INSERT INTO event_user_blocks (tenant_id, block, user_id, days) \
             SELECT $1, b.block, b.user_id, SUM(1::bigint << b.bit)::bigint FROM ( \
                 SELECT s.user_id, DATE '1970-01-01' + (s.start + k.shift) AS block, s.e - (s.start + k.shift) AS bit \
                   FROM (SELECT user_id, e, (e / 32) * 32 AS start FROM ( \
                           SELECT user_id, day - DATE '1970-01-01' AS e FROM event_daily_users \
                            WHERE tenant_id = $1 AND day >= $2 AND day < $4) AS d) AS s \
                  CROSS JOIN (VALUES (0), (-32)) AS k(shift)) AS b \
              WHERE b.block >= $2 AND b.block <= $3 GROUP BY b.block, b.user_id"
        })
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
