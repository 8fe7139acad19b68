//! The audit trail: atomic with the change, append-only, tamper-evident,
//! tenant-isolated, queryable; on SQLite and on PostgreSQL (as the runtime role).

use chrono::{Duration, Utc};
use futures_util::StreamExt;
use tenantkit::{
    Db, Error, NewUser, Role, TenantContext, UserPatch,
    audit::{Actor, AuditFilter, RequestMeta},
    store::AUDIT_BATCH,
};

use crate::common::{
    postgres, postgres_owner_pool, postgres_runtime_url, sqlite_file, sqlite_with_pool, tenant,
};

/// Raw access around the store, as the database owner would have it.
enum Raw {
    Pg {
        owner: sqlx::PgPool,
        runtime: sqlx::PgPool,
    },
    Sqlite(sqlx::SqlitePool),
}

const SQLITE_NO_UPDATE_TRIGGER: &str = "CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs \
     BEGIN SELECT RAISE(ABORT, 'audit_logs is append-only (UPDATE refused)'); END";

impl Raw {
    /// Runs `sql` (binding the tenant as `$1`, then `seq` as `$2`) with the
    /// append-only guard switched off, as only an owner could.
    async fn owner_bypass(&self, t: &TenantContext, sql: &'static str, seq: i64) {
        match self {
            Raw::Pg { owner, .. } => {
                let mut tx = owner.begin().await.unwrap();
                sqlx::query("SET LOCAL session_replication_role = replica")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .bind(t.id().as_uuid())
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            Raw::Sqlite(pool) => {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("DROP TRIGGER audit_logs_no_update")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO audit_purge_in_progress (tenant_id) VALUES ($1)")
                    .bind(t.id().as_uuid())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .bind(t.id().as_uuid())
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query("DELETE FROM audit_purge_in_progress")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(SQLITE_NO_UPDATE_TRIGGER)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
    }

    /// Tries `sql` as the runtime (with the tenant set) and returns the error.
    async fn runtime_attempt(&self, t: &TenantContext, sql: &'static str) -> String {
        let result = match self {
            Raw::Pg { runtime, .. } => {
                let mut tx = runtime.begin().await.unwrap();
                sqlx::query("SELECT set_config('tenantkit.tenant_id', $1, true)")
                    .bind(t.id().to_string())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .bind(t.id().as_uuid())
                    .execute(&mut *tx)
                    .await
                    .map(|_| ())
            }
            Raw::Sqlite(pool) => sqlx::query(sql)
                .bind(t.id().as_uuid())
                .execute(pool)
                .await
                .map(|_| ()),
        };
        result.expect_err(sql).to_string()
    }

    /// Tries `sql` as the owner, append-only guard in place.
    async fn owner_attempt(&self, t: &TenantContext, sql: &'static str) -> String {
        let result = match self {
            Raw::Pg { owner, .. } => sqlx::query(sql)
                .bind(t.id().as_uuid())
                .execute(owner)
                .await
                .map(|_| ()),
            Raw::Sqlite(pool) => sqlx::query(sql)
                .bind(t.id().as_uuid())
                .execute(pool)
                .await
                .map(|_| ()),
        };
        result.expect_err(sql).to_string()
    }

    /// Inserts `n` filler entries (not hash-linked) after the tenant's last one.
    async fn seed(&self, t: &TenantContext, n: i64) {
        match self {
            Raw::Pg { owner, .. } => {
                sqlx::query(
                    "INSERT INTO audit_logs (tenant_id, seq, id, actor_type, action, resource_type, resource_id, \
                     after, occurred_at, prev_hash, hash) \
                     SELECT $1, (SELECT COALESCE(MAX(seq), 0) FROM audit_logs WHERE tenant_id = $1) + g, \
                     gen_random_uuid(), 'system', 'seed', 'test', g::text, \
                     jsonb_build_object('n', g, 'pad', repeat('x', 200)), now(), '', md5(g::text) \
                     FROM generate_series(1, $2) g",
                )
                .bind(t.id().as_uuid())
                .bind(n)
                .execute(owner)
                .await
                .unwrap();
            }
            Raw::Sqlite(pool) => {
                sqlx::query(
                    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $2) \
                     INSERT INTO audit_logs (tenant_id, seq, id, actor_type, action, resource_type, resource_id, \
                     after, occurred_at, prev_hash, hash) \
                     SELECT $1, (SELECT COALESCE(MAX(seq), 0) FROM audit_logs WHERE tenant_id = $1) + n, \
                     randomblob(16), 'system', 'seed', 'test', CAST(n AS TEXT), \
                     json_object('n', n, 'pad', printf('%.200c', 'x')), '2026-11-26T00:00:00+00:00', '', \
                     hex(randomblob(32)) FROM g",
                )
                .bind(t.id().as_uuid())
                .bind(n)
                .execute(pool)
                .await
                .unwrap();
            }
        }
    }
}

struct Fixture {
    db: Db,
    raw: Raw,
}

async fn sqlite_fixture() -> Fixture {
    let (db, pool) = sqlite_with_pool().await;
    Fixture {
        db,
        raw: Raw::Sqlite(pool),
    }
}

async fn postgres_fixture() -> Option<Fixture> {
    let db = postgres().await?;
    let owner = postgres_owner_pool().await?;
    let runtime = sqlx::PgPool::connect(&postgres_runtime_url().await?)
        .await
        .unwrap();
    Some(Fixture {
        db,
        raw: Raw::Pg { owner, runtime },
    })
}

macro_rules! audit_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::sqlite_fixture().await).await;
            })+
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let Some(f) = super::postgres_fixture().await else { return };
                super::$name(f).await;
            })+
        }
    };
}

