//! Plan enforcement: the layer (402s), the user limit (atomic), lifecycle, caching, config.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tenantkit::{
    Db, NewApiKey, NewUser, Role, Scope, TenantContext,
    auth::{AuthLayer, JwtKeys, TokenRole},
    resolve::TenantLayer,
};
use tenantkit_billing::{
    Billing, BillingConfig, PlanLayer,
    plans::{Feature, Plan, PlanConfig, Plans, PlansConfig},
};
use tower::{ServiceBuilder, ServiceExt};

use crate::common::{config, event, now, on_both_backends, signed, subscription, tenant};

on_both_backends!(
    free_plan_refuses_api_keys_with_a_402_naming_plan_limit_and_upgrade,
    free_plan_serves_users_with_tokens,
    pro_plan_serves_api_keys,
    routes_can_require_a_feature,
    canceled_subscription_falls_back_to_free,
    past_due_keeps_access_only_during_the_grace_period,
    subscription_change_takes_effect_on_the_next_request,
    another_process_sees_a_change_within_the_cache_ttl,
    user_limit_is_enforced_with_a_402,
    downgrade_below_usage_keeps_users_and_blocks_new_ones,
    concurrent_creates_at_the_limit_never_end_above_it,
);

const SECRET: &[u8] = b"plan-tests-secret-plan-tests-secret!";

async fn plan_of(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let plan = req
        .extensions()
        .get::<Arc<Plan>>()
        .map(|p| p.id.clone())
        .unwrap_or_default();
    Ok(Response::new(Full::from(plan)))
}

/// Calls a route guarded by Tenant → Auth → Plan layers as `credential`.
async fn call(
    billing: &Billing,
    db: &Db,
    t: &TenantContext,
    credential: &str,
    layer: PlanLayer<Billing>,
) -> (StatusCode, Bytes) {
    let svc = ServiceBuilder::new()
        .layer(TenantLayer::new(db.clone()))
        .layer(AuthLayer::new(JwtKeys::hs256(SECRET).unwrap(), db.clone()))
        .layer(layer)
        .service_fn(plan_of);
    let req = Request::get("/")
        .header("x-tenant-id", t.id().to_string())
        .header("authorization", format!("Bearer {credential}"))
        .body(Full::default())
        .unwrap();
    let _ = billing;
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

/// A token of a new admin of `t`.
async fn jwt(db: &Db, t: &TenantContext) -> String {
    let admin = tenantkit::testing::user(db, t, Role::Admin).await;
    JwtKeys::hs256(SECRET)
        .unwrap()
        .issue(&admin.id.to_string(), Some(t.id()), TokenRole::Admin, 600)
        .unwrap()
}

async fn api_key(db: &Db, t: &TenantContext) -> String {
    let mut tx = db.begin(t).await.unwrap();
    let key = tx
        .create_api_key(&NewApiKey {
            name: "k".into(),
            scopes: vec![Scope::UsersRead],
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    key.key
}

async fn subscribe(
    billing: &Billing,
    t: &TenantContext,
    id: &str,
    status: &str,
    price: &str,
    at: i64,
) {
    let kind = if status == "canceled" {
        "customer.subscription.deleted"
    } else {
        "customer.subscription.updated"
    };
    let (body, header) = signed(&event(
        id,
        kind,
        at,
        subscription(t, status, price, at + 86_400),
    ));
    billing.receive_webhook(&body, Some(&header)).await.unwrap();
}

async fn free_plan_refuses_api_keys_with_a_402_naming_plan_limit_and_upgrade(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let key = api_key(&db, &t).await;
    let (status, body) = call(&billing, &db, &t, &key, PlanLayer::new(billing.clone())).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["status"], 402);
    assert_eq!(problem["plan"], "free");
    assert_eq!(problem["limit"], "api_access");
    assert!(
        problem["upgrade"]
            .as_str()
            .unwrap()
            .contains("/billing/checkout")
    );
    assert!(problem["detail"].as_str().unwrap().contains("Free"));
}

async fn free_plan_serves_users_with_tokens(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let token = jwt(&db, &t).await;
    let (status, body) = call(&billing, &db, &t, &token, PlanLayer::new(billing.clone())).await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"free"[..]));
}

async fn pro_plan_serves_api_keys(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    subscribe(&billing, &t, "evt_p", "active", "price_pro", now()).await;
    let key = api_key(&db, &t).await;
    let (status, body) = call(&billing, &db, &t, &key, PlanLayer::new(billing.clone())).await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, &b"pro"[..]));
}

async fn routes_can_require_a_feature(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let token = jwt(&db, &t).await;
    let webhooks = || PlanLayer::new(billing.clone()).requiring(Feature::Webhooks);
    let custom = || PlanLayer::new(billing.clone()).requiring(Feature::CustomIntegrations);
    let (status, body) = call(&billing, &db, &t, &token, webhooks()).await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["limit"],
        "webhooks"
    );
    subscribe(&billing, &t, "evt_w", "active", "price_pro", now() - 10).await;
    assert_eq!(
        call(&billing, &db, &t, &token, webhooks()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&billing, &db, &t, &token, custom()).await.0,
        StatusCode::PAYMENT_REQUIRED
    );
    subscribe(&billing, &t, "evt_e", "active", "price_enterprise", now()).await;
    assert_eq!(
        call(&billing, &db, &t, &token, custom()).await.0,
        StatusCode::OK
    );
}

