//! Durable batched ingestion: [`Analytics`] hands events to a bounded
//! in-process buffer, and a writer task flushes it as soon as it is free
//! (whatever waits then, up to 5,000 events; fire-and-forget events alone
//! wait up to 50 ms for company), in one transaction holding every
//! tenant's events of the flush (each tenant's rows under that tenant's
//! scope, through [`tenantkit::store::BulkTx`]), with the rollups updated in
//! it. There are [`IngestConfig::writers`] writer tasks; each owns the
//! tenants whose id hashes to it, so a tenant's events are written by one
//! writer, in order, and two writers never wait on each other's rows.
//!
//! Each committed flush names its tenants to [`Analytics::commits`] (in this
//! process) and, on PostgreSQL, with `pg_notify` on [`LIVE_CHANNEL`] right
//! after its commit (every process): the wake-up of the live stream
//! ([`crate::live`]).
//!
//! [`Analytics::ingest`] returns once the flush holding its events has
//! committed (group commit): an acknowledged event survives a crash, and a
//! caller that saw an error knows to retry. A full buffer refuses at once
//! ([`IngestError::Full`]) rather than growing. [`Analytics::try_record`]
//! (what [`crate::AnalyticsLayer`] uses) never waits: when the buffer is full
//! it drops the event and counts the drop.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tenantkit::{Db, NewTenant, audit::Actor};
//! use tenantkit_analytics::{Analytics, IngestConfig, event::NewEvent};
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! tenantkit_analytics::storage::migrate(&db).await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! let acme = db.resolve_subdomain("acme").await?.expect("just created");
//!
//! let (analytics, writer) = Analytics::start(db.clone(), IngestConfig::default());
//! let event = NewEvent { event_type: "feature_used".into(), name: Some("export".into()), ..Default::default() };
//! analytics.record(&acme, event).await.expect("stored");   // durable once this returns
//! analytics.shutdown().await;                               // flushes what is buffered
//! writer.await.expect("the writer ends cleanly");
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{NaiveDate, Utc};
use tenantkit::{Db, TenantContext, TenantId};
use tokio::{
    sync::{Mutex as AsyncMutex, OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    event::{Event, NewEvent},
    rollup, storage,
};

/// The PostgreSQL channel on which each flush names the tenants it stored
/// events of (ids separated by commas, several notifications when they do
/// not fit in one).
pub const LIVE_CHANNEL: &str = "tenantkit_analytics";

/// A notification's payload stays under PostgreSQL's 8,000-byte limit.
const NOTIFY_PAYLOAD_BYTES: usize = 7_900;

/// How the writer batches, and how much it buffers.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// The longest a fire-and-forget event ([`Analytics::try_record`]) waits
    /// for others to share its flush (default 1 s: a flush costs a few
    /// statements per tenant in it, so a second's company makes counting
    /// every API call of many tenants a handful of statements per tenant a
    /// second, not per request). Events whose caller waits
    /// ([`Analytics::ingest`]) are flushed as soon as the writer is free.
    pub flush_interval: Duration,
    /// A flush starts as soon as this many events wait (default 5,000).
    pub flush_events: usize,
    /// The most events buffered, acknowledged or not yet; more are refused
    /// (default 50,000).
    pub buffer_events: usize,
    /// Writer tasks (default 4), each flushing on its own connection; a
    /// tenant's events always go to the same one, so writers never wait on
    /// each other's rows.
    pub writers: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_secs(1),
            flush_events: 5_000,
            buffer_events: 50_000,
            writers: 4,
        }
    }
}

/// Why events were not stored; none of the request's events were.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The buffer is full: retry after a moment (HTTP 503 with `Retry-After`).
    #[error("the event buffer is full; retry shortly")]
    Full,
    /// The writer has stopped (the process is shutting down).
    #[error("event ingestion has stopped")]
    Stopped,
    /// The flush holding the events failed; they were not stored.
    #[error("storing the events failed: {0}")]
    Store(String),
    /// The events break a rule (checked by [`Analytics::record`], or by the
    /// store for events built without validation): `422`, a retry cannot
    /// succeed.
    #[error("invalid event: {0}")]
    Invalid(String),
}

