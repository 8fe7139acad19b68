//! Prometheus metrics: request counts per tenant and status, and latencies.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures_util::future::BoxFuture;
use http::{Request, Response};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        histogram::Histogram,
    },
    registry::Registry,
};
use tenantkit::TenantContext;
use tower::{Layer, Service};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tenant: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
}

/// The server's metrics registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram>,
    retries: tenantkit::retry::Retries,
    panics: Counter,
    tasks: Arc<std::sync::OnceLock<crate::tasks::Supervisor>>,
    issuers: Arc<std::sync::OnceLock<TokenIssuers>>,
}

/// The verifiers of other issuers' tokens, whose key fetches are counted.
type TokenIssuers = (tenantkit::auth::Issuers, tenantkit::auth::TenantIssuers);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(None)
    }
}

/// The analytics writer's counters, read at each scrape.
#[derive(Debug)]
struct AnalyticsCollector(tenantkit_analytics::Analytics);

impl Collector for AnalyticsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        for (name, help, value) in [
            (
                "analytics_events_stored",
                "Analytics events committed",
                stats.stored,
            ),
            (
                "analytics_flushes",
                "Analytics writer flushes committed",
                stats.flushes,
            ),
            (
                "analytics_events_refused",
                "Analytics events refused with 503 (buffer full)",
                stats.refused,
            ),
            (
                "analytics_events_dropped",
                "api_call events dropped by AnalyticsLayer (buffer full)",
                stats.dropped,
            ),
            (
                "analytics_events_failed",
                "Analytics events whose flush failed (the caller was told)",
                stats.failed,
            ),
        ] {
            let counter = ConstCounter::new(value);
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// Each background task's restarts, read at each scrape.
#[derive(Debug)]
struct TasksCollector(Arc<std::sync::OnceLock<crate::tasks::Supervisor>>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task: String,
}

impl Collector for TasksCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(tasks) = self.0.get() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "task_restarts",
            "Times each background task was run again after it failed",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (task, restarts) in tasks.all_restarts() {
            let counter = ConstCounter::new(restarts);
            let labels = TaskLabels { task };
            let metric = family.encode_family(&labels)?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// Key-set fetches of trusted issuers and of tenants' own, read at each scrape.
#[derive(Debug)]
struct IssuersCollector(Arc<std::sync::OnceLock<TokenIssuers>>);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FetchLabels {
    issuers: &'static str,
    outcome: &'static str,
}

impl Collector for IssuersCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some((configured, tenants)) = self.0.get() else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(
            "issuer_key_fetches",
            "Fetches of identity providers' key sets: of the configured issuers or of tenants' own, succeeded or failed",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (issuers, fetches) in [
            ("configured", configured.key_fetches()),
            ("tenant", tenants.key_fetches()),
        ] {
            for (outcome, count) in [("succeeded", fetches.succeeded), ("failed", fetches.failed)] {
                let counter = ConstCounter::new(count);
                let labels = FetchLabels { issuers, outcome };
                let metric = family.encode_family(&labels)?;
                counter.encode(metric)?;
            }
        }
        Ok(())
    }
}

/// Requests run again because their transaction lost a race.
#[derive(Debug)]
struct RetriesCollector(tenantkit::retry::Retries);

impl Collector for RetriesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counter = ConstCounter::new(self.0.get());
        let metric = encoder.encode_descriptor(
            "transaction_retries",
            "Requests run again inside the server because their transaction deadlocked or hit a serialization failure",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

impl Metrics {
    /// A registry; with `analytics`, its writer's counters are exported too.
    pub fn new(analytics: Option<tenantkit_analytics::Analytics>) -> Self {
        let mut registry = Registry::with_prefix("tenantkit");
        let retries = tenantkit::retry::Retries::default();
        registry.register_collector(Box::new(RetriesCollector(retries.clone())));
        if let Some(analytics) = analytics {
            registry.register_collector(Box::new(AnalyticsCollector(analytics)));
        }
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by tenant (subdomain, or `none`) and status",
            requests.clone(),
        );
        let latency = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        let panics = Counter::default();
        registry.register(
            "http_handler_panics",
            "Requests whose handler panicked (answered 500)",
            panics.clone(),
        );
        let tasks = Arc::new(std::sync::OnceLock::new());
        registry.register_collector(Box::new(TasksCollector(tasks.clone())));
        let issuers = Arc::new(std::sync::OnceLock::new());
        registry.register_collector(Box::new(IssuersCollector(issuers.clone())));
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            retries,
            panics,
            tasks,
            issuers,
        }
    }

    /// Exports the key fetches of `configured` issuers and of `tenants`'
    /// own (`tenantkit_issuer_key_fetches_total{issuers, outcome}`).
    pub fn with_issuers(
        self,
        configured: tenantkit::auth::Issuers,
        tenants: tenantkit::auth::TenantIssuers,
    ) -> Self {
        let _ = self.issuers.set((configured, tenants));
        self
    }

    /// Exports `tasks`' restarts (`tenantkit_task_restarts_total{task}`).
    pub fn with_tasks(self, tasks: crate::tasks::Supervisor) -> Self {
        let _ = self.tasks.set(tasks);
        self
    }

    /// The count of requests run again after losing a race
    /// (`tenantkit_transaction_retries_total`), for
    /// [`tenantkit::retry::RetryContendedLayer::with_retries`].
    pub fn transaction_retries(&self) -> tenantkit::retry::Retries {
        self.retries.clone()
    }
}

impl Metrics {
    /// The registry in the Prometheus/OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl<S> Layer<S> for Metrics {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.clone(),
        }
    }
}

/// Counts every response; the tenant comes from the response extensions set
/// by `TenantLayer`.
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for MetricsService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<ResB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let method = req.method().as_str().to_owned();
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let future = self.inner.call(req);
        Box::pin(async move {
            let res = future.await?;
            if res.extensions().get::<crate::error::Panicked>().is_some() {
                metrics.panics.inc();
            }
            let tenant = res
                .extensions()
                .get::<TenantContext>()
                .map_or_else(|| "none".to_owned(), |t| t.tenant().subdomain.clone());
            metrics
                .requests
                .get_or_create(&RequestLabels {
                    tenant,
                    method: method.clone(),
                    status: res.status().as_u16(),
                })
                .inc();
            metrics
                .latency
                .get_or_create(&LatencyLabels { method })
                .observe(started.elapsed().as_secs_f64());
            Ok(res)
        })
    }
}
