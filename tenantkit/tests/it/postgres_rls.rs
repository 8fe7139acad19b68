//! PostgreSQL isolation enforced by the database itself, as the runtime role:
//! these tests bypass the store and send raw SQL, so only row-level security
//! stands between tenants.

use sqlx::{Executor, PgPool};
use tenantkit::{Db, NewApiKey, NewUser, Role, TenantContext};

use crate::common::{postgres_owner_url, postgres_runtime_url, postgres_with, tenant};

/// A tenant with one row in every core tenant-owned table.
async fn seeded_tenant(db: &Db) -> TenantContext {
    let t = tenant(db).await;
    let mut tx = db.begin(&t).await.unwrap();
    tx.create_user(&NewUser {
        email: "seed@t.test".into(),
        role: Role::Owner,
    })
    .await
    .unwrap();
    tx.create_api_key(&NewApiKey {
        name: "seed".into(),
        scopes: vec![],
    })
    .await
    .unwrap();
    let sso: tenantkit::SsoSettings = serde_json::from_value(serde_json::json!({
        "issuer": format!("https://login-{}.example/", t.id()),
        "audience": "api",
    }))
    .unwrap();
    tx.put_sso(&sso).await.unwrap();
    tx.commit().await.unwrap();
    t
}

/// Every table with a `tenant_id` column, read from the catalog.
async fn tenant_owned_tables(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
         AND obj_description(c.oid, 'pg_class') IS DISTINCT FROM 'tenantkit:platform' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn runtime_pool() -> Option<(Db, PgPool)> {
    let url = postgres_runtime_url().await?;
    let db = postgres_with(2).await?;
    // One connection, so temp tables and session state are shared across transactions.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    Some((db, pool))
}

async fn begin_as(
    pool: &PgPool,
    tenant: &TenantContext,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('tenantkit.tenant_id', $1, true)")
        .bind(tenant.id().to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

#[tokio::test]
async fn tenant_a_cannot_touch_tenant_b_in_any_table() {
    let Some((db, pool)) = runtime_pool().await else {
        return;
    };
    let (a, b) = (seeded_tenant(&db).await, seeded_tenant(&db).await);
    let tables = tenant_owned_tables(&pool).await;
    assert!(tables.len() >= 2, "found {tables:?}");
    let b_id = b.id().as_uuid();

    for table in &tables {
        // Copy B's rows aside while acting as B (RLS shows them to B only).
        let mut tx = begin_as(&pool, &b).await;
        tx.execute(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS pg_temp.stolen; CREATE TEMP TABLE stolen AS SELECT * FROM {table}"
        )))
        .await
        .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_temp.stolen")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(n >= 1, "{table}: B sees its own rows");
        tx.commit().await.unwrap();

        let mut tx = begin_as(&pool, &a).await;
        let seen: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"
        )))
        .bind(b_id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(seen, 0, "{table}: A selects none of B's rows");
        let all: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE tenant_id <> $1"
        )))
        .bind(a.id().as_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(all, 0, "{table}: A sees no other tenant at all");
        tx.commit().await.unwrap();
        // Updating or deleting B's rows touches none of them: RLS hides them,
        // or (append-only audit tables) the runtime role may not even try.
        for statement in [
            format!("UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = $1"),
            format!("DELETE FROM {table} WHERE tenant_id = $1"),
        ] {
            let mut tx = begin_as(&pool, &a).await;
            let outcome = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                .bind(b_id)
                .execute(&mut *tx)
                .await;
            match outcome {
                Ok(done) => assert_eq!(done.rows_affected(), 0, "{statement}"),
                Err(e) => assert_eq!(
                    e.as_database_error().and_then(|d| d.code()).as_deref(),
                    Some("42501"),
                    "{statement}: {e}"
                ),
            }
            tx.commit().await.ok();
        }

        // Inserting B's rows while acting as A is refused by WITH CHECK.
        let mut tx = begin_as(&pool, &a).await;
        let insert = tx
            .execute(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} SELECT * FROM pg_temp.stolen"
            )))
            .await;
        let err = insert.expect_err("inserting another tenant's row must fail");
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{table}: {err}"
        );
        drop(tx);

        // Moving A's own rows to B is refused too.
        let mut tx = begin_as(&pool, &a).await;
        let moved = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET tenant_id = $1"
        )))
        .bind(b_id)
        .execute(&mut *tx)
        .await;
        assert!(moved.is_err(), "{table}: A cannot hand its rows to B");
        drop(tx);

        // And B still has everything.
        let mut tx = begin_as(&pool, &b).await;
        let still: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(still, n, "{table}: B's rows intact");
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn without_a_tenant_nothing_is_visible_and_inserts_fail() {
    let Some((db, pool)) = runtime_pool().await else {
        return;
    };
    let t = seeded_tenant(&db).await;
    for table in tenant_owned_tables(&pool).await {
        let mut tx = begin_as(&pool, &t).await;
        tx.execute(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS pg_temp.mine; CREATE TEMP TABLE mine AS SELECT * FROM {table}"
        )))
        .await
        .unwrap();
        tx.commit().await.unwrap();

        // A plain transaction (and a plain statement) with no tenant set.
        let mut tx = pool.begin().await.unwrap();
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(n, 0, "{table}: no tenant, no rows");
        let err = tx
            .execute(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} SELECT * FROM pg_temp.mine"
            )))
            .await
            .unwrap_err();
        assert_eq!(
            err.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{table}: {err}"
        );
    }
}

