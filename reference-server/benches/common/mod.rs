//! What the server benches share: settings from the environment, a fresh
//! database, the release binary serving it, and its memory.

#![allow(dead_code)] // each bench uses its own part

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

/// `name` from the environment, parsed, or `default`.
pub(crate) fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`) in MiB.
pub(crate) fn rss_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Database `name` dropped and made anew on the server of
/// `TENANTKIT_BENCH_PG_URL` (an owner or superuser URL, default the local
/// `postgres`); its owner URL.
pub(crate) async fn fresh_database(name: &str) -> anyhow::Result<String> {
    let admin = std::env::var("TENANTKIT_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pool = sqlx::PgPool::connect(&admin).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
    }
    pool.close().await;
    Ok(format!("{}/{name}", admin.rsplit_once('/').unwrap().0))
}

/// A fresh database `name` migrated by `tenantkit-server migrate`: its
/// owner URL, and a config for it with these keys.
pub(crate) async fn migrated_database(
    name: &str,
    jwt_secret: &str,
    webhook_key: &str,
) -> anyhow::Result<(String, tenantkit_server::config::Config)> {
    let owner_url = fresh_database(name).await?;
    let mut config = tenantkit_server::config::Config::default();
    config.database.url = Some(owner_url.clone());
    config.auth.jwt_secret = Some(jwt_secret.to_owned().into());
    config.webhooks.secret_keys = vec![webhook_key.to_owned().into()];
    tenantkit_server::migrate(&config).await?;
    Ok((owner_url, config))
}

/// The config file of a bench's server on `port` over `owner_url`: limits
/// raised out of the way, no webhook delivery; append sections to it.
pub(crate) fn server_config(
    port: u16,
    owner_url: &str,
    jwt_secret: &str,
    webhook_key: &str,
) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[database]\nurl = \"{owner_url}\"\n\n\
         [auth]\njwt_secret = \"{jwt_secret}\"\n\n[rate_limit]\nper_tenant_per_minute = 100000000\n\
         per_ip_per_minute = 100000000\n\n[webhooks]\nsecret_keys = [\"{webhook_key}\"]\nworker = false\n"
    )
}

/// `tenantkit-server serve` (this build) with `config` as its file, in
/// `dir`, once `/readyz` answers: the process and `http://127.0.0.1:<port>`.
pub(crate) async fn serve(
    dir: &std::path::Path,
    port: u16,
    config: &str,
    http: &reqwest::Client,
) -> anyhow::Result<(Child, String)> {
    let config_file = dir.join("tenantkit.toml");
    std::fs::write(&config_file, config)?;
    let server = Command::new(env!("CARGO_BIN_EXE_tenantkit-server"))
        .args(["--config", config_file.to_str().unwrap(), "serve"])
        .current_dir(dir)
        .env("TENANTKIT_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..300 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok((server, base));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the server did not become ready")
}

/// A free port on loopback.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
