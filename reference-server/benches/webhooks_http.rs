//! Webhooks published through the HTTP API, end to end, beside the targets.
//!
//! ```text
//! cargo bench -p tenantkit-server --bench webhooks_http
//! ```
//!
//! On a fresh PostgreSQL database (migrated by `migrate`, served as the
//! runtime role): 120 tenants, each with an API key of scope
//! `webhooks:publish` and one endpoint at a receiver on loopback that this
//! bench runs, which verifies every Standard Webhooks signature and counts
//! duplicates. One `tenantkit-server serve` process (release build,
//! delivering too, as one Svix server does) takes `POST /webhooks/messages`
//! at a fixed rate, open loop (default 1,200 messages/s = 72,000/min, for
//! 60 s), each request one message for one tenant in turn, authenticated
//! by that tenant's key; the publisher, the receiver, the server and
//! PostgreSQL share the machine's cores. Printed beside the targets
//! (60,000 deliveries/min, p99 publish to delivery under 1 s, no
//! duplicate, none lost):
//!
//! - deliveries per minute, from the first publish to the last delivery;
//! - the API's latency p50/p99, from when each request was due (latency
//!   correction: a stalled server cannot hide its queue);
//! - publish-to-delivery lag p50/p99: from when the request was due (its
//!   `data.sent_us`) to the delivery's arrival, verified;
//! - duplicates, bad signatures, and accepted messages never delivered;
//! - peak connections: database clients, HTTP connections to the API and
//!   from the worker to the receiver;
//! - peak RSS of each process (server, worker when apart, this bench).
//!
//! Settings (environment): `TENANTKIT_BENCH_PG_URL` (owner/superuser URL,
//! default `postgres://postgres@127.0.0.1:5432/test`), `TENANTKIT_BENCH_RATE`
//! (messages/s), `TENANTKIT_BENCH_SECS`, `TENANTKIT_BENCH_TENANTS`,
//! `TENANTKIT_BENCH_WORKER=process` (deliver from a separate
//! `tenantkit-server worker` process instead of the server's own worker),
//! `TENANTKIT_BENCH_POOL` (the server's `database.max_connections`,
//! default 10).

mod common;

use std::{
    collections::HashSet,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
};
use common::{env_or, rss_mib};
use tenantkit::{NewApiKey, NewTenant, Scope, audit::Actor};
use tenantkit_server::config::Config;
use tenantkit_webhooks::NewWebhook;

const TARGET_PER_MIN: f64 = 60_000.0;
const TARGET_LAG_P99_MS: f64 = 1_000.0;
const SECRET: &str = "bench-secret-bench-secret-bench-secret";
const KEY: &str = "dGVuYW50a2l0LWJlbmNoLXdlYmhvb2sta2V5LTMyYnk=";

/// What the receiver saw.
struct Seen {
    /// Verifiers by endpoint number (`/t/{n}`).
    verifiers: Vec<standardwebhooks::Webhook>,
    ids: Mutex<HashSet<String>>,
    seqs: Mutex<HashSet<u64>>,
    lag_us: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    bad_signatures: AtomicU64,
    last_at: Mutex<Option<Instant>>,
}

fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

async fn receive(
    State(seen): State<Arc<Seen>>,
    Path(n): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = unix_us();
    let Some(verifier) = seen.verifiers.get(n) else {
        return StatusCode::NOT_FOUND;
    };
    if verifier.verify(&body, &headers).is_err() {
        seen.bad_signatures.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !seen.ids.lock().unwrap().insert(id) {
        seen.duplicates.fetch_add(1, Ordering::Relaxed);
        return StatusCode::NO_CONTENT;
    }
    let message: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if let (Some(seq), Some(sent)) = (
        message["data"]["seq"].as_u64(),
        message["data"]["sent_us"].as_u64(),
    ) {
        seen.seqs.lock().unwrap().insert(seq);
        seen.lag_us.lock().unwrap().push(now.saturating_sub(sent));
    }
    seen.delivered.fetch_add(1, Ordering::Relaxed);
    *seen.last_at.lock().unwrap() = Some(Instant::now());
    StatusCode::NO_CONTENT
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// Established TCP connections to each of `ports` (their local side), seen
/// from this machine: one read of `/proc/net/tcp`, which the kernel writes
/// out whole each time (a cost the measured processes share), so the
/// sampler reads it once a second.
fn established<const N: usize>(ports: [u16; N]) -> [u64; N] {
    let mut counts = [0; N];
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return counts;
    };
    let ports = ports.map(|port| format!(":{port:04X}"));
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 3 && fields[3] == "01" {
            for (count, port) in counts.iter_mut().zip(&ports) {
                *count += u64::from(fields[1].ends_with(port.as_str()));
            }
        }
    }
    counts
}

