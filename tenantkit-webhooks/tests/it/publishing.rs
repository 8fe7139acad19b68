//! Publishing from outside a change's transaction
//! (`Webhooks::publish_messages`, what `POST /webhooks/messages` runs), on
//! SQLite and on PostgreSQL as the runtime role: batches all or none,
//! idempotency keys and message ids (the first answer again, `409` for
//! another request), concurrent retries publishing once, limits, and
//! retention of the keys.

use chrono::{Duration, Utc};
use serde_json::{Map, Value, json};
use tenantkit::{Db, TenantContext};
use tenantkit_webhooks::{
    NewWebhook, WebhookError, Webhooks,
    idempotency::{EXPIRED_KEYS, KEEP_KEYS},
    outbox::{MAX_BATCH, MAX_PAYLOAD, NewMessage, Publication},
    schema::IDEMPOTENCY,
};

use crate::common::{tenant, webhooks};

tenantkit::backend_tests!(crate::common;
    a_batch_is_published_all_or_none,
    a_retried_request_answers_as_the_first_and_publishes_nothing,
    a_message_id_publishes_that_message_once,
    limits_are_refused_naming_the_message,
    keys_are_kept_a_day_then_removed,
    data_is_checked_against_its_types_schema,
    wildcards_and_channels_route_messages,
);
mod concurrent {
    tenantkit::backend_tests!(crate::common, multi_thread; concurrent_retries_publish_once);
    use super::concurrent_retries_publish_once;
}

fn message(event_type: &str, data: Value) -> NewMessage {
    let Value::Object(data) = data else {
        panic!("data must be an object")
    };
    NewMessage {
        event_type: event_type.into(),
        data,
        id: None,
        ..Default::default()
    }
}

fn with_id(mut m: NewMessage, id: &str) -> NewMessage {
    m.id = Some(id.into());
    m
}

