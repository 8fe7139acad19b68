//! The worker's one cross-tenant step, on PostgreSQL: the due-tenant
//! function returns tenant ids and times and nothing else; the runtime role
//! reads no payload, URL or secret through it (or around it); and it works
//! when the migration role is an ordinary role under forced row-level
//! security, not a superuser.

use serde_json::json;
use sqlx::{Column, Executor, Row};
use tenantkit::{Db, TenantContext, testing};
use tenantkit_webhooks::{NewWebhook, Webhooks, queue::DUE};

use crate::common::{local_webhooks, tenant};

async fn with_work(db: &Db, w: &Webhooks) -> TenantContext {
    let t = tenant(db).await;
    let mut tx = db.begin(&t).await.unwrap();
    w.create(
        &mut tx,
        &NewWebhook {
            url: "http://127.0.0.1:9/secret-path".into(),
            event_types: vec!["*".into()],
            description: Some("do not leak".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.publish(
        &mut tx,
        "user.created",
        json!({ "email": "private@acme.test" }),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    t
}

#[tokio::test]
async fn the_due_function_returns_tenant_ids_and_times_only() {
    let Some(database) = crate::common::postgres_database().await else {
        return;
    };
    let db = testing::runtime_db(&database, 2).await;
    let w = local_webhooks();
    let t = with_work(&db, &w).await;
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    let due = db
        .tenants_with_due_work(&DUE, later, 10_000, &[])
        .await
        .unwrap();
    assert!(due.iter().any(|d| d.tenant_id == t.id()));

    let runtime = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    let row = sqlx::query(
        "SELECT * FROM tenantkit_webhooks_due_tenants(now() + interval '1 minute', 1, '')",
    )
    .fetch_one(&runtime)
    .await
    .unwrap();
    let columns: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(columns, ["tenant_id", "due_at"]);
    let row = sqlx::query(
        "SELECT * FROM tenantkit_webhooks_expired_tenants(now() + interval '1 minute', 1, '')",
    )
    .fetch_one(&runtime)
    .await
    .unwrap();
    let columns: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    assert_eq!(columns, ["tenant_id", "due_at"]);
    let rows = sqlx::query(
        "SELECT * FROM tenantkit_webhooks_expired_key_tenants(now() + interval '1 minute', 1, '')",
    )
    .fetch_all(&runtime)
    .await
    .unwrap();
    for row in rows {
        let columns: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
        assert_eq!(columns, ["tenant_id", "due_at"]);
    }
    // The skip list is honoured.
    let skipped: Vec<(uuid::Uuid,)> = sqlx::query_as(
        "SELECT tenant_id FROM tenantkit_webhooks_due_tenants(now() + interval '1 minute', 100000, $1)",
    )
    .bind(t.id().to_string())
    .fetch_all(&runtime)
    .await
    .unwrap();
    assert!(
        !skipped
            .iter()
            .any(|(id,)| id.to_string() == t.id().to_string())
    );
}

#[tokio::test]
async fn the_runtime_role_reads_nothing_through_the_scan_flag_or_around_the_function() {
    let Some(database) = crate::common::postgres_database().await else {
        return;
    };
    let db = testing::runtime_db(&database, 2).await;
    let w = local_webhooks();
    let t = with_work(&db, &w).await;
    // An idempotency key too, for the key finder's policy.
    let mut tx = db.begin(&t).await.unwrap();
    let keyed = tenantkit_webhooks::outbox::NewMessage {
        event_type: "user.created".into(),
        data: serde_json::Map::new(),
        id: Some("scan".into()),
        ..Default::default()
    };
    w.publish_messages(&mut tx, &[keyed], Some("scan"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let runtime = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    let mut conn = runtime.acquire().await.unwrap();
    // Setting the function's flag does not open the policy to the runtime role.
    conn.execute("SET tenantkit.webhooks_due_scan = 'on'")
        .await
        .unwrap();
    for table in [
        "webhook_queue",
        "webhook_messages",
        "webhooks",
        "webhook_deliveries",
        "webhook_health",
        "webhook_rate_windows",
        "webhook_idempotency",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table} is readable without a tenant");
    }
    // Nor can it widen the function or the policy.
    for attack in [
        "CREATE OR REPLACE FUNCTION tenantkit_webhooks_due_tenants(p_now timestamptz, p_limit bigint, p_skip text) \
         RETURNS TABLE (tenant_id uuid, due_at timestamptz) LANGUAGE sql AS $$ SELECT NULL::uuid, now() $$",
        "ALTER POLICY webhooks_due_scan ON webhook_queue TO PUBLIC",
        "DROP POLICY tenant_isolation ON webhook_messages",
        "ALTER TABLE webhook_messages DISABLE ROW LEVEL SECURITY",
    ] {
        let refused = conn.execute(sqlx::AssertSqlSafe(attack)).await;
        assert!(refused.is_err(), "the runtime role could: {attack}");
    }
}

#[tokio::test]
async fn an_ordinary_owner_role_finds_due_tenants_under_forced_row_level_security() {
    let Ok(admin) = sqlx::PgPool::connect(&testing::admin_url()).await else {
        assert!(!testing::postgres_required(), "PostgreSQL is required");
        return;
    };
    for sql in [
        "DO $$ BEGIN CREATE ROLE tkwh_owner LOGIN NOSUPERUSER NOBYPASSRLS CREATEROLE; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        "ALTER ROLE tkwh_owner NOSUPERUSER NOBYPASSRLS CREATEROLE",
    ] {
        admin.execute(sql).await.unwrap();
    }
    // Databases of earlier runs first.
    let old: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'tkwh\\_own\\_%'")
            .fetch_all(&admin)
            .await
            .unwrap();
    for (old,) in old {
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {old} WITH (FORCE)"
            )))
            .await;
    }
    let name = format!(
        "tkwh_own_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name} OWNER tkwh_owner"
        )))
        .await
        .unwrap();
    let admin_db_url = testing::with_database(&testing::admin_url(), &name);
    let (scheme, rest) = admin_db_url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let owner_url = format!("{scheme}://tkwh_owner@{host}");

    let owner = Db::connect_with(&owner_url, 2).await.unwrap();
    owner.migrate().await.unwrap();
    Webhooks::migrate(&owner).await.unwrap();
    let role =
        tenantkit::store::RuntimeRole::new(tenantkit::store::RuntimeRole::DEFAULT_NAME).unwrap();
    owner.setup_runtime_role(&role).await.unwrap();
    let runtime = Db::connect_with(&role.connection_url(&owner_url).unwrap(), 2)
        .await
        .unwrap();
    let w = local_webhooks();
    let t = with_work(&runtime, &w).await;

    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    let due = runtime
        .tenants_with_due_work(&DUE, later, 100, &[])
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|d| d.tenant_id).collect::<Vec<_>>(),
        vec![t.id()]
    );
    // The owner itself sees no queue row outside the function: the policy
    // opens only while the function runs.
    let pool = sqlx::PgPool::connect(&owner_url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_queue")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let superuser: bool = sqlx::query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert!(!superuser);
    pool.close().await;
    owner.close().await;
    runtime.close().await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_webhooks_table_is_tenant_owned_and_isolated() {
    let Some(database) = crate::common::postgres_database().await else {
        return;
    };
    let (tables, problems) = testing::schema_problems(&database.owner_url).await;
    for table in [
        "webhooks",
        "webhook_messages",
        "webhook_queue",
        "webhook_deliveries",
        "webhook_health",
        "webhook_rate_windows",
        "webhook_idempotency",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} is not in {tables:?}"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
