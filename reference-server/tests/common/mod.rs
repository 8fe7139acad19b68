//! What the process-level tests share: a fresh PostgreSQL database, and the
//! real `tenantkit-server` binary run on a config file.

#![allow(dead_code)] // each test binary uses its own part

use std::process::{Child, Command, Stdio};

use tenantkit::testing;

/// A new empty database `<prefix>_<random>`: its name and owner URL; `None`
/// when PostgreSQL is unreachable and not required.
pub(crate) async fn create_database(prefix: &str) -> Option<(String, String)> {
    let admin = testing::admin_url();
    let pool = match sqlx::PgPool::connect(&admin).await {
        Ok(pool) => pool,
        Err(_) if !testing::postgres_required() => return None,
        Err(e) => panic!("PostgreSQL is required: {e}"),
    };
    let name = format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let owner_url = testing::with_database(&admin, &name);
    Some((name, owner_url))
}

/// Drops a database made by [`create_database`], connections and all.
pub(crate) async fn drop_database(name: &str) {
    let pool = sqlx::PgPool::connect(&testing::admin_url()).await.unwrap();
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&pool)
        .await
        .unwrap();
}

/// `tenantkit-server --config <file> <args>`, in `dir`, logging warnings.
pub(crate) fn tenantkit_server_command(
    config_file: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantkit-server"));
    command
        .args(["--config", config_file.to_str().unwrap()])
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Spawned binaries of a coverage run report their coverage too.
        .envs(std::env::var("LLVM_PROFILE_FILE").map(|v| ("LLVM_PROFILE_FILE", v)))
        .env("TENANTKIT_LOG", "warn");
    command
}

/// [`tenantkit_server_command`] started, its output discarded.
pub(crate) fn tenantkit_server(
    config_file: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
) -> Child {
    tenantkit_server_command(config_file, dir, args)
        .stdout(Stdio::null())
        .spawn()
        .expect("tenantkit-server starts")
}

/// Every row `ctx`'s tenant has, counted table by table from the catalog.
pub(crate) async fn rows_of(db: &tenantkit::Db, ctx: &tenantkit::TenantContext) -> i64 {
    use futures_util::StreamExt;
    let mut total = 0;
    for table in db.tenant_tables().await.unwrap() {
        let mut tx = db.begin_snapshot(ctx).await.unwrap();
        total += tx.export_rows(&table).count().await as i64;
    }
    total
}

/// Rows a deletion has removed so far, every table together.
pub(crate) fn removed(deletion: &tenantkit::store::TenantDeletion) -> i64 {
    deletion.rows_removed.values().sum()
}

/// Kills `child` (a `tenant delete` of `ctx`'s tenant) with SIGKILL once it
/// has removed 200 rows, and checks what it left: unfinished, part-way, and
/// every row either removed and counted or still there (`before` rows
/// before, plus the suspension's audit entry). The deletion as left.
pub(crate) async fn kill_part_way(
    mut child: Child,
    db: &tenantkit::Db,
    ctx: &tenantkit::TenantContext,
    before: i64,
) -> tenantkit::store::TenantDeletion {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let progress = db.platform().tenant_deletion(ctx.id()).await.unwrap();
        if progress.as_ref().is_some_and(|d| removed(d) >= 200) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress: {progress:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let interrupted = db
        .platform()
        .tenant_deletion(ctx.id())
        .await
        .unwrap()
        .unwrap();
    assert!(interrupted.finished_at.is_none());
    assert!(removed(&interrupted) < before, "killed part-way");
    assert_eq!(
        rows_of(db, ctx).await + removed(&interrupted),
        before + 1,
        "every row either removed and counted, or still there (+1: the suspension's audit entry)"
    );
    interrupted
}
