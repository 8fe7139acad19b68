//! The delivery worker against receivers on loopback, on SQLite and on
//! PostgreSQL as the runtime role: signed deliveries, retries under a
//! controllable clock, Retry-After, 410, dead letters and replay, rotation,
//! leases of a killed worker, two workers, fairness, the rate limit,
//! graceful shutdown.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantkit::{Db, TenantContext, audit::AuditFilter};
use tenantkit_webhooks::{
    WebhookId, WebhookPatch, WebhookStatus, Webhooks,
    deliveries::{DeliveryFilter, DeliveryState},
    outbox::MessageId,
    transport::EXCERPT,
    worker::{Clock, Worker, WorkerOptions},
};
use tokio::{sync::oneshot, task::JoinHandle};

use crate::common::{
    Behaviour, Receiver, endpoint, local_webhooks, publish, tenant, transport, worker,
};

tenantkit::backend_tests!(crate::common::isolated, multi_thread;
    a_committed_event_arrives_signed_and_verifies,
    a_rolled_back_event_is_never_sent,
    failures_follow_the_retry_schedule_then_dead_letter,
    a_dead_letter_is_replayed_through_the_api,
    retry_after_is_honoured,
    gone_disables_the_endpoint_at_once,
    an_endpoint_failing_for_five_days_is_disabled_and_a_success_resets_it,
    redirects_are_failures_never_followed,
    a_killed_workers_lease_expires_and_the_delivery_completes,
    two_workers_deliver_each_message_once,
    a_backlog_does_not_delay_another_tenant,
    hanging_endpoints_of_one_tenant_leave_slots_for_another,
    an_endpoint_enabled_again_after_410_gets_every_delivery,
    the_rate_limit_defers_and_holds_across_workers,
    graceful_shutdown_finishes_or_gives_back_what_is_in_flight,
    deleting_an_endpoint_stops_its_pending_deliveries,
    a_deleted_tenants_waiting_deliveries_stop_and_others_go_on,
    disabled_endpoints_deliveries_stop_and_are_recovered,
    rotation_signs_with_both_secrets_during_the_grace_period,
    responses_are_kept_to_4_kib_and_timeouts_classified,
    a_suspended_tenants_deliveries_pause_and_resume,
    history_filters_and_pages,
    custom_headers_go_with_every_delivery,
);

fn fast() -> WorkerOptions {
    WorkerOptions::default()
        .poll_interval(Duration::from_millis(20))
        .concurrency(16)
}

/// A clock the test moves.
#[derive(Clone)]
struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    fn new() -> Self {
        // A little ahead, so what was just published is due.
        Self(Arc::new(Mutex::new(
            Utc::now() + chrono::Duration::seconds(1),
        )))
    }
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
    fn clock(&self) -> Clock {
        let me = self.clone();
        Arc::new(move || me.now())
    }
}

/// A running worker and the way to stop it.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<tenantkit::Result<()>>,
}

impl Running {
    fn start(worker: Worker) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(worker.run(async {
            stopped.await.ok();
        }));
        Self {
            stop: Some(stop),
            handle,
        }
    }

    /// Graceful shutdown.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).ok();
        self.handle.await.unwrap().unwrap();
    }

    /// Like `kill -9`: nothing more runs, nothing is written.
    async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }
}

async fn state(
    db: &Db,
    w: &Webhooks,
    t: &TenantContext,
    hook: WebhookId,
    msg: MessageId,
) -> tenantkit_webhooks::deliveries::Delivery {
    let mut tx = db.begin(t).await.unwrap();
    w.delivery(&mut tx, hook, msg).await.unwrap()
}

