//! Every SQL statement every crate declares (its `sql::ALL`, made by
//! `tenantkit::statements!`), prepared on both backends against the real,
//! migrated schema: a typo, a missing column, a type PostgreSQL cannot
//! infer or a dead arm of a PostgreSQL/SQLite pair fails here, not when its
//! code path first runs.
//!
//! PostgreSQL prepares as the runtime role (parse and plan; nothing runs).
//!
//! And no statement hides outside those lists: a crate's source outside its
//! `sql` module holds no SQL text but what it builds from catalog names.

use sqlx::Executor;
use tenantkit::{Backend, Db, store::Statement, testing};

/// Every crate's list.
fn every_crate() -> [(&'static str, &'static [Statement]); 4] {
    [
        ("tenantkit", tenantkit::store::sql::ALL),
        ("tenantkit-analytics", tenantkit_analytics::sql::ALL),
        ("tenantkit-billing", tenantkit_billing::sql::ALL),
        ("tenantkit-webhooks", tenantkit_webhooks::sql::ALL),
    ]
}

async fn migrate_all(db: &Db) -> tenantkit::Result<()> {
    db.migrate().await?;
    tenantkit_billing::Billing::migrate(db).await?;
    tenantkit_webhooks::Webhooks::migrate(db).await?;
    tenantkit_analytics::storage::migrate(db).await
}

/// Prepares every statement `backend` runs with `prepare`, and fails with
/// the list of those that do not prepare.
async fn walk<F, Fut>(backend: Backend, prepare: F)
where
    F: Fn(sqlx::SqlStr) -> Fut,
    Fut: std::future::Future<Output = Result<(), sqlx::Error>>,
{
    let (mut failures, mut prepared) = (Vec::new(), 0);
    for (krate, statements) in every_crate() {
        for statement in statements {
            // A statement of the other backend's code path only.
            let Some(sql) = statement.sql.on(backend) else {
                continue;
            };
            prepared += 1;
            if let Err(e) = prepare(sqlx::SqlSafeStr::into_sql_str(sql)).await {
                failures.push(format!("{krate}::sql::{}: {e}", statement.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {prepared} statements do not prepare on {backend:?}:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(prepared > 0, "no statement was walked");
}

#[tokio::test]
async fn every_statement_prepares_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("db.sqlite").display()
    );
    let db = Db::connect(&url).await.unwrap();
    migrate_all(&db).await.unwrap();
    db.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    walk(Backend::Sqlite, |sql| {
        let pool = pool.clone();
        async move { pool.prepare(sql).await.map(drop) }
    })
    .await;
}

#[tokio::test]
async fn every_statement_prepares_on_postgres() {
    let (core, billing, webhooks, analytics) = (
        tenantkit::store::core_migrations(),
        tenantkit_billing::migrations(),
        tenantkit_webhooks::schema::migrations(),
        tenantkit_analytics::storage::migrations(),
    );
    let migrators = [core, &billing, &webhooks, &analytics];
    let migrate: testing::Migrate = |db| Box::pin(migrate_all(db));
    let Some(database) =
        testing::postgres_database_with("tenantkit_statements", &migrators, migrate).await
    else {
        return;
    };
    let pool = sqlx::PgPool::connect(&database.runtime_url).await.unwrap();
    walk(Backend::Postgres, |sql| {
        let pool = pool.clone();
        async move { pool.prepare(sql).await.map(drop) }
    })
    .await;
}

/// A string literal that opens an SQL statement, outside a `sql` module, a
/// test module or test support (`testing.rs`), fails: statements live in
/// their crate's `sql` module, where the walks above reach them. Allowed:
/// format strings (a `{` on the literal's first line), which the store
/// builds from catalog names only, and the few literals that are prefixes
/// a declaration is checked against, not statements.
#[test]
fn no_statement_outside_a_sql_module() {
    const NOT_STATEMENTS: [&str; 2] = [
        "\"SELECT tenant_id, due_at FROM \"",
        "\"SELECT tenantkit_\"",
    ];
    const OPENINGS: [&str; 5] = [
        "\"SELECT ",
        "\"INSERT INTO ",
        "\"UPDATE ",
        "\"DELETE FROM ",
        "\"WITH ",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    let mut scanned = 0;
    for krate in [
        "tenantkit",
        "tenantkit-analytics",
        "tenantkit-billing",
        "tenantkit-webhooks",
        "reference-server",
    ] {
        let mut files = Vec::new();
        rust_files(&root.join(krate).join("src"), &mut files);
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if name == "sql.rs" || name == "testing.rs" {
                continue;
            }
            scanned += 1;
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break;
                }
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for opening in OPENINGS {
                    let Some(at) = line.find(opening) else {
                        continue;
                    };
                    let literal = &line[at..];
                    let built = literal.contains('{');
                    let prefix = NOT_STATEMENTS.iter().any(|p| literal.starts_with(p));
                    if !built && !prefix {
                        found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(scanned > 50, "only {scanned} source files were scanned");
    assert!(
        found.is_empty(),
        "SQL outside a sql module (declare it with tenantkit::statements! in the crate's sql module):\n{}",
        found.join("\n")
    );
}

fn rust_files(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}
