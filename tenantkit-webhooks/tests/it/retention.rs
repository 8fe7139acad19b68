//! Retention, on SQLite and on PostgreSQL as the runtime role: messages
//! older than the cutoff go with their deliveries and attempts, in bounded
//! batches; pending ones and recent ones stay; the worker applies it.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use tenantkit::{Db, TenantContext};
use tenantkit_webhooks::{
    WebhookId, Webhooks,
    deliveries::DeliveryState,
    outbox::MessageId,
    retention::EXPIRED,
    worker::{Worker, WorkerOptions},
};

use crate::common::{Receiver, endpoint, local_webhooks, publish, tenant, worker};

tenantkit::backend_tests!(crate::common::isolated, multi_thread;
    old_messages_go_with_their_deliveries_and_pending_ones_stay,
    the_worker_applies_retention,
);

fn fast() -> WorkerOptions {
    WorkerOptions::default().poll_interval(Duration::from_millis(20))
}

/// Runs a worker until `done` holds (or 10 s), then stops it.
async fn run_until(worker: Worker, mut done: impl AsyncFnMut() -> bool) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async {
        stopped.await.ok();
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not done within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).ok();
    handle.await.unwrap().unwrap();
}

async fn state(
    db: &Db,
    w: &Webhooks,
    t: &TenantContext,
    hook: WebhookId,
    msg: MessageId,
) -> Option<DeliveryState> {
    let mut tx = db.begin(t).await.unwrap();
    w.delivery(&mut tx, hook, msg).await.ok().map(|d| d.state)
}

async fn attempts_logged(db: &Db, t: &TenantContext) -> i64 {
    let mut tx = db.begin(t).await.unwrap();
    let q = tx.query("SELECT COUNT(*) FROM webhook_deliveries WHERE tenant_id = $1");
    let (n,): (i64,) = tx.fetch_one(q).await.unwrap();
    n
}

async fn old_messages_go_with_their_deliveries_and_pending_ones_stay(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let hook = endpoint(&db, &w, &t, r.url("in")).await.0;
    let (m1, m2) = (
        publish(&db, &w, &t, 1).await[0],
        publish(&db, &w, &t, 1).await[0],
    );
    run_until(worker(&db, &w, fast().retention(None)), async || {
        state(&db, &w, &t, hook, m2).await == Some(DeliveryState::Succeeded)
            && state(&db, &w, &t, hook, m1).await == Some(DeliveryState::Succeeded)
    })
    .await;
    let m3 = publish(&db, &w, &t, 1).await[0]; // pending: no worker runs
    assert_eq!(attempts_logged(&db, &t).await, 2);

    // A cutoff in the past: nothing is old yet.
    let past = Utc::now() - chrono::Duration::minutes(1);
    assert!(
        db.tenants_with_due_work(&EXPIRED, past, 100, &[])
            .await
            .unwrap()
            .iter()
            .all(|d| d.tenant_id != t.id())
    );
    let mut tx = db.begin(&t).await.unwrap();
    assert_eq!(w.purge_expired(&mut tx, past, 100).await.unwrap(), 0);
    tx.commit().await.unwrap();

    // A cutoff after everything: the delivered ones go, one batch at a time.
    let cutoff = Utc::now() + chrono::Duration::minutes(1);
    let due = db
        .tenants_with_due_work(&EXPIRED, cutoff, 100, &[])
        .await
        .unwrap();
    assert!(due.iter().any(|d| d.tenant_id == t.id()));
    let mut tx = db.begin(&t).await.unwrap();
    assert_eq!(w.purge_expired(&mut tx, cutoff, 1).await.unwrap(), 1);
    assert_eq!(w.purge_expired(&mut tx, cutoff, 1).await.unwrap(), 1);
    assert_eq!(
        w.purge_expired(&mut tx, cutoff, 1).await.unwrap(),
        0,
        "the pending one stays"
    );
    tx.commit().await.unwrap();
    assert_eq!(state(&db, &w, &t, hook, m1).await, None);
    assert_eq!(state(&db, &w, &t, hook, m2).await, None);
    assert_eq!(
        state(&db, &w, &t, hook, m3).await,
        Some(DeliveryState::Pending)
    );
    assert_eq!(
        attempts_logged(&db, &t).await,
        0,
        "their attempts went with them"
    );
}

async fn the_worker_applies_retention(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let hook = endpoint(&db, &w, &t, r.url("in")).await.0;
    let m1 = publish(&db, &w, &t, 1).await[0];
    run_until(worker(&db, &w, fast().retention(None)), async || {
        state(&db, &w, &t, hook, m1).await == Some(DeliveryState::Succeeded)
    })
    .await;
    // 31 days later, with 30 days kept.
    let later = Utc::now() + chrono::Duration::days(31);
    let aged = worker(
        &db,
        &w,
        fast().retention(Some(Duration::from_secs(30 * 24 * 3600))),
    )
    .with_clock(Arc::new(move || later));
    run_until(aged, async || state(&db, &w, &t, hook, m1).await.is_none()).await;
}
