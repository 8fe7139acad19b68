//! Webhook delivery throughput, end to end, beside its targets.
//!
//! ```text
//! cargo bench -p tenantkit-server --bench webhooks_throughput
//! ```
//!
//! On a fresh PostgreSQL database (migrated by `migrate`, used as the
//! runtime role): 200 tenants with one endpoint each, all at a receiver on
//! loopback that this bench runs. One `tenantkit-server worker` process
//! (release build, the per-tenant budget raised) delivers while the bench
//! publishes at a fixed rate (default 2,500 messages/s = 150,000/min, for
//! 60 s), one transaction per tenant and tick, through
//! `Webhooks::publish` as any embedding app would. Printed beside the
//! targets (floor 10,000/min, ours 120,000/min):
//!
//! - deliveries per minute: all deliveries over the time from the first
//!   publish to the last delivery;
//! - publish-to-delivery latency p50/p99 (from the message's timestamp,
//!   taken in the publishing transaction, to its arrival);
//! - peak database connections (all of them: the worker's pool and
//!   listener, and the bench's publishers) and the worker's peak RSS;
//! - duplicates (should be 0) and deliveries still missing (should be 0);
//! - then the maximum: a backlog (default 60,000) published while no worker
//!   runs, drained by one worker process.
//!
//! Settings (environment): `TENANTKIT_BENCH_PG_URL` (owner/superuser URL,
//! default `postgres://postgres@127.0.0.1:5432/test`), `TENANTKIT_BENCH_RATE`
//! (messages/s), `TENANTKIT_BENCH_SECS`, `TENANTKIT_BENCH_TENANTS`,
//! `TENANTKIT_BENCH_BACKLOG`.

use std::{
    collections::HashSet,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use chrono::{DateTime, Utc};
use tenantkit::{Db, NewTenant, TenantContext, audit::Actor};
use tenantkit_server::config::Config;
use tenantkit_webhooks::NewWebhook;

const FLOOR_PER_MIN: f64 = 10_000.0;
const TARGET_PER_MIN: f64 = 120_000.0;
const KEY: &str = "dGVuYW50a2l0LWJlbmNoLXdlYmhvb2sta2V5LTMyYnk=";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    ids: Mutex<HashSet<String>>,
    latencies_us: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    last_at: Mutex<Option<Instant>>,
}

async fn receive(State(seen): State<Arc<Seen>>, headers: HeaderMap, body: Bytes) -> &'static str {
    let now = Utc::now();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !seen.ids.lock().unwrap().insert(id) {
        seen.duplicates.fetch_add(1, Ordering::Relaxed);
        return "dup";
    }
    let published = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b["timestamp"].as_str().map(str::to_owned))
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    if let Some(published) = published {
        let us = (now - published.with_timezone(&Utc))
            .num_microseconds()
            .unwrap_or(0)
            .max(0) as u64;
        seen.latencies_us.lock().unwrap().push(us);
    }
    seen.delivered.fetch_add(1, Ordering::Relaxed);
    *seen.last_at.lock().unwrap() = Some(Instant::now());
    "ok"
}

