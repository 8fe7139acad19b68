//! Endpoints through `TenantTx`, on SQLite and on PostgreSQL as the runtime
//! role: CRUD, URL and event-type validation, secrets shown once and sealed,
//! rotation, isolation, auditing.

use chrono::{Duration, Utc};
use tenantkit::{Db, Error, PageRequest, TenantContext, audit::AuditFilter};
use tenantkit_webhooks::{
    NewWebhook, WebhookError, WebhookId, WebhookPatch, WebhookStatus, Webhooks,
    signature::SigningSecret, ssrf::UrlRefusal,
};

use crate::common::{on_both_backends, tenant, webhooks};

on_both_backends!(
    create_shows_the_secret_once_and_never_serializes_it,
    forbidden_urls_are_refused_and_nothing_is_stored,
    event_types_come_from_the_catalogue,
    descriptions_are_bounded,
    listing_paginates_in_creation_order,
    another_tenants_endpoint_is_not_found,
    update_changes_fields_disables_and_re_enables,
    update_with_a_forbidden_url_changes_nothing,
    delete_removes_the_endpoint,
    rotation_signs_with_both_secrets_until_the_grace_period_ends,
    every_change_is_audited_without_secrets,
    secrets_open_only_with_the_platform_keys,
    custom_headers_are_sealed_shown_by_name_and_replaced_whole,
);

fn new(url: &str, types: &[&str]) -> NewWebhook {
    NewWebhook {
        url: url.into(),
        event_types: types.iter().map(|t| (*t).to_owned()).collect(),
        description: None,
        ..Default::default()
    }
}

async fn create(
    db: &Db,
    w: &Webhooks,
    t: &TenantContext,
    url: &str,
) -> tenantkit_webhooks::CreatedWebhook {
    let mut tx = db.begin(t).await.unwrap();
    let created = w
        .create(&mut tx, &new(url, &["user.created"]))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    created
}

/// A `Webhooks`, a new tenant, and one endpoint of it at `hooks.partner.test`.
async fn endpoint_of_new_tenant(db: &Db) -> (Webhooks, TenantContext, WebhookId) {
    let (w, t) = (webhooks(), tenant(db).await);
    let id = create(db, &w, &t, "https://hooks.partner.test/in")
        .await
        .webhook
        .id;
    (w, t, id)
}

async fn create_shows_the_secret_once_and_never_serializes_it(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let created = create(&db, &w, &t, "https://hooks.partner.test/in").await;
    assert!(created.secret.starts_with("whsec_"));
    let secret = SigningSecret::parse(&created.secret).unwrap();
    let shown = serde_json::to_value(&created).unwrap();
    assert_eq!(shown["secret"], created.secret, "shown once, at creation");
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["event_types"], serde_json::json!(["user.created"]));

    let mut tx = db.begin(&t).await.unwrap();
    let stored = w.get(&mut tx, created.webhook.id).await.unwrap();
    let later = serde_json::to_string(&stored).unwrap();
    assert!(!later.contains("secret\""), "{later}");
    assert!(!later.contains(&created.secret));
    assert!(!format!("{stored:?}").contains(&created.secret));
    // The stored secret signs: it is the one shown.
    assert_eq!(
        w.signing_secrets(&stored, Utc::now()).unwrap(),
        vec![secret]
    );
}

