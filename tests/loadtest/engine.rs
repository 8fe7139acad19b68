//! The open-loop engine: requests leave at a fixed arrival rate whatever the
//! server's speed, and each latency is measured from when its request was
//! *due*, so a stalled server cannot hide its queue (no coordinated
//! omission). Latencies go into HDR histograms, per route and per second.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// What one request did: the route template and the answer's status (0 when
/// there was no answer: refused connection, timeout).
pub(crate) struct Outcome {
    pub(crate) route: &'static str,
    pub(crate) status: u16,
    /// Whether the status is the one the request expects.
    pub(crate) ok: bool,
}

/// Sends `request` and reads its answer whole: an [`Outcome`] of `route`,
/// which should answer `expect`.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    route: &'static str,
    expect: u16,
) -> Outcome {
    let status = match request.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            let _ = res.bytes().await;
            status
        }
        Err(_) => 0,
    };
    Outcome {
        route,
        status,
        ok: status == expect,
    }
}

/// Makes request `i` of a run and waits for its answer.
pub(crate) type Job =
    Arc<dyn Fn(u64) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

/// A latency histogram in microseconds, from 1 µs to 10 minutes.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Milliseconds at quantile `q` of a microsecond histogram.
pub(crate) fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return f64::NAN;
    }
    if q >= 1.0 {
        return h.max() as f64 / 1000.0;
    }
    h.value_at_quantile(q) as f64 / 1000.0
}

/// One route's figures.
#[derive(Clone)]
pub(crate) struct RouteStats {
    /// Latencies of answered requests (any status), µs from when due.
    pub(crate) latency: Histogram<u64>,
    /// Answers by status (0: no answer).
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Requests whose status was not the expected one.
    pub(crate) failed: u64,
}

/// Everything a run measured.
#[derive(Clone)]
pub(crate) struct RunStats {
    /// Per route template.
    pub(crate) routes: BTreeMap<&'static str, RouteStats>,
    /// All routes together.
    pub(crate) all: Histogram<u64>,
    /// Per second of the run (by completion): latencies of what completed.
    pub(crate) per_second: Vec<Histogram<u64>>,
    /// The arrival rate asked for, and how long the run was.
    pub(crate) rate: f64,
    pub(crate) elapsed: Duration,
    /// How late the pacer itself sent, at worst (µs): a busy load generator.
    pub(crate) worst_send_delay_us: u64,
}

impl RunStats {
    fn new(rate: f64, seconds: u64) -> Self {
        Self {
            routes: BTreeMap::new(),
            all: histogram(),
            per_second: (0..seconds + 30).map(|_| histogram()).collect(),
            rate,
            elapsed: Duration::ZERO,
            worst_send_delay_us: 0,
        }
    }

    fn record(&mut self, outcome: &Outcome, latency: Duration, second: usize) {
        let us = latency.as_micros().min(u128::from(u64::MAX)) as u64;
        let route = self
            .routes
            .entry(outcome.route)
            .or_insert_with(|| RouteStats {
                latency: histogram(),
                statuses: BTreeMap::new(),
                failed: 0,
            });
        *route.statuses.entry(outcome.status).or_default() += 1;
        if !outcome.ok {
            route.failed += 1;
        }
        if outcome.status != 0 {
            route.latency.saturating_record(us);
            self.all.saturating_record(us);
        }
        if let Some(h) = self.per_second.get_mut(second) {
            h.saturating_record(us);
        }
    }

    /// The figures of `route` when only its latencies are known.
    pub(crate) fn from_histogram(route: &'static str, latency: Histogram<u64>) -> Self {
        let mut stats = Self::new(0.0, 0);
        stats.all = latency.clone();
        stats.routes.insert(
            route,
            RouteStats {
                latency,
                statuses: BTreeMap::new(),
                failed: 0,
            },
        );
        stats
    }

    /// Requests answered with the expected status.
    pub(crate) fn succeeded(&self) -> u64 {
        self.routes
            .values()
            .map(|r| r.statuses.values().sum::<u64>() - r.failed)
            .sum()
    }

    /// Requests not answered with the expected status.
    pub(crate) fn failed(&self) -> u64 {
        self.routes.values().map(|r| r.failed).sum()
    }

