//! Contention: a transaction that loses a race is [`Error::Contention`]
//! (which servers run again), and writers of one tenant that take the
//! tenant row and the audit head in different orders no longer deadlock.

use tenantkit::{Error, TenantStatus, audit::Actor, problem::Problem};

use crate::common::{postgres, postgres_owner_pool, tenant};

/// A real PostgreSQL deadlock maps to `Error::Contention`, and that to a
/// `503` with `Retry-After` that a retrying layer recognises.
#[tokio::test]
async fn postgres_a_deadlock_is_contention() {
    let Some(pool) = postgres_owner_pool().await else {
        return;
    };
    sqlx::query("CREATE TABLE IF NOT EXISTS lock_order_scratch (id int PRIMARY KEY, n int)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO lock_order_scratch VALUES (1, 0), (2, 0) ON CONFLICT DO NOTHING")
        .execute(&pool)
        .await
        .unwrap();
    let mut a = pool.begin().await.unwrap();
    let mut b = pool.begin().await.unwrap();
    let bump = "UPDATE lock_order_scratch SET n = n + 1 WHERE id = $1";
    sqlx::query(bump).bind(1).execute(&mut *a).await.unwrap();
    sqlx::query(bump).bind(2).execute(&mut *b).await.unwrap();
    // Opposite orders: one of the two is chosen as the deadlock's victim.
    let (ra, rb) = tokio::join!(
        sqlx::query(bump).bind(2).execute(&mut *a),
        sqlx::query(bump).bind(1).execute(&mut *b),
    );
    let victim = match (ra, rb) {
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Error::from_backend(e),
        other => panic!("expected exactly one deadlock victim, got {other:?}"),
    };
    assert!(victim.is_contention(), "{victim:?}");
    let problem = Problem::from(&victim);
    assert_eq!(problem.status, 503);
    let res = problem.into_response::<String>();
    assert_eq!(res.headers()["retry-after"], "1");
    assert!(
        res.extensions()
            .get::<tenantkit::problem::Contended>()
            .is_some()
    );
    drop((a, b));
}

/// Status changes (tenant row first) racing audited writes of the same
/// tenant (which used to take the audit head first, then the tenant row
/// through a foreign key check): every one of them succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_status_changes_racing_audited_writes_never_deadlock() {
    let Some(db) = postgres().await else {
        return;
    };
    let ctx = tenant(&db).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let db = db.clone();
        let ctx = ctx.clone();
        tasks.spawn(async move {
            if i % 2 == 0 {
                db.platform()
                    .set_tenant_status(ctx.id(), TenantStatus::Active, &Actor::System)
                    .await
                    .map(|_| ())
            } else {
                let mut tx = db.begin(&ctx).await?;
                tx.record_event(
                    "test.read",
                    "audit_log",
                    None,
                    serde_json::json!({ "i": i }),
                )
                .await?;
                tx.commit().await
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done.unwrap() {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let report = db
        .begin_snapshot(&ctx)
        .await
        .unwrap()
        .verify_audit_chain()
        .await
        .unwrap();
    assert!(report.valid, "{report:?}");
}
