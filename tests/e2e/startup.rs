//! Starting the server: refusing unsafe database roles, serving TLS.

use std::time::Duration;

use tenantkit_e2e::{Backend, SECRET, Server, WEBHOOK_KEY, postgres_url};
use tenantkit_server::config::Config;

fn config(url: &str, runtime_url: Option<String>) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.database.url = Some(url.to_owned());
    c.database.runtime_url = runtime_url.map(Into::into);
    c.auth.jwt_secret = Some(SECRET.to_owned().into());
    c.webhooks.secret_keys = vec![WEBHOOK_KEY.to_owned().into()];
    c
}

#[tokio::test]
async fn postgres_server_refuses_to_serve_as_a_superuser() {
    let Some(owner_url) = postgres_url().await else {
        return;
    };
    // The owner URL connects as `postgres`, a superuser.
    let err = tenantkit_server::start(config(&owner_url, Some(owner_url.clone())))
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("can bypass row-level security"),
        "{message}"
    );
}

#[tokio::test]
async fn postgres_server_refuses_to_serve_as_a_table_owner() {
    let Some(owner_url) = postgres_url().await else {
        return;
    };
    // A non-superuser role that owns one table in the schema.
    let pool = sqlx::PgPool::connect(&owner_url).await.unwrap();
    for sql in [
        "DO $$ BEGIN CREATE ROLE tenantkit_e2e_owner LOGIN NOSUPERUSER NOBYPASSRLS; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
        "CREATE TABLE IF NOT EXISTS e2e_owned_probe (id int)",
        "ALTER TABLE e2e_owned_probe OWNER TO tenantkit_e2e_owner",
        "GRANT USAGE ON SCHEMA public TO tenantkit_e2e_owner",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let (prefix, rest) = owner_url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let as_owner = format!("{prefix}://tenantkit_e2e_owner@{host}");
    let err = tenantkit_server::start(config(&owner_url, Some(as_owner)))
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("owns") && message.contains("e2e_owned_probe"),
        "{message}"
    );
    sqlx::query("DROP TABLE e2e_owned_probe")
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_server_without_a_jwt_secret_refuses_to_start() {
    let Some(owner_url) = postgres_url().await else {
        return;
    };
    let mut c = config(&owner_url, None);
    c.auth.jwt_secret = None;
    let err = tenantkit_server::start(c).await.unwrap_err();
    assert!(format!("{err:#}").contains("jwt_secret"), "{err:#}");
}

#[tokio::test]
async fn postgres_server_without_webhook_keys_refuses_to_start() {
    let Some(owner_url) = postgres_url().await else {
        return;
    };
    let mut c = config(&owner_url, None);
    c.webhooks.secret_keys = Vec::new();
    let err = tenantkit_server::start(c.clone()).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("webhooks.secret_keys"),
        "{err:#}"
    );
    c.webhooks.secret_keys = vec!["c2hvcnQ=".to_owned().into()];
    let err = tenantkit_server::start(c).await.unwrap_err();
    assert!(format!("{err:#}").contains("32 bytes"), "{err:#}");
}

/// After `tenantkit-server migrate`, every crate's tenant-owned tables keep
/// the isolation invariants (read from the catalog, no list kept by hand).
#[tokio::test]
async fn every_crates_tables_are_isolated_after_migrate() {
    let Some(owner_url) = postgres_url().await else {
        return;
    };
    let (tables, problems) = tenantkit::testing::schema_problems(&owner_url).await;
    for table in [
        "users",
        "audit_logs",
        "subscriptions",
        "webhooks",
        "webhook_queue",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} is not in {tables:?}"
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `docs/citus.sql` distributes exactly the tenant-owned tables of the
/// schema `migrate` builds (from the catalog: every table with `tenant_id`
/// that is not a partition or a platform table), all co-located, and makes
/// every other table (the platform's) but the migration histories a
/// reference table; and every unique
/// constraint and foreign key of a tenant-owned table includes `tenant_id`,
/// which Citus needs. So the scaling guide cannot go stale.
#[tokio::test]
async fn the_citus_layout_covers_every_tenant_owned_table() {
    let Some(owner_url) = postgres_url().await else {
        return;
    };
    let ddl = include_str!("../../docs/citus.sql");
    // `SELECT create_x_table('name'...)` statements, in order.
    let calls = |function: &str| -> Vec<(String, String)> {
        ddl.lines()
            .filter_map(|line| line.strip_prefix(&format!("SELECT {function}('")))
            .map(|rest| {
                let (table, args) = rest.split_once('\'').unwrap();
                (table.to_owned(), args.trim_end_matches(");").to_owned())
            })
            .collect()
    };
    let distributed = calls("create_distributed_table");
    let reference: Vec<String> = calls("create_reference_table")
        .into_iter()
        .map(|(t, _)| t)
        .collect();

    let pool = sqlx::PgPool::connect(&owner_url).await.unwrap();
    let tenant_owned: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
         AND obj_description(c.oid, 'pg_class') IS DISTINCT FROM 'tenantkit:platform' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // Every other table but the migration histories (`_..._migrations`),
    // which stay on the coordinator.
    let platform: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace \
         AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname NOT LIKE '\\_%' \
         AND c.relname <> ALL($1) ORDER BY 1",
    )
    .bind(&tenant_owned)
    .fetch_all(&pool)
    .await
    .unwrap();

    let mut named: Vec<String> = distributed.iter().map(|(t, _)| t.clone()).collect();
    named.sort();
    assert_eq!(
        named, tenant_owned,
        "docs/citus.sql must distribute every tenant-owned table, and only those"
    );
    let mut reference_sorted = reference.clone();
    reference_sorted.sort();
    assert_eq!(
        reference_sorted, platform,
        "the platform tables are reference tables"
    );
    let (first, rest) = distributed.split_first().unwrap();
    assert_eq!(first.1, ", 'tenant_id'", "{first:?}");
    for (table, args) in rest {
        assert_eq!(
            args,
            &format!(", 'tenant_id', colocate_with => '{}'", first.0),
            "{table} is distributed by tenant_id, co-located with {}",
            first.0
        );
    }

    // A foreign key between distributed tables must be created after the
    // table it names.
    let order = |t: &str| distributed.iter().position(|(d, _)| d == t);
    let keys: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT con.conrelid::regclass::text, con.conname::text, con.contype::text, \
                EXISTS (SELECT 1 FROM unnest(con.conkey) k JOIN pg_attribute a \
                        ON a.attrelid = con.conrelid AND a.attnum = k WHERE a.attname = 'tenant_id') \
         FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND con.contype IN ('p', 'u', 'f', 'x')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let unique_indexes: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT i.indrelid::regclass::text, i.indexrelid::regclass::text, \
                EXISTS (SELECT 1 FROM unnest(i.indkey) k JOIN pg_attribute a \
                        ON a.attrelid = i.indrelid AND a.attnum = k WHERE a.attname = 'tenant_id') \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND i.indisunique",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let owned = |t: &str| {
        let base = t.split("_2").next().unwrap();
        tenant_owned.iter().any(|o| o == t || o == base)
    };
    let mut problems = Vec::new();
    for (table, name, kind, has_tenant) in &keys {
        if owned(table) && !has_tenant {
            problems.push(format!(
                "{table}: constraint {name} ({kind}) lacks tenant_id"
            ));
        }
    }
    for (table, index, has_tenant) in &unique_indexes {
        if owned(table) && !has_tenant {
            problems.push(format!("{table}: unique index {index} lacks tenant_id"));
        }
    }
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT con.conrelid::regclass::text, con.confrelid::regclass::text FROM pg_constraint con \
         JOIN pg_class c ON c.oid = con.conrelid \
         WHERE c.relnamespace = 'public'::regnamespace AND con.contype = 'f' AND NOT c.relispartition",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (table, parent) in &references {
        if let (Some(child), Some(parent_at)) = (order(table), order(parent))
            && parent_at > child
        {
            problems.push(format!(
                "{table} is distributed before {parent}, which it references"
            ));
        }
    }
    pool.close().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `Db::tenant_tables` (what export and deletion walk) finds the same
