//! Direct dispatch (`outbox::dispatch`), on SQLite and on PostgreSQL as the
//! runtime role: a message published with `publish_messages` reaches the
//! running worker of the process as its transaction commits, with no claim
//! (the workers here claim nothing); the budget holds for it; a
//! rolled-back publish sends nothing and gives its room back; a killed
//! worker's handed-over deliveries are retried once their leases run out.

use std::time::Duration;

use serde_json::json;
use tenantkit::{Db, TenantContext};
use tenantkit_webhooks::{
    Webhooks,
    deliveries::DeliveryState,
    outbox::{MessageId, NewMessage},
    worker::{Worker, WorkerOptions},
};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::common::{Behaviour, Receiver, endpoint, local_webhooks, tenant, transport};

tenantkit::backend_tests!(crate::common::isolated, multi_thread;
    a_published_message_goes_straight_to_the_worker,
    the_budget_holds_for_handed_over_deliveries,
    a_rolled_back_publish_sends_nothing_and_gives_its_room_back,
    a_killed_workers_handed_over_deliveries_are_retried_after_their_lease,
);

/// A worker that claims nothing (no tenant per round): whatever it
/// delivers was handed over.
fn idle_claims() -> WorkerOptions {
    let mut options = WorkerOptions::default()
        .poll_interval(Duration::from_millis(50))
        .outcome_linger(Duration::from_millis(20));
    options.tenants_per_round = 0;
    options
}

fn start(
    db: &Db,
    w: &Webhooks,
    options: WorkerOptions,
    per_minute: Option<u32>,
) -> (oneshot::Sender<()>, JoinHandle<tenantkit::Result<()>>) {
    let worker = Worker::new(db.clone(), w.clone(), transport(w, Duration::from_secs(60)))
        .with_options(options)
        .with_limits(per_minute);
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async {
        stopped.await.ok();
    }));
    (stop, handle)
}

/// Makes the tenant's budget known to the worker, as a first publish does
/// (that one's delivery is left to the claims, which these workers do not
/// make): a publish never looks it up from inside its transaction.
async fn introduce(db: &Db, w: &Webhooks, t: &TenantContext) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    publish(db, w, t, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

async fn publish(db: &Db, w: &Webhooks, t: &TenantContext, n: usize) -> Vec<MessageId> {
    let messages: Vec<NewMessage> = (0..n)
        .map(|i| NewMessage {
            event_type: "user.created".into(),
            data: json!({ "n": i }).as_object().unwrap().clone(),
            ..Default::default()
        })
        .collect();
    let mut tx = db.begin(t).await.unwrap();
    let published = w.publish_messages(&mut tx, &messages, None).await.unwrap();
    tx.commit().await.unwrap();
    published.messages.iter().map(|m| m.message_id).collect()
}

async fn delivery(
    db: &Db,
    w: &Webhooks,
    t: &TenantContext,
    hook: tenantkit_webhooks::WebhookId,
    msg: MessageId,
) -> tenantkit_webhooks::deliveries::Delivery {
    let mut tx = db.begin(t).await.unwrap();
    w.delivery(&mut tx, hook, msg).await.unwrap()
}

async fn a_published_message_goes_straight_to_the_worker(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (a, _) = endpoint(&db, &w, &t, r.url("a")).await;
    let (b, _) = endpoint(&db, &w, &t, r.url("b")).await;
    let (stop, handle) = start(&db, &w, idle_claims(), None);
    introduce(&db, &w, &t).await;
    let msgs = publish(&db, &w, &t, 3).await;
    r.wait_for("a", 3, Duration::from_secs(5)).await;
    r.wait_for("b", 3, Duration::from_secs(5)).await;
    // Each sent once, and its outcome written under the lease it was
    // handed over with.
    for hook in [a, b] {
        for msg in &msgs {
            let mut d = delivery(&db, &w, &t, hook, *msg).await;
            for _ in 0..200 {
                if d.state == DeliveryState::Succeeded {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                d = delivery(&db, &w, &t, hook, *msg).await;
            }
            assert_eq!(
                (d.state, d.attempts, d.in_flight),
                (DeliveryState::Succeeded, 1, false)
            );
        }
    }
    stop.send(()).ok();
    handle.await.unwrap().unwrap();
    assert_eq!(r.received("a").len() + r.received("b").len(), 6);
}

async fn the_budget_holds_for_handed_over_deliveries(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let (stop, handle) = start(&db, &w, idle_claims(), Some(2));
    introduce(&db, &w, &t).await;
    let mut msgs = Vec::new();
    for _ in 0..3 {
        msgs.extend(publish(&db, &w, &t, 1).await);
    }
    r.wait_for("in", 2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.received("in").len(), 2, "2 a minute, handed over or not");
    let third = delivery(&db, &w, &t, hook, msgs[2]).await;
    assert_eq!(
        (third.state, third.attempts, third.in_flight),
        (DeliveryState::Pending, 0, false),
        "over the budget: left for the claims of the next minute"
    );
    stop.send(()).ok();
    handle.await.unwrap().unwrap();
}

async fn a_rolled_back_publish_sends_nothing_and_gives_its_room_back(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    endpoint(&db, &w, &t, r.url("in")).await;
    // One slot: a room not given back would stop every later delivery.
    let (stop, handle) = start(&db, &w, idle_claims().concurrency(1), None);
    introduce(&db, &w, &t).await;
    for _ in 0..3 {
        let mut tx = db.begin(&t).await.unwrap();
        let rolled = NewMessage {
            event_type: "user.deleted".into(),
            data: json!({ "rolled": "back" }).as_object().unwrap().clone(),
            ..Default::default()
        };
        w.publish_messages(&mut tx, &[rolled], None).await.unwrap();
        drop(tx);
    }
    publish(&db, &w, &t, 1).await;
    r.wait_for("in", 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = r.received("in");
    assert_eq!(got.len(), 1, "only the committed message");
    assert!(!String::from_utf8_lossy(&got[0].body).contains("rolled"));
    stop.send(()).ok();
    handle.await.unwrap().unwrap();
}

async fn a_killed_workers_handed_over_deliveries_are_retried_after_their_lease(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("in", Behaviour::Hang);
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let lease = Duration::from_secs(2);
    let (_stop, first) = start(&db, &w, idle_claims().lease(lease), None);
    introduce(&db, &w, &t).await;
    let msg = publish(&db, &w, &t, 1).await[0];
    r.wait_for("in", 1, Duration::from_secs(5)).await;
    // Like `kill -9`: nothing more runs, nothing is written.
    first.abort();
    let _ = first.await;
    let d = delivery(&db, &w, &t, hook, msg).await;
    assert_eq!(
        (d.state, d.attempts, d.in_flight),
        (DeliveryState::Pending, 1, true)
    );
    r.script("in", Behaviour::Status(200));
    let mut options = idle_claims().lease(lease);
    options.tenants_per_round = 100;
    let (stop, second) = start(&db, &w, options, None);
    let mut d = delivery(&db, &w, &t, hook, msg).await;
    for _ in 0..1000 {
        if d.state == DeliveryState::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        d = delivery(&db, &w, &t, hook, msg).await;
    }
    assert_eq!(
        (d.state, d.attempts),
        (DeliveryState::Succeeded, 2),
        "the killed worker's attempt counts"
    );
    stop.send(()).ok();
    second.await.unwrap().unwrap();
}