impl From<&IngestError> for tenantkit::problem::Problem {
    /// `503` with `Retry-After` when the caller should retry (nothing was
    /// stored); `422` for an invalid event.
    fn from(err: &IngestError) -> Self {
        use http::{HeaderValue, StatusCode, header::RETRY_AFTER};
        use tenantkit::problem::Problem;
        let retry = |title: &str, detail: &str, after: &'static str| {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, title)
                .with_detail(format!("{detail}; none of the events was stored, retry"))
                .with_header(RETRY_AFTER, HeaderValue::from_static(after))
        };
        match err {
            IngestError::Full => retry("Event buffer full", "the event buffer is full", "1"),
            IngestError::Stopped => retry(
                "Event ingestion stopped",
                "the server is shutting down",
                "5",
            ),
            // The database's words stay in the server's log.
            IngestError::Store(_) => retry("Events not stored", "storing the events failed", "1"),
            IngestError::Invalid(detail) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid event")
                    .with_detail(detail.clone())
            }
        }
    }
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestStats {
    /// Events committed.
    pub stored: u64,
    /// Flushes committed.
    pub flushes: u64,
    /// Events refused because the buffer was full (the caller was told).
    pub refused: u64,
    /// Events of [`Analytics::try_record`] dropped because the buffer was full.
    pub dropped: u64,
    /// Events whose flush failed (the caller was told).
    pub failed: u64,
}

struct Job {
    ctx: TenantContext,
    events: Vec<Event>,
    /// The buffer room the events take, given back whenever the job is
    /// dropped: stored, failed, or lost with a writer that panicked.
    _room: OwnedSemaphorePermit,
    /// Told the outcome once the flush holding the events commits (or fails);
    /// `None` for fire-and-forget events.
    done: Option<oneshot::Sender<Result<(), IngestError>>>,
}

enum Message {
    Events(Job),
    Stop(oneshot::Sender<()>),
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    flushes: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// The ingestion handle: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Analytics {
    inner: Arc<Inner>,
}

struct Inner {
    /// One channel per writer; a tenant's events always take the same.
    senders: Vec<mpsc::UnboundedSender<Message>>,
    /// One permit per event the buffer may still take.
    room: Arc<Semaphore>,
    stopped: AtomicBool,
    counters: Arc<Counters>,
    commits: broadcast::Sender<Arc<[TenantId]>>,
}

