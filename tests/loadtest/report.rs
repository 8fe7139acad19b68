//! The report: every figure beside the seed's target and ours, the
//! details of each scenario, and SVG charts, written as Markdown.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{
    analytics::{self, AtSize},
    api::ApiRun,
    chart::{self, Line},
    cluster::{POOL, Peaks},
    engine::{RunStats, ms},
    reference::Reference,
    webhooks::Period,
};

/// A webhook step is kept up with when everything published arrived within
/// this many seconds after publishing stopped.
pub(crate) const KEPT_UP_WITHIN_SECS: f64 = 5.0;

/// The targets: the seed's (what the platform promises at least) and ours.
const API_SEED_P95_MS: f64 = 200.0;
const API_OURS_P99_MS: f64 = 10.0;
const QUERY_SEED_MS_AT_1M: f64 = 1000.0;
const QUERY_OURS_P95_MS_AT_10M: f64 = 50.0;
const WEBHOOKS_SEED_PER_MIN: f64 = 10_000.0;
const WEBHOOKS_OURS_PER_MIN: f64 = 120_000.0;
const CONNECTIONS_SEED: u64 = 100;
const CONNECTIONS_OURS_PER_PROCESS: u64 = 20;
const RSS_SEED_MIB: f64 = 2048.0;
const RSS_OURS_MIB: f64 = 150.0;

/// Where the optimisation log lives in the report; kept across runs.
const LOG_START: &str = "<!-- optimisations: kept from run to run; edit by hand -->";
const LOG_END: &str = "<!-- end of optimisations -->";

/// The machine the run was on.
#[derive(Default)]
pub(crate) struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: f64,
    kernel: String,
    postgres: String,
    commit: String,
}

impl Machine {
    /// Reads what the machine and the database say about themselves.
    pub(crate) async fn fill(&mut self, admin_url: Option<&str>) {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        self.cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split(':')
                    .nth(1)
                    .map(|s| s.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        self.cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        self.memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
        self.kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        if let Some(url) = admin_url
            && let Ok(pool) = sqlx::PgPool::connect(url).await
        {
            self.postgres = sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&pool)
                .await
                .unwrap_or_default();
            pool.close().await;
        }
        self.commit = std::process::Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
    }
}

/// How the tenants were made.
pub(crate) struct Seeding {
    pub(crate) tenants: usize,
    pub(crate) members: usize,
    pub(crate) took: Duration,
}

/// The webhook scenario.
pub(crate) struct WebhookResults {
    /// How the messages were published.
    pub(crate) publish: crate::webhooks::Publish,
    pub(crate) sustained: Period,
    pub(crate) steps: Vec<Period>,
    pub(crate) retries: Option<u64>,
    pub(crate) dead_letters: u64,
}

impl WebhookResults {
    /// The highest rate kept up with: the sustained one and each step.
    fn max_sustained(&self) -> Option<&Period> {
        std::iter::once(&self.sustained)
            .chain(&self.steps)
            .filter(|p| p.kept_up(KEPT_UP_WITHIN_SECS) && p.publish_failed == 0)
            .max_by(|a, b| a.delivered_per_min.total_cmp(&b.delivered_per_min))
    }
}

/// Scenario 4.
pub(crate) struct ScaleOut {
    pub(crate) servers: usize,
    pub(crate) workers: usize,
    pub(crate) api: ApiRun,
    pub(crate) webhooks: Period,
    pub(crate) retries: Option<u64>,
    pub(crate) dead_letters: u64,
    pub(crate) peaks: Peaks,
}

/// Everything measured.
pub(crate) struct Results {
    pub(crate) command: String,
    pub(crate) remote: bool,
    pub(crate) machine: Machine,
    pub(crate) seeding: Option<Seeding>,
    pub(crate) api: Option<(ApiRun, Peaks)>,
    pub(crate) reference: Option<Reference>,
    pub(crate) analytics: Option<(Vec<AtSize>, Peaks)>,
    pub(crate) webhooks: Option<(WebhookResults, Peaks)>,
    pub(crate) scale_out: Option<ScaleOut>,
    /// Each process's peak RSS over its life.
    pub(crate) lifetime_rss: BTreeMap<String, f64>,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

fn both(seed: bool, ours: bool) -> String {
    match (seed, ours) {
        (true, true) => "both met".into(),
        (true, false) => "seed met; **ours not met**".into(),
        (false, _) => "**seed not met**".into(),
    }
}

fn mib(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.0} MiB"))
}

