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

/// `tenantkit-server --config <file> <command>`, in `dir`, logging warnings.
pub(crate) fn tenantkit_server(
    config_file: &std::path::Path,
    dir: &std::path::Path,
    command: &str,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tenantkit-server"))
        .args(["--config", config_file.to_str().unwrap(), command])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Spawned binaries of a coverage run report their coverage too.
        .envs(std::env::var("LLVM_PROFILE_FILE").map(|v| ("LLVM_PROFILE_FILE", v)))
        .env("TENANTKIT_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("tenantkit-server starts")
}