impl std::fmt::Debug for Analytics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analytics")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Analytics {
    /// Starts the writer tasks on `db` (with the analytics migrations
    /// applied); returns the handle and a task that ends once every writer
    /// has, after [`Analytics::shutdown`]. A writer that panics is not
    /// restarted here: a server supervises them itself with
    /// [`Analytics::new`].
    pub fn start(db: Db, config: IngestConfig) -> (Self, JoinHandle<()>) {
        let (analytics, writers) = Self::new(db, config);
        let task = tokio::spawn(async move {
            let writers: Vec<_> = writers
                .into_iter()
                .map(|writer| tokio::spawn(async move { writer.run().await }))
                .collect();
            for writer in writers {
                if let Err(e) = writer.await {
                    tracing::error!(error = %e, "an analytics writer panicked");
                }
            }
        });
        (analytics, task)
    }

    /// The handle and its writers, for the caller to run (and run again
    /// should one fail: see [`AnalyticsWriter::run`]). Nothing is stored
    /// until they run.
    pub fn new(db: Db, config: IngestConfig) -> (Self, Vec<AnalyticsWriter>) {
        let room = Arc::new(Semaphore::new(config.buffer_events));
        let counters = Arc::new(Counters::default());
        let (commits, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            db,
            config: config.clone(),
            counters: counters.clone(),
            commits: commits.clone(),
            partitions_made_for: std::sync::Mutex::new(None),
        });
        let (senders, writers): (Vec<_>, Vec<_>) = (0..config.writers.max(1))
            .map(|index| {
                let (sender, receiver) = mpsc::unbounded_channel();
                let writer = AnalyticsWriter {
                    index,
                    shared: shared.clone(),
                    receiver: Arc::new(AsyncMutex::new(receiver)),
                };
                (sender, writer)
            })
            .unzip();
        let inner = Inner {
            senders,
            room,
            stopped: AtomicBool::new(false),
            counters,
            commits,
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            writers,
        )
    }

    /// Stores valid events of `ctx`'s tenant: returns once the flush holding
    /// them has committed, or with an error if none of them was stored.
    pub async fn ingest(&self, ctx: &TenantContext, events: Vec<Event>) -> Result<(), IngestError> {
        if events.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        self.enqueue(ctx, events, Some(done))?;
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(IngestError::Stopped),
        }
    }

    /// Validates one event and stores it like [`Analytics::ingest`].
    pub async fn record(&self, ctx: &TenantContext, event: NewEvent) -> Result<(), IngestError> {
        let event = event.validate(Utc::now()).map_err(IngestError::Invalid)?;
        self.ingest(ctx, vec![event]).await
    }

    /// Buffers one event without waiting for it to be stored; when the
    /// buffer is full the event is dropped, counted, and `false` returned.
    pub fn try_record(&self, ctx: &TenantContext, event: Event) -> bool {
        match self.enqueue(ctx, vec![event], None) {
            Ok(()) => true,
            Err(_) => {
                self.inner.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn enqueue(
        &self,
        ctx: &TenantContext,
        events: Vec<Event>,
        done: Option<oneshot::Sender<Result<(), IngestError>>>,
    ) -> Result<(), IngestError> {
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(IngestError::Stopped);
        }
        let n = u32::try_from(events.len()).map_err(|_| IngestError::Full)?;
        let room = match self.inner.room.clone().try_acquire_many_owned(n) {
            // Given back when the job is dropped, whatever becomes of it.
            Ok(permit) => permit,
            Err(_) => {
                if done.is_some() {
                    self.inner
                        .counters
                        .refused
                        .fetch_add(u64::from(n), Ordering::Relaxed);
                }
                return Err(IngestError::Full);
            }
        };
        let job = Job {
            ctx: ctx.clone(),
            events,
            _room: room,
            done,
        };
        let writer = job.ctx.id().as_uuid().as_u128() as usize % self.inner.senders.len();
        self.inner.senders[writer]
            .send(Message::Events(job))
            .map_err(|_| IngestError::Stopped)
    }

    /// Refuses new events, flushes every buffered one, and waits for the
    /// writers to finish that.
    pub async fn shutdown(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        for sender in &self.inner.senders {
            let (done, finished) = oneshot::channel();
            if sender.send(Message::Stop(done)).is_ok() {
                let _ = finished.await;
            }
        }
    }

    /// The tenants of each flush this process commits, as it commits. A
    /// receiver that falls behind is told how many flushes it missed
    /// ([`broadcast::error::RecvError::Lagged`]).
    pub fn commits(&self) -> broadcast::Receiver<Arc<[TenantId]>> {
        self.inner.commits.subscribe()
    }

    /// The counters so far.
    pub fn stats(&self) -> IngestStats {
        let c = &self.inner.counters;
        IngestStats {
            stored: c.stored.load(Ordering::Relaxed),
            flushes: c.flushes.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
        }
    }
}

/// What the writer tasks share.
struct Shared {
    db: Db,
    config: IngestConfig,
    counters: Arc<Counters>,
    commits: broadcast::Sender<Arc<[TenantId]>>,
    /// The day partitions were last made ahead for.
    partitions_made_for: std::sync::Mutex<Option<NaiveDate>>,
}

/// One writer: the tenants whose id hashes to it, flushed batch after
/// batch. Its channel outlives any one run, so a writer that failed is run
/// again by its supervisor with nothing lost but the batch it was writing,
/// whose callers are told and whose buffer room comes back.
pub struct AnalyticsWriter {
    index: usize,
    shared: Arc<Shared>,
    receiver: Arc<AsyncMutex<mpsc::UnboundedReceiver<Message>>>,
}

impl std::fmt::Debug for AnalyticsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalyticsWriter")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl AnalyticsWriter {
    /// Which writer this is (0 to [`IngestConfig::writers`] - 1).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Flush after flush. A flush holds whatever waits when the writer is
    /// free (up to [`IngestConfig::flush_events`]): a caller waiting for its
    /// acknowledgement is flushed at once, and requests that arrive during a
    /// flush go together in the next one (group commit, sized by the load).
    /// Fire-and-forget events alone wait up to
    /// [`IngestConfig::flush_interval`] for company, so counting every API
    /// call costs a few flushes a second, not one per request.
    ///
    /// Returns after [`Analytics::shutdown`], once everything sent before
    /// it is flushed. Run again after a panic, it takes up where the channel
    /// is.
    pub async fn run(&self) {
        let mut receiver = self.receiver.lock().await;
        if receiver.is_closed() && receiver.is_empty() {
            return;
        }
        self.shared.make_partitions().await;
        while let Some(first) = receiver.recv().await {
            let mut batch = Batch::default();
            batch.add(first);
            let deadline = Instant::now() + self.shared.config.flush_interval;
            while batch.stop.is_none() && batch.waiting < self.shared.config.flush_events {
                match receiver.try_recv() {
                    Ok(message) => batch.add(message),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) if batch.acknowledged => break,
                    Err(mpsc::error::TryRecvError::Empty) => tokio::select! {
                        message = receiver.recv() => match message {
                            Some(message) => batch.add(message),
                            None => break,
                        },
                        () = tokio::time::sleep_until(deadline) => break,
                    },
                }
            }
            if let Some(done) = batch.stop {
                // Everything sent before the stop is flushed before it is answered.
                receiver.close();
                while let Ok(message) = receiver.try_recv() {
                    if let Message::Events(job) = message {
                        batch.jobs.push(job);
                    }
                }
                self.shared.flush(batch.jobs).await;
                let _ = done.send(());
                return;
            }
            self.shared.flush(batch.jobs).await;
        }
    }
}