impl Results {
    pub(crate) fn new(command: String, remote: bool) -> Self {
        Self {
            command,
            remote,
            machine: Machine::default(),
            seeding: None,
            api: None,
            reference: None,
            analytics: None,
            webhooks: None,
            scale_out: None,
            lifetime_rss: BTreeMap::new(),
        }
    }

    /// The figures beside both targets, as a Markdown table.
    pub(crate) fn summary(&self) -> String {
        let mut out = String::from(
            "| figure | measured | seed target | ours | verdict |\n|---|---|---|---|---|\n",
        );
        for row in self.rows() {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }

    /// Figure, measured, seed target, ours, verdict.
    fn rows(&self) -> Vec<[String; 5]> {
        let mut rows = Vec::new();
        if let Some((run, peaks)) = &self.api {
            rows.extend(api_rows("API mix", &run.stats));
            rows.extend(run.checks.iter().map(|c| {
                [
                    format!("API totals: {}", c.what),
                    format!("{} (expected {})", c.found, c.expected),
                    "equal".into(),
                    "equal".into(),
                    verdict(c.holds()).into(),
                ]
            }));
            rows.extend(resource_rows("API", peaks));
        }
        if let Some(r) = &self.reference {
            rows.push([
                "GET /users: server saturated ÷ pgbench on the same SQL".into(),
                format!(
                    "{:.0} req/s ÷ {:.0} tps = {:.0} %",
                    r.server_rps,
                    r.database_tps,
                    100.0 * r.server_rps / r.database_tps
                ),
                "—".into(),
                "—".into(),
                "reference".into(),
            ]);
        }
        if let Some((sizes, peaks)) = &self.analytics {
            for at in sizes {
                let size = analytics::human(at.events);
                rows.push([
                    format!("analytics ingestion up to {size} events"),
                    format!("{:.0} events/s", at.ingestion.rate()),
                    "—".into(),
                    "—".into(),
                    "measured".into(),
                ]);
                let worst_p95 = at
                    .queries
                    .routes
                    .values()
                    .map(|r| ms(&r.latency, 0.95))
                    .fold(0.0, f64::max);
                let worst_max = ms(&at.queries.all, 1.0);
                let ten = at.events >= 10_000_000;
                rows.push([
                    format!(
                        "analytics queries at {size} events: worst p95 / max over the 12 kinds"
                    ),
                    format!("{worst_p95:.1} / {worst_max:.1} ms"),
                    format!("< {QUERY_SEED_MS_AT_1M:.0} ms at 1M"),
                    if ten {
                        format!("p95 < {QUERY_OURS_P95_MS_AT_10M:.0} ms at 10M")
                    } else {
                        "—".into()
                    },
                    if ten {
                        both(
                            worst_max < QUERY_SEED_MS_AT_1M,
                            worst_p95 < QUERY_OURS_P95_MS_AT_10M,
                        )
                    } else {
                        verdict(worst_max < QUERY_SEED_MS_AT_1M).into()
                    },
                ]);
            }
            rows.extend(resource_rows("analytics", peaks));
        }
        if let Some((w, peaks)) = &self.webhooks {
            let s = &w.sustained;
            rows.push([
                format!(
                    "webhooks sustained {:.0}/min for {} s: delivered/min",
                    s.offered_per_min, s.seconds
                ),
                format!(
                    "{:.0}/min ({} of {} published)",
                    s.delivered_per_min, s.delivered, s.published
                ),
                format!("≥ {WEBHOOKS_SEED_PER_MIN:.0}/min"),
                "—".into(),
                verdict(
                    s.delivered_per_min >= WEBHOOKS_SEED_PER_MIN * 0.99
                        && s.kept_up(KEPT_UP_WITHIN_SECS),
                )
                .into(),
            ]);
            rows.push([
                "webhooks publish-to-delivery lag p50 / p99".into(),
                format!("{:.0} / {:.0} ms", ms(&s.lag, 0.5), ms(&s.lag, 0.99)),
                "—".into(),
                "—".into(),
                "measured".into(),
            ]);
            rows.push([
                "webhooks duplicates / bad signatures / retries / dead letters".into(),
                format!(
                    "{} / {} / {} / {}",
                    s.duplicates,
                    s.bad_signatures,
                    w.retries.map_or("n/a".into(), |r| r.to_string()),
                    w.dead_letters
                ),
                "0 / 0".into(),
                "0 / 0".into(),
                verdict(s.duplicates == 0 && s.bad_signatures == 0).into(),
            ]);
            let max = w.max_sustained().map_or(0.0, |p| p.delivered_per_min);
            rows.push([
                "webhooks: most kept up with (lag p99 ≤ 5 s, all delivered ≤ 5 s after publishing stopped)".into(),
                format!("{max:.0}/min"),
                format!("≥ {WEBHOOKS_SEED_PER_MIN:.0}/min"),
                format!("≥ {WEBHOOKS_OURS_PER_MIN:.0}/min"),
                both(
                    max >= WEBHOOKS_SEED_PER_MIN * 0.99,
                    max >= WEBHOOKS_OURS_PER_MIN * 0.99,
                ),
            ]);
            rows.extend(resource_rows("webhooks", peaks));
        }
        if let Some(s) = &self.scale_out {
            let label = format!("scale-out ({} servers, {} workers)", s.servers, s.workers);
            rows.extend(api_rows(&format!("{label} API mix"), &s.api.stats));
            let all_hold = s.api.checks.iter().all(|c| c.holds());
            rows.push([
                format!("{label}: API totals as on one process"),
                s.api
                    .checks
                    .iter()
                    .map(|c| format!("{} = {}", c.found, c.expected))
                    .collect::<Vec<_>>()
                    .join("; "),
                "equal".into(),
                "equal".into(),
                verdict(all_hold).into(),
            ]);
            let w = &s.webhooks;
            rows.push([
                format!(
                    "{label}: webhooks {:.0}/min, delivered / duplicates",
                    w.offered_per_min
                ),
                format!("{} of {} / {}", w.delivered, w.published, w.duplicates),
                "all, 0".into(),
                "all, 0".into(),
                verdict(w.delivered == w.published && w.duplicates == 0 && w.bad_signatures == 0)
                    .into(),
            ]);
            rows.extend(resource_rows(&label, &s.peaks));
        }
        rows
    }
}

fn api_rows(label: &str, stats: &RunStats) -> Vec<[String; 5]> {
    let (p95, p99) = (ms(&stats.all, 0.95), ms(&stats.all, 0.99));
    vec![
        [
            format!("{label}: p50 / p95 / p99 / max, all routes"),
            format!(
                "{:.1} / {p95:.1} / {p99:.1} / {:.1} ms",
                ms(&stats.all, 0.5),
                ms(&stats.all, 1.0)
            ),
            format!("p95 < {API_SEED_P95_MS:.0} ms"),
            format!("p99 < {API_OURS_P99_MS:.0} ms"),
            both(p95 < API_SEED_P95_MS, p99 < API_OURS_P99_MS),
        ],
        [
            format!("{label}: requests answered as expected / not"),
            format!(
                "{} / {} at {:.0} req/s offered",
                stats.succeeded(),
                stats.failed(),
                stats.rate
            ),
            "—".into(),
            "0 failed".into(),
            verdict(stats.failed() == 0).into(),
        ],
    ]
}

fn resource_rows(label: &str, peaks: &Peaks) -> Vec<[String; 5]> {
    let rss = peaks
        .rss_mib
        .values()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let per_process = peaks.max_per_process();
    vec![
        [
            format!("{label}: peak database connections, all / most by one process"),
            format!("{} / {per_process}", peaks.connections),
            format!("< {CONNECTIONS_SEED}"),
            format!("≤ {CONNECTIONS_OURS_PER_PROCESS} per process"),
            both(
                peaks.connections < CONNECTIONS_SEED,
                per_process <= CONNECTIONS_OURS_PER_PROCESS,
            ),
        ],
        [
            format!("{label}: peak RSS of any server/worker process"),
            mib(rss),
            format!("< {:.0} GB", RSS_SEED_MIB / 1024.0),
            format!("< {RSS_OURS_MIB:.0} MB"),
            match rss {
                Some(r) => both(r < RSS_SEED_MIB, r < RSS_OURS_MIB),
                None => "n/a (not started by the tool)".into(),
            },
        ],
    ]
}

/// Writes the report at `path` and its charts in `images/` beside it.
pub(crate) fn write(path: &Path, results: &Results) -> anyhow::Result<PathBuf> {
    let images = path.parent().unwrap_or(Path::new(".")).join("images");
    std::fs::create_dir_all(&images)?;
    let kept_log = std::fs::read_to_string(path).ok().and_then(|old| {
        let start = old.find(LOG_START)?;
        let end = old.find(LOG_END)?;
        Some(old[start + LOG_START.len()..end].trim().to_owned())
    });
    let mut md = String::new();
    let m = &results.machine;
    let _ = write!(
        md,
        "# Load test report\n\n\
         Written by `tenantkit-loadtest` (`tests/loadtest/`); run it with\n\n\
         ```text\ncargo run --release -p tenantkit-e2e --bin tenantkit-loadtest\n```\n\n\
         and see [load-testing.md](load-testing.md) for what it does and its settings.\n\n\
         ## Machine and settings\n\n\
         - Machine: {} ({} cores), {:.0} GiB, Linux {}; PostgreSQL {}; tenantkit at `{}`.\n\
         - Deployment: {}.\n\
         - Command: `tenantkit-loadtest {}`.\n\
         - Load generator, servers, workers, receiver and PostgreSQL all share the machine's cores.\n",
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        if m.postgres.is_empty() {
            "unknown"
        } else {
            &m.postgres
        },
        m.commit,
        if results.remote {
            "given by `--url` (not started by the tool)".to_owned()
        } else {
            format!(
                "`tenantkit-server` release build started by the tool on a fresh database, each process with a pool of {POOL} connections, served as the runtime role"
            )
        },
        results.command,
    );
    if let Some(s) = &results.seeding {
        let _ = writeln!(
            md,
            "- Seeded through the API in {:.0} s: {} tenants (`POST /tenants` with the first owner), {} members each (`POST /users`), an API key each (`POST /api-keys`).",
            s.took.as_secs_f64(),
            s.tenants,
            s.members
        );
    }
    md.push_str("\n## Every figure beside both targets\n\n");
    md.push_str(&results.summary());

    if let Some((run, _)) = &results.api {
        md.push_str("\n## Scenario 1: the API mix\n\n");
        let _ = writeln!(
            md,
            "Open loop at {:.0} req/s for {:.0} s (after a 5 s warm-up), over {} routes, JWTs (owners) and API keys; \
             latency from when each request was due (no coordinated omission), HDR histograms. \
             The pacer was at worst {:.1} ms late sending.\n",
            run.stats.rate,
            run.stats.elapsed.as_secs_f64(),
            run.stats.routes.len(),
            run.stats.worst_send_delay_us as f64 / 1000.0
        );
        md.push_str(&route_table(&run.stats));
        md.push_str(&checks_table(&run.checks));
        api_charts(&images, "api", "API mix, one server", &run.stats)?;
        md.push_str("\n![API latency per second](images/load-test-api-latency.svg)\n\n![API throughput](images/load-test-api-throughput.svg)\n");
    }
    if let Some(r) = &results.reference {
        let _ = write!(
            md,
            "\n## The database's own limit beside the server's\n\n\
             `pgbench` ran the statements of one `GET /users` (transaction, tenant scope, keyset query, rollback; \
             prepared) as the runtime role with {} connections (a server's pool) for {} s: **{:.0} tps**. \
             The server, driven closed loop on the same route and tenant by {} concurrent clients for {} s: \
             **{:.0} req/s** (p50 {:.1} ms, p99 {:.1} ms, {} failed), **{:.0} %** of the database's rate. \
             The difference is the platform: HTTP, JWT verification, tenant resolution, rate limits, the plan check, \
             the analytics layer counting the call, and JSON — and the load generator, which shares the cores.\n",
            r.connections,
            r.seconds,
            r.database_tps,
            r.concurrency,
            r.seconds,
            r.server_rps,
            ms(&r.server.all, 0.5),
            ms(&r.server.all, 0.99),
            r.server.failed(),
            100.0 * r.server_rps / r.database_tps,
        );
    }
    if let Some((sizes, _)) = &results.analytics {
        md.push_str("\n## Scenario 2: analytics\n\n");
        let _ = writeln!(
            md,
            "Events over HTTP in batches of {} from {} clients (closed loop; each batch acknowledged once committed with its rollups), \
             timestamps over the last 30 days, one tenant in five batches the big one (100,000 end users). \
             Queries open loop, each of 12 kinds in turn.\n",
            analytics::BATCH,
            analytics::CLIENTS
        );
        md.push_str("| ingestion phase | events | events/s | request p50 / p99 | 503 (retried) |\n|---|---|---|---|---|\n");
        for at in sizes {
            let i = &at.ingestion;
            let _ = writeln!(
                md,
                "| up to {} | {} | {:.0} | {:.0} / {:.0} ms | {} |",
                analytics::human(at.events),
                i.events,
                i.rate(),
                ms(&i.request.all, 0.5),
                ms(&i.request.all, 0.99),
                i.refused
            );
        }
        for at in sizes {
            let _ = writeln!(md, "\nQueries at {} events:\n", analytics::human(at.events));
            md.push_str(&route_table(&at.queries));
        }
        let lines: Vec<Line> = sizes
            .iter()
            .map(|at| {
                Line::new(
                    format!("up to {}", analytics::human(at.events)),
                    at.ingestion
                        .per_second
                        .iter()
                        .enumerate()
                        .map(|(s, n)| (s as f64, *n as f64))
                        .collect(),
                )
            })
            .collect();
        chart::lines(
            &images.join("load-test-analytics-ingestion.svg"),
            "Analytics ingestion, events acknowledged per second",
            "seconds into the phase",
            "events/s",
            &lines,
            false,
        )?;
        md.push_str("\n![Ingestion throughput](images/load-test-analytics-ingestion.svg)\n");
    }
    if let Some((w, _)) = &results.webhooks {
        md.push_str("\n## Scenario 3: webhooks\n\n");
        md.push_str(match w.publish {
            crate::webhooks::Publish::Patch => {
                "Each message is published by a real `PATCH /users/{id}` (it publishes `user.updated` in the same transaction). "
            }
            crate::webhooks::Publish::Http => {
                "Each message is published over HTTP by `POST /webhooks/messages` (the `user.updated` message itself, \
                 `--webhook-publish http`), as a service in any language would. "
            }
        });
        md.push_str(
            "The receiver verifies every signature (Standard Webhooks) and counts each `webhook-id` once; the lag runs from the \
             message's timestamp (taken in the publishing transaction) to its arrival.\n\n",
        );
        md.push_str(&periods_table(
            std::iter::once(&w.sustained).chain(&w.steps),
        ));
        let _ = writeln!(
            md,
            "\nRetried attempts: {}; dead letters: {}.",
            w.retries
                .map_or("n/a (no database access)".into(), |r| r.to_string()),
            w.dead_letters
        );
        webhook_chart(&images, "webhooks", &w.sustained)?;
        md.push_str("\n![Webhooks over time](images/load-test-webhooks.svg)\n\n![Webhook lag](images/load-test-webhooks-lag.svg)\n");
    }
    if let Some(s) = &results.scale_out {
        let _ = write!(
            md,
            "\n## Scenario 4: {} servers and {} workers on one database\n\n\
             The same API mix, spread round robin over the servers, then webhooks at the sustained rate; the \
             servers deliver nothing (`webhooks.worker = false`), the workers deliver.\n\n",
            s.servers, s.workers
        );
        md.push_str(&route_table(&s.api.stats));
        md.push_str(&checks_table(&s.api.checks));
        md.push('\n');
        md.push_str(&periods_table(std::iter::once(&s.webhooks)));
        let _ = writeln!(
            md,
            "\nRetried attempts (whole run): {}; dead letters: {}.",
            s.retries.map_or("n/a".into(), |r| r.to_string()),
            s.dead_letters
        );
        api_charts(&images, "scale-out", "API mix, two servers", &s.api.stats)?;
        md.push_str("\n![Scale-out API latency](images/load-test-scale-out-latency.svg)\n");
    }
    md.push_str("\n## Resources\n\n| scenario | peak connections (all) | by process | peak RSS by process |\n|---|---|---|---|\n");
    let mut peaks: Vec<(&str, &Peaks)> = Vec::new();
    if let Some((_, p)) = &results.api {
        peaks.push(("API", p));
    }
    if let Some((_, p)) = &results.analytics {
        peaks.push(("analytics", p));
    }
    if let Some((_, p)) = &results.webhooks {
        peaks.push(("webhooks", p));
    }
    if let Some(s) = &results.scale_out {
        peaks.push(("scale-out", &s.peaks));
    }
    for (label, p) in peaks {
        let by = |m: &BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} |",
            p.connections,
            by(&p
                .connections_by_process
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect()),
            by(&p
                .rss_mib
                .iter()
                .map(|(k, v)| (k.clone(), format!("{v:.0} MiB")))
                .collect()),
        );
    }
    if !results.lifetime_rss.is_empty() {
        md.push_str("\nPeak RSS over each process's whole life (kernel high-water mark, seeding included): ");
        md.push_str(
            &results
                .lifetime_rss
                .iter()
                .map(|(k, v)| format!("{k} {v:.0} MiB"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        md.push_str(".\n");
    }
    let _ = write!(
        md,
        "\n## Optimisations\n\n{LOG_START}\n\n{}\n\n{LOG_END}\n",
        kept_log.unwrap_or_else(|| "(none yet)".into())
    );
    std::fs::write(path, md)?;
    Ok(path.to_owned())
}

fn route_table(stats: &RunStats) -> String {
    let mut t = String::from(
        "| route | requests | p50 | p95 | p99 | max | unexpected answers |\n|---|---|---|---|---|---|---|\n",
    );
    for (route, r) in &stats.routes {
        let n: u64 = r.statuses.values().sum();
        let bad = if r.failed == 0 {
            "0".to_owned()
        } else {
            statuses(&r.statuses)
        };
        let _ = writeln!(
            t,
            "| `{route}` | {n} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} ms | {bad} |",
            ms(&r.latency, 0.5),
            ms(&r.latency, 0.95),
            ms(&r.latency, 0.99),
            ms(&r.latency, 1.0)
        );
    }
    let errors = stats.errors_by_status();
    let _ = writeln!(
        t,
        "| **all** | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} ms | {} |",
        stats.all.len(),
        ms(&stats.all, 0.5),
        ms(&stats.all, 0.95),
        ms(&stats.all, 0.99),
        ms(&stats.all, 1.0),
        stats.failed()
    );
    if !errors.is_empty() {
        let _ = writeln!(t, "\nErrors by status: {}.", statuses(&errors));
    }
    t
}

/// `503 × 2, no answer × 1`.
fn statuses(counts: &BTreeMap<u16, u64>) -> String {
    counts
        .iter()
        .map(|(status, n)| match status {
            0 => format!("no answer × {n}"),
            s => format!("{s} × {n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn checks_table(checks: &[crate::api::Check]) -> String {
    let mut t = String::from(
        "\nTotals read back through the API afterwards:\n\n| total | expected | found | |\n|---|---|---|---|\n",
    );
    for c in checks {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} |",
            c.what,
            c.expected,
            c.found,
            verdict(c.holds())
        );
    }
    t
}

fn periods_table<'a>(periods: impl Iterator<Item = &'a Period>) -> String {
    let mut t = String::from(
        "| period | offered | published (failed) | delivered | delivered/min | lag p50 / p99 / max | all in after | duplicates | bad signatures |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for p in periods {
        let _ = writeln!(
            t,
            "| {} ({} s) | {:.0}/min | {} ({}) | {} | {:.0} | {:.0} / {:.0} / {:.0} ms | {} | {} | {} |",
            p.label,
            p.seconds,
            p.offered_per_min,
            p.published,
            p.publish_failed,
            p.delivered,
            p.delivered_per_min,
            ms(&p.lag, 0.5),
            ms(&p.lag, 0.99),
            ms(&p.lag, 1.0),
            p.drained_after
                .map_or("not within the wait".into(), |s| format!("{s:.1} s")),
            p.duplicates,
            p.bad_signatures
        );
    }
    t
}

fn api_charts(images: &Path, name: &str, title: &str, stats: &RunStats) -> anyhow::Result<()> {
    // Whole seconds only: the last, partial one would look like a drop.
    let seconds = stats.elapsed.as_secs() as usize;
    let quantile = |q: f64| -> Vec<(f64, f64)> {
        stats
            .per_second
            .iter()
            .take(seconds)
            .enumerate()
            .filter(|(_, h)| !h.is_empty())
            .map(|(s, h)| (s as f64, ms(h, q)))
            .collect()
    };
    chart::lines(
        &images.join(format!("load-test-{name}-latency.svg")),
        &format!("{title}: latency per second (from when due)"),
        "seconds",
        "ms (log scale)",
        &[
            Line::new("p50", quantile(0.5)),
            Line::new("p95", quantile(0.95)),
            Line::new("p99", quantile(0.99)),
            Line::new("max", quantile(1.0)),
        ],
        true,
    )?;
    let mut done = stats.throughput();
    done.truncate(seconds);
    chart::lines(
        &images.join(format!("load-test-{name}-throughput.svg")),
        &format!("{title}: requests completed per second"),
        "seconds",
        "requests/s",
        &[
            Line::new(
                "completed",
                done.iter()
                    .enumerate()
                    .map(|(s, n)| (s as f64, *n as f64))
                    .collect(),
            ),
            Line::new(
                "offered",
                (0..done.len()).map(|s| (s as f64, stats.rate)).collect(),
            ),
        ],
        false,
    )
}

fn webhook_chart(images: &Path, name: &str, p: &Period) -> anyhow::Result<()> {
    // Whole seconds only: the last, partial one would look like a drop.
    let whole = &p.per_second[..p.per_second.len().saturating_sub(1)];
    let per_min: Vec<(f64, f64)> = whole
        .iter()
        .enumerate()
        .map(|(s, (n, _))| (s as f64, *n as f64 * 60.0))
        .collect();
    chart::lines(
        &images.join(format!("load-test-{name}.svg")),
        &format!(
            "Webhooks at {:.0}/min: deliveries (per second × 60)",
            p.offered_per_min
        ),
        "seconds",
        "deliveries/min",
        &[
            Line::new("delivered", per_min),
            Line::new(
                "offered",
                (0..whole.len())
                    .map(|s| (s as f64, p.offered_per_min))
                    .collect(),
            ),
        ],
        false,
    )?;
    chart::lines(
        &images.join(format!("load-test-{name}-lag.svg")),
        "Webhooks: publish-to-delivery lag p99 per second",
        "seconds",
        "ms (log scale)",
        &[Line::new(
            "lag p99",
            whole
                .iter()
                .enumerate()
                .filter(|(_, (n, _))| *n > 0)
                .map(|(s, (_, lag))| (s as f64, *lag))
                .collect(),
        )],
        true,
    )
}
