//! The live stream under load, beside its targets.
//!
//! ```text
//! cargo bench -p tenantkit-server --bench live
//! ```
//!
//! On a fresh PostgreSQL database (served as the runtime role) with 100
//! tenants, one `tenantkit-server serve` process (release build) holds
//! 1,000 `/ws/analytics` connections, 10 per tenant, while clients ingest
//! events into every tenant over HTTP. Each update carries `at`, the moment
//! its one-second tick fired; a client's lag is when it received the update
//! minus `at` (same machine, same clock).
//!
//! Printed beside the targets: update lag p50/p99/max (target p99 < 50 ms
//! after the tick), updates per connection per second (at most 1), the
//! events ingested meanwhile, and the server's RSS.
//!
//! Settings (environment): `TENANTKIT_BENCH_PG_URL` (owner/superuser URL,
//! default `postgres://postgres@127.0.0.1:5432/test`),
//! `TENANTKIT_BENCH_WS_CLIENTS` (default 1,000), `TENANTKIT_BENCH_SECS`
//! (measured seconds, default 30), `TENANTKIT_BENCH_RATE` (events per
//! second offered, default 10,000).

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use futures_util::StreamExt;
use tenantkit::{NewTenant, audit::Actor};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

use common::{env_or, rss_mib};

const TARGET_LAG_P99_MS: f64 = 50.0;
const TENANTS: usize = 100;
const BATCH: usize = 100;
const KEY: &str = "dGVuYW50a2l0LWJlbmNoLWxpdmUta2V5LTMyYnl0ZXM=";
const SECRET: &str = "bench-secret-bench-secret-bench-secret";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

struct Tenant {
    sub: String,
    token: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let clients: usize = env_or("TENANTKIT_BENCH_WS_CLIENTS", 1000);
    let secs: u64 = env_or("TENANTKIT_BENCH_SECS", 30);
    let rate: u64 = env_or("TENANTKIT_BENCH_RATE", 10_000);

    let (owner_url, config) =
        common::migrated_database("tenantkit_bench_live", SECRET, KEY).await?;
    let dir = tempfile::tempdir()?;

    let db = tenantkit_server::open_runtime_db(&config).await?;
    let keys = tenantkit_server::load_keys(&config)?;
    let mut tenants = Vec::with_capacity(TENANTS);
    for i in 0..TENANTS {
        let sub = format!("live-{i}");
        let (tenant, _) = tenantkit_server::create_tenant(
            &db,
            &NewTenant {
                name: format!("Live {i}"),
                subdomain: sub.clone(),
            },
            Some(format!("owner{i}@live.test")),
            &Actor::System,
        )
        .await?;
        let ctx = db.resolve_id(tenant.id).await?.expect("just created");
        let token = tenantkit_server::issue_user_token(&db, &keys, &ctx, None, None, 7200).await?;
        tenants.push(Tenant { sub, token });
    }
    db.close().await;

    let port = common::free_port()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let (mut server, base) = common::serve(
        dir.path(),
        port,
        &common::server_config(port, &owner_url, SECRET, KEY),
        &http,
    )
    .await?;
    let pid = server.id();
    let rss_idle = rss_mib(pid, "VmRSS:").unwrap_or(f64::NAN);

