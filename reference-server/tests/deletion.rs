//! A tenant deletion on PostgreSQL (the production backend, served as the
//! runtime role) killed with SIGKILL part-way, by the real binary: the next
//! run finishes it, and every row was counted exactly once.

mod common;

use tenantkit::{NewTenant, NewUser, Role, audit::Actor, testing};
use tenantkit_server::config::Config;

const SECRET: &str = "deletion-secret-deletion-secret-!!!";
const KEY: &str = "dGVuYW50a2l0LWRlbGV0aW9uLXRlc3Qta2V5LTMyYnk=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_killed_mid_way_on_postgres_finishes_when_run_again() {
    let Some((name, owner_url)) = common::create_database("tkdel").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.database.url = Some(owner_url.clone());
    config.auth.jwt_secret = Some(SECRET.to_owned().into());
    config.webhooks.secret_keys = vec![KEY.to_owned().into()];
    tenantkit_server::migrate(&config).await.unwrap();
    let config_file = dir.path().join("tenantkit.toml");
    std::fs::write(
        &config_file,
        format!(
            "[database]\nurl = \"{owner_url}\"\n\n[auth]\njwt_secret = \"{SECRET}\"\n\n\
             [webhooks]\nsecret_keys = [\"{KEY}\"]\n"
        ),
    )
    .unwrap();

    let db = tenantkit_server::open_runtime_db(&config).await.unwrap();
    let new = NewTenant {
        name: "Acme".into(),
        subdomain: "acme".into(),
    };
    let (tenant, _) =
        tenantkit_server::create_tenant(&db, &new, Some("ann@acme.test".into()), &Actor::System)
            .await
            .unwrap();
    let ctx = db.resolve_id(tenant.id).await.unwrap().unwrap();
    let mut tx = db.begin(&ctx).await.unwrap();
    for i in 0..500 {
        tx.create_user(&NewUser {
            email: format!("u{i}@acme.test"),
            role: Role::Member,
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // Events straight in as the owner (partitions too: deleted through their parent).
    let admin = sqlx::PgPool::connect(&testing::with_database(&testing::admin_url(), &name))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (tenant_id, occurred_at, id, event_type, received_at) \
         SELECT $1, now() - (g % 3600) * interval '1 second', gen_random_uuid(), 'page_view', now() \
         FROM generate_series(1, 2000) g",
    )
    .bind(tenant.id.as_uuid())
    .execute(&admin)
    .await
    .unwrap();
    let before = common::rows_of(&db, &ctx).await;
    assert!(before > 3000, "{before}");

    let args = [
        "tenant",
        "delete",
        "--tenant",
        "acme",
        "--confirm",
        "acme",
        "--batch-size",
        "1",
    ];
    let child = common::tenantkit_server(&config_file, dir.path(), &args);
    common::kill_part_way(child, &db, &ctx, before).await;

    let out = common::tenantkit_server_command(
        &config_file,
        dir.path(),
        &["tenant", "delete", "--tenant", "acme", "--confirm", "acme"],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = done["rows_removed"].as_object().unwrap();
    let total: i64 = rows
        .iter()
        .filter(|(t, _)| *t != "tenants")
        .map(|(_, n)| n.as_i64().unwrap())
        .sum();
    assert_eq!(total, before + 1, "{done}");
    assert_eq!(rows["users"], 501);
    assert_eq!(rows["events"], 2000);
    assert_eq!(common::rows_of(&db, &ctx).await, 0);
    // As the owner, past row-level security: not one event row left.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
        .bind(tenant.id.as_uuid())
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(db.resolve_subdomain("acme").await.unwrap().is_none());
    admin.close().await;
    db.close().await;
    common::drop_database(&name).await;
}
