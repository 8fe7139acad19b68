//! Event storage. On PostgreSQL: a partition per UTC day split four ways by
//! tenant, made ahead for the whole accepted window, every level isolated
//! (the catalog check sees them without a list), made and dropped only
//! through the owner's narrow functions, and never a way around isolation
//! through a partition queried directly. On SQLite: the same table, plain.

use chrono::{Days, Utc};
use serde_json::json;
use sqlx::Executor;
use tenantkit::{Db, TenantContext, testing};
use tenantkit_analytics::storage::{self, EVENTS};

async fn insert(db: &Db, t: &TenantContext, n: usize) {
    let mut tx = db.begin(t).await.unwrap();
    for i in 0..n {
        let q = tx
            .query(
                "INSERT INTO events (tenant_id, occurred_at, id, event_type, user_id, name, metadata, received_at) \
                 VALUES ($1, $2, $3, 'page_view', $4, NULL, $5, $2)",
            )
            .bind(Utc::now())
            .bind(uuid::Uuid::now_v7())
            .bind(format!("u{i}"))
            .bind(json!({ "i": i }));
        tx.write_operational(EVENTS, q).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn count(db: &Db, t: &TenantContext) -> i64 {
    let mut tx = db.begin(t).await.unwrap();
    let q = tx.query("SELECT COUNT(*) FROM events WHERE tenant_id = $1");
    let (n,): (i64,) = tx.fetch_one(q).await.unwrap();
    n
}

#[tokio::test]
async fn sqlite_stores_events_in_one_table() {
    let db = testing::sqlite().await;
    storage::migrate(&db).await.unwrap();
    assert_eq!(
        storage::ensure_partitions(&db, Utc::now().date_naive())
            .await
            .unwrap(),
        0
    );
    let (a, b) = (testing::tenant(&db).await, testing::tenant(&db).await);
    insert(&db, &a, 3).await;
    assert_eq!((count(&db, &a).await, count(&db, &b).await), (3, 0));
}

#[tokio::test]
async fn every_day_of_the_window_has_isolated_partitions_at_every_level() {
    let Some(database) = crate::common::postgres_database().await else {
        return;
    };
    // The database may have been migrated on another day.
    let db = testing::runtime_db(&database, 1).await;
    storage::ensure_partitions(&db, Utc::now().date_naive())
        .await
        .unwrap();
    let (tables, problems) = testing::schema_problems(&database.owner_url).await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let today = Utc::now().date_naive();
    for day in [
        today
            .checked_sub_days(Days::new(storage::DAYS_BACK))
            .unwrap(),
        today,
        today
            .checked_add_days(Days::new(storage::DAYS_AHEAD))
            .unwrap(),
    ] {
        let part = format!("events_{}", day.format("%Y%m%d"));
        for table in [part.clone(), format!("{part}_h0"), format!("{part}_h3")] {
            assert!(tables.contains(&table), "{table} missing from {tables:?}");
        }
    }
    assert!(tables.contains(&"events".to_owned()));
}

#[tokio::test]
async fn the_runtime_role_makes_partitions_only_through_the_function() {
    let Some(database) = crate::common::postgres_database().await else {
        return;
    };
    let db = testing::runtime_db(&database, 2).await;
    let today = Utc::now().date_naive();
    // Already there: nothing to make; twice in parallel is safe.
    let (first, second) = tokio::join!(
        storage::ensure_partitions(&db, today),
        storage::ensure_partitions(&db, today)
    );
    assert_eq!((first.unwrap(), second.unwrap()), (0, 0));
    // Only around today (the window event times may fall in): the runtime
    // role cannot fill the database with partitions of any date it likes.
    let far = today.checked_add_days(Days::new(300)).unwrap();
    for from in [far, "2000-01-01".parse().unwrap()] {
        let refused = db
            .maintain(
                &storage::ENSURE_PARTITIONS,
                vec![from.to_string().into(), 2i64.into()],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(refused, tenantkit::Error::Invalid(_)),
            "{from}: {refused:?}"
        );
    }
    assert!(
        db.maintain(
            &storage::ENSURE_PARTITIONS,
            vec![far.to_string().into(), 1000i64.into()]
        )
        .await
        .is_err(),
        "bounded spans only"
    );
    // Directly, the runtime role can neither create nor drop partitions.
    let runtime = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    let name = format!("events_{}", today.format("%Y%m%d"));
    for attack in [
        format!("DROP TABLE {name}"),
        "CREATE TABLE events_29991231 PARTITION OF events FOR VALUES FROM ('2999-12-31') TO ('3000-01-01')".to_owned(),
        format!("ALTER TABLE {name}_h0 NO FORCE ROW LEVEL SECURITY"),
        format!("ALTER TABLE events DETACH PARTITION {name}"),
    ] {
        assert!(runtime.execute(sqlx::AssertSqlSafe(attack.clone())).await.is_err(), "{attack}");
    }
    // Retention drops whole old days (here two days of the year 2000, made
    // by the owner for the purpose), never a day the retention floor keeps.
    let owner = sqlx::PgPool::connect(&database.owner_url).await.unwrap();
    for day in ["20000101", "20000102"] {
        let next = format!("{}", day.parse::<u32>().unwrap() + 1);
        owner
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE IF NOT EXISTS events_{day} PARTITION OF events \
                 FOR VALUES FROM ('{day}') TO ('{next}')"
            )))
            .await
            .unwrap();
    }
    let dropped = storage::drop_partitions_before(&db, "2000-01-10".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(dropped, 2);
    assert!(storage::drop_partitions_before(&db, today).await.is_err());
}

