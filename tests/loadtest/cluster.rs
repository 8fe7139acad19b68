//! The deployment under load: server and worker processes the tool starts
//! on a fresh PostgreSQL database (release build, loopback only), or a
//! deployment someone else runs, named by URL. Also the samplers that watch
//! it: database connections from `pg_stat_activity` and each process's RSS.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use tenantkit::auth::{JwtKeys, TokenRole};

/// The HS256 secret of a deployment the tool starts.
const SECRET: &str = "loadtest-secret-loadtest-secret-loadtest";
/// Its webhook sealing key (base64 of 32 bytes).
const WEBHOOK_KEY: &str = "dGVuYW50a2l0LWxvYWR0ZXN0LXdlYmhvb2sta2V5MzI=";
/// Each server's and worker's database pool (the default).
pub(crate) const POOL: u32 = 10;

/// A process the tool started.
struct Process {
    name: String,
    child: Child,
}

/// Servers (and workers) to load.
pub(crate) struct Cluster {
    /// Each server's base URL; requests are spread over them.
    pub(crate) bases: Vec<String>,
    /// Mints tokens the deployment accepts.
    pub(crate) keys: JwtKeys,
    /// A superuser/owner URL of the database, when the tool can see it.
    pub(crate) admin_url: Option<String>,
    processes: Vec<Process>,
    _dir: Option<tempfile::TempDir>,
}

/// How to start a deployment.
pub(crate) struct Start<'a> {
    /// The `tenantkit-server` binary.
    pub(crate) binary: &'a Path,
    /// Superuser/owner URL of any database on the server.
    pub(crate) pg_url: &'a str,
    /// The database to make anew.
    pub(crate) database: &'a str,
    /// Server processes (`serve`), and worker processes (`worker`); with no
    /// worker, the servers deliver webhooks themselves.
    pub(crate) servers: usize,
    pub(crate) workers: usize,
    /// Make the database anew (else keep its data and only migrate).
    pub(crate) fresh: bool,
}

impl Cluster {
    /// A deployment at `urls`, whose tokens `secret` signs (HS256).
    pub(crate) fn remote(
        urls: Vec<String>,
        secret: &str,
        admin_url: Option<String>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            bases: urls
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            keys: JwtKeys::hs256(secret.as_bytes()).context("--jwt-secret")?,
            admin_url,
            processes: Vec::new(),
            _dir: None,
        })
    }

    /// A fresh database, migrated by `tenantkit-server migrate`, served by
    /// `start.servers` release processes as the runtime role.
    pub(crate) async fn start(start: Start<'_>) -> anyhow::Result<Self> {
        let admin_url = if start.fresh {
            fresh_database(start.pg_url, start.database).await?
        } else {
            database_url(start.pg_url, start.database)?
        };
        let dir = tempfile::tempdir()?;
        let http = reqwest::Client::new();
        let mut cluster = Self {
            bases: Vec::new(),
            keys: JwtKeys::hs256(SECRET.as_bytes())?,
            admin_url: Some(admin_url.clone()),
            processes: Vec::new(),
            _dir: None,
        };
        let deliver_in_serve = start.workers == 0;
        let migrate_config = write_config(dir.path(), "migrate", &admin_url, 0, true)?;
        let status = Command::new(start.binary)
            .args(["--config", path_str(&migrate_config), "migrate"])
            .env("TENANTKIT_LOG", "warn")
            .stdout(Stdio::null())
            .status()
            .context("running tenantkit-server migrate")?;
        if !status.success() {
            bail!("tenantkit-server migrate failed: {status}");
        }
        for n in 1..=start.servers {
            let port = free_port()?;
            let name = format!("server-{n}");
            let config = write_config(dir.path(), &name, &admin_url, port, deliver_in_serve)?;
            cluster.spawn(start.binary, &name, &config, "serve")?;
            let base = format!("http://127.0.0.1:{port}");
            wait_ready(&http, &base).await?;
            cluster.bases.push(base);
        }
        for n in 1..=start.workers {
            let name = format!("worker-{n}");
            let config = write_config(dir.path(), &name, &admin_url, 0, true)?;
            cluster.spawn(start.binary, &name, &config, "worker")?;
        }
        cluster._dir = Some(dir);
        Ok(cluster)
    }

    fn spawn(
        &mut self,
        binary: &Path,
        name: &str,
        config: &Path,
        command: &str,
    ) -> anyhow::Result<()> {
        let log = std::fs::File::create(config.with_extension("log"))?;
        let child = Command::new(binary)
            .args(["--config", path_str(config), command])
            .env("TENANTKIT_LOG", "warn")
            // Names the process's database connections in pg_stat_activity.
            .env("PGAPPNAME", format!("loadtest-{name}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        self.processes.push(Process {
            name: name.to_owned(),
            child,
        });
        Ok(())
    }

    /// The processes the tool started: name and pid.
    pub(crate) fn pids(&self) -> Vec<(String, u32)> {
        self.processes
            .iter()
            .map(|p| (p.name.clone(), p.child.id()))
            .collect()
    }

    /// Each started process's peak RSS over its whole life (the kernel's
    /// high-water mark), MiB.
    pub(crate) fn lifetime_peak_rss(&self) -> BTreeMap<String, f64> {
        self.pids()
            .into_iter()
            .filter_map(|(name, pid)| Some((name, rss_mib(pid, "VmHWM:")?)))
            .collect()
    }

    /// A platform-admin token.
    pub(crate) fn admin_token(&self) -> String {
        self.keys
            .issue("loadtest", None, TokenRole::PlatformAdmin, 24 * 3600)
            .expect("an admin token")
    }

    /// Stops every process (SIGTERM, then SIGKILL after 20 s).
    pub(crate) async fn stop(mut self) {
        for p in &self.processes {
            let _ = Command::new("kill").arg(p.child.id().to_string()).status();
        }
        for p in &mut self.processes {
            for _ in 0..200 {
                if p.child.try_wait().ok().flatten().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if p.child.try_wait().ok().flatten().is_none() {
                eprintln!("{} did not stop in 20 s; killing it", p.name);
                let _ = p.child.kill();
                let _ = p.child.wait();
            }
        }
    }
}

