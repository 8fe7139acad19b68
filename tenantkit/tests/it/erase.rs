//! Hard deletion of a tenant, on SQLite and on PostgreSQL (as the runtime
//! role): every row goes, in batches, exactly counted, resumable; other
//! tenants are untouched; the subdomain is free again.

use std::{collections::BTreeMap, time::Duration};

use futures_util::StreamExt;
use tenantkit::{
    Db, Error, NewApiKey, NewTenant, NewUser, Role, Scope, TenantContext, TenantStatus,
    audit::Actor, store::TenantDeletion,
};

use crate::common::{on_both_backends, tenant};

on_both_backends!(
    deletion_removes_every_row_and_leaves_a_tombstone,
    interrupted_deletion_finishes_when_run_again,
    a_tenant_being_deleted_cannot_be_reactivated,
    a_deleted_tenant_cannot_be_written_in_bulk,
);

const ADMIN: fn() -> Actor = || Actor::PlatformAdmin("ops@example.test".into());

/// A tenant with `users` users and an API key each (so audit entries too).
async fn seeded(db: &Db, users: usize) -> TenantContext {
    let t = tenant(db).await;
    let mut tx = db.begin(&t).await.unwrap();
    for i in 0..users {
        tx.create_user(&NewUser {
            email: format!("u{i}@t.test"),
            role: Role::Owner,
        })
        .await
        .unwrap();
        tx.create_api_key(&NewApiKey {
            name: format!("key {i}"),
            scopes: vec![Scope::UsersRead],
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    t
}

/// The tenant's rows in every tenant-owned table, by table (non-zero only).
async fn rows_of(db: &Db, t: &TenantContext) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for table in db.tenant_tables().await.unwrap() {
        let mut tx = db.begin_snapshot(t).await.unwrap();
        let n = tx.export_rows(&table).count().await;
        if n > 0 {
            counts.insert(table.name.clone(), n as i64);
        }
    }
    counts
}

async fn deletion_removes_every_row_and_leaves_a_tombstone(db: Db) {
    let (gone, kept) = (seeded(&db, 7).await, seeded(&db, 3).await);
    let before = rows_of(&db, &gone).await;
    let kept_before = rows_of(&db, &kept).await;
    assert_eq!(before["users"], 7);

    let started = db
        .platform()
        .start_tenant_deletion(gone.id(), &ADMIN(), Some(&"ab".repeat(32)))
        .await
        .unwrap();
    assert_eq!(started.subdomain, gone.tenant().subdomain);
    assert_eq!(started.actor_type, "platform_admin");
    assert_eq!(started.actor_id.as_deref(), Some("ops@example.test"));
    assert!(started.finished_at.is_none());
    let suspended = db.resolve_id(gone.id()).await.unwrap().unwrap();
    assert_eq!(suspended.tenant().status, TenantStatus::Suspended);
    let during = rows_of(&db, &gone).await;

    // Batches of 2 rows: many transactions, counted exactly.
    let done = db.platform().erase_tenant(gone.id(), 2).await.unwrap();
    assert!(done.finished_at.is_some());
    assert_eq!(
        done.export_sha256.as_deref(),
        Some("ab".repeat(32).as_str())
    );
    let mut expected = during.clone();
    expected.insert("tenants".into(), 1);
    expected.insert("tenant_external_ids".into(), 0);
    assert_eq!(done.rows_removed, expected);
    assert!(
        during["audit_logs"] > before["audit_logs"],
        "the suspension is audited"
    );

    assert!(rows_of(&db, &gone).await.is_empty(), "no row is left");
    assert!(db.resolve_id(gone.id()).await.unwrap().is_none());
    assert_eq!(rows_of(&db, &kept).await, kept_before, "others untouched");
    let mut tx = db.begin(&kept).await.unwrap();
    assert!(tx.verify_audit_chain().await.unwrap().valid);
    drop(tx);

    // Idempotent: both steps again give the tombstone back.
    assert_eq!(
        db.platform().erase_tenant(gone.id(), 2).await.unwrap(),
        done
    );
    assert_eq!(
        db.platform()
            .start_tenant_deletion(gone.id(), &ADMIN(), None)
            .await
            .unwrap(),
        done
    );
    assert_eq!(
        db.platform().tenant_deletion(gone.id()).await.unwrap(),
        Some(done)
    );
    assert!(
        !db.platform()
            .unfinished_tenant_deletions()
            .await
            .unwrap()
            .iter()
            .any(|d| d.tenant_id == gone.id())
    );

    // The subdomain is free again.
    let again = db
        .platform()
        .create_tenant(
            &NewTenant {
                name: "Again".into(),
                subdomain: gone.tenant().subdomain.clone(),
            },
            &Actor::System,
        )
        .await
        .unwrap();
    assert_ne!(again.id, gone.id());
}

async fn interrupted_deletion_finishes_when_run_again(db: Db) {
    let t = seeded(&db, 40).await;
    db.platform()
        .start_tenant_deletion(t.id(), &ADMIN(), None)
        .await
        .unwrap();
    let total: i64 = rows_of(&db, &t).await.values().sum();
    // Stop it (the future dropped mid-transaction, as a crash would) once
    // some batches have committed.
    let run = tokio::spawn({
        let (db, id) = (db.clone(), t.id());
        async move { db.platform().erase_tenant(id, 1).await }
    });
    let progress = |d: &TenantDeletion| d.rows_removed.values().sum::<i64>();
    loop {
        let now = db
            .platform()
            .tenant_deletion(t.id())
            .await
            .unwrap()
            .unwrap();
        if progress(&now) >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    run.abort();
    let _ = run.await;
    let interrupted = db
        .platform()
        .tenant_deletion(t.id())
        .await
        .unwrap()
        .unwrap();
    assert!(interrupted.finished_at.is_none());
    assert!(progress(&interrupted) < total, "stopped part-way");
    // (PostgreSQL tests share one database: other tests' deletions may be
    // there. Compared by tenant: the aborted run's last commit may still
    // land between the two reads and move the counts.)
    assert!(
        db.platform()
            .unfinished_tenant_deletions()
            .await
            .unwrap()
            .iter()
            .any(|d| d.tenant_id == interrupted.tenant_id && d.finished_at.is_none())
    );

    // Why it stopped is kept for whoever follows it, until it goes on: a
    // batch that lands after the record clears it (the aborted run's last
    // commit, even one that removed nothing more from a table), and then
    // it is recorded again. Once that commit has landed nothing else runs,
    // so a record that never stays is a real loss.
    let mut recorded = None;
    for _ in 0..50 {
        db.platform()
            .record_tenant_deletion_error(t.id(), &"x".repeat(5000))
            .await
            .unwrap();
        let after = db
            .platform()
            .tenant_deletion(t.id())
            .await
            .unwrap()
            .unwrap();
        if after.last_error.is_some() {
            recorded = Some(after);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reason = recorded
        .expect("the record stays once the deletion stands still")
        .last_error;
    assert_eq!(reason.map(|r| r.len()), Some(1000), "kept short");

    let done = db.platform().erase_tenant(t.id(), 1000).await.unwrap();
    assert!(done.finished_at.is_some());
    assert_eq!(done.last_error, None);
    assert_eq!(
        progress(&done),
        total + 1,
        "every row counted once (+ the tenant)"
    );
    assert!(rows_of(&db, &t).await.is_empty());
}

async fn a_tenant_being_deleted_cannot_be_reactivated(db: Db) {
    let t = seeded(&db, 1).await;
    assert!(
        matches!(
            db.platform().erase_tenant(t.id(), 10).await,
            Err(Error::NotFound(_))
        ),
        "not started"
    );
    assert!(matches!(
        db.platform()
            .start_tenant_deletion(t.id(), &ADMIN(), Some("not-a-hash"))
            .await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        db.platform().erase_tenant(t.id(), 0).await,
        Err(Error::Invalid(_))
    ));
    db.platform()
        .start_tenant_deletion(t.id(), &ADMIN(), None)
        .await
        .unwrap();
    let err = db
        .platform()
        .set_tenant_status(t.id(), TenantStatus::Active, &ADMIN())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("deleted")),
        "{err:?}"
    );
    assert_eq!(
        db.resolve_id(t.id())
            .await
            .unwrap()
            .unwrap()
            .tenant()
            .status,
        TenantStatus::Suspended
    );
    assert!(matches!(
        db.platform()
            .start_tenant_deletion(tenantkit::TenantId::new(), &ADMIN(), None)
            .await,
        Err(Error::NotFound(_))
    ));
}

async fn a_deleted_tenant_cannot_be_written_in_bulk(db: Db) {
    let t = seeded(&db, 1).await;
    db.platform()
        .start_tenant_deletion(t.id(), &ADMIN(), None)
        .await
        .unwrap();
    db.platform().erase_tenant(t.id(), 100).await.unwrap();
    // A batch writer that still holds the old context.
    let mut bulk = db.begin_bulk().await.unwrap();
    assert!(matches!(bulk.tenant(&t).await, Err(Error::NotFound(_))));
}