/// What the next flush holds.
#[derive(Default)]
struct Batch {
    jobs: Vec<Job>,
    /// Events in `jobs`.
    waiting: usize,
    /// Whether a caller waits for one of the jobs.
    acknowledged: bool,
    stop: Option<oneshot::Sender<()>>,
}

impl Batch {
    fn add(&mut self, message: Message) {
        match message {
            Message::Events(job) => {
                self.waiting += job.events.len();
                self.acknowledged |= job.done.is_some();
                self.jobs.push(job);
            }
            Message::Stop(done) => self.stop = Some(done),
        }
    }
}

impl Shared {
    /// Makes the partitions of the accepted window once per UTC day, so no
    /// event ever lacks one.
    async fn make_partitions(&self) {
        let today = Utc::now().date_naive();
        if *self.partitions_made_for.lock().expect("not poisoned") == Some(today) {
            return;
        }
        match storage::ensure_partitions(&self.db, today).await {
            Ok(_) => *self.partitions_made_for.lock().expect("not poisoned") = Some(today),
            Err(e) => {
                tracing::warn!(error = %e, "making analytics partitions failed; retrying at the next flush")
            }
        }
    }

    async fn flush(&self, batch: Vec<Job>) {
        if batch.is_empty() {
            return;
        }
        self.make_partitions().await;
        match self.write(&batch).await {
            Ok(()) => {
                let tenants = self.committed(batch);
                self.announce(&tenants).await;
            }
            // One tenant's failure must not fail everyone's events: store
            // each request alone, and tell each its own outcome.
            Err(e) if batch.len() > 1 => {
                tracing::warn!(error = %e, jobs = batch.len(), "an analytics flush failed; storing its requests one by one");
                for job in batch {
                    match self.write(std::slice::from_ref(&job)).await {
                        Ok(()) => {
                            let tenants = self.committed(vec![job]);
                            self.announce(&tenants).await;
                        }
                        Err(e) => self.fail(job, &e),
                    }
                }
            }
            Err(e) => {
                for job in batch {
                    self.fail(job, &e);
                }
            }
        }
    }

