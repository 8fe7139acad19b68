//! Store conformance: every test runs on SQLite and on PostgreSQL (as the runtime role).

use tenantkit::audit::Actor;
use tenantkit::store::{Backend, Sql};
use tenantkit::{
    Db, Error, NewApiKey, NewTenant, NewUser, PageRequest, Role, Scope, TenantStatus, UserId,
    UserPatch,
};

use crate::common::{on_both_backends, tenant};

on_both_backends!(
    create_get_list_user,
    email_is_unique_per_tenant_case_insensitively,
    same_email_in_two_tenants_is_fine,
    other_tenants_user_is_not_found,
    list_users_paginates_by_keyset,
    last_owner_cannot_be_demoted_or_deleted,
    update_user_changes_only_given_fields,
    invalid_input_is_rejected_before_the_database,
    dropped_transaction_rolls_back,
    api_key_lifecycle,
    api_key_of_another_tenant_does_not_verify,
    tenant_subdomain_rules,
    suspend_and_reactivate_tenant,
    list_tenants_paginates,
    a_query_runs_only_in_the_transaction_that_built_it,
    a_statement_for_the_other_backend_is_refused_not_a_panic,
    text_with_nul_is_refused_alike_on_both_backends,
);

fn user(email: &str, role: Role) -> NewUser {
    NewUser {
        email: email.into(),
        role,
    }
}

async fn create_get_list_user(db: Db) {
    let acme = tenant(&db).await;
    let mut tx = db.begin(&acme).await.unwrap();
    let ann = tx
        .create_user(&user("Ann@Acme.test", Role::Owner))
        .await
        .unwrap();
    assert_eq!(ann.email, "ann@acme.test");
    assert_eq!(ann.tenant_id, acme.id());
    assert_eq!(tx.get_user(ann.id).await.unwrap(), ann);
    assert_eq!(
        tx.list_users(PageRequest::first(10)).await.unwrap(),
        vec![ann.clone()]
    );
    assert_eq!(tx.count_users().await.unwrap(), 1);
    tx.commit().await.unwrap();

    let mut tx = db.begin(&acme).await.unwrap();
    assert_eq!(tx.get_user(ann.id).await.unwrap(), ann, "committed");
}

async fn email_is_unique_per_tenant_case_insensitively(db: Db) {
    let acme = tenant(&db).await;
    let mut tx = db.begin(&acme).await.unwrap();
    tx.create_user(&user("bob@acme.test", Role::Member))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin(&acme).await.unwrap();
    let err = tx
        .create_user(&user("BOB@acme.test", Role::Member))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m) if m.contains("email")),
        "{err:?}"
    );
}

