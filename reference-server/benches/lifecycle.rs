//! Tenant export and deletion of a large tenant, beside their targets.
//!
//! ```text
//! cargo bench -p tenantkit-server --bench lifecycle
//! ```
//!
//! On a fresh PostgreSQL database: a small tenant (10,000 analytics events)
//! and a large one (`TENANTKIT_BENCH_ROWS` events, default 1,000,000), each
//! exported by `tenantkit-server tenant export` (release build, its own
//! process); then the large one deleted by `tenantkit-server tenant delete`
//! while a third tenant keeps reading and writing.
//!
//! Printed beside the targets: each export's rows per second and the
//! process's peak RSS (memory must not grow with the tenant: the large
//! export's peak within 16 MiB of the small one's, and under 64 MiB); the
//! deletion's rows per second and peak RSS (under 64 MiB); and the other
//! tenant's transaction latency during the deletion (p99 under 50 ms: the
//! batches do not lock it out).
//!
//! Settings (environment): `TENANTKIT_BENCH_PG_URL` (owner/superuser URL,
//! default `postgres://postgres@127.0.0.1:5432/test`), `TENANTKIT_BENCH_ROWS`.

mod common;

use std::{
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tenantkit::{NewTenant, NewUser, Role, audit::Actor};

use common::{env_or, rss_mib};

const KEY: &str = "dGVuYW50a2l0LWJlbmNoLWxpZmVjeWNsZS1rZXktMzI=";
const SECRET: &str = "bench-secret-bench-secret-bench-secret";
const SMALL: i64 = 10_000;
const TARGET_RSS_GROWTH_MIB: f64 = 16.0;
const TARGET_RSS_MIB: f64 = 64.0;
const TARGET_OTHER_P99_MS: f64 = 50.0;

/// Runs `tenantkit-server --config <file> <args>` to completion: how long
/// it took and its peak RSS (sampled every 5 ms).
fn run_measured(config_file: &std::path::Path, args: &[&str]) -> anyhow::Result<(Duration, f64)> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenantkit-server"))
        .args(["--config", config_file.to_str().unwrap()])
        .args(args)
        .env("TENANTKIT_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let mut peak: f64 = 0.0;
    loop {
        if let Some(hwm) = rss_mib(child.id(), "VmHWM:") {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "{args:?} failed: {status}");
            return Ok((started.elapsed(), peak));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT MET" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows: i64 = env_or("TENANTKIT_BENCH_ROWS", 1_000_000);
    let (owner_url, config) =
        common::migrated_database("tenantkit_bench_lifecycle", SECRET, KEY).await?;
    let dir = tempfile::tempdir()?;
    let config_file = dir.path().join("tenantkit.toml");
    std::fs::write(
        &config_file,
        common::server_config(common::free_port()?, &owner_url, SECRET, KEY),
    )?;

    let db = tenantkit_server::open_runtime_db(&config).await?;
    let mut ids = Vec::new();
    for sub in ["small", "big", "other"] {
        let new = NewTenant {
            name: sub.into(),
            subdomain: sub.into(),
        };
        let owner = Some(format!("owner@{sub}.test"));
        ids.push(
            tenantkit_server::create_tenant(&db, &new, owner, &Actor::System)
                .await?
                .0
                .id,
        );
    }
    // Raw events straight in, as the owner: far faster than ingestion, and
    // export and deletion read and remove them the same way.
    let owner = sqlx::PgPool::connect(&owner_url).await?;
    for (id, n) in [(ids[0], SMALL), (ids[1], rows)] {
        let seeded = Instant::now();
        sqlx::query(
            "INSERT INTO events (tenant_id, occurred_at, id, event_type, user_id, name, metadata, received_at) \
             SELECT $1, now() - (g % 3600) * interval '1 second', gen_random_uuid(), 'page_view', \
                    'u' || (g % 1000), '/page/' || (g % 50), '{\"plan\": \"pro\"}', now() \
             FROM generate_series(1, $2) g",
        )
        .bind(id.as_uuid())
        .bind(n)
        .execute(&owner)
        .await?;
        eprintln!("seeded {n} events in {:.1?}", seeded.elapsed());
    }
    sqlx::query("VACUUM ANALYZE events").execute(&owner).await?;
    owner.close().await;

    println!("tenant lifecycle on PostgreSQL, {rows} events in the large tenant\n");
    let mut peaks = Vec::new();
    for (sub, n) in [("small", SMALL), ("big", rows)] {
        let out = dir.path().join(format!("{sub}.tar"));
        let (took, peak) = run_measured(
            &config_file,
            &[
                "tenant",
                "export",
                "--tenant",
                sub,
                "--out",
                out.to_str().unwrap(),
            ],
        )?;
        let size = std::fs::metadata(&out)?.len() as f64 / (1024.0 * 1024.0);
        println!(
            "export {sub:>5}: {n:>9} events in {:>6.2} s = {:>8.0} rows/s, archive {size:.0} MiB, peak RSS {peak:.1} MiB",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
        peaks.push(peak);
    }
    let growth = peaks[1] - peaks[0];
    println!(
        "export peak RSS growth small -> big: {growth:.1} MiB (target < {TARGET_RSS_GROWTH_MIB} MiB: {}); largest {:.1} MiB (target < {TARGET_RSS_MIB} MiB: {})",
        verdict(growth < TARGET_RSS_GROWTH_MIB),
        peaks[1],
        verdict(peaks[1] < TARGET_RSS_MIB)
    );

    // The deletion, while another tenant works.
    let other = db.resolve_id(ids[2]).await?.expect("just made");
    let stop = Arc::new(AtomicBool::new(false));
    let probe = tokio::spawn({
        let (db, stop) = (db.clone(), stop.clone());
        async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let mut tx = db.begin(&other).await?;
                tx.count_users().await?;
                tx.create_user(&NewUser {
                    email: format!("probe{i}@other.test"),
                    role: Role::Member,
                })
                .await?;
                tx.commit().await?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                i += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            anyhow::Ok(latencies)
        }
    });
    let (took, peak) = tokio::task::spawn_blocking({
        let config_file = config_file.clone();
        move || {
            run_measured(
                &config_file,
                &["tenant", "delete", "--tenant", "big", "--confirm", "big"],
            )
        }
    })
    .await??;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = probe.await??;
    latencies.sort_by(f64::total_cmp);
    let pick = |p: f64| {
        latencies[((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let tombstone = db
        .platform()
        .tenant_deletion(ids[1])
        .await?
        .expect("deleted");
    let removed: i64 = tombstone.rows_removed.values().sum();
    println!(
        "delete   big: {removed:>9} rows in {:>6.2} s = {:>8.0} rows/s, peak RSS {peak:.1} MiB (target < {TARGET_RSS_MIB} MiB: {})",
        took.as_secs_f64(),
        removed as f64 / took.as_secs_f64(),
        verdict(peak < TARGET_RSS_MIB)
    );
    println!(
        "other tenant meanwhile: {} transactions (read + audited write), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < {TARGET_OTHER_P99_MS} ms: {})",
        latencies.len(),
        pick(0.50),
        pick(0.99),
        pick(1.0),
        verdict(pick(0.99) < TARGET_OTHER_P99_MS)
    );
    db.close().await;
    Ok(())
}