audit_tests!(
    every_change_is_recorded_with_actor_request_and_states,
    rolled_back_change_leaves_no_audit_entry,
    failed_write_leaves_no_audit_entry,
    runtime_cannot_update_or_delete_audit_entries,
    owner_cannot_update_or_delete_without_the_purge_path,
    verify_catches_an_altered_entry,
    verify_catches_a_deleted_entry_and_a_deleted_tail,
    concurrent_writers_keep_one_valid_chain,
    other_tenants_entries_are_invisible,
    filters_and_keyset_pagination,
    retention_purge_is_the_only_delete_and_is_audited,
    export_streams_100k_entries_in_bounded_chunks,
);

fn as_ann(t: &TenantContext) -> TenantContext {
    t.clone()
        .with_actor(Actor::User("ann".into()))
        .with_request(RequestMeta {
            request_id: Some("req-1".into()),
            client_ip: Some("203.0.113.9".into()),
            user_agent: Some("curl/8".into()),
        })
}

async fn entries(
    db: &Db,
    t: &TenantContext,
    filter: AuditFilter,
) -> Vec<tenantkit::audit::AuditEntry> {
    db.begin(t)
        .await
        .unwrap()
        .list_audit_logs(&filter)
        .await
        .unwrap()
}

async fn every_change_is_recorded_with_actor_request_and_states(f: Fixture) {
    let t = as_ann(&tenant(&f.db).await);
    let mut tx = f.db.begin(&t).await.unwrap();
    let u = tx
        .create_user(&NewUser {
            email: "a@t.test".into(),
            role: Role::Owner,
        })
        .await
        .unwrap();
    let m = tx
        .create_user(&NewUser {
            email: "m@t.test".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    tx.update_user(
        m.id,
        &UserPatch {
            email: Some("m2@t.test".into()),
            role: None,
        },
    )
    .await
    .unwrap();
    tx.update_user(
        m.id,
        &UserPatch {
            email: None,
            role: Some(Role::Admin),
        },
    )
    .await
    .unwrap();
    tx.delete_user(m.id).await.unwrap();
    tx.commit().await.unwrap();

    let log = entries(&f.db, &t, AuditFilter::default()).await;
    let actions: Vec<_> = log.iter().rev().map(|e| e.action.as_str()).collect();
    // The tenant's creation (by the system) opens the chain.
    assert_eq!(
        actions,
        [
            "create",
            "create",
            "create",
            "update",
            "user.role_changed",
            "delete"
        ]
    );
    let [delete, role, update, create_m, create_u, _] = log.as_slice() else {
        panic!("{log:?}")
    };
    assert_eq!(create_u.resource_id, Some(u.id.to_string()));
    assert_eq!(
        (create_m.actor_type.as_str(), create_m.actor_id.as_deref()),
        ("user", Some("ann"))
    );
    assert_eq!(
        (
            create_m.request_id.as_deref(),
            create_m.client_ip.as_deref(),
            create_m.user_agent.as_deref()
        ),
        (Some("req-1"), Some("203.0.113.9"), Some("curl/8"))
    );
    assert!(create_m.before.is_none());
    assert_eq!(create_m.after.as_ref().unwrap()["email"], "m@t.test");
    assert_eq!(update.before.as_ref().unwrap()["email"], "m@t.test");
    assert_eq!(update.after.as_ref().unwrap()["email"], "m2@t.test");
    assert_eq!(role.before.as_ref().unwrap()["role"], "member");
    assert_eq!(role.after.as_ref().unwrap()["role"], "admin");
    assert_eq!(delete.before.as_ref().unwrap()["email"], "m2@t.test");
    assert!(delete.after.is_none());
    let json = serde_json::to_value(update).unwrap();
    for field in [
        "id",
        "tenant_id",
        "user_id",
        "action",
        "resource",
        "timestamp",
        "changes",
    ] {
        assert!(!json[field].is_null(), "{field} missing: {json}");
    }
    assert_eq!(json["user_id"], "ann");
    assert_eq!(json["resource"], format!("user/{}", m.id));
    assert_eq!(json["changes"]["after"]["email"], "m2@t.test");
    assert!(
        f.db.begin(&t)
            .await
            .unwrap()
            .verify_audit_chain()
            .await
            .unwrap()
            .valid
    );
}

async fn rolled_back_change_leaves_no_audit_entry(f: Fixture) {
    let t = tenant(&f.db).await;
    let before = entries(&f.db, &t, AuditFilter::default()).await.len();
    let mut tx = f.db.begin(&t).await.unwrap();
    tx.create_user(&NewUser {
        email: "gone@t.test".into(),
        role: Role::Member,
    })
    .await
    .unwrap();
    drop(tx);
    assert_eq!(
        entries(&f.db, &t, AuditFilter::default()).await.len(),
        before
    );
    let report =
        f.db.begin(&t)
            .await
            .unwrap()
            .verify_audit_chain()
            .await
            .unwrap();
    assert!(report.valid, "{report:?}");
}

async fn failed_write_leaves_no_audit_entry(f: Fixture) {
    let t = tenant(&f.db).await;
    let mut tx = f.db.begin(&t).await.unwrap();
    tx.create_user(&NewUser {
        email: "dup@t.test".into(),
        role: Role::Owner,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let before = entries(&f.db, &t, AuditFilter::default()).await.len();
    let mut tx = f.db.begin(&t).await.unwrap();
    let err = tx
        .create_user(&NewUser {
            email: "dup@t.test".into(),
            role: Role::Member,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)));
    drop(tx);
    assert_eq!(
        entries(&f.db, &t, AuditFilter::default()).await.len(),
        before
    );
}

async fn runtime_cannot_update_or_delete_audit_entries(f: Fixture) {
    let t = tenant(&f.db).await;
    let update = f
        .raw
        .runtime_attempt(
            &t,
            "UPDATE audit_logs SET action = 'forged' WHERE tenant_id = $1",
        )
        .await;
    let delete = f
        .raw
        .runtime_attempt(&t, "DELETE FROM audit_logs WHERE tenant_id = $1")
        .await;
    for err in [update, delete] {
        assert!(
            err.contains("permission denied") || err.contains("append-only"),
            "{err}"
        );
    }
    // PostgreSQL: the deletion path (an owner function) refuses a tenant
    // whose deletion has not been started, and any tenant but the current one.
    if let Raw::Pg { .. } = f.raw {
        let erase = f
            .raw
            .runtime_attempt(
                &t,
                "SELECT tenantkit_erase_tenant_audit($1, 'audit_logs', 1000)",
            )
            .await;
        assert!(erase.contains("not being deleted"), "{erase}");
        let other = tenant(&f.db).await;
        let elsewhere = f
            .raw
            .runtime_attempt(
                &other,
                "SELECT tenantkit_erase_tenant_audit('00000000-0000-7000-8000-000000000000', 'audit_logs', 1000) WHERE $1::uuid IS NOT NULL",
            )
            .await;
        assert!(elsewhere.contains("current tenant"), "{elsewhere}");
    }
    assert!(
        f.db.begin(&t)
            .await
            .unwrap()
            .verify_audit_chain()
            .await
            .unwrap()
            .valid
    );
}

async fn owner_cannot_update_or_delete_without_the_purge_path(f: Fixture) {
    let t = tenant(&f.db).await;
    let update = f
        .raw
        .owner_attempt(
            &t,
            "UPDATE audit_logs SET action = 'forged' WHERE tenant_id = $1",
        )
        .await;
    let delete = f
        .raw
        .owner_attempt(&t, "DELETE FROM audit_logs WHERE tenant_id = $1")
        .await;
    for err in [update, delete] {
        assert!(err.contains("append-only"), "{err}");
    }
    assert_eq!(entries(&f.db, &t, AuditFilter::default()).await.len(), 1);
}

async fn seeded(f: &Fixture, users: usize) -> TenantContext {
    let t = tenant(&f.db).await;
    let mut tx = f.db.begin(&t).await.unwrap();
    for i in 0..users {
        tx.create_user(&NewUser {
            email: format!("u{i}@t.test"),
            role: Role::Owner,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    t
}

async fn verify_catches_an_altered_entry(f: Fixture) {
    let t = seeded(&f, 4).await;
    assert!(
        f.db.begin(&t)
            .await
            .unwrap()
            .verify_audit_chain()
            .await
            .unwrap()
            .valid
    );
    f.raw
        .owner_bypass(
            &t,
            "UPDATE audit_logs SET actor_id = 'mallory' WHERE tenant_id = $1 AND seq = $2",
            3,
        )
        .await;
    let report =
        f.db.begin(&t)
            .await
            .unwrap()
            .verify_audit_chain()
            .await
            .unwrap();
    assert!(!report.valid);
    let broken = report.first_broken.unwrap();
    assert_eq!((broken.seq, broken.reason), (3, "hash_mismatch"));
}

async fn verify_catches_a_deleted_entry_and_a_deleted_tail(f: Fixture) {
    let t = seeded(&f, 4).await;
    f.raw
        .owner_bypass(
            &t,
            "DELETE FROM audit_logs WHERE tenant_id = $1 AND seq = $2",
            2,
        )
        .await;
    let broken =
        f.db.begin(&t)
            .await
            .unwrap()
            .verify_audit_chain()
            .await
            .unwrap()
            .first_broken
            .unwrap();
    assert_eq!((broken.seq, broken.reason), (2, "missing_entry"));

    let t = seeded(&f, 4).await;
    f.raw
        .owner_bypass(
            &t,
            "DELETE FROM audit_logs WHERE tenant_id = $1 AND seq = $2",
            5,
        )
        .await;
    let report =
        f.db.begin(&t)
            .await
            .unwrap()
            .verify_audit_chain()
            .await
            .unwrap();
    assert_eq!(report.checked, 4);
    let broken = report.first_broken.unwrap();
    assert_eq!((broken.seq, broken.reason), (5, "head_mismatch"));
}

async fn concurrent_writers_keep_one_valid_chain(f: Fixture) {
    // SQLite in memory has one connection; use a file so writers really overlap.
    let dir = tempfile::tempdir().unwrap();
    let db = match f.raw {
        Raw::Sqlite(_) => sqlite_file(&dir).await,
        Raw::Pg { .. } => f.db.clone(),
    };
    let t = tenant(&db).await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (db, t) = (db.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                let mut tx = db.begin(&t).await.unwrap();
                tx.create_user(&NewUser {
                    email: format!("w{w}-{i}@t.test"),
                    role: Role::Member,
                })
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let report = db
        .begin(&t)
        .await
        .unwrap()
        .verify_audit_chain()
        .await
        .unwrap();
    assert!(report.valid, "{report:?}");
    assert_eq!((report.checked, report.head_seq), (41, 41));
}

async fn other_tenants_entries_are_invisible(f: Fixture) {
    let a = seeded(&f, 2).await;
    let b = tenant(&f.db).await;
    let a_log = entries(&f.db, &a, AuditFilter::default()).await;
    let b_log = entries(&f.db, &b, AuditFilter::default()).await;
    assert!(b_log.iter().all(|e| e.tenant_id == b.id()));
    let a_user = a_log[0].resource_id.clone();
    let by_resource = AuditFilter {
        resource_id: a_user,
        ..Default::default()
    };
    assert!(entries(&f.db, &b, by_resource).await.is_empty());
    let mut tx = f.db.begin(&b).await.unwrap();
    let exported: Vec<_> = tx.audit_page(0, None, None, 500).await.unwrap();
    assert!(exported.iter().all(|e| e.tenant_id == b.id()));
    assert_eq!(
        tx.verify_audit_chain().await.unwrap().checked,
        1,
        "B's chain holds only B's entry"
    );
}

async fn filters_and_keyset_pagination(f: Fixture) {
    let t = seeded(&f, 5).await;
    let mut tx = f.db.begin(&as_ann(&t)).await.unwrap();
    let u = tx
        .create_user(&NewUser {
            email: "x@t.test".into(),
            role: Role::Member,
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let ann = entries(
        &f.db,
        &t,
        AuditFilter {
            actor_id: Some("ann".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ann.len(), 1);
    let system = entries(
        &f.db,
        &t,
        AuditFilter {
            actor_type: Some("system".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(system.len(), 6);
    let by_id = AuditFilter {
        resource_type: Some("user".into()),
        resource_id: Some(u.id.to_string()),
        ..Default::default()
    };
    assert_eq!(entries(&f.db, &t, by_id).await.len(), 1);
    let tenant_events = AuditFilter {
        action: Some("create".into()),
        resource_type: Some("tenant".into()),
        ..Default::default()
    };
    assert_eq!(entries(&f.db, &t, tenant_events).await.len(), 1);
    let future = AuditFilter {
        from: Some(Utc::now() + Duration::hours(1)),
        ..Default::default()
    };
    assert!(entries(&f.db, &t, future).await.is_empty());
    let past = AuditFilter {
        to: Some(Utc::now() - Duration::hours(1)),
        ..Default::default()
    };
    assert!(entries(&f.db, &t, past).await.is_empty());
    let recent = AuditFilter {
        from: Some(Utc::now() - Duration::hours(1)),
        to: Some(Utc::now() + Duration::hours(1)),
        ..Default::default()
    };
    assert_eq!(entries(&f.db, &t, recent).await.len(), 7);

    let mut seen = Vec::new();
    let mut before_seq = None;
    loop {
        let page = entries(
            &f.db,
            &t,
            AuditFilter {
                before_seq,
                limit: Some(3),
                ..Default::default()
            },
        )
        .await;
        if page.is_empty() {
            break;
        }
        before_seq = page.last().map(|e| e.seq);
        seen.extend(page.iter().map(|e| e.seq));
    }
    assert_eq!(seen, (1..=7).rev().collect::<Vec<_>>());
    let bad = AuditFilter {
        actor_type: Some("robot".into()),
        ..Default::default()
    };
    assert!(matches!(
        f.db.begin(&t).await.unwrap().list_audit_logs(&bad).await,
        Err(Error::Invalid(_))
    ));
    let too_many = AuditFilter {
        limit: Some(501),
        ..Default::default()
    };
    assert!(matches!(
        f.db.begin(&t)
            .await
            .unwrap()
            .list_audit_logs(&too_many)
            .await,
        Err(Error::Invalid(_))
    ));
}

async fn retention_purge_is_the_only_delete_and_is_audited(f: Fixture) {
    let t = seeded(&f, 5).await;
    // Age the first three entries past retention (as an owner could, to simulate time).
    let backdate = match f.raw {
        Raw::Pg { .. } => {
            "UPDATE audit_logs SET occurred_at = occurred_at - interval '400 days' WHERE tenant_id = $1 AND seq <= $2"
        }
        Raw::Sqlite(_) => {
            "UPDATE audit_logs SET occurred_at = '2025-01-01T00:00:00+00:00' WHERE tenant_id = $1 AND seq <= $2"
        }
    };
    f.raw.owner_bypass(&t, backdate, 3).await;

    let mut tx = f.db.begin(&t).await.unwrap();
    assert!(
        matches!(
            tx.purge_audit_logs(Utc::now()).await,
            Err(Error::Invalid(_))
        ),
        "retention below a day"
    );
    let purged = tx
        .purge_audit_logs(Utc::now() - Duration::days(365))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(purged, 3);

    let log = entries(&f.db, &t, AuditFilter::default()).await;
    assert_eq!(log.first().unwrap().action, "audit_log.purged");
    assert_eq!(log.first().unwrap().after.as_ref().unwrap()["purged"], 3);
    assert_eq!(log.last().unwrap().seq, 4, "the oldest entries are gone");
    let report =
        f.db.begin(&t)
            .await
            .unwrap()
            .verify_audit_chain()
            .await
            .unwrap();
    assert!(
        report.valid,
        "the chain verifies from the purge anchor: {report:?}"
    );
    assert_eq!((report.first_seq, report.checked), (4, 4));

    let mut tx = f.db.begin(&t).await.unwrap();
    assert_eq!(
        tx.purge_audit_logs(Utc::now() - Duration::days(365))
            .await
            .unwrap(),
        0,
        "nothing left to purge"
    );
}

async fn export_streams_100k_entries_in_bounded_chunks(f: Fixture) {
    let t = tenant(&f.db).await;
    f.raw.seed(&t, 100_000).await;
    let mut stream = Box::pin(f.db.export_audit_logs(t.clone(), None, None));
    let (mut lines, mut chunks, mut largest) = (0usize, 0usize, 0usize);
    let mut last_seq = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        chunks += 1;
        largest = largest.max(chunk.len());
        for line in chunk.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let seq = entry["seq"].as_i64().unwrap();
            assert_eq!(seq, last_seq + 1, "in order, none missing");
            last_seq = seq;
            lines += 1;
        }
    }
    assert_eq!(
        lines, 100_001,
        "the tenant's creation plus the seeded entries"
    );
    assert_eq!(chunks, 100_001usize.div_ceil(AUDIT_BATCH as usize));
    // Each chunk holds at most one batch (~1000 entries of ~600 bytes), never the whole export (~60 MB).
    assert!(largest < 2 * 1024 * 1024, "largest chunk {largest} bytes");
}
