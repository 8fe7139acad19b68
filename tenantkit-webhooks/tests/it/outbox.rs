//! The transactional outbox on SQLite and on PostgreSQL as the runtime role:
//! committed → queued for every subscribed active endpoint; rolled back →
//! nothing; limits; not audited; tenants apart.

use serde_json::json;
use tenantkit::{Db, TenantContext, audit::AuditFilter};
use tenantkit_webhooks::{
    NewWebhook, WebhookError, WebhookId, WebhookPatch, WebhookStatus, Webhooks,
    outbox::{MAX_PAYLOAD, MessageId},
    schema::QUEUE,
};

use crate::common::{on_both_backends, tenant, webhooks};

on_both_backends!(
    a_committed_event_is_queued_for_each_subscribed_active_endpoint,
    a_rolled_back_event_leaves_nothing,
    payloads_over_1_mib_are_refused_never_truncated,
    unknown_event_types_are_refused,
    publishing_adds_no_audit_entry,
    other_tenants_endpoints_never_get_the_message,
    an_event_nobody_subscribes_to_stores_nothing,
);

async fn an_event_nobody_subscribes_to_stores_nothing(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    endpoint(&db, &w, &t, &["api_key.revoked"]).await;
    let mut tx = db.begin(&t).await.unwrap();
    let published = w
        .publish(&mut tx, "user.created", json!({ "id": 1 }))
        .await
        .unwrap();
    assert_eq!(published.endpoints, 0);
    let count = tx.query("SELECT COUNT(*) FROM webhook_messages WHERE tenant_id = $1");
    let (messages,): (i64,) = tx.fetch_one(count).await.unwrap();
    assert_eq!(messages, 0, "no message row for an event nobody receives");
    // Still refused when too large, subscribers or not.
    let big = json!({ "blob": "x".repeat(MAX_PAYLOAD) });
    assert!(w.publish(&mut tx, "user.created", big).await.is_err());
}

