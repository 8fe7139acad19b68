//! The side-by-side reference: how fast the database itself runs the API
//! scenario's hottest request (`GET /users`), beside how fast the server
//! answers it.
//!
//! `pgbench` runs exactly the statements one `GET /users` runs (its
//! transaction, the tenant scope, the keyset query, the rollback; prepared,
//! as sqlx prepares them) as the runtime role, with as many connections as a
//! server's pool. The server is then driven closed loop on the same route
//! and tenant until it is saturated. The ratio is the platform's overhead
//! over bare SQL: HTTP, JWT, tenant resolution, rate limits, the plan
//! check, the analytics layer and JSON.

use std::{process::Command, str::FromStr, sync::Arc};

use anyhow::{Context, bail};
use reqwest::Method;
use sqlx::postgres::PgConnectOptions;

use crate::{
    cluster::POOL,
    engine::{self, Job, RunStats},
    seed::{Api, Tenant},
};

/// The statements of one `GET /users` (see `TenantTx::begin` and
/// `TenantTx::list_users`), for one tenant given as `-D tid=…`.
const SCRIPT: &str = "BEGIN;\n\
SELECT set_config('tenantkit.tenant_id', :tid, true);\n\
SELECT tenant_id, id, email, role, created_at FROM users \
WHERE tenant_id = :tid::uuid AND (NULL::uuid IS NULL OR id > NULL::uuid) ORDER BY id LIMIT 50;\n\
ROLLBACK;\n";

/// Both sides of the comparison.
pub(crate) struct Reference {
    /// Transactions per second of pgbench.
    pub(crate) database_tps: f64,
    /// Requests per second of the server, saturated.
    pub(crate) server_rps: f64,
    pub(crate) server: RunStats,
    pub(crate) connections: u32,
    pub(crate) concurrency: usize,
    pub(crate) seconds: u64,
}

/// Measures both for `tenant`, `seconds` each, on the database at
/// `admin_url` (connecting as `runtime_role`).
pub(crate) async fn measure(
    api: &Api,
    tenant: &Tenant,
    admin_url: &str,
    runtime_role: &str,
    seconds: u64,
) -> anyhow::Result<Reference> {
    let database_tps = pgbench(admin_url, runtime_role, &tenant.id, seconds)?;
    let concurrency = 32;
    let job: Job = {
        let (api, id, token) = (api.clone(), tenant.id.clone(), tenant.owner_token.clone());
        Arc::new(move |_| {
            let request = api.tenant(Method::GET, "/users", &id, &token);
            Box::pin(engine::send(request, "GET /users", 200))
        })
    };
    engine::saturate("warm-up", concurrency, 3, job.clone()).await;
    let (server_rps, server) = engine::saturate("server max", concurrency, seconds, job).await;
    Ok(Reference {
        database_tps,
        server_rps,
        server,
        connections: POOL,
        concurrency,
        seconds,
    })
}

/// pgbench's transactions per second for [`SCRIPT`].
fn pgbench(admin_url: &str, role: &str, tenant: &str, seconds: u64) -> anyhow::Result<f64> {
    let options = PgConnectOptions::from_str(admin_url)?;
    let script = tempfile::Builder::new().suffix(".sql").tempfile()?;
    std::fs::write(script.path(), SCRIPT)?;
    eprintln!("  pgbench: {POOL} connections as {role}, {seconds} s");
    let output = Command::new("pgbench")
        .args([
            "--no-vacuum",
            "--protocol=prepared",
            &format!("--client={POOL}"),
            &format!(
                "--jobs={}",
                std::thread::available_parallelism().map_or(2, |n| n.get())
            ),
            &format!("--time={seconds}"),
            &format!("--define=tid={tenant}"),
            &format!("--file={}", script.path().display()),
            &format!("--host={}", options.get_host()),
            &format!("--port={}", options.get_port()),
            &format!("--username={role}"),
            options.get_database().context("a database name")?,
        ])
        .output()
        .context("running pgbench (Debian: apt install postgresql-client)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let failed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of failed transactions: "))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap_or(0);
    anyhow::ensure!(
        failed == 0,
        "pgbench: {failed} transactions failed:\n{stdout}"
    );
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))
}