/// The config file of process `name`: `port` 0 for one that serves no HTTP.
fn write_config(
    dir: &Path,
    name: &str,
    owner_url: &str,
    port: u16,
    deliver: bool,
) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{name}.toml"));
    let port = if port == 0 { free_port()? } else { port };
    std::fs::write(
        &path,
        format!(
            "# Written by tenantkit-loadtest.\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [database]\nurl = \"{owner_url}\"\nmax_connections = {POOL}\ndata_dir = \"{data}\"\n\n\
             [auth]\njwt_secret = \"{SECRET}\"\n\n\
             # Load comes from one address and a few tenants at a time.\n\
             [rate_limit]\nper_tenant_per_minute = 1000000\nper_ip_per_minute = 100000000\n\n\
             # Every tenant gets API access and webhooks.\n\
             [billing]\ndefault_plan = \"enterprise\"\n\n\
             [webhooks]\nsecret_keys = [\"{WEBHOOK_KEY}\"]\nallow_http = true\n\
             allow_networks = [\"127.0.0.1/32\"]\nworker = {deliver}\ndeliveries_per_minute = 0\n",
            data = dir.join(format!("{name}-data")).display(),
        ),
    )?;
    Ok(path)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// Drops and makes database `name` on the server of `admin` (a
/// superuser/owner URL); its URL.
async fn fresh_database(admin: &str, name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        name.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "--database must be a plain lower-case identifier"
    );
    let pool = sqlx::PgPool::connect(admin)
        .await
        .with_context(|| format!("connecting to {}", tenantkit::store::redact_url(admin)))?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
    }
    pool.close().await;
    database_url(admin, name)
}

/// `admin` with its database replaced by `name`.
fn database_url(admin: &str, name: &str) -> anyhow::Result<String> {
    let (prefix, _) = admin.rsplit_once('/').context("a database URL")?;
    Ok(format!("{prefix}/{name}"))
}

async fn wait_ready(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..600 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{base} did not become ready in 60 s")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`) in MiB.
pub(crate) fn rss_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Peaks seen by the [`Sampler`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Peaks {
    /// Database connections: all of the database's, and per process
    /// (by `application_name`).
    pub(crate) connections: u64,
    pub(crate) connections_by_process: BTreeMap<String, u64>,
    /// Resident memory per process, MiB (sampled, and the kernel's
    /// high-water mark).
    pub(crate) rss_mib: BTreeMap<String, f64>,
}

/// Samples database connections and process memory every 250 ms.
pub(crate) struct Sampler {
    peaks: Arc<Mutex<Peaks>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub(crate) async fn start(cluster: &Cluster) -> anyhow::Result<Self> {
        let pool = match &cluster.admin_url {
            Some(url) => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(url)
                    .await?,
            ),
            None => None,
        };
        let pids = cluster.pids();
        let peaks = Arc::new(Mutex::new(Peaks::default()));
        let task = {
            let peaks = peaks.clone();
            tokio::spawn(async move {
                loop {
                    let mut sample = Peaks::default();
                    if let Some(pool) = &pool {
                        // Every client of this database but the sampler itself.
                        let rows: Vec<(String, i64)> = sqlx::query_as(
                            "SELECT application_name, count(*) FROM pg_stat_activity \
                             WHERE datname = current_database() AND pid <> pg_backend_pid() \
                             GROUP BY application_name",
                        )
                        .fetch_all(pool)
                        .await
                        .unwrap_or_default();
                        for (app, n) in rows {
                            sample.connections += n as u64;
                            let name = app.strip_prefix("loadtest-").unwrap_or("other").to_owned();
                            *sample.connections_by_process.entry(name).or_default() += n as u64;
                        }
                    }
                    for (name, pid) in &pids {
                        if let Some(mib) = rss_mib(*pid, "VmRSS:") {
                            sample.rss_mib.insert(name.clone(), mib);
                        }
                    }
                    peaks.lock().expect("not poisoned").merge(&sample);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            })
        };
        Ok(Self { peaks, task })
    }

    /// The peaks sampled so far.
    pub(crate) fn peaks(&self) -> Peaks {
        self.peaks.lock().expect("not poisoned").clone()
    }

    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

impl Peaks {
    fn merge(&mut self, sample: &Peaks) {
        self.connections = self.connections.max(sample.connections);
        for (k, v) in &sample.connections_by_process {
            let e = self.connections_by_process.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
        for (k, v) in &sample.rss_mib {
            let e = self.rss_mib.entry(k.clone()).or_default();
            *e = e.max(*v);
        }
    }

    /// The most connections any one started process held.
    pub(crate) fn max_per_process(&self) -> u64 {
        self.connections_by_process
            .iter()
            .filter(|(k, _)| k.starts_with("server-") || k.starts_with("worker-"))
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0)
    }
}