/// The retention floor lives in the database: as the runtime role,
/// `tenantkit_analytics_drop_partitions_before(current_date - 1)` used to
/// drop every tenant's analytics older than yesterday, whatever
/// `analytics.retention_days` said. Now the floor the owner wrote holds,
/// and the runtime role can neither read nor change it.
#[tokio::test]
async fn the_runtime_role_cannot_drop_what_the_retention_floor_keeps() {
    let Some(database) = crate::common::postgres_database_named("_floor").await else {
        return;
    };
    let owner = tenantkit::Db::connect_with(&database.owner_url, 1)
        .await
        .unwrap();
    storage::set_retention_floor(&owner, 30).await.unwrap();
    let db = testing::runtime_db(&database, 2).await;
    let today = Utc::now().date_naive();
    for days in [1u64, 10, 29] {
        let before = today - Days::new(days);
        let refused = storage::drop_partitions_before(&db, before)
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, tenantkit::Error::Invalid(m) if m.contains("keeps 30 days")),
            "{before}: {refused:?}"
        );
    }
    // The floor itself may go (here the writer's partitions of 31 to 35
    // days back, if it made them).
    storage::drop_partitions_before(&db, today - Days::new(30))
        .await
        .unwrap();
    let runtime = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    for attack in [
        "UPDATE tenantkit_settings SET value = '1'",
        "INSERT INTO tenantkit_settings VALUES ('analytics.retention_days', '1')",
        "DELETE FROM tenantkit_settings",
        "SELECT * FROM tenantkit_settings",
    ] {
        assert!(runtime.execute(attack).await.is_err(), "{attack}");
    }
    storage::set_retention_floor(&owner, 1).await.unwrap();
    owner.close().await;
}

#[tokio::test]
async fn a_partition_queried_directly_shows_no_other_tenants_events() {
    let Some(database) = crate::common::postgres_database().await else {
        return;
    };
    let db = testing::runtime_db(&database, 2).await;
    let (a, b) = (testing::tenant(&db).await, testing::tenant(&db).await);
    insert(&db, &a, 20).await;
    assert_eq!((count(&db, &a).await, count(&db, &b).await), (20, 0));
    let today = Utc::now().date_naive().format("%Y%m%d").to_string();
    let runtime = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    for part in [
        "".to_owned(),
        "_h0".into(),
        "_h1".into(),
        "_h2".into(),
        "_h3".into(),
    ] {
        let table = format!("events_{today}{part}");
        // As tenant B, or with no tenant at all.
        for tenant in [Some(b.id().to_string()), None] {
            let mut tx = runtime.begin().await.unwrap();
            if let Some(tenant) = &tenant {
                sqlx::query("SELECT set_config('tenantkit.tenant_id', $1, true)")
                    .bind(tenant)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            let seen = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {table}"
            )))
            .fetch_one(&mut *tx)
            .await;
            // Either no privilege on the partition at all, or nothing of A's.
            if let Ok(n) = seen {
                assert_eq!(n, 0, "{table} as {tenant:?}");
            }
        }
    }
    // Tenant A's own rows are there, through the parent and in its hash partitions.
    let mut tx = runtime.begin().await.unwrap();
    sqlx::query("SELECT set_config('tenantkit.tenant_id', $1, true)")
        .bind(a.id().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 20);
}
