//! `POST /webhooks/stripe` processing: signatures, idempotency, order, lifecycle.

use chrono::{Duration, Utc};
use serde_json::Value;
use tenantkit::{Db, Secret, TenantContext, audit::AuditFilter};
use tenantkit_billing::{
    Billing, BillingError,
    signature::{self, SignatureError},
    subscription::{self, effective_plan},
    webhook::Outcome,
};

use crate::common::{
    WEBHOOK_SECRET, checkout_session, config, customer, event, invoice, now, on_both_backends,
    signed, subscription, tenant,
};

on_both_backends!(
    subscription_created_puts_the_tenant_on_its_plan,
    checkout_completed_links_the_stripe_customer,
    duplicate_delivery_applies_once,
    older_event_never_overwrites_newer_state,
    every_order_of_created_updated_deleted_ends_in_the_newest_state,
    same_second_events_are_ordered_by_kind,
    payment_failed_keeps_the_plan_for_the_grace_period,
    invoice_paid_restores_an_active_subscription,
    deleted_subscription_falls_back_to_the_default_plan,
    bad_signature_changes_nothing,
    stale_or_future_timestamps_are_refused,
    malformed_body_is_refused_and_changes_nothing,
    unknown_event_types_and_tenants_are_ignored,
    state_changes_are_audited_as_the_system,
    older_api_shape_with_period_on_the_subscription,
);

async fn deliver(billing: &Billing, event: &Value) -> Result<Outcome, BillingError> {
    let (body, header) = signed(event);
    billing.receive_webhook(&body, Some(&header)).await
}

async fn state(db: &Db, t: &TenantContext) -> Option<subscription::Subscription> {
    subscription::load(&mut db.begin(t).await.unwrap())
        .await
        .unwrap()
}

async fn subscription_created_puts_the_tenant_on_its_plan(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    assert_eq!(billing.plan_for(&t).await.unwrap().id, "free");
    let ev = event(
        "evt_1",
        "customer.subscription.created",
        now(),
        subscription(&t, "active", "price_pro", now() + 86_400),
    );
    assert_eq!(deliver(&billing, &ev).await.unwrap(), Outcome::Applied);
    let sub = state(&db, &t).await.unwrap();
    assert_eq!((sub.plan.as_str(), sub.status.as_str()), ("pro", "active"));
    assert_eq!(sub.stripe_subscription_id.as_deref(), Some("sub_1Pabc"));
    assert_eq!(sub.stripe_customer_id, Some(customer(&t)));
    assert!(sub.current_period_end.is_some());
    assert_eq!(billing.plan_for(&t).await.unwrap().id, "pro");
}

async fn checkout_completed_links_the_stripe_customer(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let ev = event(
        "evt_cs",
        "checkout.session.completed",
        now(),
        checkout_session(&t),
    );
    assert_eq!(deliver(&billing, &ev).await.unwrap(), Outcome::Applied);
    assert_eq!(
        db.resolve_external_id("stripe_customer", &customer(&t))
            .await
            .unwrap()
            .unwrap()
            .id(),
        t.id()
    );
    let sub = state(&db, &t).await.unwrap();
    assert_eq!(sub.stripe_subscription_id.as_deref(), Some("sub_1Pabc"));
    assert_eq!(
        billing.plan_for(&t).await.unwrap().id,
        "free",
        "paid only once the subscription is active"
    );
    // Invoice events carry no tenant id; the customer link finds the tenant.
    let paid = event("evt_inv", "invoice.paid", now() + 1, invoice(&t, "paid"));
    assert_eq!(deliver(&billing, &paid).await.unwrap(), Outcome::Applied);
    assert_eq!(state(&db, &t).await.unwrap().status, "active");
}

