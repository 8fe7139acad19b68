//! Retention: the events and rollups of days before the cut-off go (whole
//! partitions on PostgreSQL), later days stay exactly as they were, and no
//! user id of a purged day is left in the MAU day maps.

use chrono::{Duration, Utc};
use tenantkit::{Db, testing};
use tenantkit_analytics::{
    query::{self, SeriesParams, SeriesQuery},
    retention,
};

use crate::common::{analytics, event, stored};

// Purging drops partitions: PostgreSQL gets a database of its own, so the
// other tests' back-dated events keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_purge_removes_old_days_only() {
    purge_removes_old_days_only(crate::common::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_purge_removes_old_days_only() {
    let Some(database) = crate::common::postgres_database_named("_retention").await else {
        return;
    };
    purge_removes_old_days_only(testing::runtime_db(&database, 10).await).await;
}

async fn purge_removes_old_days_only(db: Db) {
    let (t, other) = (testing::tenant(&db).await, testing::tenant(&db).await);
    let a = analytics(&db);
    let now = Utc::now();
    let old = now - Duration::days(20);
    let recent = now - Duration::days(2);
    for tenant in [&t, &other] {
        a.ingest(
            tenant,
            vec![
                event("page_view", None, Some("gone"), old),
                event("page_view", None, Some("stays"), old),
                event("feature_used", Some("x"), Some("stays"), recent),
            ],
        )
        .await
        .unwrap();
    }
    let before = (now - Duration::days(10)).date_naive();
    let purged = retention::purge(&db, before).await.unwrap();
    if db.backend() == tenantkit::Backend::Postgres {
        assert!(purged.partitions >= 1, "{purged:?}");
    }
    assert!(purged.rows > 0, "{purged:?}");
    for tenant in [&t, &other] {
        assert_eq!(
            stored(&db, tenant).await,
            1,
            "only the recent event is left"
        );
        let p = SeriesParams {
            metric: Some("events".into()),
            interval: Some("day".into()),
            from: Some((now - Duration::days(30)).to_rfc3339()),
            to: None,
            tz: None,
        };
        let series = query::timeseries(&db, tenant, &SeriesQuery::parse(&p, now).unwrap())
            .await
            .unwrap();
        assert_eq!(series.iter().map(|p| p.value).sum::<i64>(), 1);
        let mut tx = db.begin(tenant).await.unwrap();
        let q = tx.query("SELECT user_id FROM event_user_blocks WHERE tenant_id = $1 ORDER BY 1");
        let users: Vec<(String,)> = tx.fetch_all(q).await.unwrap();
        assert!(
            users.iter().all(|(u,)| u == "stays"),
            "no purged day's user is left: {users:?}"
        );
        let q = tx
            .query("SELECT COUNT(*) FROM event_daily_users WHERE tenant_id = $1 AND day < $2")
            .bind(before);
        let (n,): (i64,) = tx.fetch_one(q).await.unwrap();
        assert_eq!(n, 0);
    }
    // Purging again finds nothing more.
    let again = retention::purge(&db, before).await.unwrap();
    assert_eq!(again.partitions, 0);
}