/// tables, columns, keys and references on both backends after every
/// crate's migrations, as the runtime role, with every table of every crate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_list_the_same_tenant_owned_tables() {
    let sqlite = Server::start(Backend::Sqlite).await.unwrap();
    let Some(postgres) = Server::start(Backend::Postgres).await else {
        sqlite.stop().await;
        return;
    };
    let on_sqlite = sqlite.running.db.tenant_tables().await.unwrap();
    let on_postgres = postgres.running.db.tenant_tables().await.unwrap();
    let names: Vec<&str> = on_postgres.iter().map(|t| t.name.as_str()).collect();
    for table in [
        "users",
        "audit_logs",
        "subscriptions",
        "webhook_deliveries",
        "events",
    ] {
        assert!(names.contains(&table), "{table} is not in {names:?}");
    }
    for table in tenantkit::store::NOT_TENANT_DATA {
        assert!(!names.contains(table), "{table} is not tenant data");
    }
    for (p, s) in on_postgres.iter().zip(&on_sqlite) {
        assert_eq!(p, s, "the same table on both backends");
        assert_eq!(p.primary_key.first().map(String::as_str), Some("tenant_id"));
    }
    assert_eq!(on_postgres.len(), on_sqlite.len());
    // Each table comes after the tables it references.
    for (i, table) in on_postgres.iter().enumerate() {
        for parent in &table.references {
            assert!(
                names[..i].contains(&parent.as_str()),
                "{} comes before {parent}",
                table.name
            );
        }
    }
    sqlite.stop().await;
    postgres.stop().await;
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    // Embedded, then written out: the binary may run far from its sources.
    let dir = tempfile::tempdir().unwrap();
    for (name, pem) in [
        (
            "tls-cert.pem",
            &include_bytes!("../fixtures/tls-cert.pem")[..],
        ),
        (
            "tls-key.pem",
            &include_bytes!("../fixtures/tls-key.pem")[..],
        ),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let fixtures = dir.path().display().to_string();
    let Some(s) = Server::start_with(Backend::Sqlite, |c| {
        c.server.tls_cert = Some(format!("{fixtures}/tls-cert.pem").into());
        c.server.tls_key = Some(format!("{fixtures}/tls-key.pem").into());
    })
    .await
    else {
        return;
    };
    assert!(s.running.tls);
    let cert = reqwest::Certificate::from_pem(include_bytes!("../fixtures/tls-ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([cert])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/healthz", s.running.addr.port());
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    // Plain HTTP to the TLS port does not get an answer.
    assert!(s.http.get(s.url("/healthz")).send().await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn bad_plan_configuration_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.database.data_dir = dir.path().to_owned();
    c.auth.jwt_secret = Some(SECRET.to_owned().into());
    c.billing.plans.default_plan = "gold".into();
    let err = tenantkit_server::start(c.clone()).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("default_plan `gold`"),
        "{err:#}"
    );
    c.billing.plans.default_plan = "free".into();
    c.billing
        .plans
        .plans
        .get_mut("pro")
        .unwrap()
        .stripe_price_ids = vec!["price_x".into()];
    c.billing
        .plans
        .plans
        .get_mut("enterprise")
        .unwrap()
        .stripe_price_ids = vec!["price_x".into()];
    let err = tenantkit_server::start(c).await.unwrap_err();
    assert!(format!("{err:#}").contains("mapped to both"), "{err:#}");
}
