//! The incremental rollups equal those rebuilt from raw events, whatever the
//! stream: late and out-of-order timestamps, repeated users, several tenants,
//! any split into flushes (a proptest on both backends). And a rebuild
//! repairs rollups that were lost.

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use proptest::prelude::*;
use tenantkit::{Db, TenantContext, testing};
use tenantkit_analytics::{
    event::Event,
    rollup::{self, COUNTS, DAILY_ACTIVE, DAILY_USERS, TYPE_COUNTS, USER_BLOCKS},
};

use crate::common::event;

type Counts = Vec<(String, DateTime<Utc>, String, i64)>;

#[derive(Debug, PartialEq)]
struct Rollups {
    counts: Counts,
    type_counts: Vec<(String, DateTime<Utc>, i64)>,
    daily_users: Vec<(NaiveDate, String)>,
    daily_active: Vec<(NaiveDate, i64)>,
    blocks: Vec<(NaiveDate, String, i64)>,
}

async fn rollups(db: &Db, t: &TenantContext) -> Rollups {
    let mut tx = db.begin(t).await.unwrap();
    let counts = tx
        .fetch_all(tx.query(
            "SELECT event_type, hour, name, count FROM event_counts WHERE tenant_id = $1 ORDER BY 1, 2, 3",
        ))
        .await
        .unwrap();
    let type_counts = tx
        .fetch_all(tx.query(
            "SELECT event_type, hour, count FROM event_type_counts WHERE tenant_id = $1 ORDER BY 1, 2",
        ))
        .await
        .unwrap();
    let daily_users =
        tx.fetch_all(tx.query(
            "SELECT day, user_id FROM event_daily_users WHERE tenant_id = $1 ORDER BY 1, 2",
        ))
        .await
        .unwrap();
    let daily_active = tx
        .fetch_all(
            tx.query("SELECT day, users FROM event_daily_active WHERE tenant_id = $1 ORDER BY 1"),
        )
        .await
        .unwrap();
    let blocks = tx
        .fetch_all(tx.query(
            "SELECT block, user_id, days FROM event_user_blocks WHERE tenant_id = $1 ORDER BY 1, 2",
        ))
        .await
        .unwrap();
    Rollups {
        counts,
        type_counts,
        daily_users,
        daily_active,
        blocks,
    }
}

/// Stores flushes the way the writer does: one bulk transaction per flush,
/// each tenant scoped in turn.
async fn store_flushes(db: &Db, tenants: &[TenantContext], flushes: Vec<Vec<(usize, Event)>>) {
    for flush in flushes {
        let mut bulk = db.begin_bulk().await.unwrap();
        for (i, t) in tenants.iter().enumerate() {
            let mine: Vec<&Event> = flush
                .iter()
                .filter(|(k, _)| *k == i)
                .map(|(_, e)| e)
                .collect();
            let tx = bulk.tenant(t).await.unwrap();
            rollup::store(tx, &mine, Utc::now()).await.unwrap();
        }
        bulk.commit().await.unwrap();
    }
}

/// An event: tenant, type, name, user, and minutes before now (up to 34 days).
fn events() -> impl Strategy<Value = Vec<(usize, u8, u8, Option<u8>, u32)>> {
    prop::collection::vec(
        (
            0..2usize,
            0..4u8,
            0..3u8,
            prop::option::of(0..6u8),
            0..(34 * 24 * 60u32),
        ),
        1..60,
    )
}

fn build(raw: &[(usize, u8, u8, Option<u8>, u32)], now: DateTime<Utc>) -> Vec<(usize, Event)> {
    raw.iter()
        .map(|&(tenant, ty, name, user, minutes)| {
            let ty = ["page_view", "api_call", "feature_used", "custom.x"][ty as usize];
            let name = ["", "export", "import"][name as usize];
            let user = user.map(|u| format!("user-{u}"));
            let at = now
                - Duration::minutes(i64::from(minutes))
                - Duration::milliseconds(i64::from(minutes % 997));
            (
                tenant,
                event(ty, (!name.is_empty()).then_some(name), user.as_deref(), at),
            )
        })
        .collect()
}