/// Polls until the delivery is in `wanted`; panics after 10 s.
async fn wait_state(
    db: &Db,
    w: &Webhooks,
    t: &TenantContext,
    hook: WebhookId,
    msg: MessageId,
    wanted: impl Fn(&tenantkit_webhooks::deliveries::Delivery) -> bool,
) -> tenantkit_webhooks::deliveries::Delivery {
    for _ in 0..1000 {
        let d = state(db, w, t, hook, msg).await;
        if wanted(&d) {
            return d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "delivery never reached the wanted state: {:?}",
        state(db, w, t, hook, msg).await
    );
}

async fn a_committed_event_arrives_signed_and_verifies(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (hook, secret) = endpoint(&db, &w, &t, r.url("in")).await;
    let running = Running::start(worker(&db, &w, fast()));
    let msg = publish(&db, &w, &t, 1).await[0];
    let got = r.wait_for("in", 1, Duration::from_secs(10)).await;
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(&got[0].body, &got[0].headers)
        .expect("a valid Standard Webhooks signature");
    assert_eq!(got[0].headers["webhook-id"], msg.webhook_id().as_str());
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "user.created");
    assert_eq!(body["data"], json!({ "n": 0 }));
    assert!(body["timestamp"].is_string());
    let d = wait_state(&db, &w, &t, hook, msg, |d| {
        d.state == DeliveryState::Succeeded
    })
    .await;
    assert_eq!((d.attempts, d.last_status), (1, Some(200)));
    running.stop().await;
    let mut tx = db.begin(&t).await.unwrap();
    let attempts = w.attempts(&mut tx, hook, msg).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].response_status, Some(200));
    assert_eq!(attempts[0].response_excerpt, "ok");
}

async fn custom_headers_go_with_every_delivery(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (hook, secret) = endpoint(&db, &w, &t, r.url("in")).await;
    let mut tx = db.begin(&t).await.unwrap();
    let patch = tenantkit_webhooks::WebhookPatch {
        headers: Some(
            [("Authorization", "Bearer r3ceiver"), ("X-Team", "blue")]
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .into(),
        ),
        ..Default::default()
    };
    w.update(&mut tx, hook, &patch).await.unwrap();
    tx.commit().await.unwrap();
    let running = Running::start(worker(&db, &w, fast()));
    publish(&db, &w, &t, 2).await;
    let got = r.wait_for("in", 2, Duration::from_secs(10)).await;
    running.stop().await;
    for delivery in &got {
        assert_eq!(delivery.headers["authorization"], "Bearer r3ceiver");
        assert_eq!(delivery.headers["x-team"], "blue");
        assert_eq!(delivery.headers["content-type"], "application/json");
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(&delivery.body, &delivery.headers)
            .expect("the platform's signature headers are its own");
    }
}