async fn duplicate_delivery_applies_once(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let ev = event(
        "evt_dup",
        "customer.subscription.created",
        now(),
        subscription(&t, "active", "price_pro", now() + 86_400),
    );
    assert_eq!(deliver(&billing, &ev).await.unwrap(), Outcome::Applied);
    assert_eq!(deliver(&billing, &ev).await.unwrap(), Outcome::Duplicate);
    assert_eq!(deliver(&billing, &ev).await.unwrap(), Outcome::Duplicate);
    let changes = db
        .begin(&t)
        .await
        .unwrap()
        .list_audit_logs(&AuditFilter {
            resource_type: Some("subscription".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changes.len(), 1, "one change for three deliveries");
}

async fn older_event_never_overwrites_newer_state(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let newer = event(
        "evt_new",
        "customer.subscription.updated",
        now(),
        subscription(&t, "active", "price_enterprise", now() + 86_400),
    );
    let older = event(
        "evt_old",
        "customer.subscription.updated",
        now() - 60,
        subscription(&t, "active", "price_pro", now() + 86_400),
    );
    assert_eq!(deliver(&billing, &newer).await.unwrap(), Outcome::Applied);
    assert_eq!(deliver(&billing, &older).await.unwrap(), Outcome::Stale);
    assert_eq!(state(&db, &t).await.unwrap().plan, "enterprise");
    assert_eq!(
        deliver(&billing, &older).await.unwrap(),
        Outcome::Duplicate,
        "and it is not retried later"
    );
}

async fn every_order_of_created_updated_deleted_ends_in_the_newest_state(db: Db) {
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let billing = Billing::new(db.clone(), config()).unwrap();
        let t = tenant(&db).await;
        let base = now() - 100;
        let events = [
            event(
                "evt_c",
                "customer.subscription.created",
                base,
                subscription(&t, "incomplete", "price_pro", base + 86_400),
            ),
            event(
                "evt_u",
                "customer.subscription.updated",
                base + 10,
                subscription(&t, "active", "price_enterprise", base + 86_400),
            ),
            event(
                "evt_d",
                "customer.subscription.deleted",
                base + 20,
                subscription(&t, "canceled", "price_enterprise", base + 86_400),
            ),
        ];
        for i in order {
            deliver(&billing, &events[i]).await.unwrap();
        }
        let sub = state(&db, &t).await.unwrap();
        assert_eq!(sub.status, "canceled", "order {order:?}");
        assert_eq!(
            sub.last_event_at.unwrap().timestamp(),
            base + 20,
            "order {order:?}"
        );
        assert_eq!(
            billing.plan_for(&t).await.unwrap().id,
            "free",
            "order {order:?}"
        );
    }
}

async fn same_second_events_are_ordered_by_kind(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let at = now();
    let created = event(
        "evt_c2",
        "customer.subscription.created",
        at,
        subscription(&t, "incomplete", "price_pro", at + 86_400),
    );
    let updated = event(
        "evt_u2",
        "customer.subscription.updated",
        at,
        subscription(&t, "active", "price_pro", at + 86_400),
    );
    assert_eq!(deliver(&billing, &updated).await.unwrap(), Outcome::Applied);
    assert_eq!(deliver(&billing, &created).await.unwrap(), Outcome::Stale);
    assert_eq!(state(&db, &t).await.unwrap().status, "active");
}

async fn payment_failed_keeps_the_plan_for_the_grace_period(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let at = now() - 10;
    deliver(
        &billing,
        &event(
            "evt_a",
            "customer.subscription.created",
            at,
            subscription(&t, "active", "price_pro", at + 86_400),
        ),
    )
    .await
    .unwrap();
    deliver(
        &billing,
        &event(
            "evt_f",
            "invoice.payment_failed",
            at + 1,
            invoice(&t, "open"),
        ),
    )
    .await
    .unwrap();
    let sub = state(&db, &t).await.unwrap();
    assert_eq!(sub.status, "past_due");
    assert_eq!(sub.past_due_since.unwrap().timestamp(), at + 1);
    assert_eq!(
        billing.plan_for(&t).await.unwrap().id,
        "pro",
        "within the 7-day grace period"
    );
    let plans = billing.plans();
    let grace = Duration::days(7);
    assert_eq!(
        effective_plan(plans, Some(&sub), grace, Utc::now() + Duration::days(6)).id,
        "pro"
    );
    assert_eq!(
        effective_plan(plans, Some(&sub), grace, Utc::now() + Duration::days(8)).id,
        "free"
    );
    // A second failure does not restart the grace period.
    deliver(
        &billing,
        &event(
            "evt_f2",
            "invoice.payment_failed",
            at + 5,
            invoice(&t, "open"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        state(&db, &t)
            .await
            .unwrap()
            .past_due_since
            .unwrap()
            .timestamp(),
        at + 1
    );
}

async fn invoice_paid_restores_an_active_subscription(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let at = now() - 10;
    deliver(
        &billing,
        &event(
            "evt_a",
            "customer.subscription.created",
            at,
            subscription(&t, "active", "price_pro", at + 86_400),
        ),
    )
    .await
    .unwrap();
    deliver(
        &billing,
        &event(
            "evt_f",
            "invoice.payment_failed",
            at + 1,
            invoice(&t, "open"),
        ),
    )
    .await
    .unwrap();
    deliver(
        &billing,
        &event("evt_p", "invoice.paid", at + 2, invoice(&t, "paid")),
    )
    .await
    .unwrap();
    let sub = state(&db, &t).await.unwrap();
    assert_eq!((sub.status.as_str(), sub.past_due_since), ("active", None));
}

async fn deleted_subscription_falls_back_to_the_default_plan(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let at = now() - 10;
    deliver(
        &billing,
        &event(
            "evt_a",
            "customer.subscription.created",
            at,
            subscription(&t, "active", "price_enterprise", at + 86_400),
        ),
    )
    .await
    .unwrap();
    assert_eq!(billing.plan_for(&t).await.unwrap().id, "enterprise");
    deliver(
        &billing,
        &event(
            "evt_d",
            "customer.subscription.deleted",
            at + 1,
            subscription(&t, "canceled", "price_enterprise", at + 86_400),
        ),
    )
    .await
    .unwrap();
    assert_eq!(billing.plan_for(&t).await.unwrap().id, "free");
}

async fn bad_signature_changes_nothing(db: Db) {
    let mut cfg = config();
    cfg.stripe_webhook_secrets
        .push(Secret::from("whsec_rolled_in".to_owned()));
    let billing = Billing::new(db.clone(), cfg).unwrap();
    let t = tenant(&db).await;
    let ev = event(
        "evt_sig",
        "customer.subscription.created",
        now(),
        subscription(&t, "active", "price_pro", now() + 86_400),
    );
    let body = serde_json::to_vec(&ev).unwrap();
    let forged = signature::sign(&body, &Secret::from("whsec_attacker".to_owned()), now());
    assert!(matches!(
        billing.receive_webhook(&body, Some(&forged)).await,
        Err(BillingError::Signature(SignatureError::Mismatch))
    ));
    assert!(matches!(
        billing.receive_webhook(&body, None).await,
        Err(BillingError::Signature(SignatureError::Missing))
    ));
    for header in ["garbage", "t=abc,v1=00", &format!("t={}", now()), "v1=abcd"] {
        assert!(
            matches!(
                billing.receive_webhook(&body, Some(header)).await,
                Err(BillingError::Signature(_))
            ),
            "{header}"
        );
    }
    let tampered = {
        let mut e = ev.clone();
        e["data"]["object"]["items"]["data"][0]["price"]["id"] = "price_enterprise".into();
        serde_json::to_vec(&e).unwrap()
    };
    let (_, good_header) = signed(&ev);
    assert!(
        billing
            .receive_webhook(&tampered, Some(&good_header))
            .await
            .is_err(),
        "body changed after signing"
    );
    assert!(state(&db, &t).await.is_none(), "nothing applied");

    // Any of several v1 signatures may match, and any configured secret.
    let t_ = now();
    let wrong = signature::sign(&body, &Secret::from("whsec_old".to_owned()), t_);
    let right = signature::sign(&body, &Secret::from(WEBHOOK_SECRET.to_owned()), t_);
    let both = format!("{},{}", wrong, right.split_once(',').unwrap().1);
    assert_eq!(
        billing.receive_webhook(&body, Some(&both)).await.unwrap(),
        Outcome::Applied
    );
    let ev2 = event(
        "evt_sig2",
        "customer.subscription.updated",
        now() + 1,
        subscription(&t, "active", "price_pro", now() + 86_400),
    );
    let body2 = serde_json::to_vec(&ev2).unwrap();
    let by_second_secret =
        signature::sign(&body2, &Secret::from("whsec_rolled_in".to_owned()), now());
    assert_eq!(
        billing
            .receive_webhook(&body2, Some(&by_second_secret))
            .await
            .unwrap(),
        Outcome::Applied
    );
}

async fn stale_or_future_timestamps_are_refused(db: Db) {
    let mut cfg = config();
    cfg.signature_tolerance_secs = 10;
    let billing = Billing::new(db.clone(), cfg).unwrap();
    let t = tenant(&db).await;
    let ev = event(
        "evt_ts",
        "customer.subscription.created",
        now(),
        subscription(&t, "active", "price_pro", now() + 86_400),
    );
    let body = serde_json::to_vec(&ev).unwrap();
    let secret = Secret::from(WEBHOOK_SECRET.to_owned());
    for offset in [-60, -11, 11, 3600] {
        let header = signature::sign(&body, &secret, now() + offset);
        let result = billing.receive_webhook(&body, Some(&header)).await;
        assert!(
            matches!(result, Err(BillingError::Signature(SignatureError::Stale))),
            "offset {offset}: {result:?}"
        );
    }
    assert!(state(&db, &t).await.is_none());
    let header = signature::sign(&body, &secret, now() - 5);
    assert_eq!(
        billing.receive_webhook(&body, Some(&header)).await.unwrap(),
        Outcome::Applied,
        "within the tolerance"
    );
}

async fn malformed_body_is_refused_and_changes_nothing(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let secret = Secret::from(WEBHOOK_SECRET.to_owned());
    for body in [
        &b"not json"[..],
        br#"{"id":"evt_x"}"#,
        br#"{"id":"evt_x","type":"invoice.paid","created":"yesterday","data":{}}"#,
    ] {
        let header = signature::sign(body, &secret, now());
        assert!(matches!(
            billing.receive_webhook(body, Some(&header)).await,
            Err(BillingError::Malformed(_))
        ));
    }
    let no_status = {
        let mut s = subscription(&t, "active", "price_pro", now());
        s.as_object_mut().unwrap().remove("status");
        event("evt_ns", "customer.subscription.updated", now(), s)
    };
    assert!(matches!(
        deliver(&billing, &no_status).await,
        Err(BillingError::Malformed(_))
    ));
    assert!(state(&db, &t).await.is_none());
}

async fn unknown_event_types_and_tenants_are_ignored(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let other = event(
        "evt_o",
        "charge.refunded",
        now(),
        serde_json::json!({ "id": "ch_1", "object": "charge" }),
    );
    assert!(matches!(
        deliver(&billing, &other).await.unwrap(),
        Outcome::Ignored(_)
    ));
    let mut stranger = subscription(&t, "active", "price_pro", now());
    stranger["metadata"] = serde_json::json!({});
    stranger["customer"] = "cus_nobody".into();
    let ev = event("evt_s", "customer.subscription.created", now(), stranger);
    assert!(matches!(
        deliver(&billing, &ev).await.unwrap(),
        Outcome::Ignored(_)
    ));
    assert!(state(&db, &t).await.is_none());
}

async fn state_changes_are_audited_as_the_system(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let at = now() - 5;
    deliver(
        &billing,
        &event(
            "evt_a",
            "customer.subscription.created",
            at,
            subscription(&t, "active", "price_pro", at + 86_400),
        ),
    )
    .await
    .unwrap();
    deliver(
        &billing,
        &event(
            "evt_b",
            "customer.subscription.updated",
            at + 1,
            subscription(&t, "active", "price_enterprise", at + 86_400),
        ),
    )
    .await
    .unwrap();
    let mut tx = db.begin(&t).await.unwrap();
    let changes = tx
        .list_audit_logs(&AuditFilter {
            resource_type: Some("subscription".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|e| e.actor_type == "system"));
    assert_eq!(changes[0].before.as_ref().unwrap()["plan"], "pro");
    assert_eq!(changes[0].after.as_ref().unwrap()["plan"], "enterprise");
    let events = tx
        .list_audit_logs(&AuditFilter {
            resource_type: Some("stripe_event".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "each received event id is recorded");
    assert!(tx.verify_audit_chain().await.unwrap().valid);
}

async fn older_api_shape_with_period_on_the_subscription(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let period_end = now() + 5000;
    let mut old = subscription(&t, "active", "price_pro", now() + 1000);
    old["current_period_end"] = period_end.into();
    old["items"]["data"][0]
        .as_object_mut()
        .unwrap()
        .remove("current_period_end");
    deliver(
        &billing,
        &event(
            "evt_old_api",
            "customer.subscription.created",
            now() - 5,
            old,
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        state(&db, &t)
            .await
            .unwrap()
            .current_period_end
            .unwrap()
            .timestamp(),
        period_end
    );
    // Older invoices name the subscription at the top level.
    let mut inv = invoice(&t, "open");
    inv.as_object_mut().unwrap().remove("parent");
    inv["subscription"] = "sub_1Pabc".into();
    deliver(
        &billing,
        &event("evt_old_inv", "invoice.payment_failed", now(), inv),
    )
    .await
    .unwrap();
    assert_eq!(state(&db, &t).await.unwrap().status, "past_due");
}