async fn forbidden_urls_are_refused_and_nothing_is_stored(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let mut tx = db.begin(&t).await.unwrap();
    for url in [
        "http://hooks.partner.test/in",
        "https://127.0.0.1/in",
        "https://[::ffff:169.254.169.254]/",
        "https://localhost/in",
        "https://internal.partner.test/in",
        "https://user:pw@hooks.partner.test/in",
        "not a url",
    ] {
        let refused = w.create(&mut tx, &new(url, &["*"])).await.unwrap_err();
        assert!(
            matches!(refused, WebhookError::Url(_)),
            "{url}: {refused:?}"
        );
        let problem = tenantkit::problem::Problem::from(&refused);
        assert_eq!(problem.status, 422, "{url}");
        assert_eq!(problem.title, "Webhook URL refused");
        assert!(!problem.detail.unwrap().is_empty(), "it says why");
    }
    assert!(matches!(
        w.create(&mut tx, &new("https://internal.partner.test/in", &["*"]))
            .await,
        Err(WebhookError::Url(UrlRefusal::Blocked { .. }))
    ));
    assert!(
        w.list(&mut tx, PageRequest::first(10))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn event_types_come_from_the_catalogue(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let mut tx = db.begin(&t).await.unwrap();
    for bad in [
        &[][..],
        &["no.such.event"][..],
        &["user.created", "User.Created"][..],
    ] {
        let err = w
            .create(&mut tx, &new("https://hooks.partner.test/in", bad))
            .await
            .unwrap_err();
        assert!(matches!(err, WebhookError::Invalid(_)), "{bad:?}");
    }
    // Duplicates collapse; `*` stands alone.
    let created = w
        .create(
            &mut tx,
            &new(
                "https://hooks.partner.test/in",
                &["user.created", "user.created", "api_key.revoked"],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        created.webhook.event_types,
        ["user.created", "api_key.revoked"]
    );
    assert!(created.webhook.subscribes_to("api_key.revoked"));
    assert!(!created.webhook.subscribes_to("user.deleted"));
    let all = w
        .create(
            &mut tx,
            &new("https://hooks.partner.test/in", &["user.created", "*"]),
        )
        .await
        .unwrap();
    assert_eq!(all.webhook.event_types, ["*"]);
    assert!(all.webhook.subscribes_to("subscription.updated"));
}

async fn descriptions_are_bounded(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let mut tx = db.begin(&t).await.unwrap();
    let mut input = new("https://hooks.partner.test/in", &["*"]);
    input.description = Some("x".repeat(501));
    assert!(matches!(
        w.create(&mut tx, &input).await,
        Err(WebhookError::Invalid(_))
    ));
    input.description = Some("  CRM sync  ".into());
    assert_eq!(
        w.create(&mut tx, &input).await.unwrap().webhook.description,
        "CRM sync"
    );
}

async fn listing_paginates_in_creation_order(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            create(&db, &w, &t, "https://hooks.partner.test/in")
                .await
                .webhook
                .id,
        );
    }
    let mut tx = db.begin(&t).await.unwrap();
    let first = w.list(&mut tx, PageRequest::first(3)).await.unwrap();
    let rest = w
        .list(
            &mut tx,
            PageRequest {
                after: Some(first[2].id),
                limit: 3,
            },
        )
        .await
        .unwrap();
    let seen: Vec<WebhookId> = first.iter().chain(&rest).map(|h| h.id).collect();
    assert_eq!(seen, ids);
    assert!(matches!(
        w.list(&mut tx, PageRequest::first(0)).await,
        Err(WebhookError::Store(Error::Invalid(_)))
    ));
}

async fn another_tenants_endpoint_is_not_found(db: Db) {
    let (w, a, b) = (webhooks(), tenant(&db).await, tenant(&db).await);
    let theirs = create(&db, &w, &b, "https://hooks.partner.test/in")
        .await
        .webhook
        .id;
    let mut tx = db.begin(&a).await.unwrap();
    fn not_found<T>(r: Result<T, WebhookError>) -> bool {
        matches!(r, Err(WebhookError::Store(Error::NotFound(_))))
    }
    assert!(not_found(w.get(&mut tx, theirs).await));
    assert!(not_found(
        w.update(&mut tx, theirs, &WebhookPatch::default()).await
    ));
    assert!(not_found(w.rotate_secret(&mut tx, theirs).await));
    assert!(not_found(w.delete(&mut tx, theirs).await));
    assert!(
        w.list(&mut tx, PageRequest::first(10))
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    // Still there for its owner.
    let mut tx = db.begin(&b).await.unwrap();
    assert_eq!(w.get(&mut tx, theirs).await.unwrap().id, theirs);
}

async fn update_changes_fields_disables_and_re_enables(db: Db) {
    let (w, t, id) = endpoint_of_new_tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    let changed = w
        .update(
            &mut tx,
            id,
            &WebhookPatch {
                url: Some("https://other.partner.test/v2".into()),
                event_types: Some(vec!["*".into()]),
                description: Some("v2".into()),
                status: Some(WebhookStatus::Disabled),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.url, "https://other.partner.test/v2");
    assert_eq!(changed.event_types, ["*"]);
    assert_eq!(changed.status, WebhookStatus::Disabled);
    assert!(changed.disabled_at.is_some() && changed.disabled_reason.is_some());
    let enabled = w
        .update(
            &mut tx,
            id,
            &WebhookPatch {
                status: Some(WebhookStatus::Active),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(enabled.status, WebhookStatus::Active);
    assert_eq!((enabled.disabled_at, enabled.disabled_reason), (None, None));
    assert_eq!(
        enabled.url, "https://other.partner.test/v2",
        "untouched fields stay"
    );
}

async fn update_with_a_forbidden_url_changes_nothing(db: Db) {
    let (w, t, id) = endpoint_of_new_tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    let patch = WebhookPatch {
        url: Some("https://10.0.0.1/in".into()),
        ..Default::default()
    };
    assert!(matches!(
        w.update(&mut tx, id, &patch).await,
        Err(WebhookError::Url(_))
    ));
    assert_eq!(
        w.get(&mut tx, id).await.unwrap().url,
        "https://hooks.partner.test/in"
    );
}

async fn delete_removes_the_endpoint(db: Db) {
    let (w, t, id) = endpoint_of_new_tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    w.delete(&mut tx, id).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin(&t).await.unwrap();
    assert!(matches!(
        w.get(&mut tx, id).await,
        Err(WebhookError::Store(Error::NotFound(_)))
    ));
    assert!(matches!(
        w.delete(&mut tx, id).await,
        Err(WebhookError::Store(Error::NotFound(_)))
    ));
}

async fn rotation_signs_with_both_secrets_until_the_grace_period_ends(db: Db) {
    let w = webhooks().with_rotation_grace(Duration::hours(2));
    let t = tenant(&db).await;
    let created = create(&db, &w, &t, "https://hooks.partner.test/in").await;
    let old = SigningSecret::parse(&created.secret).unwrap();
    let mut tx = db.begin(&t).await.unwrap();
    let rotated = w.rotate_secret(&mut tx, created.webhook.id).await.unwrap();
    tx.commit().await.unwrap();
    let new = SigningSecret::parse(&rotated.secret).unwrap();
    assert_ne!(old, new);
    let until = rotated
        .webhook
        .previous_secret_expires_at
        .expect("grace period set");
    assert!(
        (until - Utc::now() - Duration::hours(2))
            .num_seconds()
            .abs()
            < 60
    );
    let now = Utc::now();
    assert_eq!(
        w.signing_secrets(&rotated.webhook, now).unwrap(),
        vec![new.clone(), old]
    );
    assert_eq!(
        w.signing_secrets(&rotated.webhook, until + Duration::seconds(1))
            .unwrap(),
        vec![new]
    );
}

/// The tenant's audit trail of webhooks: the actions, oldest first, and
/// the whole of it as JSON.
async fn webhook_trail(db: &Db, t: &TenantContext) -> (Vec<String>, String) {
    let mut tx = db.begin(t).await.unwrap();
    let entries = tx
        .list_audit_logs(&AuditFilter {
            resource_type: Some("webhook".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let actions = entries.iter().rev().map(|e| e.action.clone()).collect();
    (actions, serde_json::to_string(&entries).unwrap())
}

async fn every_change_is_audited_without_secrets(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let created = create(&db, &w, &t, "https://hooks.partner.test/in").await;
    let id = created.webhook.id;
    let mut tx = db.begin(&t).await.unwrap();
    w.update(
        &mut tx,
        id,
        &WebhookPatch {
            description: Some("d".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let rotated = w.rotate_secret(&mut tx, id).await.unwrap();
    w.delete(&mut tx, id).await.unwrap();
    tx.commit().await.unwrap();
    let (actions, trail) = webhook_trail(&db, &t).await;
    assert_eq!(
        actions,
        ["create", "update", "webhook.secret_rotated", "delete"]
    );
    for secret in [&created.secret, &rotated.secret] {
        assert!(!trail.contains(secret.as_str()));
    }
    assert!(!trail.contains("x1."), "no sealed secret in the trail");
    assert!(
        trail.contains("hooks.partner.test"),
        "the endpoint itself is recorded"
    );
}

fn headers(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

async fn custom_headers_are_sealed_shown_by_name_and_replaced_whole(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let mut tx = db.begin(&t).await.unwrap();
    let created = w
        .create(
            &mut tx,
            &NewWebhook {
                headers: headers(&[("Authorization", "Bearer r3ceiver"), ("X-Team", "blue")]),
                ..new("https://hooks.partner.test/in", &["user.created"])
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let id = created.webhook.id;
    assert_eq!(created.webhook.header_names, ["Authorization", "X-Team"]);
    // Names are shown; values never, not even at creation.
    let shown = serde_json::to_string(&created).unwrap();
    assert!(
        shown.contains(r#""header_names":["Authorization","X-Team"]"#),
        "{shown}"
    );
    assert!(!shown.contains("r3ceiver"), "{shown}");
    assert!(!format!("{created:?}").contains("r3ceiver"));
    let asked = NewWebhook {
        headers: headers(&[("Authorization", "Bearer r3ceiver")]),
        ..Default::default()
    };
    assert!(!format!("{asked:?}").contains("r3ceiver"));
    // Stored sealed, bound to the row; they open with the platform's keys.
    let mut tx = db.begin(&t).await.unwrap();
    let stored = w.get(&mut tx, id).await.unwrap();
    let pairs: Vec<(String, String)> = w
        .custom_headers(&stored)
        .unwrap()
        .pairs()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("authorization".to_owned(), "Bearer r3ceiver".to_owned()),
            ("x-team".to_owned(), "blue".to_owned())
        ]
    );
    assert!(matches!(
        webhooks().custom_headers(&stored),
        Err(WebhookError::Sealed(_))
    ));
    // A patch without `headers` keeps them; one with replaces them all.
    let kept = w
        .update(
            &mut tx,
            id,
            &WebhookPatch {
                description: Some("kept".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(kept.header_names, ["Authorization", "X-Team"]);
    assert_eq!(w.custom_headers(&kept).unwrap().names(), kept.header_names);
    let replaced = w
        .update(
            &mut tx,
            id,
            &WebhookPatch {
                headers: Some(headers(&[("X-Team", "red")])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(replaced.header_names, ["X-Team"]);
    let cleared = w
        .update(
            &mut tx,
            id,
            &WebhookPatch {
                headers: Some(headers(&[])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(cleared.header_names.is_empty());
    assert!(w.custom_headers(&cleared).unwrap().is_empty());
    // A denied name changes nothing, on create and on update.
    for denied in [
        "Host",
        "webhook-signature",
        "Content-Type",
        "Transfer-Encoding",
    ] {
        let err = w
            .update(
                &mut tx,
                id,
                &WebhookPatch {
                    headers: Some(headers(&[(denied, "x")])),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, WebhookError::Invalid(_)), "{denied}: {err}");
        let err = w
            .create(
                &mut tx,
                &NewWebhook {
                    headers: headers(&[(denied, "x")]),
                    ..new("https://hooks.partner.test/in", &["user.created"])
                },
            )
            .await
            .unwrap_err();
        assert_eq!(
            tenantkit::problem::Problem::from(&err).status,
            422,
            "{denied}"
        );
    }
    assert!(w.get(&mut tx, id).await.unwrap().header_names.is_empty());
    tx.commit().await.unwrap();
    // The audit trail names the headers, never a value.
    let (_, trail) = webhook_trail(&db, &t).await;
    assert!(trail.contains("X-Team"), "{trail}");
    assert!(
        !trail.contains("r3ceiver") && !trail.contains("x1."),
        "{trail}"
    );
}

async fn secrets_open_only_with_the_platform_keys(db: Db) {
    let (w, t) = (webhooks(), tenant(&db).await);
    let created = create(&db, &w, &t, "https://hooks.partner.test/in").await;
    // Another platform (other keys) reading the same rows cannot sign.
    let stranger = webhooks();
    assert!(matches!(
        stranger.signing_secrets(&created.webhook, Utc::now()),
        Err(WebhookError::Sealed(_))
    ));
    let problem = tenantkit::problem::Problem::from(
        &stranger
            .signing_secrets(&created.webhook, Utc::now())
            .unwrap_err(),
    );
    assert_eq!(problem.status, 500);
    assert!(!problem.detail.unwrap().contains("x1."));
}

/// Row-level security covers the new table: as the runtime role with no
/// tenant set nothing is visible, and one tenant never sees another's rows.
#[tokio::test]
async fn postgres_webhooks_are_isolated_by_row_level_security() {
    let Some(database) = crate::common::postgres_database().await else {
        return;
    };
    let db = tenantkit::testing::runtime_db(&database, 2).await;
    let (w, a, b) = (webhooks(), tenant(&db).await, tenant(&db).await);
    create(&db, &w, &a, "https://hooks.partner.test/a").await;
    create(&db, &w, &b, "https://hooks.partner.test/b").await;
    let raw = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(n, 0, "no tenant set, no rows");
    let mut tx = raw.begin().await.unwrap();
    sqlx::query("SELECT set_config('tenantkit.tenant_id', $1, true)")
        .bind(a.id().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let urls: Vec<String> = sqlx::query_scalar("SELECT url FROM webhooks")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(urls, ["https://hooks.partner.test/a"]);
    let moved = sqlx::query("UPDATE webhooks SET tenant_id = $1")
        .bind(b.id().as_uuid())
        .execute(&mut *tx)
        .await;
    assert!(moved.is_err(), "a row cannot be re-homed to another tenant");
}