async fn a_rolled_back_event_is_never_sent(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    endpoint(&db, &w, &t, r.url("in")).await;
    let running = Running::start(worker(&db, &w, fast()));
    let mut tx = db.begin(&t).await.unwrap();
    w.publish(&mut tx, "user.deleted", json!({ "rolled": "back" }))
        .await
        .unwrap();
    drop(tx);
    publish(&db, &w, &t, 1).await;
    let got = r.wait_for("in", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_after = r.received("in");
    assert_eq!(got_after.len(), 1, "only the committed event");
    assert!(!String::from_utf8_lossy(&got[0].body).contains("rolled"));
    running.stop().await;
}

async fn failures_follow_the_retry_schedule_then_dead_letter(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("in", Behaviour::Status(500));
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let clock = ManualClock::new();
    let running = Running::start(worker(&db, &w, fast()).with_clock(clock.clock()));
    let msg = publish(&db, &w, &t, 1).await[0];
    let schedule = [1, 5, 30, 300, 3600];
    for (i, secs) in schedule.iter().enumerate() {
        let d = wait_state(&db, &w, &t, hook, msg, |d| {
            d.attempts == i as i64 + 1 && !d.in_flight && d.state == DeliveryState::Pending
        })
        .await;
        let wait =
            (d.next_attempt_at.unwrap() - d.last_attempt_at.unwrap()).num_milliseconds() as f64;
        let want = *secs as f64 * 1000.0;
        assert!(
            (wait - want).abs() <= want * 0.10 + 1.0,
            "retry {} after {wait} ms, expected {want} ms ± 10 %",
            i + 1
        );
        // Not before its time...
        clock.advance(chrono::Duration::milliseconds((want * 0.85) as i64));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(r.received("in").len(), i + 1, "retry {} came early", i + 1);
        // ...but once it is due.
        clock.advance(chrono::Duration::milliseconds((want * 0.30) as i64));
        r.wait_for("in", i + 2, Duration::from_secs(10)).await;
    }
    let d = wait_state(&db, &w, &t, hook, msg, |d| d.state == DeliveryState::Dead).await;
    assert_eq!(d.attempts, 6, "the first attempt and five retries");
    assert_eq!(d.next_attempt_at, None);
    clock.advance(chrono::Duration::hours(2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(r.received("in").len(), 6, "a dead letter is not retried");
    running.stop().await;
    let mut tx = db.begin(&t).await.unwrap();
    let dead = w.dead_letters(&mut tx, None, None).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| d.message_id).collect::<Vec<_>>(),
        vec![msg]
    );
    let attempts = w.attempts(&mut tx, hook, msg).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
}

async fn a_dead_letter_is_replayed_through_the_api(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("in", Behaviour::Status(500));
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let msg = publish(&db, &w, &t, 1).await[0];
    // Every retry spent: mark it as the worker would after the sixth failure.
    let clock = ManualClock::new();
    let running = Running::start(worker(&db, &w, fast()).with_clock(clock.clock()));
    for i in 1..=6 {
        r.wait_for("in", i, Duration::from_secs(10)).await;
        clock.advance(chrono::Duration::hours(2));
    }
    wait_state(&db, &w, &t, hook, msg, |d| d.state == DeliveryState::Dead).await;
    running.stop().await;

    r.script("in", Behaviour::Status(204));
    let mut tx = db.begin(&t).await.unwrap();
    let replayed = w.retry_delivery(&mut tx, hook, msg).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        (replayed.state, replayed.attempts),
        (DeliveryState::Pending, 0)
    );
    let running = Running::start(worker(&db, &w, fast()));
    r.wait_for("in", 7, Duration::from_secs(10)).await;
    let d = wait_state(&db, &w, &t, hook, msg, |d| {
        d.state == DeliveryState::Succeeded
    })
    .await;
    assert_eq!(d.last_status, Some(204));
    running.stop().await;
    // Replaying is audited; a delivery already pending cannot be replayed twice.
    let mut tx = db.begin(&t).await.unwrap();
    let trail = tx.list_audit_logs(&AuditFilter::default()).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.action == "webhook.delivery_replayed")
    );
    assert!(
        w.dead_letters(&mut tx, None, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn retry_after_is_honoured(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("in", Behaviour::RetryAfter(429, "120"));
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let running = Running::start(worker(&db, &w, fast()));
    let msg = publish(&db, &w, &t, 1).await[0];
    let d = wait_state(&db, &w, &t, hook, msg, |d| d.attempts == 1 && !d.in_flight).await;
    let wait = d.next_attempt_at.unwrap() - d.last_attempt_at.unwrap();
    assert!(
        (119..=121).contains(&wait.num_seconds()),
        "Retry-After: 120 moved the first retry (1 s) to 120 s, got {wait}"
    );
    assert_eq!(d.state, DeliveryState::Pending);
    running.stop().await;
}

async fn gone_disables_the_endpoint_at_once(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("gone", Behaviour::Status(410));
    let (hook, _) = endpoint(&db, &w, &t, r.url("gone")).await;
    let running = Running::start(worker(&db, &w, fast().concurrency(1)));
    let msgs = publish(&db, &w, &t, 3).await;
    let first = wait_state(&db, &w, &t, hook, msgs[0], |d| {
        d.state == DeliveryState::Failed
    })
    .await;
    assert_eq!(first.last_status, Some(410));
    running.stop().await;
    let mut tx = db.begin(&t).await.unwrap();
    let endpoint = w.get(&mut tx, hook).await.unwrap();
    assert_eq!(endpoint.status, WebhookStatus::Disabled);
    assert!(endpoint.disabled_reason.unwrap().contains("410"));
    let all = w
        .deliveries(&mut tx, hook, &DeliveryFilter::default())
        .await
        .unwrap();
    assert!(
        all.iter().all(|d| d.state == DeliveryState::Failed),
        "{all:?}"
    );
    // Whatever was sent before the disabling committed has its outcome:
    // nothing claimed is dropped unrecorded.
    let mut attempts = 0;
    for msg in &msgs {
        attempts += w.attempts(&mut tx, hook, *msg).await.unwrap().len();
    }
    assert_eq!(
        attempts,
        r.received("gone").len(),
        "one attempt logged per request sent"
    );
    let trail = tx.list_audit_logs(&AuditFilter::default()).await.unwrap();
    assert!(trail.iter().any(|e| e.action == "webhook.disabled"));
}

async fn an_endpoint_failing_for_five_days_is_disabled_and_a_success_resets_it(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("flaky", Behaviour::Status(503));
    let (hook, _) = endpoint(&db, &w, &t, r.url("flaky")).await;
    let clock = ManualClock::new();
    let running = Running::start(worker(&db, &w, fast()).with_clock(clock.clock()));
    let m1 = publish(&db, &w, &t, 1).await[0];
    wait_state(&db, &w, &t, hook, m1, |d| d.attempts == 1 && !d.in_flight).await;
    // Four days later it succeeds once: the failing streak ends.
    clock.advance(chrono::Duration::days(4));
    r.script("flaky", Behaviour::Status(200));
    wait_state(&db, &w, &t, hook, m1, |d| {
        d.state == DeliveryState::Succeeded
    })
    .await;
    r.script("flaky", Behaviour::Status(503));
    let m2 = publish(&db, &w, &t, 1).await[0];
    wait_state(&db, &w, &t, hook, m2, |d| d.attempts == 1 && !d.in_flight).await;
    // Two more days: 6 days since the first failure, 2 since the success.
    clock.advance(chrono::Duration::days(2));
    wait_state(&db, &w, &t, hook, m2, |d| d.attempts == 2 && !d.in_flight).await;
    let mut tx = db.begin(&t).await.unwrap();
    assert_eq!(
        w.get(&mut tx, hook).await.unwrap().status,
        WebhookStatus::Active
    );
    drop(tx);
    // More than five days after m2's first failure.
    clock.advance(chrono::Duration::days(3) + chrono::Duration::hours(1));
    wait_state(&db, &w, &t, hook, m2, |d| d.state == DeliveryState::Failed).await;
    running.stop().await;
    let mut tx = db.begin(&t).await.unwrap();
    let endpoint = w.get(&mut tx, hook).await.unwrap();
    assert_eq!(endpoint.status, WebhookStatus::Disabled);
    assert!(endpoint.disabled_reason.unwrap().contains("failed since"));
}

async fn redirects_are_failures_never_followed(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("moved", Behaviour::Status(308));
    let (hook, _) = endpoint(&db, &w, &t, r.url("moved")).await;
    let running = Running::start(worker(&db, &w, fast()));
    let msg = publish(&db, &w, &t, 1).await[0];
    let d = wait_state(&db, &w, &t, hook, msg, |d| d.attempts == 1 && !d.in_flight).await;
    assert_eq!(
        (d.state, d.last_status),
        (DeliveryState::Pending, Some(308))
    );
    running.stop().await;
}

async fn a_killed_workers_lease_expires_and_the_delivery_completes(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("in", Behaviour::Slow(Duration::from_secs(30)));
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let lease = Duration::from_secs(2);
    let first = Running::start(
        Worker::new(
            db.clone(),
            w.clone(),
            transport(&w, Duration::from_secs(60)),
        )
        .with_options(fast().lease(lease))
        .with_limits(None),
    );
    let msg = publish(&db, &w, &t, 1).await[0];
    wait_state(&db, &w, &t, hook, msg, |d| d.attempts == 1).await;
    first.kill().await;
    // The lease was committed: the delivery is not due until it expires.
    let d = state(&db, &w, &t, hook, msg).await;
    assert_eq!(d.state, DeliveryState::Pending);
    r.script("in", Behaviour::Status(200));
    let second = Running::start(worker(&db, &w, fast().lease(lease)));
    let d = wait_state(&db, &w, &t, hook, msg, |d| {
        d.state == DeliveryState::Succeeded
    })
    .await;
    assert_eq!(d.attempts, 2, "the killed worker's attempt counts");
    second.stop().await;
}

async fn two_workers_deliver_each_message_once(db: Db) {
    let (w, r) = (local_webhooks(), Receiver::start().await);
    let mut tenants = Vec::new();
    for i in 0..4 {
        let t = tenant(&db).await;
        endpoint(&db, &w, &t, r.url(&format!("t{i}"))).await;
        tenants.push(t);
    }
    let a = Running::start(worker(&db, &w, fast().batch_per_tenant(5)));
    let b = Running::start(worker(&db, &w, fast().batch_per_tenant(5)));
    for t in &tenants {
        publish(&db, &w, t, 50).await;
    }
    for i in 0..4 {
        r.wait_for(&format!("t{i}"), 50, Duration::from_secs(30))
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.stop().await;
    b.stop().await;
    for i in 0..4 {
        let got = r.received(&format!("t{i}"));
        let mut ids: HashMap<String, usize> = HashMap::new();
        for g in &got {
            *ids.entry(g.headers["webhook-id"].to_str().unwrap().to_owned())
                .or_default() += 1;
        }
        assert_eq!(ids.len(), 50);
        assert!(
            ids.values().all(|n| *n == 1),
            "a message was delivered twice: {ids:?}"
        );
    }
}

async fn a_backlog_does_not_delay_another_tenant(db: Db) {
    let (w, r) = (local_webhooks(), Receiver::start().await);
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    r.script("a", Behaviour::Slow(Duration::from_millis(20)));
    endpoint(&db, &w, &a, r.url("a")).await;
    endpoint(&db, &w, &b, r.url("b")).await;
    publish(&db, &w, &a, 5000).await;
    let running = Running::start(worker(&db, &w, fast()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&db, &w, &b, 10).await;
    // Measured in A's deliveries, not seconds, so a loaded machine (SQLite's
    // single writer shares 2 cores with every other test) cannot fail it:
    // queued behind A, B would wait for all of A's remaining backlog.
    let a_before = r.received("a").len();
    r.wait_for("b", 10, Duration::from_secs(15)).await;
    let a_after = r.received("a").len();
    running.stop().await;
    assert!(
        a_after < 5000,
        "A's backlog was still being worked through ({a_after} of 5000)"
    );
    // Fair: B is done long before A's backlog (a FIFO would make it wait
    // for all of it). How many of A's go meanwhile depends on the machine's
    // load (A keeps 16 in flight while B's 10 are written and sent), so the
    // bound is half of what A had left, not a count a busy CI host exceeds.
    assert!(
        a_after - a_before < (5000 - a_before) / 2,
        "B waited while A got {} deliveries ({a_before} before, of 5000)",
        a_after - a_before
    );
}

/// Tenant A has 60 endpoints that never answer (each attempt waits out the
/// 10 s timeout); the worker has 64 slots. A holds at most its share (half),
/// so B's delivery goes out at once instead of after A's timeouts.
async fn hanging_endpoints_of_one_tenant_leave_slots_for_another(db: Db) {
    let (w, r) = (local_webhooks(), Receiver::start().await);
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    for i in 0..60 {
        let path = format!("hang{i}");
        r.script(&path, Behaviour::Hang);
        endpoint(&db, &w, &a, r.url(&path)).await;
    }
    endpoint(&db, &w, &b, r.url("b")).await;
    let options = WorkerOptions::default();
    assert_eq!(options.slots_per_tenant(), 32);
    let worker = Worker::new(
        db.clone(),
        w.clone(),
        transport(&w, Duration::from_secs(10)),
    )
    .with_options(options)
    .with_limits(None);
    let running = Running::start(worker);
    publish(&db, &w, &a, 1).await;
    // A's share of the slots hangs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (0..60)
        .map(|i| r.received(&format!("hang{i}")).len())
        .sum::<usize>()
        < 32
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A's deliveries never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hanging: usize = (0..60).map(|i| r.received(&format!("hang{i}")).len()).sum();
    assert_eq!(hanging, 32, "A holds its share and no more");
    let sent = std::time::Instant::now();
    publish(&db, &w, &b, 1).await;
    r.wait_for("b", 1, Duration::from_secs(5)).await;
    let took = sent.elapsed();
    running.kill().await;
    eprintln!("B's delivery beside 60 hanging endpoints of A: {took:?}");
    assert!(took < Duration::from_secs(1), "B waited {took:?}");
}

/// An endpoint that answered `410 Gone` is disabled; enabled again (and
/// its failed deliveries recovered), the same worker process sends it
/// everything: nothing of it is remembered in-process, and no claimed
/// delivery goes without an outcome.
async fn an_endpoint_enabled_again_after_410_gets_every_delivery(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("in", Behaviour::Status(410));
    let since = Utc::now() - chrono::Duration::seconds(1);
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let running = Running::start(worker(&db, &w, fast()));
    let first = publish(&db, &w, &t, 1).await;
    wait_state(&db, &w, &t, hook, first[0], |d| {
        d.state == DeliveryState::Failed
    })
    .await;
    let mut tx = db.begin(&t).await.unwrap();
    assert_eq!(
        w.get(&mut tx, hook).await.unwrap().status,
        WebhookStatus::Disabled
    );
    drop(tx);

    r.script("in", Behaviour::Status(200));
    let mut tx = db.begin(&t).await.unwrap();
    let active = WebhookPatch {
        status: Some(WebhookStatus::Active),
        ..Default::default()
    };
    w.update(&mut tx, hook, &active).await.unwrap();
    let recovered = w.recover(&mut tx, hook, since).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(recovered.deliveries, 1);
    let more = publish(&db, &w, &t, 3).await;
    let got = r.wait_for("in", 5, Duration::from_secs(10)).await;
    running.stop().await;
    assert_eq!(
        got.len(),
        5,
        "the 410, then the recovered one and three new ones"
    );
    let mut tx = db.begin(&t).await.unwrap();
    for msg in first.iter().chain(&more) {
        let d = w.delivery(&mut tx, hook, *msg).await.unwrap();
        assert_eq!(d.state, DeliveryState::Succeeded, "{d:?}");
    }
    let statuses = |attempts: Vec<tenantkit_webhooks::deliveries::DeliveryAttempt>| {
        attempts
            .iter()
            .map(|a| a.response_status)
            .collect::<Vec<_>>()
    };
    let replayed = w.attempts(&mut tx, hook, first[0]).await.unwrap();
    assert_eq!(statuses(replayed), [Some(410), Some(200)]);
    for msg in &more {
        let attempts = w.attempts(&mut tx, hook, *msg).await.unwrap();
        assert_eq!(
            statuses(attempts),
            [Some(200)],
            "sent once, with its outcome"
        );
    }
}

async fn the_rate_limit_defers_and_holds_across_workers(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let clock = ManualClock::new();
    let limited = |w: &Webhooks| {
        Worker::new(db.clone(), w.clone(), transport(w, Duration::from_secs(2)))
            .with_options(fast())
            .with_limits(Some(5))
            .with_clock(clock.clock())
    };
    let (a, b) = (Running::start(limited(&w)), Running::start(limited(&w)));
    let msgs = publish(&db, &w, &t, 12).await;
    r.wait_for("in", 5, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        r.received("in").len(),
        5,
        "5 per minute across both workers"
    );
    let waiting = state(&db, &w, &t, hook, msgs[11]).await;
    assert_eq!(
        (waiting.state, waiting.attempts),
        (DeliveryState::Pending, 0),
        "deferred, not dropped"
    );
    clock.advance(chrono::Duration::seconds(61));
    r.wait_for("in", 10, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.received("in").len(), 10);
    clock.advance(chrono::Duration::seconds(61));
    r.wait_for("in", 12, Duration::from_secs(10)).await;
    a.stop().await;
    b.stop().await;
}

async fn graceful_shutdown_finishes_or_gives_back_what_is_in_flight(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("slow", Behaviour::Slow(Duration::from_millis(800)));
    let (hook, _) = endpoint(&db, &w, &t, r.url("slow")).await;
    // Enough grace: the delivery in flight finishes and is recorded.
    let running = Running::start(worker(
        &db,
        &w,
        fast().shutdown_grace(Duration::from_secs(5)),
    ));
    let m1 = publish(&db, &w, &t, 1).await[0];
    wait_state(&db, &w, &t, hook, m1, |d| d.attempts == 1).await;
    running.stop().await;
    assert_eq!(
        state(&db, &w, &t, hook, m1).await.state,
        DeliveryState::Succeeded
    );
    // Too little: the lease is given back, due at once, not counted.
    r.script("slow", Behaviour::Slow(Duration::from_secs(30)));
    let running = Running::start(
        Worker::new(
            db.clone(),
            w.clone(),
            transport(&w, Duration::from_secs(60)),
        )
        .with_options(fast().shutdown_grace(Duration::from_millis(200)))
        .with_limits(None),
    );
    let m2 = publish(&db, &w, &t, 1).await[0];
    wait_state(&db, &w, &t, hook, m2, |d| d.attempts == 1).await;
    running.stop().await;
    let d = state(&db, &w, &t, hook, m2).await;
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 0));
    assert!(d.next_attempt_at.unwrap() <= Utc::now());
}

async fn deleting_an_endpoint_stops_its_pending_deliveries(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (hook, _) = endpoint(&db, &w, &t, r.url("gone-soon")).await;
    let (_, _) = endpoint(&db, &w, &t, r.url("stays")).await;
    publish(&db, &w, &t, 3).await;
    let mut tx = db.begin(&t).await.unwrap();
    w.delete(&mut tx, hook).await.unwrap();
    tx.commit().await.unwrap();
    let running = Running::start(worker(&db, &w, fast()));
    r.wait_for("stays", 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert!(r.received("gone-soon").is_empty());
}

async fn a_deleted_tenants_waiting_deliveries_stop_and_others_go_on(db: Db) {
    let w = local_webhooks();
    let (gone, kept, r) = (
        tenant(&db).await,
        tenant(&db).await,
        Receiver::start().await,
    );
    let (hook, _) = endpoint(&db, &w, &gone, r.url("gone")).await;
    endpoint(&db, &w, &kept, r.url("kept")).await;
    let msgs = publish(&db, &w, &gone, 3).await;
    publish(&db, &w, &kept, 3).await;
    let mut tx = db.begin(&gone).await.unwrap();
    assert_eq!(
        w.stop_deliveries(&mut tx, "tenant deleted").await.unwrap(),
        3
    );
    tx.commit().await.unwrap();
    let stopped = state(&db, &w, &gone, hook, msgs[0]).await;
    assert_eq!(stopped.state, DeliveryState::Failed);
    let running = Running::start(worker(&db, &w, fast()));
    r.wait_for("kept", 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.stop().await;
    assert!(r.received("gone").is_empty(), "none sent after the stop");
    let mut tx = db.begin(&gone).await.unwrap();
    assert_eq!(
        w.stop_deliveries(&mut tx, "tenant deleted").await.unwrap(),
        0,
        "nothing waits any more"
    );
}

async fn disabled_endpoints_deliveries_stop_and_are_recovered(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let since = Utc::now() - chrono::Duration::seconds(1);
    let msgs = publish(&db, &w, &t, 3).await;
    let patch = |status| WebhookPatch {
        status: Some(status),
        ..Default::default()
    };
    let mut tx = db.begin(&t).await.unwrap();
    w.update(&mut tx, hook, &patch(WebhookStatus::Disabled))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        state(&db, &w, &t, hook, msgs[0]).await.state,
        DeliveryState::Failed
    );
    let mut tx = db.begin(&t).await.unwrap();
    let refused = w.recover(&mut tx, hook, since).await;
    assert!(
        refused.is_err(),
        "recovering into a disabled endpoint is refused"
    );
    drop(tx);
    let mut tx = db.begin(&t).await.unwrap();
    w.update(&mut tx, hook, &patch(WebhookStatus::Active))
        .await
        .unwrap();
    let recovered = w.recover(&mut tx, hook, since).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(recovered.deliveries, 3);
    let running = Running::start(worker(&db, &w, fast()));
    r.wait_for("in", 3, Duration::from_secs(10)).await;
    running.stop().await;
    let mut tx = db.begin(&t).await.unwrap();
    let trail = tx.list_audit_logs(&AuditFilter::default()).await.unwrap();
    assert!(trail.iter().any(|e| e.action == "webhook.recovered"));
}

async fn rotation_signs_with_both_secrets_during_the_grace_period(db: Db) {
    let r = Receiver::start().await;
    let w = local_webhooks().with_rotation_grace(chrono::Duration::seconds(2));
    let t = tenant(&db).await;
    let (hook, old) = endpoint(&db, &w, &t, r.url("in")).await;
    let mut tx = db.begin(&t).await.unwrap();
    let new = w.rotate_secret(&mut tx, hook).await.unwrap().secret;
    tx.commit().await.unwrap();
    let running = Running::start(worker(&db, &w, fast()));
    publish(&db, &w, &t, 1).await;
    let got = r.wait_for("in", 1, Duration::from_secs(10)).await;
    let signatures = got[0].headers["webhook-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");
    for secret in [&old, &new] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&got[0].body, &got[0].headers)
            .expect("both secrets verify during the grace period");
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    publish(&db, &w, &t, 1).await;
    let got = r.wait_for("in", 2, Duration::from_secs(10)).await;
    running.stop().await;
    let later = &got[1];
    assert_eq!(
        later.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        1
    );
    standardwebhooks::Webhook::new(&new)
        .unwrap()
        .verify(&later.body, &later.headers)
        .unwrap();
    assert!(
        standardwebhooks::Webhook::new(&old)
            .unwrap()
            .verify(&later.body, &later.headers)
            .is_err(),
        "the old secret no longer verifies after the grace period"
    );
}

async fn responses_are_kept_to_4_kib_and_timeouts_classified(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    r.script("big", Behaviour::Large(100 * 1024));
    r.script("slow", Behaviour::Slow(Duration::from_secs(5)));
    let (big, _) = endpoint(&db, &w, &t, r.url("big")).await;
    let (slow, _) = endpoint(&db, &w, &t, r.url("slow")).await;
    let running = Running::start(
        Worker::new(
            db.clone(),
            w.clone(),
            transport(&w, Duration::from_millis(500)),
        )
        .with_options(fast())
        .with_limits(None),
    );
    let msg = publish(&db, &w, &t, 1).await[0];
    wait_state(&db, &w, &t, big, msg, |d| {
        d.state == DeliveryState::Succeeded
    })
    .await;
    let d = wait_state(&db, &w, &t, slow, msg, |d| d.attempts == 1 && !d.in_flight).await;
    running.stop().await;
    assert_eq!(d.last_error.as_deref(), Some("timeout"));
    let mut tx = db.begin(&t).await.unwrap();
    let attempts = w.attempts(&mut tx, big, msg).await.unwrap();
    assert_eq!(attempts[0].response_excerpt.len(), EXCERPT);
    let attempts = w.attempts(&mut tx, slow, msg).await.unwrap();
    assert_eq!(attempts[0].error_class.as_deref(), Some("timeout"));
    assert_eq!(attempts[0].response_status, None);
}

async fn a_suspended_tenants_deliveries_pause_and_resume(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let admin = tenantkit::audit::Actor::PlatformAdmin("ops".into());
    db.platform()
        .set_tenant_status(t.id(), tenantkit::TenantStatus::Suspended, &admin)
        .await
        .unwrap();
    let msg = publish(&db, &w, &t, 1).await[0];
    let running = Running::start(worker(&db, &w, fast()).with_clock(Arc::new(Utc::now)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(r.received("in").is_empty(), "paused while suspended");
    assert_eq!(
        state(&db, &w, &t, hook, msg).await.state,
        DeliveryState::Pending
    );
    db.platform()
        .set_tenant_status(t.id(), tenantkit::TenantStatus::Active, &admin)
        .await
        .unwrap();
    // The same worker resumes it: the status is looked at again within 5 s.
    r.wait_for("in", 1, Duration::from_secs(8)).await;
    running.stop().await;
}

async fn history_filters_and_pages(db: Db) {
    let (w, t, r) = (local_webhooks(), tenant(&db).await, Receiver::start().await);
    let (hook, _) = endpoint(&db, &w, &t, r.url("in")).await;
    let mut tx = db.begin(&t).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let kind = if i % 2 == 0 {
            "user.created"
        } else {
            "user.deleted"
        };
        ids.push(
            w.publish(&mut tx, kind, json!({ "i": i }))
                .await
                .unwrap()
                .id,
        );
    }
    tx.commit().await.unwrap();
    let running = Running::start(worker(&db, &w, fast()));
    r.wait_for("in", 5, Duration::from_secs(10)).await;
    wait_state(&db, &w, &t, hook, ids[4], |d| {
        d.state == DeliveryState::Succeeded
    })
    .await;
    running.stop().await;
    let mut tx = db.begin(&t).await.unwrap();
    let page = |after, limit| DeliveryFilter {
        after,
        limit: Some(limit),
        ..Default::default()
    };
    let first = w.deliveries(&mut tx, hook, &page(None, 2)).await.unwrap();
    assert_eq!(
        first.iter().map(|d| d.message_id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let after: uuid::Uuid = first[1].message_id.to_string().parse().unwrap();
    let second = w
        .deliveries(&mut tx, hook, &page(Some(after), 2))
        .await
        .unwrap();
    assert_eq!(
        second.iter().map(|d| d.message_id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let deleted = DeliveryFilter {
        event_type: Some("user.deleted".into()),
        ..Default::default()
    };
    assert_eq!(
        w.deliveries(&mut tx, hook, &deleted).await.unwrap().len(),
        2
    );
    let failed = DeliveryFilter {
        state: Some(DeliveryState::Failed),
        ..Default::default()
    };
    assert!(
        w.deliveries(&mut tx, hook, &failed)
            .await
            .unwrap()
            .is_empty()
    );
    let future = DeliveryFilter {
        since: Some(Utc::now() + chrono::Duration::minutes(1)),
        ..Default::default()
    };
    assert!(
        w.deliveries(&mut tx, hook, &future)
            .await
            .unwrap()
            .is_empty()
    );
    let too_many = DeliveryFilter {
        limit: Some(501),
        ..Default::default()
    };
    assert!(w.deliveries(&mut tx, hook, &too_many).await.is_err());
}
