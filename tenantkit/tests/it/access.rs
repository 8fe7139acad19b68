//! Access ends when a user is removed or demoted, or the tenant suspended:
//! at once in the process that made the change, within the access TTL in any
//! other, and at once in every process on PostgreSQL (`LISTEN/NOTIFY`).
//! On SQLite and on PostgreSQL as the runtime role.

use std::time::{Duration, Instant};

use http::StatusCode;
use tenantkit::{
    Db, NewApiKey, Role, Scope, TenantContext, TenantStatus, UserPatch,
    audit::Actor,
    auth::{AuthLayer, Claims, JwtKeys, TokenRole, UserClaim},
    testing::user,
};

use crate::common::{call_through, postgres_with, sqlite_file, tenant};

const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// Two handles on one database, each with its own access cache, as two
/// server processes would have.
struct Processes {
    this: Db,
    other: Db,
    keys: JwtKeys,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite_processes() -> Processes {
    let dir = tempfile::tempdir().unwrap();
    let this = sqlite_file(&dir).await;
    let other = sqlite_file(&dir).await;
    Processes {
        this,
        other,
        keys: JwtKeys::hs256(SECRET).unwrap(),
        _dir: Some(dir),
    }
}

async fn postgres_processes() -> Option<Processes> {
    Some(Processes {
        this: postgres_with(3).await?,
        other: postgres_with(3).await?,
        keys: JwtKeys::hs256(SECRET).unwrap(),
        _dir: None,
    })
}

macro_rules! access_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::sqlite_processes().await).await;
            })+
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                let Some(p) = super::postgres_processes().await else { return };
                super::$name(p).await;
            })+
        }
    };
}

access_tests!(
    deleted_users_token_is_refused_at_once_here_and_soon_everywhere,
    demoted_user_acts_with_the_lesser_role,
    token_naming_no_user_of_the_tenant_is_401,
    suspension_reaches_already_authenticated_clients,
    not_before_is_honoured_with_the_leeway,
    external_tokens_map_to_users_by_email,
    other_processes_hear_of_changes_before_the_ttl,
    a_revoked_api_key_is_refused_at_once_here_and_by_announcement_elsewhere,
);

/// One request through `TenantLayer` + `AuthLayer` on `db`; the status and,
/// when it passed, the principal.
async fn call(
    db: &Db,
    keys: &JwtKeys,
    claim: UserClaim,
    tenant: &TenantContext,
    token: &str,
) -> (StatusCode, serde_json::Value) {
    let auth = AuthLayer::new(keys.clone(), db.clone()).with_user_claim(claim);
    let (status, _, body) = call_through(db, auth, tenant, token).await;
    (status, body)
}