async fn canceled_subscription_falls_back_to_free(db: Db) {
    let billing = Billing::new(db.clone(), config()).unwrap();
    let t = tenant(&db).await;
    let key = api_key(&db, &t).await;
    subscribe(&billing, &t, "evt_a", "active", "price_pro", now() - 10).await;
    assert_eq!(
        call(&billing, &db, &t, &key, PlanLayer::new(billing.clone()))
            .await
            .0,
        StatusCode::OK
    );
    subscribe(&billing, &t, "evt_c", "canceled", "price_pro", now()).await;
    assert_eq!(
        call(&billing, &db, &t, &key, PlanLayer::new(billing.clone()))
            .await
            .0,
        StatusCode::PAYMENT_REQUIRED
    );
}

async fn past_due_keeps_access_only_during_the_grace_period(db: Db) {
    let t = tenant(&db).await;
    let key = api_key(&db, &t).await;
    let billing = Billing::new(db.clone(), config()).unwrap();
    subscribe(&billing, &t, "evt_pd", "past_due", "price_pro", now() - 10).await;
    assert_eq!(
        call(&billing, &db, &t, &key, PlanLayer::new(billing.clone()))
            .await
            .0,
        StatusCode::OK,
        "7-day grace"
    );
    let mut no_grace = config();
    no_grace.past_due_grace_days = 0;
    let strict = Billing::new(db.clone(), no_grace).unwrap();
    assert_eq!(
        call(&strict, &db, &t, &key, PlanLayer::new(strict.clone()))
            .await
            .0,
        StatusCode::PAYMENT_REQUIRED
    );
}

async fn subscription_change_takes_effect_on_the_next_request(db: Db) {
    let mut cfg = config();
    cfg.plan_cache_ttl_secs = 3600;
    let billing = Billing::new(db.clone(), cfg).unwrap();
    let t = tenant(&db).await;
    let key = api_key(&db, &t).await;
    assert_eq!(
        call(&billing, &db, &t, &key, PlanLayer::new(billing.clone()))
            .await
            .0,
        StatusCode::PAYMENT_REQUIRED
    );
    subscribe(&billing, &t, "evt_up", "active", "price_pro", now()).await;
    assert_eq!(
        call(&billing, &db, &t, &key, PlanLayer::new(billing.clone()))
            .await
            .0,
        StatusCode::OK,
        "the webhook invalidated this process's cached plan"
    );
}