async fn endpoint(db: &Db, w: &Webhooks, t: &TenantContext, types: &[&str]) -> WebhookId {
    let mut tx = db.begin(t).await.unwrap();
    let created = w
        .create(
            &mut tx,
            &NewWebhook {
                url: "https://hooks.partner.test/in".into(),
                event_types: types.iter().map(|s| (*s).to_owned()).collect(),
                description: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    created.webhook.id
}

/// The endpoints a message is queued for, and the stored body.
async fn queued(
    db: &Db,
    t: &TenantContext,
    message: MessageId,
) -> (Vec<WebhookId>, Option<String>) {
    let mut tx = db.begin(t).await.unwrap();
    let q = tx
        .query(
            "SELECT webhook_id FROM webhook_queue WHERE tenant_id = $1 AND message_id = $2 \
             AND state = 'pending' AND attempts = 0 ORDER BY webhook_id",
        )
        .bind(message);
    let rows: Vec<(WebhookId,)> = tx.fetch_all(q).await.unwrap();
    let q = tx
        .query("SELECT payload FROM webhook_messages WHERE tenant_id = $1 AND id = $2")
        .bind(message);
    let payload: Option<(String,)> = tx.fetch_optional(q).await.unwrap();
    (
        rows.into_iter().map(|(id,)| id).collect(),
        payload.map(|(p,)| p),
    )
}

async fn a_committed_event_is_queued_for_each_subscribed_active_endpoint(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let users = endpoint(&db, &w, &t, &["user.created"]).await;
    let all = endpoint(&db, &w, &t, &["*"]).await;
    let _keys_only = endpoint(&db, &w, &t, &["api_key.revoked"]).await;
    let disabled = endpoint(&db, &w, &t, &["*"]).await;
    let mut tx = db.begin(&t).await.unwrap();
    w.update(
        &mut tx,
        disabled,
        &WebhookPatch {
            status: Some(WebhookStatus::Disabled),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let published = w
        .publish(
            &mut tx,
            "user.created",
            json!({ "id": "u1", "email": "ann@acme.example" }),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(published.endpoints, 2);
    assert!(published.id.webhook_id().starts_with("msg_"));
    let (endpoints, payload) = queued(&db, &t, published.id).await;
    let mut expected = vec![users, all];
    expected.sort();
    assert_eq!(endpoints, expected);
    let body: serde_json::Value = serde_json::from_str(&payload.unwrap()).unwrap();
    assert_eq!(body["type"], "user.created");
    assert_eq!(body["data"]["email"], "ann@acme.example");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
}

async fn a_rolled_back_event_leaves_nothing(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    endpoint(&db, &w, &t, &["*"]).await;
    let mut tx = db.begin(&t).await.unwrap();
    let published = w.publish(&mut tx, "webhook.test", json!({})).await.unwrap();
    assert_eq!(published.endpoints, 1, "queued inside the transaction");
    drop(tx); // rolled back
    assert_eq!(queued(&db, &t, published.id).await, (vec![], None));
}

async fn payloads_over_1_mib_are_refused_never_truncated(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    endpoint(&db, &w, &t, &["*"]).await;
    let mut tx = db.begin(&t).await.unwrap();
    let err = w
        .publish(
            &mut tx,
            "webhook.test",
            json!({ "blob": "x".repeat(MAX_PAYLOAD) }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, WebhookError::Invalid(m) if m.contains("nothing is truncated")),
        "{err}"
    );
    // Just under the limit is sent whole.
    let fits = "x".repeat(MAX_PAYLOAD - 200);
    let published = w
        .publish(&mut tx, "webhook.test", json!({ "blob": fits }))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (_, payload) = queued(&db, &t, published.id).await;
    let body: serde_json::Value = serde_json::from_str(&payload.unwrap()).unwrap();
    assert_eq!(
        body["data"]["blob"].as_str().unwrap().len(),
        MAX_PAYLOAD - 200
    );
}

async fn unknown_event_types_are_refused(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let mut tx = db.begin(&t).await.unwrap();
    for bad in ["user.exploded", "", "*"] {
        assert!(
            matches!(
                w.publish(&mut tx, bad, json!({})).await,
                Err(WebhookError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
}

async fn publishing_adds_no_audit_entry(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    endpoint(&db, &w, &t, &["*"]).await;
    let count = |db: Db, t: TenantContext| async move {
        let mut tx = db.begin(&t).await.unwrap();
        tx.list_audit_logs(&AuditFilter {
            limit: Some(500),
            ..Default::default()
        })
        .await
        .unwrap()
        .len()
    };
    let before = count(db.clone(), t.clone()).await;
    let mut tx = db.begin(&t).await.unwrap();
    for _ in 0..20 {
        w.publish(&mut tx, "webhook.test", json!({})).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(count(db, t).await, before);
}

async fn other_tenants_endpoints_never_get_the_message(db: Db) {
    let (w, a, b) = (webhooks(), tenant(&db).await, tenant(&db).await);
    let theirs = endpoint(&db, &w, &b, &["*"]).await;
    let mut tx = db.begin(&a).await.unwrap();
    let published = w.publish(&mut tx, "webhook.test", json!({})).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(published.endpoints, 0);
    let mut tx = db.begin(&b).await.unwrap();
    let q = tx
        .query("SELECT webhook_id FROM webhook_queue WHERE tenant_id = $1 AND webhook_id = $2")
        .bind(theirs);
    let rows: Vec<(WebhookId,)> = tx.fetch_all(q).await.unwrap();
    assert!(rows.is_empty());
}

#[tokio::test]
#[should_panic(expected = "an operational write must be")]
async fn operational_writes_go_only_to_their_own_table() {
    let db = crate::common::sqlite().await;
    let t = tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    // Writing an audited table through the queue's declaration is a bug.
    let q = tx.query("UPDATE webhooks SET url = 'x' WHERE tenant_id = $1");
    let _ = tx.write_operational(QUEUE, q).await;
}

/// The operational tables are marked as such in the catalog, and isolated:
/// as the runtime role with no tenant set, nothing in them is visible.
#[tokio::test]
async fn postgres_operational_tables_are_marked_and_isolated() {
    let Some(database) = crate::common::postgres_database().await else {
        return;
    };
    let db = tenantkit::testing::runtime_db(&database, 2).await;
    let (w, t) = (webhooks(), tenant(&db).await);
    endpoint(&db, &w, &t, &["*"]).await;
    let mut tx = db.begin(&t).await.unwrap();
    w.publish(&mut tx, "webhook.test", json!({})).await.unwrap();
    tx.commit().await.unwrap();
    let raw = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    for table in [tenantkit_webhooks::schema::MESSAGES, QUEUE] {
        let comment: Option<String> =
            sqlx::query_scalar("SELECT obj_description($1::regclass, 'pg_class')")
                .bind(table.name())
                .fetch_one(&raw)
                .await
                .unwrap();
        assert_eq!(
            comment.as_deref(),
            Some("tenantkit:operational"),
            "{}",
            table.name()
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            table.name()
        )))
        .fetch_one(&raw)
        .await
        .unwrap();
        assert_eq!(n, 0, "{}: no tenant set, no rows", table.name());
    }
}