    /// Completed requests per second of the run.
    pub(crate) fn throughput(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.per_second.iter().map(|h| h.len()).collect();
        while v.last() == Some(&0) {
            v.pop();
        }
        v
    }

    /// Every unexpected status with its count, over all routes.
    pub(crate) fn errors_by_status(&self) -> BTreeMap<u16, u64> {
        let mut out = BTreeMap::new();
        for r in self.routes.values() {
            if r.failed > 0 {
                for (status, n) in &r.statuses {
                    if !(200..300).contains(status) {
                        *out.entry(*status).or_default() += n;
                    }
                }
            }
        }
        out
    }
}

/// A progress bar for a phase of `len` steps. Where stderr is not a
/// terminal (a log, CI) the bar is hidden and [`done`] prints a line instead.
pub(crate) fn progress(label: &str, len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {msg}",
        )
        .expect("a valid template"),
    );
    bar.set_prefix(label.to_owned());
    bar
}

/// Ends a phase's bar, with a line in the log when the bar is hidden.
pub(crate) fn done(bar: &ProgressBar) {
    bar.finish();
    if bar.is_hidden() {
        eprintln!(
            "{:>14}: {} in {:.1} s",
            bar.prefix(),
            bar.position(),
            bar.elapsed().as_secs_f64()
        );
    }
}

/// Sends `rate` requests per second for `seconds`, request `i` made by
/// `job(first + i)`, and waits for the last answer.
///
/// The sends are paced by an OS thread (microsecond sleeps, not tokio's
/// millisecond timer), so each leaves when due; its latency counts from then.
pub(crate) async fn run(label: &str, rate: f64, seconds: u64, first: u64, job: Job) -> RunStats {
    let total = (rate * seconds as f64).round() as u64;
    let stats = Arc::new(Mutex::new(RunStats::new(rate, seconds)));
    let bar = progress(label, total);
    let runtime = tokio::runtime::Handle::current();
    let pacer = {
        let (stats, bar) = (stats.clone(), bar.clone());
        std::thread::spawn(move || {
            let interval = Duration::from_secs_f64(1.0 / rate);
            let start = Instant::now();
            let mut worst = Duration::ZERO;
            let mut tasks = Vec::with_capacity(total as usize);
            for i in 0..total {
                let due = start + interval.mul_f64(i as f64);
                match due.checked_duration_since(Instant::now()) {
                    Some(wait) => std::thread::sleep(wait),
                    None => worst = worst.max(due.elapsed()),
                }
                let (job, stats, bar) = (job.clone(), stats.clone(), bar.clone());
                tasks.push(runtime.spawn(async move {
                    let outcome = job(first + i).await;
                    let done = Instant::now();
                    let second = (done - start).as_secs() as usize;
                    stats
                        .lock()
                        .expect("not poisoned")
                        .record(&outcome, done - due, second);
                    bar.inc(1);
                }));
            }
            (tasks, start, worst)
        })
    };
    let (tasks, start, worst) = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .expect("the pacer thread")
        .expect("the pacer runs");
    for t in tasks {
        let _ = t.await;
    }
    done(&bar);
    let mut stats = stats.lock().expect("not poisoned").clone();
    stats.elapsed = start.elapsed();
    stats.worst_send_delay_us = worst.as_micros() as u64;
    stats
}

/// Sends requests back to back from `concurrency` tasks for `seconds`
/// (closed loop): the most the server answers. Returns requests per second
/// and the run's figures.
pub(crate) async fn saturate(
    label: &str,
    concurrency: usize,
    seconds: u64,
    job: Job,
) -> (f64, RunStats) {
    let stats = Arc::new(Mutex::new(RunStats::new(0.0, seconds)));
    let bar = progress(label, seconds);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (job, stats, next) = (job.clone(), stats.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let sent = Instant::now();
                let outcome = job(i).await;
                let done = Instant::now();
                stats.lock().expect("not poisoned").record(
                    &outcome,
                    done - sent,
                    (done - start).as_secs() as usize,
                );
            }
        }));
    }
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                bar.inc(1);
            }
        })
    };
    for t in tasks {
        let _ = t.await;
    }
    ticker.abort();
    done(&bar);
    let mut stats = stats.lock().expect("not poisoned").clone();
    stats.elapsed = start.elapsed();
    (
        stats.succeeded() as f64 / stats.elapsed.as_secs_f64(),
        stats,
    )
}