#[tokio::test]
async fn tenant_setting_never_outlives_its_transaction() {
    let Some((db, pool)) = runtime_pool().await else {
        return;
    };
    let t = seeded_tenant(&db).await;
    let mut tx = begin_as(&pool, &t).await;
    let inside: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(inside >= 1);
    tx.commit().await.unwrap();
    // Same (only) connection of the pool, after the transaction.
    let setting: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('tenantkit.tenant_id', true), '')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(setting, None);
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after, 0);

    // The store's own transactions leave nothing behind either.
    let store = Db::from(pool.clone());
    let mut tx = store.begin(&t).await.unwrap();
    assert!(tx.count_users().await.unwrap() >= 1);
    tx.commit().await.unwrap();
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(after, 0);
}

#[tokio::test]
async fn every_tenant_owned_table_leads_keys_with_tenant_id_and_forces_rls() {
    let Some(owner_url) = postgres_owner_url().await else {
        return;
    };
    let (tables, problems) = tenantkit::testing::schema_problems(&owner_url).await;
    assert!(tables.contains(&"users".to_owned()) && tables.contains(&"api_keys".to_owned()));
    assert!(
        problems.is_empty(),
        "schema invariants broken:\n{}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn runtime_role_cannot_bypass_rls_and_owner_is_refused() {
    let Some(owner_url) = postgres_owner_url().await else {
        return;
    };
    let runtime = postgres_with(1).await.unwrap();
    runtime
        .ensure_cannot_bypass_isolation()
        .await
        .expect("runtime role is safe");
    let (is_super, bypass): (bool, bool) = {
        let url = postgres_runtime_url().await.unwrap();
        let pool = PgPool::connect(&url).await.unwrap();
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert!(!is_super && !bypass);

    let owner = Db::connect_with(&owner_url, 1).await.unwrap();
    let err = owner.ensure_cannot_bypass_isolation().await.unwrap_err();
    assert!(matches!(err, tenantkit::Error::Misconfigured(_)), "{err}");
}

/// The SQLSTATE of a statement run on `pool` as the runtime role with no
/// tenant set (`None` when it succeeded).
async fn sqlstate_of(pool: &PgPool, sql: &str) -> Option<String> {
    match pool.execute(sqlx::AssertSqlSafe(sql.to_owned())).await {
        Ok(_) => None,
        Err(e) => Some(
            e.as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned())
                .unwrap_or_else(|| e.to_string()),
        ),
    }
}

#[tokio::test]
async fn runtime_role_reaches_platform_tables_only_through_narrow_functions() {
    let Some((db, pool)) = runtime_pool().await else {
        return;
    };
    let (a, b) = (tenant(&db).await, tenant(&db).await);
    db.platform()
        .link_external_id(
            "stripe_customer",
            &format!("cus_{}", b.id().as_uuid().simple()),
            b.id(),
        )
        .await
        .unwrap();
    let b_customer = format!("cus_{}", b.id().as_uuid().simple());

    // Each of these worked before; now each is refused (42501).
    for sql in [
        "SELECT * FROM tenant_external_ids".to_owned(),
        format!("UPDATE tenant_external_ids SET tenant_id = '{}'", a.id()),
        "DELETE FROM tenant_external_ids".to_owned(),
        format!(
            "INSERT INTO tenant_external_ids (provider, external_id, tenant_id) VALUES ('x', 'y', '{}')",
            a.id()
        ),
        format!(
            "UPDATE tenants SET status = 'suspended' WHERE id = '{}'",
            b.id()
        ),
        format!("DELETE FROM tenants WHERE id = '{}'", b.id()),
        "TRUNCATE tenants CASCADE".to_owned(),
        // The tombstones of every deleted tenant: by id only, through
        // tenantkit_tenant_deletion (or the unfinished ones).
        "SELECT name, subdomain FROM tenant_deletions".to_owned(),
        // What configuration keeps is the owner's.
        "SELECT * FROM tenantkit_settings".to_owned(),
        // Migration helpers are not the runtime's.
        "SELECT tenantkit_isolate('users')".to_owned(),
        // A tenant's own mapping only, and only with that tenant set.
        format!(
            "SELECT * FROM tenantkit_linked_external_ids('{}', 'stripe_customer')",
            b.id()
        ),
    ] {
        assert_eq!(
            sqlstate_of(&pool, &sql).await.as_deref(),
            Some("42501"),
            "{sql}"
        );
    }
    // The mapping cannot be re-homed through the function either.
    let owner: uuid::Uuid =
        sqlx::query_scalar("SELECT tenantkit_link_external_id('stripe_customer', $1, $2)")
            .bind(&b_customer)
            .bind(a.id().as_uuid())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(owner, b.id().as_uuid(), "linking never re-homes");
    assert!(matches!(
        db.platform()
            .link_external_id("stripe_customer", &b_customer, a.id())
            .await,
        Err(tenantkit::Error::Conflict(_))
    ));
    // What the server needs still works: one lookup, one status change.
    let found = db
        .resolve_external_id("stripe_customer", &b_customer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id(), b.id());
    let mut tx = db.begin(&b).await.unwrap();
    assert_eq!(
        tx.linked_external_ids("stripe_customer").await.unwrap(),
        vec![b_customer.clone()]
    );
    drop(tx);
    let mut tx = db.begin(&a).await.unwrap();
    assert!(
        tx.linked_external_ids("stripe_customer")
            .await
            .unwrap()
            .is_empty()
    );
    drop(tx);
    let suspended = db
        .platform()
        .set_tenant_status(
            b.id(),
            tenantkit::TenantStatus::Suspended,
            &tenantkit::audit::Actor::System,
        )
        .await
        .unwrap();
    assert_eq!(suspended.status, tenantkit::TenantStatus::Suspended);
    assert!(matches!(
        db.platform()
            .set_tenant_status(
                tenantkit::TenantId::new(),
                tenantkit::TenantStatus::Suspended,
                &tenantkit::audit::Actor::System
            )
            .await,
        Err(tenantkit::Error::NotFound(_))
    ));
}

/// A value PostgreSQL refuses (a data exception, class 22) is caused by the
/// input: `Invalid` (a 4xx), never a retryable or internal error.
#[tokio::test]
async fn a_value_postgres_refuses_is_invalid_input() {
    let Some((db, _pool)) = runtime_pool().await else {
        return;
    };
    let t = seeded_tenant(&db).await;
    let mut tx = db.begin_snapshot(&t).await.unwrap();
    let q = tx
        .query("SELECT COUNT(*) AS n FROM users WHERE tenant_id = $1 AND id::text = $2 AND 1 = $3::int")
        .bind("x")
        .bind("not a number");
    let refused = tx.fetch_one::<(i64,)>(q).await.unwrap_err();
    assert!(
        matches!(&refused, tenantkit::Error::Invalid(m) if m.contains("cannot be stored")),
        "{refused:?}"
    );
    assert!(!refused.is_contention());
}

/// The audit retention floor lives in the database: as the runtime role,
/// `tenantkit_audit_purge` used to remove any of the current tenant's
/// entries a day old, whatever `audit.retention_days` said. Now the floor
/// the owner wrote holds; without one nothing is purged.
#[tokio::test]
async fn the_runtime_role_cannot_purge_what_the_audit_floor_keeps() {
    let Some(database) = tenantkit::testing::postgres_database_with(
        "tenantkit_test_audit_floor",
        &[tenantkit::store::core_migrations()],
        |db| Box::pin(db.migrate()),
    )
    .await
    else {
        return;
    };
    let owner = Db::connect_with(&database.owner_url, 1).await.unwrap();
    let db = tenantkit::testing::runtime_db(&database, 2).await;
    let t = seeded_tenant(&db).await;
    let purge = |days: i64| {
        let (db, t) = (db.clone(), t.clone());
        async move {
            let mut tx = db.begin(&t).await.unwrap();
            tx.purge_audit_logs(chrono::Utc::now() - chrono::Duration::days(days))
                .await
        }
    };

    owner.set_audit_retention_floor(30).await.unwrap();
    for days in [2, 10, 29] {
        let refused = purge(days).await.unwrap_err();
        assert!(
            matches!(&refused, tenantkit::Error::Invalid(m) if m.contains("keeps 30 days")),
            "{days} days: {refused:?}"
        );
    }
    assert_eq!(purge(31).await.unwrap(), 0, "older than the floor may go");

    // Without a floor, nothing goes.
    sqlx::query("DELETE FROM tenantkit_settings WHERE name = $1")
        .bind(tenantkit::store::AUDIT_RETENTION_SETTING)
        .execute(&sqlx::PgPool::connect(&database.owner_url).await.unwrap())
        .await
        .unwrap();
    let refused = purge(400).await.unwrap_err();
    assert!(
        matches!(&refused, tenantkit::Error::Invalid(m) if m.contains("no audit retention floor")),
        "{refused:?}"
    );

    // The checks cannot be stepped around: the unchecked body is the owner's.
    let runtime = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    let code = sqlstate_of(
        &runtime,
        &format!(
            "SELECT * FROM tenantkit_audit_purge_unchecked('{}', now() - interval '2 days')",
            t.id()
        ),
    )
    .await;
    assert_eq!(code.as_deref(), Some("42501"), "permission denied");
    owner.set_audit_retention_floor(1).await.unwrap();
    owner.close().await;
}

/// `setup_runtime_role` sends PostgreSQL a SCRAM verifier, never the
/// password: the stored verifier is the one PostgreSQL itself makes from
/// that password and salt (checked here against a role PostgreSQL hashed).
#[tokio::test]
async fn the_runtime_password_reaches_postgres_only_as_a_scram_verifier() {
    let Some(owner_url) = postgres_owner_url().await else {
        return;
    };
    let admin = PgPool::connect(&tenantkit::testing::admin_url())
        .await
        .unwrap();
    let stored = |role: &'static str| {
        let admin = admin.clone();
        async move {
            let (verifier,): (String,) =
                sqlx::query_as("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
                    .bind(role)
                    .fetch_one(&admin)
                    .await
                    .unwrap();
            verifier
        }
    };
    let salt_of = |verifier: &str| {
        use base64::Engine;
        let salt = verifier.split(['$', ':']).nth(2).unwrap();
        base64::engine::general_purpose::STANDARD
            .decode(salt)
            .unwrap()
    };
    let password = "correct horse\u{a0}battery ü'$";

    // PostgreSQL's own verifier for this password: ours from its salt matches.
    admin
        .execute("DROP ROLE IF EXISTS tenantkit_scram_reference")
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE tenantkit_scram_reference PASSWORD '{}'",
            password.replace('\'', "''")
        )))
        .await
        .unwrap();
    let theirs = stored("tenantkit_scram_reference").await;
    assert_eq!(
        tenantkit::store::scram_sha256_verifier(password, &salt_of(&theirs), 4096),
        theirs
    );
    admin
        .execute("DROP ROLE tenantkit_scram_reference")
        .await
        .unwrap();

    // What setup_runtime_role sets is such a verifier, not a hashed literal.
    let owner = Db::connect_with(&owner_url, 1).await.unwrap();
    let role = tenantkit::store::RuntimeRole::new("tenantkit_scram_probe")
        .unwrap()
        .with_password(password);
    owner.setup_runtime_role(&role).await.unwrap();
    let ours = stored("tenantkit_scram_probe").await;
    assert!(ours.starts_with("SCRAM-SHA-256$4096:"), "{ours}");
    assert_eq!(
        tenantkit::store::scram_sha256_verifier(password, &salt_of(&ours), 4096),
        ours
    );
    owner.close().await;
}