async fn subscribed(db: &Db, w: &Webhooks, t: &TenantContext) {
    let mut tx = db.begin(t).await.unwrap();
    w.create(
        &mut tx,
        &NewWebhook {
            url: "https://hooks.partner.test/in".into(),
            event_types: vec!["*".into()],
            description: None,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn publish(
    db: &Db,
    w: &Webhooks,
    t: &TenantContext,
    messages: &[NewMessage],
    key: Option<&str>,
) -> Result<Publication, WebhookError> {
    let mut tx = db.begin(t).await.unwrap();
    let published = w.publish_messages(&mut tx, messages, key).await?;
    tx.commit().await.unwrap();
    Ok(published)
}

async fn count(db: &Db, t: &TenantContext, table: &str) -> i64 {
    let mut tx = db.begin_snapshot(t).await.unwrap();
    let sql: &'static str = match table {
        "messages" => "SELECT COUNT(*) FROM webhook_messages WHERE tenant_id = $1",
        "queue" => "SELECT COUNT(*) FROM webhook_queue WHERE tenant_id = $1",
        _ => "SELECT COUNT(*) FROM webhook_idempotency WHERE tenant_id = $1",
    };
    let (n,): (i64,) = tx.fetch_one(tx.query(sql)).await.unwrap();
    n
}

async fn a_batch_is_published_all_or_none(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    subscribed(&db, &w, &t).await;
    let bad = [
        message("user.created", json!({ "id": 1 })),
        message("user.deleted", json!({ "id": 2 })),
        message("no.such.type", json!({})),
    ];
    let refused = publish(&db, &w, &t, &bad, None).await.unwrap_err();
    assert!(
        matches!(&refused, WebhookError::Invalid(why) if why.starts_with("message 2: unknown event type")),
        "{refused:?}"
    );
    assert_eq!(
        count(&db, &t, "messages").await,
        0,
        "nothing of a refused batch"
    );

    let good = &bad[..2];
    let published = publish(&db, &w, &t, good, None).await.unwrap();
    assert!(!published.replayed);
    assert_eq!(published.messages.len(), 2);
    assert_eq!(published.messages[0].event_type, "user.created");
    assert_eq!(published.messages[1].event_type, "user.deleted");
    assert!(published.messages.iter().all(|m| m.endpoints == 1));
    assert_ne!(
        published.messages[0].message_id,
        published.messages[1].message_id
    );
    assert_eq!(count(&db, &t, "messages").await, 2);
    assert_eq!(count(&db, &t, "queue").await, 2);
    assert_eq!(count(&db, &t, "keys").await, 0, "no key, nothing kept");
}

async fn a_retried_request_answers_as_the_first_and_publishes_nothing(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    subscribed(&db, &w, &t).await;
    let batch = [
        message("user.created", json!({ "id": 1, "email": "a@b.test" })),
        message("user.updated", json!({ "id": 1 })),
    ];
    let first = publish(&db, &w, &t, &batch, Some("job-42")).await.unwrap();
    assert!(!first.replayed);
    // The same request, its object keys in another order.
    let reordered = [
        message("user.created", json!({ "email": "a@b.test", "id": 1 })),
        message("user.updated", json!({ "id": 1 })),
    ];
    let again = publish(&db, &w, &t, &reordered, Some("job-42"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.messages, first.messages, "the first answer, exactly");
    assert_eq!(count(&db, &t, "messages").await, 2, "nothing new published");

    let other = [message("user.created", json!({ "id": 2 }))];
    let refused = publish(&db, &w, &t, &other, Some("job-42"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, WebhookError::Conflict(why) if why.contains("`job-42`")),
        "{refused:?}"
    );
    assert_eq!(count(&db, &t, "messages").await, 2);

    // Keys are the tenant's own: another tenant's same key is its own.
    let u = tenant(&db).await;
    let theirs = publish(&db, &w, &u, &other, Some("job-42")).await.unwrap();
    assert!(!theirs.replayed);
}

async fn a_message_id_publishes_that_message_once(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    subscribed(&db, &w, &t).await;
    let invoice = with_id(message("user.created", json!({ "id": 7 })), "evt_7");
    let first = publish(&db, &w, &t, std::slice::from_ref(&invoice), None)
        .await
        .unwrap();
    assert_eq!(first.messages[0].id.as_deref(), Some("evt_7"));
    let batch = [
        with_id(message("user.updated", json!({ "id": 8 })), "evt_8"),
        invoice.clone(),
    ];
    let second = publish(&db, &w, &t, &batch, None).await.unwrap();
    assert!(!second.replayed, "one of its messages is new");
    assert_eq!(
        second.messages[1], first.messages[0],
        "evt_7 answered as before"
    );
    assert_eq!(second.messages[0].id.as_deref(), Some("evt_8"));
    assert_eq!(
        count(&db, &t, "messages").await,
        2,
        "evt_7 once, evt_8 once"
    );

    let changed = with_id(message("user.created", json!({ "id": 70 })), "evt_7");
    let refused = publish(&db, &w, &t, &[changed], None).await.unwrap_err();
    assert!(matches!(refused, WebhookError::Conflict(_)), "{refused:?}");
    let twice = [
        with_id(message("user.created", json!({})), "evt_9"),
        with_id(message("user.created", json!({})), "evt_9"),
    ];
    let refused = publish(&db, &w, &t, &twice, None).await.unwrap_err();
    assert!(
        matches!(&refused, WebhookError::Invalid(why) if why.contains("twice")),
        "{refused:?}"
    );
    assert_eq!(count(&db, &t, "messages").await, 2);
}

async fn limits_are_refused_naming_the_message(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    subscribed(&db, &w, &t).await;
    let one = message("user.created", json!({}));
    let too_many = vec![one.clone(); MAX_BATCH + 1];
    assert!(publish(&db, &w, &t, &too_many, None).await.is_err());
    assert!(publish(&db, &w, &t, &[], None).await.is_err());
    let full = vec![one.clone(); MAX_BATCH];
    assert_eq!(
        publish(&db, &w, &t, &full, None)
            .await
            .unwrap()
            .messages
            .len(),
        MAX_BATCH
    );

    let mut big = Map::new();
    big.insert("blob".into(), Value::String("x".repeat(MAX_PAYLOAD)));
    let oversized = [
        one.clone(),
        NewMessage {
            data: big,
            ..one.clone()
        },
    ];
    let refused = publish(&db, &w, &t, &oversized, None).await.unwrap_err();
    assert!(
        matches!(&refused, WebhookError::Invalid(why) if why.starts_with("message 1:") && why.contains("nothing is truncated")),
        "{refused:?}"
    );
    let long_id = with_id(one.clone(), &"i".repeat(256));
    assert!(publish(&db, &w, &t, &[long_id], None).await.is_err());
    let max_id = with_id(one.clone(), &"i".repeat(255));
    assert!(publish(&db, &w, &t, &[max_id], None).await.is_ok());
    let long_key = "k".repeat(256);
    assert!(
        publish(&db, &w, &t, std::slice::from_ref(&one), Some(&long_key))
            .await
            .is_err()
    );
    assert!(
        publish(&db, &w, &t, std::slice::from_ref(&one), Some("two words"))
            .await
            .is_err()
    );
    assert!(
        publish(
            &db,
            &w,
            &t,
            std::slice::from_ref(&one),
            Some(&"k".repeat(255))
        )
        .await
        .is_ok()
    );
}

async fn keys_are_kept_a_day_then_removed(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    subscribed(&db, &w, &t).await;
    let m = [message("user.created", json!({ "id": 1 }))];
    publish(&db, &w, &t, &m, Some("daily")).await.unwrap();
    let now = Utc::now();
    let due = db
        .tenants_with_due_work(&EXPIRED_KEYS, now - KEEP_KEYS, 10_000, &[])
        .await
        .unwrap();
    assert!(due.iter().all(|d| d.tenant_id != t.id()), "kept for a day");

    // A day and a minute later (the key's time moved back).
    let mut tx = db.begin(&t).await.unwrap();
    let back = tx
        .query("UPDATE webhook_idempotency SET created_at = $2 WHERE tenant_id = $1")
        .bind(now - KEEP_KEYS - Duration::minutes(1));
    tx.write_operational(IDEMPOTENCY, back).await.unwrap();
    tx.commit().await.unwrap();
    // Expired but not yet removed: the key is free again, and taken over.
    let other = [message("user.created", json!({ "id": 2 }))];
    let fresh = publish(&db, &w, &t, &other, Some("daily")).await.unwrap();
    assert!(!fresh.replayed);
    assert_eq!(count(&db, &t, "messages").await, 2);

    let mut tx = db.begin(&t).await.unwrap();
    let back = tx
        .query("UPDATE webhook_idempotency SET created_at = $2 WHERE tenant_id = $1")
        .bind(now - KEEP_KEYS - Duration::minutes(1));
    tx.write_operational(IDEMPOTENCY, back).await.unwrap();
    tx.commit().await.unwrap();
    let due = db
        .tenants_with_due_work(&EXPIRED_KEYS, now - KEEP_KEYS, 10_000, &[])
        .await
        .unwrap();
    assert!(
        due.iter().any(|d| d.tenant_id == t.id()),
        "found by the finder"
    );
    let mut tx = db.begin(&t).await.unwrap();
    let removed = w
        .purge_expired_keys(&mut tx, now - KEEP_KEYS, 1000)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(count(&db, &t, "keys").await, 0);
}

async fn concurrent_retries_publish_once(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    subscribed(&db, &w, &t).await;
    let batch = vec![
        message("user.created", json!({ "id": 1 })),
        with_id(message("user.updated", json!({ "id": 1 })), "evt-upd-1"),
    ];
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let (db, w, t, batch) = (db.clone(), w.clone(), t.clone(), batch.clone());
            tokio::spawn(async move {
                // A retry after contention, as the server's retry layer does.
                loop {
                    match publish(&db, &w, &t, &batch, Some("retry-me")).await {
                        Err(WebhookError::Store(tenantkit::Error::Contention(_))) => continue,
                        other => return other.unwrap(),
                    }
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tries {
        answers.push(task.await.unwrap());
    }
    assert_eq!(
        answers.iter().filter(|a| !a.replayed).count(),
        1,
        "published once"
    );
    assert!(
        answers.iter().all(|a| a.messages == answers[0].messages),
        "one answer"
    );
    assert_eq!(count(&db, &t, "messages").await, 2);
}

async fn data_is_checked_against_its_types_schema(db: Db) {
    let w = Webhooks::new(
        webhooks().policy().clone(),
        tenantkit_webhooks::secret_box::SecretBox::new([
            tenantkit_webhooks::secret_box::SecretBox::generate_key().as_str(),
        ])
        .unwrap(),
        tenantkit_webhooks::catalogue::EventCatalogue::tenantkit(),
    );
    let t = tenant(&db).await;
    subscribed(&db, &w, &t).await;
    let user = tenantkit_webhooks::testing::user_data(1);
    let mut wrong = user.clone();
    wrong["role"] = json!("emperor");
    wrong["email"] = json!("not an address");
    let batch = [
        message("user.created", user.clone()),
        message("user.created", wrong),
    ];
    let refused = publish(&db, &w, &t, &batch, None).await.unwrap_err();
    let WebhookError::Schema {
        message,
        event_type,
        violations,
    } = &refused
    else {
        panic!("{refused:?}")
    };
    assert_eq!((*message, event_type.as_str()), (Some(1), "user.created"));
    let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
    assert!(
        paths.contains(&"/role") && paths.contains(&"/email"),
        "{paths:?}"
    );
    assert!(
        refused
            .to_string()
            .starts_with("message 1: `data` does not satisfy"),
        "{refused}"
    );
    assert_eq!(count(&db, &t, "messages").await, 0, "all or none");
    // The transactional outbox checks the same.
    let mut tx = db.begin(&t).await.unwrap();
    let refused = w
        .publish(&mut tx, "user.created", json!({ "id": 1 }))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, WebhookError::Schema { message: None, .. }),
        "{refused:?}"
    );
    drop(tx);
    assert!(publish(&db, &w, &t, &batch[..1], None).await.is_ok());
}

async fn wildcards_and_channels_route_messages(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let endpoint = |types: &[&str], channels: &[&str]| NewWebhook {
        url: "https://hooks.partner.test/in".into(),
        event_types: types.iter().map(|s| (*s).to_owned()).collect(),
        channels: channels.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    };
    let mut tx = db.begin(&t).await.unwrap();
    let mut hooks = Vec::new();
    for (types, channels) in [
        (&["user.*"][..], &[][..]),
        (&["*"][..], &["eu"][..]),
        (&["user.created"][..], &["us", "eu"][..]),
        (&["api_key.*"][..], &[][..]),
    ] {
        hooks.push(
            w.create(&mut tx, &endpoint(types, channels))
                .await
                .unwrap()
                .webhook,
        );
    }
    tx.commit().await.unwrap();
    assert_eq!(hooks[2].channels, ["us", "eu"]);
    for (event_type, channels, expected) in [
        ("user.created", &[][..], [true, false, false, false]),
        ("user.created", &["eu"][..], [true, true, true, false]),
        ("user.deleted", &["us"][..], [true, false, false, false]),
        ("api_key.created", &[][..], [false, false, false, true]),
        (
            "webhook.test",
            &["eu", "us"][..],
            [false, true, false, false],
        ),
    ] {
        let m = NewMessage {
            event_type: event_type.into(),
            channels: channels.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        };
        let published = publish(&db, &w, &t, &[m], None)
            .await
            .unwrap()
            .messages
            .remove(0);
        let by_rule: Vec<bool> = hooks
            .iter()
            .map(|h| h.receives(event_type, &published.channels))
            .collect();
        assert_eq!(by_rule, expected, "{event_type} on {channels:?}: the rule");
        let mut tx = db.begin_snapshot(&t).await.unwrap();
        let q = tx
            .query("SELECT webhook_id FROM webhook_queue WHERE tenant_id = $1 AND message_id = $2")
            .bind(published.message_id);
        let queued: Vec<(tenantkit_webhooks::WebhookId,)> = tx.fetch_all(q).await.unwrap();
        let by_sql: Vec<bool> = hooks
            .iter()
            .map(|h| queued.iter().any(|(id,)| *id == h.id))
            .collect();
        assert_eq!(by_sql, expected, "{event_type} on {channels:?}: the outbox");
        assert_eq!(
            published.endpoints as usize,
            expected.iter().filter(|e| **e).count()
        );
    }

    let mut tx = db.begin(&t).await.unwrap();
    for (types, channels, complaint) in [
        (&["nope.*"][..], &[][..], "unknown event type `nope.*`"),
        (&["user*"][..], &[][..], "unknown event type `user*`"),
        (&["*.*"][..], &[][..], "unknown event type"),
        (&["user.*"][..], &["a b"][..], "channel `a b`"),
        (&["user.*"][..], &["c"; 11][..], "at most 10 channels"),
    ] {
        let refused = w
            .create(&mut tx, &endpoint(types, channels))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains(complaint), "{refused}");
    }
    drop(tx);
    let eleven = NewMessage {
        event_type: "user.created".into(),
        channels: vec!["c".into(); 11],
        ..Default::default()
    };
    assert!(publish(&db, &w, &t, &[eleven], None).await.is_err());
}