fn kill(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rate: u64 = env_or("TENANTKIT_BENCH_RATE", 1_200);
    let secs: u64 = env_or("TENANTKIT_BENCH_SECS", 60);
    let tenants: usize = env_or("TENANTKIT_BENCH_TENANTS", 120);
    let separate_worker = std::env::var("TENANTKIT_BENCH_WORKER").is_ok_and(|v| v == "process");

    let db_name = "tenantkit_bench_webhooks_http";
    let (owner_url, _) = common::migrated_database(db_name, SECRET, KEY).await?;
    let dir = tempfile::tempdir()?;
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_port = receiver.local_addr()?.port();
    let port = common::free_port()?;

    // One configuration file for the seeding below and the processes.
    let config_file = dir.path().join("tenantkit.toml");
    std::fs::write(
        &config_file,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [database]\nurl = \"{owner_url}\"\ndata_dir = \"{data}\"\nmax_connections = {pool}\n\n\
             [auth]\njwt_secret = \"{SECRET}\"\n\n\
             [rate_limit]\nper_tenant_per_minute = 100000000\nper_ip_per_minute = 100000000\n\n\
             [billing]\ndefault_plan = \"enterprise\"\n\n\
             [webhooks]\nsecret_keys = [\"{KEY}\"]\nallow_http = true\n\
             allow_networks = [\"127.0.0.1/32\"]\nworker = {in_server}\n\
             # No per-tenant delivery budget: the bench measures the pipeline.\n\
             deliveries_per_minute = 0\n\n\
             [[webhooks.event_types]]\nname = \"bench.ping\"\n\
             description = \"A message of the HTTP publishing bench\"\n\
             schema = {{ type = \"object\", required = [\"seq\", \"sent_us\"], \
             additionalProperties = false, properties = {{ seq = {{ type = \"integer\", minimum = 0 }}, \
             sent_us = {{ type = \"integer\", minimum = 0 }} }} }}\n\
             example = {{ seq = 0, sent_us = 1765000000000000 }}\n",
            data = dir.path().join("data").display(),
            in_server = !separate_worker,
            pool = env_or("TENANTKIT_BENCH_POOL", 10),
        ),
    )?;
    let config = Config::load(Some(&config_file))?;

    // Tenants, each with a publishing key and an endpoint at the receiver.
    let db = tenantkit_server::open_runtime_db(&config).await?;
    let webhooks = tenantkit_server::webhooks::build(&config)?;
    let mut keys = Vec::with_capacity(tenants);
    let mut verifiers = Vec::with_capacity(tenants);
    let seeding = Instant::now();
    for i in 0..tenants {
        let (tenant, _) = tenantkit_server::create_tenant(
            &db,
            &NewTenant {
                name: format!("Bench {i}"),
                subdomain: format!("bench-{i}"),
            },
            Some(format!("owner{i}@bench.test")),
            &Actor::System,
        )
        .await?;
        let ctx = db.resolve_id(tenant.id).await?.expect("just created");
        let mut tx = db.begin(&ctx).await?;
        let key = tx
            .create_api_key(&NewApiKey {
                name: "publisher".into(),
                scopes: vec![Scope::WebhooksPublish],
            })
            .await?;
        let endpoint = webhooks
            .create(
                &mut tx,
                &NewWebhook {
                    url: format!("http://127.0.0.1:{receiver_port}/t/{i}"),
                    event_types: vec!["bench.ping".into()],
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("an endpoint: {e}"))?;
        tx.commit().await?;
        keys.push((tenant.id.to_string(), key.key));
        verifiers.push(standardwebhooks::Webhook::new(&endpoint.secret)?);
    }
    db.close().await;
    println!(
        "{tenants} tenants with a key and an endpoint made in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let seen = Arc::new(Seen {
        verifiers,
        ids: Mutex::default(),
        seqs: Mutex::default(),
        lag_us: Mutex::default(),
        delivered: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        bad_signatures: AtomicU64::new(0),
        last_at: Mutex::new(None),
    });
    let app = Router::new()
        .route("/t/{n}", post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(receiver, app).await });

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1024)
        .build()?;
    let spawn = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_tenantkit-server"))
            .args(["--config", config_file.to_str().unwrap(), command])
            .current_dir(dir.path())
            .env("TENANTKIT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    };
    let mut server = spawn("serve")?;
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..300 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(ready, "the server did not become ready");
    let mut worker = if separate_worker {
        Some(spawn("worker")?)
    } else {
        None
    };

    // Peaks, sampled while it runs.
    let peaks = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let sampler = {
        let peaks = peaks.clone();
        let admin = std::env::var("TENANTKIT_BENCH_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let pool = sqlx::PgPool::connect(&admin).await?;
        tokio::spawn(async move {
            loop {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                     AND backend_type = 'client backend'",
                )
                .bind(db_name)
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
                peaks[0].fetch_max(n as u64, Ordering::Relaxed);
                let [api, receiver] = established([port, receiver_port]);
                peaks[1].fetch_max(api, Ordering::Relaxed);
                peaks[2].fetch_max(receiver, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // Open loop: every 10 ms, that tick's requests are due, whatever the
    // answers' speed; each latency counts from when its request was due.
    println!(
        "publishing {rate} messages/s over HTTP for {secs} s to {tenants} tenants ({} process{})",
        if separate_worker { 2 } else { 1 },
        if separate_worker {
            "es: server and worker"
        } else {
            ": the server delivers"
        }
    );
    let keys = Arc::new(keys);
    let api_us: Arc<Mutex<Vec<u64>>> = Arc::default();
    let accepted: Arc<Mutex<Vec<u64>>> = Arc::default();
    let refused = Arc::new(AtomicU64::new(0));
    let tick = Duration::from_millis(10);
    let per_tick = rate as f64 * tick.as_secs_f64();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = tokio::task::JoinSet::new();
    let mut seq = 0u64;
    let mut due_total = 0.0f64;
    let mut report = Instant::now() + Duration::from_secs(10);
    while started.elapsed() < Duration::from_secs(secs) {
        let due_at = ticks.tick().await.into_std();
        due_total += per_tick;
        while (seq as f64) < due_total {
            let (tenant, key) = keys[seq as usize % keys.len()].clone();
            let body = serde_json::json!({
                "event_type": "bench.ping",
                "data": { "seq": seq, "sent_us": unix_us() - due_at.elapsed().as_micros() as u64 },
            });
            let request = http
                .post(format!("{base}/webhooks/messages"))
                .header("x-tenant-id", tenant)
                .bearer_auth(key)
                .json(&body);
            let (api_us, accepted, refused) = (api_us.clone(), accepted.clone(), refused.clone());
            let n = seq;
            requests.spawn(async move {
                match request.send().await {
                    Ok(res) if res.status() == 202 => {
                        api_us
                            .lock()
                            .unwrap()
                            .push(due_at.elapsed().as_micros() as u64);
                        accepted.lock().unwrap().push(n);
                    }
                    Ok(res) => {
                        if refused.fetch_add(1, Ordering::Relaxed) < 5 {
                            let status = res.status();
                            eprintln!(
                                "  refused: {status} {}",
                                res.text().await.unwrap_or_default()
                            );
                        }
                    }
                    Err(e) => {
                        if refused.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("  failed: {e}");
                        }
                    }
                }
            });
            seq += 1;
        }
        while requests.try_join_next().is_some() {}
        if Instant::now() >= report {
            report += Duration::from_secs(10);
            println!(
                "  {:>3} s: sent {seq}, accepted {}, delivered {}",
                started.elapsed().as_secs(),
                accepted.lock().unwrap().len(),
                seen.delivered.load(Ordering::Relaxed)
            );
        }
    }
    while requests.join_next().await.is_some() {}
    let accepted: Vec<u64> = accepted.lock().unwrap().clone();
    println!(
        "sent {seq} in {:.1} s, {} accepted; waiting for the deliveries",
        started.elapsed().as_secs_f64(),
        accepted.len()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.delivered.load(Ordering::Relaxed) < accepted.len() as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Late duplicates would show within a second or two.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sampler.abort();
    let rss_server = rss_mib(server.id(), "VmHWM:");
    let rss_worker = worker.as_ref().and_then(|w| rss_mib(w.id(), "VmHWM:"));
    let rss_bench = rss_mib(std::process::id(), "VmHWM:");
    kill(&mut server);
    if let Some(w) = worker.as_mut() {
        kill(w);
    }

    let delivered = seen.delivered.load(Ordering::Relaxed);
    let missing = {
        let seqs = seen.seqs.lock().unwrap();
        accepted.iter().filter(|n| !seqs.contains(n)).count()
    };
    let last = seen.last_at.lock().unwrap().unwrap_or_else(Instant::now);
    let per_min = delivered as f64 / last.duration_since(started).as_secs_f64() * 60.0;
    let mut api = api_us.lock().unwrap().clone();
    api.sort_unstable();
    let mut lag = seen.lag_us.lock().unwrap().clone();
    lag.sort_unstable();
    let verdict = |met: bool| if met { "met" } else { "NOT MET" };
    println!();
    println!(
        "webhooks published over HTTP, PostgreSQL, {tenants} tenants, {rate} messages/s offered"
    );
    println!(
        "  deliveries/min      {per_min:>10.0}   target {TARGET_PER_MIN:.0}  {}",
        verdict(per_min >= TARGET_PER_MIN)
    );
    println!(
        "  API latency p50     {:>10.1} ms  (POST /webhooks/messages, from when due)",
        percentile_ms(&api, 0.50)
    );
    println!(
        "  API latency p99     {:>10.1} ms",
        percentile_ms(&api, 0.99)
    );
    println!(
        "  lag p50             {:>10.1} ms  (publish due to verified delivery)",
        percentile_ms(&lag, 0.50)
    );
    let lag_p99 = percentile_ms(&lag, 0.99);
    println!(
        "  lag p99             {lag_p99:>10.1} ms  target < {TARGET_LAG_P99_MS:.0}  {}",
        verdict(lag_p99 < TARGET_LAG_P99_MS)
    );
    println!(
        "  lag max             {:>10.1} ms",
        percentile_ms(&lag, 1.0)
    );
    let duplicates = seen.duplicates.load(Ordering::Relaxed);
    let bad = seen.bad_signatures.load(Ordering::Relaxed);
    println!(
        "  accepted            {:>10}   of {seq} sent ({} refused or failed)",
        accepted.len(),
        refused.load(Ordering::Relaxed)
    );
    println!(
        "  delivered           {delivered:>10}   lost {missing}  target 0  {}",
        verdict(missing == 0)
    );
    println!(
        "  duplicates          {duplicates:>10}   target 0  {}",
        verdict(duplicates == 0)
    );
    println!(
        "  bad signatures      {bad:>10}   target 0  {}",
        verdict(bad == 0)
    );
    println!(
        "  connections         {:>10}   database clients (peak)",
        peaks[0].load(Ordering::Relaxed)
    );
    println!(
        "                      {:>10}   HTTP to the API (peak)",
        peaks[1].load(Ordering::Relaxed)
    );
    println!(
        "                      {:>10}   HTTP from the worker to the receiver (peak)",
        peaks[2].load(Ordering::Relaxed)
    );
    let show = |name: &str, mib: Option<f64>| match mib {
        Some(mib) => println!("  peak RSS            {mib:>10.1} MiB  {name}"),
        None => println!("  peak RSS            {:>10}       {name}", "unknown"),
    };
    show("server (tenantkit-server serve)", rss_server);
    if separate_worker {
        show("worker (tenantkit-server worker)", rss_worker);
    }
    show("this bench (publisher and receiver)", rss_bench);
    Ok(())
}