    // The connections: 10 per tenant, each recording its updates' lag.
    let tenants = Arc::new(tenants);
    let lags: Arc<Mutex<Vec<f64>>> = Arc::default();
    let measuring = Arc::new(AtomicBool::new(false));
    let updates = Arc::new(AtomicU64::new(0));
    let opened = Instant::now();
    let mut readers = Vec::with_capacity(clients);
    for i in 0..clients {
        let tenant = &tenants[i % TENANTS];
        let mut request = format!("ws://127.0.0.1:{port}/ws/analytics").into_client_request()?;
        request
            .headers_mut()
            .insert("x-tenant-id", tenant.sub.parse()?);
        request.headers_mut().insert(
            "sec-websocket-protocol",
            format!("tenantkit.v1, bearer.{}", tenant.token).parse()?,
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        let (lags, measuring, updates) = (lags.clone(), measuring.clone(), updates.clone());
        readers.push(tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let received = Utc::now();
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                let update: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                if update["type"] != "update" {
                    continue;
                }
                let at: chrono::DateTime<Utc> = update["at"].as_str().unwrap().parse().unwrap();
                let lag = (received - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0;
                lags.lock().unwrap().push(lag);
                updates.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    println!(
        "{clients} connections across {TENANTS} tenants opened in {:.1} s; server RSS {rss_idle:.0} MiB before, {:.0} MiB after",
        opened.elapsed().as_secs_f64(),
        rss_mib(pid, "VmRSS:").unwrap_or(f64::NAN)
    );

    // Ingestion into every tenant at the offered rate, 4 senders.
    let stop = Arc::new(AtomicBool::new(false));
    let ingested = Arc::new(AtomicU64::new(0));
    let batches_per_sec = (rate / BATCH as u64).max(1);
    let senders = 4u64;
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut sending = Vec::new();
    for s in 0..senders {
        let in_flight = in_flight.clone();
        let (http, base, tenants, stop, ingested) = (
            http.clone(),
            base.clone(),
            tenants.clone(),
            stop.clone(),
            ingested.clone(),
        );
        sending.push(tokio::spawn(async move {
            let every = Duration::from_secs_f64(senders as f64 / batches_per_sec as f64);
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut k = s as usize;
            while !stop.load(Ordering::Relaxed) {
                ticks.tick().await;
                let tenant = &tenants[k % TENANTS];
                k += senders as usize;
                let body: Vec<serde_json::Value> = (0..BATCH)
                    .map(|i| {
                        let event_type = ["page_view", "feature_used", "signup"][i % 3];
                        serde_json::json!({
                            "event_type": event_type,
                            "user_id": format!("u{}", (k * 7 + i) % 5000),
                        })
                    })
                    .collect();
                // Open loop: a slow answer does not slow the offered rate.
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let (http, base, ingested) = (http.clone(), base.clone(), ingested.clone());
                let (sub, token) = (tenant.sub.clone(), tenant.token.clone());
                tokio::spawn(async move {
                    let res = http
                        .post(format!("{base}/analytics/events"))
                        .header("x-tenant-id", &sub)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    if res.is_ok_and(|r| r.status() == 202) {
                        ingested.fetch_add(BATCH as u64, Ordering::Relaxed);
                    }
                    drop(permit);
                });
            }
        }));
    }

    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ingested_before = ingested.load(Ordering::Relaxed);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut rss_samples = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(rss) = rss_mib(pid, "VmRSS:") {
            rss_samples.push(rss);
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let ingested_during = ingested.load(Ordering::Relaxed) - ingested_before;
    stop.store(true, Ordering::Relaxed);
    for s in sending {
        s.await?;
    }
    let rss_peak = rss_mib(pid, "VmHWM:").unwrap_or(f64::NAN);
    server.kill()?;
    server.wait()?;
    for r in readers {
        r.abort();
    }

    let mut lags = std::mem::take(&mut *lags.lock().unwrap());
    lags.sort_by(f64::total_cmp);
    rss_samples.sort_by(f64::total_cmp);
    let rss_median = percentile(&rss_samples, 0.5);
    let updates = updates.load(Ordering::Relaxed);
    let per_connection = updates as f64 / clients as f64 / elapsed;
    let p99 = percentile(&lags, 0.99);
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    println!(
        "\nlive stream, {clients} connections over {TENANTS} tenants, {elapsed:.0} s measured:"
    );
    println!(
        "  events ingested meanwhile      {:>10.0} /s (offered {rate} /s)",
        ingested_during as f64 / elapsed
    );
    println!(
        "  updates per connection          {per_connection:>10.2} /s (at most 1)   {}",
        verdict(per_connection <= 1.0)
    );
    println!(
        "  update lag after the tick  p50 {:>7.1} ms  p99 {p99:>7.1} ms  max {:>7.1} ms  (target p99 < {TARGET_LAG_P99_MS} ms)   {}",
        percentile(&lags, 0.5),
        lags.last().copied().unwrap_or(f64::NAN),
        verdict(p99 < TARGET_LAG_P99_MS)
    );
    println!(
        "  server RSS                      median {rss_median:.0} MiB, peak {rss_peak:.0} MiB ({} updates measured)",
        lags.len()
    );
    Ok(())
}