async fn same_email_in_two_tenants_is_fine(db: Db) {
    for _ in 0..2 {
        let t = tenant(&db).await;
        let mut tx = db.begin(&t).await.unwrap();
        tx.create_user(&user("same@example.test", Role::Owner))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn other_tenants_user_is_not_found(db: Db) {
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let mut tx = db.begin(&a).await.unwrap();
    let ann = tx
        .create_user(&user("ann@a.test", Role::Owner))
        .await
        .unwrap();
    tx.create_user(&user("amy@a.test", Role::Owner))
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = db.begin(&b).await.unwrap();
    assert!(
        tx.list_users(PageRequest::first(500))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(tx.get_user(ann.id).await, Err(Error::NotFound(_))));
    let patch = UserPatch {
        role: Some(Role::Member),
        ..Default::default()
    };
    assert!(matches!(
        tx.update_user(ann.id, &patch).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        tx.delete_user(ann.id).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(tx.count_users().await.unwrap(), 0);
    tx.commit().await.unwrap();

    let mut tx = db.begin(&a).await.unwrap();
    assert_eq!(
        tx.get_user(ann.id).await.unwrap().role,
        Role::Owner,
        "untouched by b"
    );
}

async fn list_users_paginates_by_keyset(db: Db) {
    let t = tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            tx.create_user(&user(&format!("u{i}@t.test"), Role::Member))
                .await
                .unwrap()
                .id,
        );
    }
    tx.commit().await.unwrap();
    let mut tx = db.begin(&t).await.unwrap();
    let mut seen: Vec<UserId> = Vec::new();
    let mut after = None;
    loop {
        let page = tx
            .list_users(PageRequest { after, limit: 3 })
            .await
            .unwrap();
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|u| u.id);
        seen.extend(page.iter().map(|u| u.id));
    }
    assert_eq!(seen, created, "every user once, in creation order");
}

async fn last_owner_cannot_be_demoted_or_deleted(db: Db) {
    let t = tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    let owner = tx
        .create_user(&user("o@t.test", Role::Owner))
        .await
        .unwrap();
    let demote = UserPatch {
        role: Some(Role::Admin),
        ..Default::default()
    };
    assert!(matches!(
        tx.update_user(owner.id, &demote).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        tx.delete_user(owner.id).await,
        Err(Error::Conflict(_))
    ));
    let second = tx
        .create_user(&user("o2@t.test", Role::Owner))
        .await
        .unwrap();
    assert_eq!(
        tx.update_user(owner.id, &demote).await.unwrap().role,
        Role::Admin
    );
    assert!(
        matches!(tx.delete_user(second.id).await, Err(Error::Conflict(_))),
        "now the last owner"
    );
}

async fn update_user_changes_only_given_fields(db: Db) {
    let t = tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    let u = tx
        .create_user(&user("m@t.test", Role::Member))
        .await
        .unwrap();
    let changed = tx
        .update_user(
            u.id,
            &UserPatch {
                email: Some("New@T.test".into()),
                role: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.email.as_str(), changed.role),
        ("new@t.test", Role::Member)
    );
    let changed = tx
        .update_user(
            u.id,
            &UserPatch {
                email: None,
                role: Some(Role::Admin),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.email.as_str(), changed.role),
        ("new@t.test", Role::Admin)
    );
    assert_eq!(changed.created_at, u.created_at);
}

async fn invalid_input_is_rejected_before_the_database(db: Db) {
    let t = tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    for bad in [
        "",
        "no-at-sign",
        "a@b",
        &format!("{}@x.test", "a".repeat(250)),
    ] {
        assert!(
            matches!(
                tx.create_user(&user(bad, Role::Member)).await,
                Err(Error::Invalid(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        tx.list_users(PageRequest::first(0)).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        tx.list_users(PageRequest::first(501)).await,
        Err(Error::Invalid(_))
    ));
    let long_name = NewApiKey {
        name: "k".repeat(201),
        scopes: vec![],
    };
    assert!(matches!(
        tx.create_api_key(&long_name).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(tx.count_users().await.unwrap(), 0, "nothing written");
}

async fn dropped_transaction_rolls_back(db: Db) {
    let t = tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    let u = tx
        .create_user(&user("gone@t.test", Role::Member))
        .await
        .unwrap();
    drop(tx);
    let mut tx = db.begin(&t).await.unwrap();
    assert!(matches!(tx.get_user(u.id).await, Err(Error::NotFound(_))));
}

async fn api_key_lifecycle(db: Db) {
    let t = tenant(&db).await;
    let mut tx = db.begin(&t).await.unwrap();
    let created = tx
        .create_api_key(&NewApiKey {
            name: "ci".into(),
            scopes: vec![Scope::UsersRead, Scope::UsersRead],
        })
        .await
        .unwrap();
    assert_eq!(
        created.api_key.scopes,
        vec![Scope::UsersRead],
        "deduplicated"
    );
    assert!(
        !created.api_key.hash.contains(&created.key),
        "only the hash is stored"
    );
    assert!(format!("{created:?}").contains("[redacted]"));
    tx.commit().await.unwrap();

    let mut tx = db.begin(&t).await.unwrap();
    let verified = tx
        .verify_api_key(&created.key)
        .await
        .unwrap()
        .expect("valid key");
    assert_eq!(verified.id, created.api_key.id);
    assert!(
        tx.verify_api_key(&format!("{}x", created.key))
            .await
            .unwrap()
            .is_none(),
        "wrong secret"
    );
    assert!(tx.verify_api_key("tk_garbage").await.unwrap().is_none());
    tx.commit().await.unwrap();

    let mut tx = db.begin(&t).await.unwrap();
    let listed = tx.list_api_keys(PageRequest::first(10)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used_at.is_some(), "use recorded");
    let revoked = tx.revoke_api_key(created.api_key.id).await.unwrap();
    let again = tx.revoke_api_key(created.api_key.id).await.unwrap();
    assert_eq!(
        revoked.revoked_at, again.revoked_at,
        "revoking twice keeps the first time"
    );
    assert!(
        tx.verify_api_key(&created.key).await.unwrap().is_none(),
        "revoked keys fail"
    );
}

async fn api_key_of_another_tenant_does_not_verify(db: Db) {
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    let mut tx = db.begin(&a).await.unwrap();
    let key = tx
        .create_api_key(&NewApiKey {
            name: "a".into(),
            scopes: Scope::ALL.to_vec(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin(&b).await.unwrap();
    assert!(tx.verify_api_key(&key.key).await.unwrap().is_none());
    assert!(matches!(
        tx.revoke_api_key(key.api_key.id).await,
        Err(Error::NotFound(_))
    ));
    assert!(
        tx.list_api_keys(PageRequest::first(10))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn tenant_subdomain_rules(db: Db) {
    let sub = format!("x{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let t = db
        .platform()
        .create_tenant(
            &NewTenant {
                name: " Named ".into(),
                subdomain: sub.to_uppercase(),
            },
            &Actor::System,
        )
        .await
        .unwrap();
    assert_eq!(
        (t.name.as_str(), t.subdomain.as_str()),
        ("Named", sub.as_str())
    );
    let dup = db
        .platform()
        .create_tenant(
            &NewTenant {
                name: "Again".into(),
                subdomain: sub.clone(),
            },
            &Actor::System,
        )
        .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    for bad in ["", "-x", "x-", "a.b", "under_score", &"a".repeat(64)] {
        let r = db
            .platform()
            .create_tenant(
                &NewTenant {
                    name: "Bad".into(),
                    subdomain: bad.into(),
                },
                &Actor::System,
            )
            .await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{bad:?}");
    }
    assert_eq!(
        db.resolve_subdomain(&sub.to_uppercase())
            .await
            .unwrap()
            .unwrap()
            .id(),
        t.id
    );
    assert!(
        db.resolve_subdomain("no-such-tenant-here")
            .await
            .unwrap()
            .is_none()
    );
}

async fn suspend_and_reactivate_tenant(db: Db) {
    let t = tenant(&db).await;
    let suspended = db
        .platform()
        .set_tenant_status(t.id(), TenantStatus::Suspended, &Actor::System)
        .await
        .unwrap();
    assert_eq!(suspended.status, TenantStatus::Suspended);
    assert_eq!(
        db.resolve_id(t.id())
            .await
            .unwrap()
            .unwrap()
            .tenant()
            .status,
        TenantStatus::Suspended
    );
    db.platform()
        .set_tenant_status(t.id(), TenantStatus::Active, &Actor::System)
        .await
        .unwrap();
    assert!(matches!(
        db.platform()
            .set_tenant_status(
                tenantkit::TenantId::new(),
                TenantStatus::Active,
                &Actor::System
            )
            .await,
        Err(Error::NotFound(_))
    ));
}

async fn list_tenants_paginates(db: Db) {
    let first = tenant(&db).await;
    let (x, y) = (tenant(&db).await, tenant(&db).await);
    let page = db
        .platform()
        .list_tenants(PageRequest {
            after: Some(first.id()),
            limit: 2,
        })
        .await
        .unwrap();
    assert!(page.len() <= 2);
    assert!(page.iter().all(|t| t.id > first.id()));
    let all = db
        .platform()
        .list_tenants(PageRequest {
            after: Some(first.id()),
            limit: 500,
        })
        .await
        .unwrap();
    assert!(all.iter().any(|t| t.id == x.id()) && all.iter().any(|t| t.id == y.id()));
}

/// A `Scoped` query carries the transaction that built it: another tenant's
/// transaction, or a later one of the same tenant, refuses it and nothing
/// runs.
async fn a_query_runs_only_in_the_transaction_that_built_it(db: Db) {
    let acme = tenant(&db).await;
    let globex = tenant(&db).await;
    let count = "SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1";
    let mut a = db.begin(&acme).await.unwrap();
    let ann = a
        .create_user(&user("ann@acme.test", Role::Owner))
        .await
        .unwrap();
    let read = a.query(count);
    let write = a.query(
        "UPDATE users SET role = 'member' WHERE tenant_id = $1 \
         RETURNING tenant_id, id, email, role, created_at, updated_at",
    );
    let (n,): (i64,) = a.fetch_one(a.query(count)).await.unwrap();
    assert_eq!(n, 1, "its own transaction runs it");
    a.commit().await.unwrap();

    let mut b = db.begin(&globex).await.unwrap();
    let refused = b.fetch_one::<(i64,)>(read).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Internal(m) if m.contains("another TenantTx")),
        "{refused:?}"
    );
    assert!(
        matches!(b.update(&ann, write).await, Err(Error::Internal(_))),
        "a write is refused too"
    );
    let stale = b.query(count);
    b.commit().await.unwrap();
    let mut again = db.begin(&globex).await.unwrap();
    assert!(
        again.fetch_one::<(i64,)>(stale).await.is_err(),
        "a later transaction of the same tenant refuses it"
    );
    drop(again);
    let mut check = db.begin_snapshot(&acme).await.unwrap();
    assert_eq!(check.get_user(ann.id).await.unwrap().role, Role::Owner);
}

/// A statement without a text for the backend it runs on (a bug in its
/// code path) is refused with `Internal` when run, as every statement the
/// store runs is, never a panic; the transaction goes on.
async fn a_statement_for_the_other_backend_is_refused_not_a_panic(db: Db) {
    const COUNT: &str = "SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1";
    let acme = tenant(&db).await;
    let elsewhere = match db.backend() {
        Backend::Postgres => Sql::sqlite_only(COUNT),
        Backend::Sqlite => Sql::postgres_only(COUNT),
    };
    let mut tx = db.begin(&acme).await.unwrap();
    let refused = tx
        .fetch_one::<(i64,)>(tx.query(elsewhere))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Internal(m) if m.contains("without a")),
        "{refused:?}"
    );
    let (n,): (i64,) = tx.fetch_one(tx.query(COUNT)).await.unwrap();
    assert_eq!(n, 0, "the transaction goes on");
    tx.commit().await.unwrap();
}

/// The text rule holds for every value any statement binds, so a caller
/// that skipped validating (an audit filter, custom SQL) gets the same
/// `Invalid` on both backends (PostgreSQL cannot store NUL; SQLite could).
async fn text_with_nul_is_refused_alike_on_both_backends(db: Db) {
    let t = tenant(&db).await;
    let mut tx = db.begin_snapshot(&t).await.unwrap();
    let filter = tenantkit::audit::AuditFilter {
        action: Some("a\u{0}b".into()),
        ..Default::default()
    };
    let refused = tx.list_audit_logs(&filter).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Invalid(m) if m.contains("NUL")),
        "{refused:?}"
    );
    drop(tx);
    let mut tx = db.begin(&t).await.unwrap();
    let q = tx
        .query("SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1 AND email = $2")
        .bind("a\u{0}@x.test");
    let refused = tx.fetch_one::<(i64,)>(q).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Invalid(m) if m.contains("$2")),
        "{refused:?}"
    );
    let q = tx
        .query("SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1 AND $2 IS NOT NULL")
        .bind(serde_json::json!({ "k": ["\u{0}"] }));
    let refused = tx.fetch_one::<(i64,)>(q).await.unwrap_err();
    assert!(
        matches!(&refused, Error::Invalid(m) if m.contains("k[0]")),
        "{refused:?}"
    );
}