/// Publishes `n` messages to `ctx`'s endpoints in one transaction, as an
/// embedding application would, then frees its publisher slot.
async fn publish(
    db: Db,
    webhooks: tenantkit_webhooks::Webhooks,
    ctx: TenantContext,
    n: usize,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    let mut tx = db.begin(&ctx).await.expect("begin");
    for i in 0..n {
        webhooks
            .publish(
                &mut tx,
                "user.created",
                tenantkit_webhooks::testing::user_data(i),
            )
            .await
            .expect("publish");
    }
    tx.commit().await.expect("commit");
    drop(slot);
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Peak resident memory of a process, in MiB (Linux).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rate: u64 = env_or("TENANTKIT_BENCH_RATE", 2_500);
    let secs: u64 = env_or("TENANTKIT_BENCH_SECS", 60);
    let tenants: usize = env_or("TENANTKIT_BENCH_TENANTS", 200);

    // A fresh database.
    let admin = std::env::var("TENANTKIT_BENCH_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let pool = sqlx::PgPool::connect(&admin).await?;
    let name = "tenantkit_bench_webhooks";
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
    }
    let owner_url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.database.url = Some(owner_url.clone());
    config.auth.jwt_secret = Some("bench-secret-bench-secret-bench-secret".to_owned().into());
    config.webhooks.secret_keys = vec![KEY.to_owned().into()];
    config.webhooks.allow_http = true;
    config.webhooks.allow_networks = vec!["127.0.0.1/32".into()];
    config.webhooks.deliveries_per_minute = 0;
    tenantkit_server::migrate(&config).await?;

    // The receiver.
    let seen = Arc::new(Seen::default());
    let app = Router::new()
        .route("/{tenant}", post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // Tenants and endpoints.
    let db: Db = tenantkit_server::open_runtime_db(&config).await?;
    let webhooks = tenantkit_server::webhooks::build(&config)?;
    let mut contexts: Vec<TenantContext> = Vec::new();
    for i in 0..tenants {
        let tenant = db
            .platform()
            .create_tenant(
                &NewTenant {
                    name: format!("Bench {i}"),
                    subdomain: format!("bench-{i}"),
                },
                &Actor::System,
            )
            .await?;
        let ctx = db.resolve_id(tenant.id).await?.expect("just created");
        let mut tx = db.begin(&ctx).await?;
        webhooks
            .create(
                &mut tx,
                &NewWebhook {
                    url: format!("http://{receiver}/t{i}"),
                    event_types: vec!["*".into()],
                    description: None,
                    ..Default::default()
                },
            )
            .await?;
        tx.commit().await?;
        contexts.push(ctx);
    }

    // The worker, a release build in its own process.
    let config_file = dir.path().join("tenantkit.toml");
    std::fs::write(
        &config_file,
        format!(
            "[database]\nurl = \"{owner_url}\"\n\n[auth]\njwt_secret = \"bench-secret-bench-secret-bench-secret\"\n\n\
             [webhooks]\nsecret_keys = [\"{KEY}\"]\nallow_http = true\nallow_networks = [\"127.0.0.1/32\"]\n\
             deliveries_per_minute = 0\n"
        ),
    )?;
    let spawn_worker = || {
        Command::new(env!("CARGO_BIN_EXE_tenantkit-server"))
            .args(["--config", config_file.to_str().unwrap(), "worker"])
            .env("TENANTKIT_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
    };
    let mut worker = spawn_worker()?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Sample database connections while it runs.
    let peak_connections = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak_connections.clone();
        let pool = sqlx::PgPool::connect(&admin).await?;
        tokio::spawn(async move {
            loop {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend'",
                )
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
                peak.fetch_max(n as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    // Publish at `rate` for `secs`: every 20 ms, one transaction for each of
    // the next tenants in turn, holding that tick's share of messages.
    println!(
        "publishing {rate} messages/s for {secs} s to {tenants} tenants; one worker process (pid {})",
        worker.id()
    );
    let tick = Duration::from_millis(20);
    let per_tick = (rate as f64 * tick.as_secs_f64()).round() as usize;
    let per_tx = 10usize;
    let started = Instant::now();
    let mut published = 0u64;
    let mut next_tenant = 0usize;
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let publishers = Arc::new(tokio::sync::Semaphore::new(8));
    let mut report = tokio::time::Instant::now() + Duration::from_secs(10);
    while started.elapsed() < Duration::from_secs(secs) {
        ticks.tick().await;
        let mut left = per_tick;
        while left > 0 {
            let n = left.min(per_tx);
            left -= n;
            let ctx = contexts[next_tenant % contexts.len()].clone();
            next_tenant += 1;
            let permit = publishers.clone().acquire_owned().await?;
            tokio::spawn(publish(db.clone(), webhooks.clone(), ctx, n, permit));
            published += n as u64;
        }
        if tokio::time::Instant::now() >= report {
            report += Duration::from_secs(10);
            println!(
                "  {:>3} s: published {published}, delivered {}",
                started.elapsed().as_secs(),
                seen.delivered.load(Ordering::Relaxed)
            );
        }
    }
    let _ = publishers.acquire_many(8).await?;
    let publish_secs = started.elapsed().as_secs_f64();
    println!("published {published} in {publish_secs:.1} s; waiting for the rest to arrive");
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.delivered.load(Ordering::Relaxed) < published && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss = peak_rss_mib(worker.id());
    Command::new("kill").arg(worker.id().to_string()).status()?;
    worker.wait()?;
    sampler.abort();

    let delivered = seen.delivered.load(Ordering::Relaxed);
    let last = seen.last_at.lock().unwrap().unwrap_or_else(Instant::now);
    let span = last.duration_since(started).as_secs_f64();
    let per_min = delivered as f64 / span * 60.0;
    let mut latencies = seen.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    println!();
    println!("webhook delivery throughput, PostgreSQL, {tenants} tenants, release worker process");
    println!(
        "  deliveries/min      {per_min:>10.0}   floor {FLOOR_PER_MIN:.0}  target {TARGET_PER_MIN:.0}  {}",
        if per_min >= TARGET_PER_MIN {
            "met"
        } else {
            "NOT MET"
        }
    );
    println!(
        "  delivered           {delivered:>10}   of {published} published (missing {})",
        published.saturating_sub(delivered)
    );
    println!(
        "  duplicates          {:>10}",
        seen.duplicates.load(Ordering::Relaxed)
    );
    println!(
        "  latency p50         {:>10.1} ms (publish to delivery)",
        percentile(&latencies, 0.50)
    );
    println!(
        "  latency p99         {:>10.1} ms",
        percentile(&latencies, 0.99)
    );
    println!(
        "  latency max         {:>10.1} ms",
        percentile(&latencies, 1.0)
    );
    println!(
        "  db connections      {:>10}   peak, all clients (worker pool ≤ 10 + listener; bench publishers ≤ 10)",
        peak_connections.load(Ordering::Relaxed)
    );
    match rss {
        Some(mib) => println!("  worker peak RSS     {mib:>10.1} MiB"),
        None => println!("  worker peak RSS     unknown (no /proc)"),
    }

    // The maximum: a backlog published with no worker running, then drained
    // by one worker process.
    let backlog: u64 = env_or("TENANTKIT_BENCH_BACKLOG", 60_000);
    if backlog > 0 {
        println!();
        println!("publishing a backlog of {backlog} with no worker running");
        let before = seen.delivered.load(Ordering::Relaxed);
        let mut left = backlog;
        let mut next = 0usize;
        let mut tasks = tokio::task::JoinSet::new();
        while left > 0 {
            let n = left.min(50);
            left -= n;
            let ctx = contexts[next % contexts.len()].clone();
            next += 1;
            let permit = publishers.clone().acquire_owned().await?;
            tasks.spawn(publish(
                db.clone(),
                webhooks.clone(),
                ctx,
                n as usize,
                permit,
            ));
        }
        while tasks.join_next().await.is_some() {}
        let mut worker = spawn_worker()?;
        let drain_started = Instant::now();
        let deadline = drain_started + Duration::from_secs(300);
        while seen.delivered.load(Ordering::Relaxed) < before + backlog && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drained = seen.delivered.load(Ordering::Relaxed) - before;
        let drain_secs = drain_started.elapsed().as_secs_f64();
        let rss = peak_rss_mib(worker.id());
        Command::new("kill").arg(worker.id().to_string()).status()?;
        worker.wait()?;
        let per_min = drained as f64 / drain_secs * 60.0;
        println!(
            "  backlog drained     {per_min:>10.0}   deliveries/min ({drained} in {drain_secs:.1} s, worker start included)  target {TARGET_PER_MIN:.0}  {}",
            if per_min >= TARGET_PER_MIN {
                "met"
            } else {
                "NOT MET"
            }
        );
        println!(
            "  duplicates          {:>10}",
            seen.duplicates.load(Ordering::Relaxed)
        );
        if let Some(mib) = rss {
            println!("  worker peak RSS     {mib:>10.1} MiB");
        }
    }
    db.close().await;
    Ok(())
}