/// Polls `db` until the request answers `want`; how long it took.
async fn until_status(
    db: &Db,
    keys: &JwtKeys,
    tenant: &TenantContext,
    token: &str,
    want: StatusCode,
) -> Duration {
    let start = Instant::now();
    loop {
        let (status, _) = call(db, keys, UserClaim::Sub, tenant, token).await;
        if status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still {status} after 5 s, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn delete(db: &Db, t: &TenantContext, id: tenantkit::UserId) {
    let mut tx = db.begin(t).await.unwrap();
    tx.delete_user(id).await.unwrap();
    tx.commit().await.unwrap();
}

/// A tenant with an owner and an admin, and a token of the admin carrying `role`.
async fn admin_of_new_tenant(
    p: &Processes,
    role: TokenRole,
) -> (TenantContext, tenantkit::User, String) {
    let t = tenant(&p.this).await;
    let _owner = user(&p.this, &t, Role::Owner).await;
    let admin = user(&p.this, &t, Role::Admin).await;
    let token = p
        .keys
        .issue(&admin.id.to_string(), Some(t.id()), role, 60)
        .unwrap();
    (t, admin, token)
}

async fn deleted_users_token_is_refused_at_once_here_and_soon_everywhere(p: Processes) {
    let (t, admin, token) = admin_of_new_tenant(&p, TokenRole::Admin).await;
    // Both processes have the user cached.
    for db in [&p.this, &p.other] {
        let (status, principal) = call(db, &p.keys, UserClaim::Sub, &t, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(principal["subject"]["id"], admin.id.to_string());
    }
    delete(&p.this, &t, admin.id).await;
    // The process that deleted the user refuses the token at once.
    let (status, _) = call(&p.this, &p.keys, UserClaim::Sub, &t, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The other refuses it within 5 seconds (the TTL bounds it).
    until_status(&p.other, &p.keys, &t, &token, StatusCode::UNAUTHORIZED).await;
}

async fn demoted_user_acts_with_the_lesser_role(p: Processes) {
    let (t, admin, owner_token) = admin_of_new_tenant(&p, TokenRole::Owner).await;
    // A token cannot lift a user above their role.
    let (_, principal) = call(&p.other, &p.keys, UserClaim::Sub, &t, &owner_token).await;
    assert_eq!(principal["subject"]["role"], "admin");

    let mut tx = p.this.begin(&t).await.unwrap();
    tx.update_user(
        admin.id,
        &UserPatch {
            email: None,
            role: Some(Role::Member),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let (_, principal) = call(&p.this, &p.keys, UserClaim::Sub, &t, &owner_token).await;
    assert_eq!(principal["subject"]["role"], "member", "at once here");
    let start = Instant::now();
    loop {
        let (_, principal) = call(&p.other, &p.keys, UserClaim::Sub, &t, &owner_token).await;
        if principal["subject"]["role"] == "member" {
            break;
        }
        assert_eq!(principal["subject"]["role"], "admin");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "demotion unseen after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn token_naming_no_user_of_the_tenant_is_401(p: Processes) {
    let (a, b) = (tenant(&p.this).await, tenant(&p.this).await);
    let b_user = user(&p.this, &b, Role::Owner).await;
    for sub in [
        "cli".to_owned(),
        tenantkit::UserId::new().to_string(),
        // A user of another tenant is no user of this one.
        b_user.id.to_string(),
    ] {
        let token = p
            .keys
            .issue(&sub, Some(a.id()), TokenRole::Owner, 60)
            .unwrap();
        let (status, body) = call(&p.this, &p.keys, UserClaim::Sub, &a, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "sub {sub}");
        assert_eq!(body["status"], 401);
    }
    // The refusal is in the tenant's audit trail, with the claimed subject
    // (counted in memory, written within a second, or at once by a flush).
    p.this.flush_refusals().await;
    let entries = p
        .this
        .begin(&a)
        .await
        .unwrap()
        .list_audit_logs(&tenantkit::audit::AuditFilter {
            action: Some("auth.failed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(entries.len(), 3);
    assert!(entries.iter().any(|e| e.actor_id.as_deref() == Some("cli")));
}

async fn suspension_reaches_already_authenticated_clients(p: Processes) {
    let t = tenant(&p.this).await;
    let owner = user(&p.this, &t, Role::Owner).await;
    let token = p
        .keys
        .issue(&owner.id.to_string(), Some(t.id()), TokenRole::Owner, 60)
        .unwrap();
    for db in [&p.this, &p.other] {
        assert_eq!(
            call(db, &p.keys, UserClaim::Sub, &t, &token).await.0,
            StatusCode::OK
        );
    }
    p.this
        .platform()
        .set_tenant_status(t.id(), TenantStatus::Suspended, &Actor::System)
        .await
        .unwrap();
    assert_eq!(
        call(&p.this, &p.keys, UserClaim::Sub, &t, &token).await.0,
        StatusCode::FORBIDDEN
    );
    until_status(&p.other, &p.keys, &t, &token, StatusCode::FORBIDDEN).await;
    p.this
        .platform()
        .set_tenant_status(t.id(), TenantStatus::Active, &Actor::System)
        .await
        .unwrap();
    until_status(&p.other, &p.keys, &t, &token, StatusCode::OK).await;
}

async fn not_before_is_honoured_with_the_leeway(p: Processes) {
    let t = tenant(&p.this).await;
    let owner = user(&p.this, &t, Role::Owner).await;
    let now = jsonwebtoken::get_current_timestamp();
    let token = |nbf: u64| {
        p.keys
            .sign(&Claims {
                sub: owner.id.to_string(),
                tenant: Some(t.id()),
                role: TokenRole::Owner,
                exp: now + 600,
                iat: now,
                nbf: Some(nbf),
                email: None,
            })
            .unwrap()
    };
    let (status, body) = call(&p.this, &p.keys, UserClaim::Sub, &t, &token(now + 120)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "the token is not valid yet");
    // Within the 30 s leeway (clock skew), as for `exp`.
    assert_eq!(
        call(&p.this, &p.keys, UserClaim::Sub, &t, &token(now + 10))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&p.this, &p.keys, UserClaim::Sub, &t, &token(now - 10))
            .await
            .0,
        StatusCode::OK
    );
}

async fn external_tokens_map_to_users_by_email(p: Processes) {
    let t = tenant(&p.this).await;
    let owner = user(&p.this, &t, Role::Owner).await;
    let now = jsonwebtoken::get_current_timestamp();
    let token = |email: Option<&str>| {
        p.keys
            .sign(&Claims {
                sub: "idp|12345".into(),
                tenant: Some(t.id()),
                role: TokenRole::Admin,
                exp: now + 600,
                iat: now,
                nbf: None,
                email: email.map(str::to_owned),
            })
            .unwrap()
    };
    let (status, principal) = call(
        &p.this,
        &p.keys,
        UserClaim::Email,
        &t,
        &token(Some(&owner.email.to_uppercase())),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The principal is the user, whatever the issuer calls them.
    assert_eq!(principal["subject"]["id"], owner.id.to_string());
    assert_eq!(principal["subject"]["role"], "admin");
    for bad in [None, Some("nobody@test.example")] {
        let (status, _) = call(&p.this, &p.keys, UserClaim::Email, &t, &token(bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    // With `sub` mapping the same token names no user.
    let (status, _) = call(
        &p.this,
        &p.keys,
        UserClaim::Sub,
        &t,
        &token(Some(&owner.email)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The other process, listening from here on (every change committed later
/// is heard): with a TTL far above 5 s on PostgreSQL, so that only the
/// announcement can make it see a change in time; on SQLite (one process by
/// design, nothing announced) with a TTL of 0.5 s, the bound there.
async fn listening_other(p: &Processes) -> (Db, tokio::task::JoinHandle<tenantkit::Result<()>>) {
    let ttl = if p.this.backend() == tenantkit::Backend::Postgres {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(500)
    };
    let other = p.other.clone().with_access_ttl(ttl);
    let watcher = tokio::spawn(other.listen_for_access_changes().await.unwrap().run());
    (other, watcher)
}

/// With a TTL far above 5 s, only an announcement can make the other process
/// see the change in time: PostgreSQL's `LISTEN/NOTIFY`. On SQLite (one
/// process by design) the TTL is the bound, so this checks the TTL instead.
async fn other_processes_hear_of_changes_before_the_ttl(p: Processes) {
    let (other, watcher) = listening_other(&p).await;
    let (t, admin, token) = admin_of_new_tenant(&p, TokenRole::Admin).await;
    assert_eq!(
        call(&other, &p.keys, UserClaim::Sub, &t, &token).await.0,
        StatusCode::OK
    );
    delete(&p.this, &t, admin.id).await;
    let took = until_status(&other, &p.keys, &t, &token, StatusCode::UNAUTHORIZED).await;
    assert!(took < Duration::from_secs(5));
    watcher.abort();
}

/// API keys are read from the access cache too (the row; the secret is
/// checked on every request): a revocation is seen at once where it was
/// made, and on PostgreSQL by the announcement elsewhere, whatever the TTL.
async fn a_revoked_api_key_is_refused_at_once_here_and_by_announcement_elsewhere(p: Processes) {
    let (other, watcher) = listening_other(&p).await;
    let t = tenant(&p.this).await;
    let mut tx = p.this.begin(&t).await.unwrap();
    let created = tx
        .create_api_key(&NewApiKey {
            name: "ci".into(),
            scopes: vec![Scope::UsersRead],
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Both processes have its row cached; a wrong secret under the same
    // prefix is refused all the same.
    let wrong = format!("{}x", created.key);
    for db in [&p.this, &other] {
        for _ in 0..2 {
            let (status, _) = call(db, &p.keys, UserClaim::Sub, &t, &created.key).await;
            assert_eq!(status, StatusCode::OK);
            let (status, _) = call(db, &p.keys, UserClaim::Sub, &t, &wrong).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    let mut tx = p.this.begin(&t).await.unwrap();
    tx.revoke_api_key(created.api_key.id).await.unwrap();
    tx.commit().await.unwrap();
    let (status, _) = call(&p.this, &p.keys, UserClaim::Sub, &t, &created.key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "at once where revoked");
    let took = until_status(&other, &p.keys, &t, &created.key, StatusCode::UNAUTHORIZED).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    watcher.abort();
}