async fn another_process_sees_a_change_within_the_cache_ttl(db: Db) {
    let mut cfg = config();
    cfg.plan_cache_ttl_secs = 1;
    let receiver = Billing::new(db.clone(), cfg.clone()).unwrap();
    let other = Billing::new(db.clone(), cfg).unwrap();
    let t = tenant(&db).await;
    assert_eq!(other.plan_for(&t).await.unwrap().id, "free");
    subscribe(&receiver, &t, "evt_x", "active", "price_pro", now()).await;
    assert_eq!(
        other.plan_for(&t).await.unwrap().id,
        "free",
        "still cached in the other process"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(other.plan_for(&t).await.unwrap().id, "pro", "after the TTL");
}

fn with_max_users(max: u64) -> BillingConfig {
    let mut cfg = config();
    cfg.plans.plans.get_mut("free").unwrap().max_users = Some(max);
    cfg.plans.plans.get_mut("pro").unwrap().max_users = Some(max * 2);
    cfg
}

async fn create(
    billing: &Billing,
    db: &Db,
    t: &TenantContext,
    email: &str,
) -> Result<(), tenantkit::problem::Problem> {
    let plan = billing.plan_for(t).await.unwrap();
    let mut tx = db.begin(t).await.unwrap();
    billing
        .create_user(
            &mut tx,
            &plan,
            &NewUser {
                email: email.into(),
                role: Role::Member,
            },
        )
        .await?;
    tx.commit().await.unwrap();
    Ok(())
}

async fn user_limit_is_enforced_with_a_402(db: Db) {
    let billing = Billing::new(db.clone(), with_max_users(3)).unwrap();
    let t = tenant(&db).await;
    for i in 0..3 {
        create(&billing, &db, &t, &format!("u{i}@t.test"))
            .await
            .unwrap();
    }
    let problem = create(&billing, &db, &t, "u3@t.test").await.unwrap_err();
    assert_eq!(problem.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(problem.extensions["plan"], "free");
    assert_eq!(problem.extensions["limit"]["max_users"], 3);
    assert_eq!(problem.extensions["usage"]["users"], 3);
    subscribe(&billing, &t, "evt_up", "active", "price_pro", now()).await;
    create(&billing, &db, &t, "u3@t.test")
        .await
        .expect("pro allows 6");
}

async fn downgrade_below_usage_keeps_users_and_blocks_new_ones(db: Db) {
    let billing = Billing::new(db.clone(), with_max_users(2)).unwrap();
    let t = tenant(&db).await;
    subscribe(&billing, &t, "evt_p", "active", "price_pro", now() - 10).await;
    for i in 0..4 {
        create(&billing, &db, &t, &format!("u{i}@t.test"))
            .await
            .unwrap();
    }
    subscribe(&billing, &t, "evt_c", "canceled", "price_pro", now()).await;
    assert_eq!(
        db.begin(&t).await.unwrap().count_users().await.unwrap(),
        4,
        "existing users are kept"
    );
    let problem = create(&billing, &db, &t, "u4@t.test").await.unwrap_err();
    assert_eq!(
        (problem.status, &problem.extensions["usage"]["users"]),
        (StatusCode::PAYMENT_REQUIRED, &Value::from(4))
    );
}

async fn concurrent_creates_at_the_limit_never_end_above_it(db: Db) {
    // SQLite in memory has one connection; a file makes the writers overlap.
    let dir = tempfile::tempdir().unwrap();
    let db = match db.backend() {
        tenantkit::Backend::Sqlite => {
            let db = Db::connect_with(
                &format!("sqlite://{}", dir.path().join("b.db").display()),
                8,
            )
            .await
            .unwrap();
            db.migrate().await.unwrap();
            Billing::migrate(&db).await.unwrap();
            db
        }
        tenantkit::Backend::Postgres => db,
    };
    let billing = Billing::new(db.clone(), with_max_users(10)).unwrap();
    let t = tenant(&db).await;
    let mut tasks = Vec::new();
    for i in 0..25 {
        let (billing, db, t) = (billing.clone(), db.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            create(&billing, &db, &t, &format!("c{i}@t.test"))
                .await
                .is_ok()
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.unwrap());
    }
    assert_eq!(created, 10, "exactly the limit succeeded");
    assert_eq!(db.begin(&t).await.unwrap().count_users().await.unwrap(), 10);
}

#[test]
fn default_plans_are_free_pro_enterprise() {
    let plans = Plans::new(PlansConfig::default()).unwrap();
    let free = plans.get("free").unwrap();
    assert_eq!(
        (free.max_users, free.features.as_slice()),
        (Some(100), &[][..])
    );
    let pro = plans.get("pro").unwrap();
    assert_eq!(pro.max_users, Some(1000));
    assert!(
        pro.has(Feature::ApiAccess)
            && pro.has(Feature::Webhooks)
            && !pro.has(Feature::CustomIntegrations)
            && !pro.has(Feature::Sso)
    );
    let ent = plans.get("enterprise").unwrap();
    assert_eq!(ent.max_users, None);
    assert!(
        ent.has(Feature::ApiAccess)
            && ent.has(Feature::Webhooks)
            && ent.has(Feature::CustomIntegrations)
            && ent.has(Feature::Sso)
    );
    assert_eq!(plans.default_plan().id, "free");
}

#[test]
fn bad_plan_configurations_fail_with_a_clear_message() {
    let plan = PlanConfig {
        name: None,
        max_users: Some(5),
        api_access: false,
        webhooks: false,
        custom_integrations: false,
        sso: false,
        stripe_price_ids: vec!["price_a".into()],
    };
    let cases: Vec<(PlansConfig, &str)> = vec![
        (
            PlansConfig {
                default_plan: "free".into(),
                plans: Default::default(),
            },
            "no plans",
        ),
        (
            PlansConfig {
                default_plan: "gold".into(),
                plans: [("free".into(), plan.clone())].into(),
            },
            "default_plan `gold`",
        ),
        (
            PlansConfig {
                default_plan: "a".into(),
                plans: [("a".into(), plan.clone()), ("b".into(), plan.clone())].into(),
            },
            "mapped to both",
        ),
        (
            PlansConfig {
                default_plan: "Bad Id".into(),
                plans: [("Bad Id".into(), plan.clone())].into(),
            },
            "plan id",
        ),
        (
            PlansConfig {
                default_plan: "a".into(),
                plans: [(
                    "a".into(),
                    PlanConfig {
                        stripe_price_ids: vec![" ".into()],
                        ..plan.clone()
                    },
                )]
                .into(),
            },
            "empty Stripe price",
        ),
    ];
    for (config, message) in cases {
        let err = Plans::new(config).unwrap_err().to_string();
        assert!(err.contains(message), "{err} should mention {message}");
    }
    let db_less = BillingConfig {
        plans: PlansConfig {
            default_plan: "none".into(),
            ..PlansConfig::default()
        },
        ..config()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(crate::common::sqlite());
    assert!(
        Billing::new(db, db_less).is_err(),
        "Billing refuses to start on a bad config"
    );
}