    /// A flush of `batch` committed: counted, its room given back, its
    /// callers told, this process's live hub woken; returns its tenants.
    fn committed(&self, batch: Vec<Job>) -> Arc<[TenantId]> {
        let events: usize = batch.iter().map(|j| j.events.len()).sum();
        self.counters
            .stored
            .fetch_add(events as u64, Ordering::Relaxed);
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
        let mut tenants: Vec<TenantId> = batch.iter().map(|j| j.ctx.id()).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let tenants: Arc<[TenantId]> = tenants.into();
        // No receiver is fine: nobody is watching live.
        let _ = self.commits.send(tenants.clone());
        for job in batch {
            if let Some(done) = job.done {
                let _ = done.send(Ok(()));
            }
        }
        tenants
    }

    fn fail(&self, job: Job, error: &tenantkit::Error) {
        tracing::error!(error = %error, tenant = %job.ctx.id(), events = job.events.len(), "analytics events were not stored");
        self.counters
            .failed
            .fetch_add(job.events.len() as u64, Ordering::Relaxed);
        if let Some(done) = job.done {
            // Refused by the store's own input rules: a retry cannot succeed.
            let failure = match error {
                tenantkit::Error::Invalid(m) => IngestError::Invalid(m.to_string()),
                other => IngestError::Store(other.to_string()),
            };
            let _ = done.send(Err(failure));
        }
    }

    /// One transaction for the whole batch: each tenant's events (in tenant
    /// order, so concurrent writers lock rollup rows in the same order) under
    /// that tenant's scope.
    async fn write(&self, batch: &[Job]) -> tenantkit::Result<()> {
        let mut by_tenant: BTreeMap<TenantId, (&TenantContext, Vec<&Event>)> = BTreeMap::new();
        for job in batch {
            by_tenant
                .entry(job.ctx.id())
                .or_insert_with(|| (&job.ctx, Vec::new()))
                .1
                .extend(job.events.iter());
        }
        let received_at = Utc::now();
        let mut bulk = self.db.begin_bulk().await?;
        let mut totals = Vec::with_capacity(by_tenant.len());
        for (ctx, events) in by_tenant.into_values() {
            let tx = bulk.tenant(ctx).await?;
            totals.push((ctx, rollup::store_events(tx, &events, received_at).await?.1));
        }
        // The rows every flush touches (this hour's counts, today's DAU)
        // last, so concurrent flushes wait on each other only briefly.
        for (ctx, totals) in &totals {
            let tx = bulk.tenant(ctx).await?;
            rollup::add_totals(tx, totals).await?;
        }
        bulk.commit().await
    }

    /// Names the tenants of a committed flush to every process's live hub.
    /// After the commit, not in it: PostgreSQL serializes the commits of
    /// notifying transactions (WAL flush included), which would serialize
    /// the writers. A crash before this loses only the wake-up; the live
    /// hub re-reads its feeds every few seconds anyway.
    async fn announce(&self, tenants: &[TenantId]) {
        let ids: Vec<String> = tenants.iter().map(ToString::to_string).collect();
        for payload in notify_payloads(&ids) {
            if let Err(e) = self.db.announce(LIVE_CHANNEL, &payload).await {
                tracing::warn!(error = %e, "announcing an analytics flush failed");
            }
        }
    }
}

/// `ids` joined by commas into as few payloads as fit in a notification.
fn notify_payloads(ids: &[String]) -> Vec<String> {
    let mut payloads = vec![String::new()];
    for id in ids {
        let last = payloads.last_mut().expect("never empty");
        if !last.is_empty() && last.len() + 1 + id.len() > NOTIFY_PAYLOAD_BYTES {
            payloads.push(String::new());
        }
        let last = payloads.last_mut().expect("never empty");
        if !last.is_empty() {
            last.push(',');
        }
        last.push_str(id);
    }
    payloads.retain(|p| !p.is_empty());
    payloads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_payloads_stay_under_the_limit_and_keep_every_id() {
        let ids: Vec<String> = (0..1_000).map(|_| TenantId::new().to_string()).collect();
        let payloads = notify_payloads(&ids);
        assert!(
            payloads.len() > 1,
            "1,000 ids do not fit in one notification"
        );
        assert!(payloads.iter().all(|p| p.len() <= NOTIFY_PAYLOAD_BYTES));
        let back: Vec<&str> = payloads.iter().flat_map(|p| p.split(',')).collect();
        assert_eq!(back, ids.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(notify_payloads(&[]).is_empty());
    }
}