fn check_equal_to_rebuild(db: Db, cases: u32) {
    let runtime = tokio::runtime::Handle::current();
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(raw in events(), splits in prop::collection::vec(1..20usize, 1..6))| {
        let db = db.clone();
        let result: Result<(), TestCaseError> = tokio::task::block_in_place(|| runtime.block_on(async move {
            let tenants = [testing::tenant(&db).await, testing::tenant(&db).await];
            let now = Utc::now();
            let mut events = build(&raw, now);
            // Split into flushes of the generated sizes (the rest in the last).
            let mut flushes = Vec::new();
            for size in splits {
                let take = size.min(events.len());
                flushes.push(events.drain(..take).collect::<Vec<_>>());
            }
            flushes.push(events);
            store_flushes(&db, &tenants, flushes).await;
            let span = (now.date_naive() - Days::new(40), now.date_naive() + Days::new(1));
            for t in &tenants {
                let incremental = rollups(&db, t).await;
                rollup::rebuild(&db, t, span.0, span.1).await.unwrap();
                let rebuilt = rollups(&db, t).await;
                prop_assert_eq!(&incremental, &rebuilt);
            }
            Ok(())
        }));
        result?;
    });
}

tenantkit::backend_tests!(crate::common, multi_thread;
    incremental_rollups_equal_rebuilt_ones,
    a_rebuild_restores_lost_rollups,
    the_last_nanosecond_of_a_day_is_counted_and_stored_on_that_day,
);

async fn incremental_rollups_equal_rebuilt_ones(db: Db) {
    let cases = if db.backend() == tenantkit::Backend::Sqlite {
        48
    } else {
        24
    };
    check_equal_to_rebuild(db, cases);
}

async fn a_rebuild_restores_lost_rollups(db: Db) {
    let t = testing::tenant(&db).await;
    let now = Utc::now();
    let raw: Vec<_> = (0..200u32)
        .map(|i| {
            (
                0usize,
                (i % 4) as u8,
                (i % 3) as u8,
                Some((i % 7) as u8),
                i * 97,
            )
        })
        .collect();
    let events = build(&raw, now);
    store_flushes(&db, std::slice::from_ref(&t), vec![events]).await;
    let before = rollups(&db, &t).await;
    assert!(!before.counts.is_empty() && !before.blocks.is_empty());

    // Lose a middle span of every rollup.
    let (from, to) = (
        now.date_naive() - Days::new(10),
        now.date_naive() - Days::new(5),
    );
    let mut tx = db.begin(&t).await.unwrap();
    for (table, sql) in [
        (COUNTS, "DELETE FROM event_counts WHERE tenant_id = $1"),
        (
            TYPE_COUNTS,
            "DELETE FROM event_type_counts WHERE tenant_id = $1",
        ),
        (
            DAILY_USERS,
            "DELETE FROM event_daily_users WHERE tenant_id = $1",
        ),
        (
            DAILY_ACTIVE,
            "DELETE FROM event_daily_active WHERE tenant_id = $1",
        ),
        (
            USER_BLOCKS,
            "DELETE FROM event_user_blocks WHERE tenant_id = $1",
        ),
    ] {
        tx.write_operational(table, tx.query(sql)).await.unwrap();
    }
    tx.commit().await.unwrap();
    let report = rollup::rebuild(&db, &t, from, to).await.unwrap();
    assert!(report.events > 0, "{report:?}");
    let partial = rollups(&db, &t).await;
    assert!(
        partial.counts.len() < before.counts.len(),
        "only the span came back"
    );
    // The whole window brings everything back.
    rollup::rebuild(&db, &t, now.date_naive() - Days::new(40), now.date_naive())
        .await
        .unwrap();
    assert_eq!(rollups(&db, &t).await, before);
    assert!(
        rollup::rebuild(&db, &t, to, from).await.is_err(),
        "to before from"
    );
}

/// PostgreSQL keeps microseconds and used to round `23:59:59.999999999`
/// up into the next day while the rollups counted it on this one, so a
/// rebuild changed the answers. Stored at the storage precision (truncated),
/// both agree on both backends.
async fn the_last_nanosecond_of_a_day_is_counted_and_stored_on_that_day(db: Db) {
    let t = testing::tenant(&db).await;
    let yesterday = Utc::now().date_naive() - Days::new(1);
    let last = yesterday
        .and_hms_nano_opt(23, 59, 59, 999_999_999)
        .unwrap()
        .and_utc();
    let events = vec![(0, event("page_view", None, Some("u1"), last))];
    store_flushes(&db, std::slice::from_ref(&t), vec![events]).await;
    let incremental = rollups(&db, &t).await;
    assert_eq!(incremental.daily_active, [(yesterday, 1)]);
    let mut tx = db.begin(&t).await.unwrap();
    let (stored,): (DateTime<Utc>,) = tx
        .fetch_one(tx.query("SELECT occurred_at FROM events WHERE tenant_id = $1"))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(stored, tenantkit::validate::storage_precision(last));
    assert_eq!(stored.date_naive(), yesterday);
    rollup::rebuild(&db, &t, yesterday - Days::new(1), yesterday + Days::new(1))
        .await
        .unwrap();
    assert_eq!(
        rollups(&db, &t).await,
        incremental,
        "a rebuild changes nothing"
    );
}
