//! The delivery worker: finds tenants with due deliveries, claims them
//! under a lease, sends them, and writes what came of each attempt.
//!
//! - **Across tenants without weakening isolation**: the only cross-tenant
//!   step is [`crate::queue::DUE`], which yields tenant ids and times; every
//!   claim and every outcome is written in a `TenantTx` of its tenant.
//! - **Nothing held while waiting on a receiver**: a claim commits its lease
//!   before anything is sent; no row lock or pooled connection is held
//!   during HTTP. A worker killed mid-delivery loses nothing: its leases
//!   expire and another worker (or this one, restarted) retries.
//! - **Once in normal operation**: `FOR UPDATE SKIP LOCKED` on PostgreSQL
//!   (SQLite has one writer), and an outcome changes a delivery only while
//!   its lease is still the one that sent it.
//! - **Fair**: each round serves the tenants whose oldest due delivery has
//!   waited longest, each up to its share of the free capacity, so one
//!   tenant's backlog never holds others back; each tenant's budget per
//!   minute ([`DeliveryLimits`]) is kept in the database, shared by every
//!   worker process. Deliveries over budget wait for the next minute.
//! - **Handed over at commit**: what `Webhooks::publish_messages` publishes
//!   in this process reaches its running worker already leased, as the
//!   publish commits, without a claim (`crate::outbox::dispatch`); what
//!   found no free slot is claimed like the rest.
//! - **Wakes** on PostgreSQL `LISTEN/NOTIFY` as soon as a publish commits,
//!   and polls as well (SQLite only polls).
//! - **Graceful shutdown** stops claiming, lets what is in flight finish
//!   (within [`WorkerOptions::shutdown_grace`]) and gives back the leases
//!   of whatever did not.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures_util::{FutureExt, StreamExt, stream};
use tenantkit::{Db, TenantId, TenantStatus, audit::Actor, resolve::TenantRef};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot},
    task::{JoinHandle, JoinSet},
};
use uuid::Uuid;

use crate::{
    WebhookId, Webhooks,
    endpoints::WebhookError,
    outbox::{
        MessageId,
        dispatch::{Dispatch, Handoff, Held, Job, Slot, window_start},
    },
    queue::{self, DUE, Outcome, Queue},
    signature::{SigningSecret, sign},
    transport::{Attempt, ErrorClass, Transport},
};

/// How long a suspended tenant is left out of the rounds before its status
/// is looked at again (through the access cache): deliveries resume within
/// this of its reactivation.
const SUSPENDED_RECHECK: chrono::Duration = chrono::Duration::seconds(5);

/// The default budget: deliveries per minute per tenant.
pub const DEFAULT_PER_MINUTE: u32 = 100;

pub use crate::outbox::dispatch::{Clock, DeliveryLimits};

/// How a [`Worker`] works.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// Deliveries in flight at once (default 64).
    pub concurrency: usize,
    /// How long a claim is held before another worker may take it over
    /// (default 60 s; longer than the 10 s request limit).
    pub lease: Duration,
    /// How often to look for due deliveries without a wake-up (default 250 ms).
    pub poll_interval: Duration,
    /// At most this many deliveries of one tenant per round (default 50).
    pub batch_per_tenant: u32,
    /// At most this many tenants per round (default 100).
    pub tenants_per_round: u32,
    /// The share of [`WorkerOptions::concurrency`] one tenant's deliveries
    /// may hold at once (default 0.5): endpoints that hang cannot take the
    /// slots another tenant's deliveries need.
    pub tenant_share: f64,
    /// An endpoint failing for this long without a success is disabled
    /// (default 5 days).
    pub disable_after: Duration,
    /// At shutdown, how long deliveries in flight may take to finish before
    /// their leases are given back (default 15 s).
    pub shutdown_grace: Duration,
    /// Messages older than this go, with their deliveries (default 30
    /// days; `None` keeps everything). See [`crate::retention`].
    pub retention: Option<Duration>,
    /// How often retention runs (default hourly, and once at start).
    pub retention_every: Duration,
    /// Under load, how long a tenant's outcomes may wait to be written
    /// together with more of its own (default 1 s; zero writes each batch as
    /// it comes). Deliveries are not held back by it, only the record of
    /// them: an outcome not yet written when the process dies means the
    /// delivery is sent again once its lease runs out.
    pub outcome_linger: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 64,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(250),
            batch_per_tenant: 50,
            tenants_per_round: 100,
            tenant_share: 0.5,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            shutdown_grace: Duration::from_secs(15),
            retention: Some(Duration::from_secs(30 * 24 * 3600)),
            retention_every: Duration::from_secs(3600),
            outcome_linger: Duration::from_secs(1),
        }
    }
}

impl WorkerOptions {
    /// Sets [`WorkerOptions::concurrency`].
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets [`WorkerOptions::lease`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`WorkerOptions::poll_interval`].
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// Sets [`WorkerOptions::batch_per_tenant`].
    pub fn batch_per_tenant(mut self, n: u32) -> Self {
        self.batch_per_tenant = n.max(1);
        self
    }

    /// Sets [`WorkerOptions::tenant_share`] (clamped to at most 1; at
    /// least one slot per tenant whatever the share).
    pub fn tenant_share(mut self, share: f64) -> Self {
        self.tenant_share = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            1.0
        };
        self
    }

    /// The slots one tenant may hold: [`WorkerOptions::tenant_share`] of
    /// [`WorkerOptions::concurrency`], at least one.
    pub fn slots_per_tenant(&self) -> usize {
        ((self.concurrency as f64 * self.tenant_share).ceil() as usize)
            .clamp(1, self.concurrency.max(1))
    }

    /// Sets [`WorkerOptions::disable_after`].
    pub fn disable_after(mut self, after: Duration) -> Self {
        self.disable_after = after;
        self
    }

    /// Sets [`WorkerOptions::retention`].
    pub fn retention(mut self, keep: Option<Duration>) -> Self {
        self.retention = keep;
        self
    }

    /// Sets [`WorkerOptions::outcome_linger`].
    pub fn outcome_linger(mut self, linger: Duration) -> Self {
        self.outcome_linger = linger;
        self
    }

    /// Sets [`WorkerOptions::shutdown_grace`].
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }
}

/// Delivers webhooks. Run any number, in any number of processes, on one
/// database.
///
/// ```no_run
/// # async fn run(db: tenantkit::Db, webhooks: tenantkit_webhooks::Webhooks) -> tenantkit::Result<()> {
/// use tenantkit_webhooks::{transport::Transport, worker::Worker};
///
/// let transport = Transport::new(webhooks.policy().clone()).expect("HTTP client");
/// Worker::new(db, webhooks, transport)
///     .run(async { tokio::signal::ctrl_c().await.ok(); })
///     .await
/// # }
/// ```
#[derive(Clone)]
pub struct Worker {
    shared: Arc<Shared>,
}

struct Shared {
    db: Db,
    webhooks: Webhooks,
    transport: Transport,
    limits: Arc<dyn DeliveryLimits>,
    options: WorkerOptions,
    clock: Clock,
    /// Claimed and not yet attempted: given back at shutdown.
    in_flight: Mutex<HashMap<(MessageId, WebhookId), (TenantId, Uuid)>>,
    /// Slots each tenant's deliveries hold now (see [`Slot`]).
    held: Held,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker with the default options and [`DEFAULT_PER_MINUTE`] per tenant.
    pub fn new(db: Db, webhooks: Webhooks, transport: Transport) -> Self {
        Self {
            shared: Arc::new(Shared {
                db,
                webhooks,
                transport,
                limits: Arc::new(Some(DEFAULT_PER_MINUTE)),
                options: WorkerOptions::default(),
                clock: Arc::new(Utc::now),
                in_flight: Mutex::default(),
                held: Held::default(),
            }),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Shared)) -> Self {
        let shared = Arc::get_mut(&mut self.shared).expect("configure a worker before running it");
        change(shared);
        self
    }

    /// Sets the options.
    pub fn with_options(self, options: WorkerOptions) -> Self {
        self.with(|s| s.options = options)
    }

    /// Sets each tenant's budget per minute.
    pub fn with_limits(self, limits: impl DeliveryLimits) -> Self {
        self.with(|s| s.limits = Arc::new(limits))
    }

    /// Sets the clock (tests).
    pub fn with_clock(self, clock: Clock) -> Self {
        self.with(|s| s.clock = clock)
    }

    /// Delivers until `shutdown` completes, then stops claiming, lets what
    /// is in flight finish (or gives its leases back) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> tenantkit::Result<()> {
        let shared = self.shared;
        let options = shared.options.clone();
        let mut wakeups = shared.db.wakeups(crate::schema::CHANNEL).await?;
        let (outcomes, received) = mpsc::channel(options.concurrency * 4);
        let recorder = tokio::spawn(record_outcomes(shared.clone(), received));
        let retention = options
            .retention
            .map(|keep| tokio::spawn(apply_retention(shared.clone(), keep)));
        let permits = Arc::new(Semaphore::new(options.concurrency));
        // Publishes of this process hand their deliveries over directly.
        let (handoffs, handed) = mpsc::unbounded_channel();
        let worker_id = Uuid::now_v7();
        shared.webhooks.open_dispatch(Dispatch {
            worker: worker_id,
            handoffs,
            permits: permits.clone(),
            held: shared.held.clone(),
            tenant_cap: options.slots_per_tenant(),
            lease: chrono::Duration::from_std(options.lease)
                .unwrap_or(chrono::Duration::seconds(60)),
            limits: shared.limits.clone(),
            known: Default::default(),
            clock: shared.clock.clone(),
        });
        let (stop_handoffs, handoffs_stopped) = oneshot::channel();
        let direct = tokio::spawn(deliver_handed_over(
            shared.clone(),
            handed,
            outcomes.clone(),
            handoffs_stopped,
        ));
        // However `run` ends (returned, or dropped mid-way), publishes stop
        // handing deliveries to it and its direct deliveries stop.
        let _door = DoorGuard {
            webhooks: shared.webhooks.clone(),
            worker: worker_id,
            direct: direct.abort_handle(),
        };
        let mut tasks = JoinSet::new();
        let mut paused: HashMap<TenantId, DateTime<Utc>> = HashMap::new();
        let mut shutdown = std::pin::pin!(shutdown.fuse());

        tracing::info!(concurrency = options.concurrency, "webhook worker started");
        // Its helpers end only with it: one that ended first failed, and so
        // does the worker (after stopping as it would), for its supervisor
        // to run it again.
        let mut failed = None;
        loop {
            while tasks.try_join_next().is_some() {}
            if (&mut shutdown).now_or_never().is_some() {
                break;
            }
            if recorder.is_finished() {
                failed = Some("the outcome recorder stopped");
                break;
            }
            if direct.is_finished() {
                failed = Some("direct delivery stopped");
                break;
            }
            if retention.as_ref().is_some_and(JoinHandle::is_finished) {
                failed = Some("message retention stopped");
                break;
            }
            // Claim whenever a slot is free (a tenant whose endpoints hang
            // holds at most its share, so the rest stay for the others),
            // after a moment for more to free up under load, so that a
            // claim's transaction serves a useful batch.
            if permits.available_permits() == 0 {
                tokio::select! {
                    _ = &mut shutdown => break,
                    permit = permits.acquire() => drop(permit),
                }
                continue;
            }
            let batch = u32::try_from((options.concurrency / 4).max(1)).unwrap_or(u32::MAX);
            if permits.available_permits() < batch as usize {
                let gathered = tokio::time::timeout(GATHER, permits.acquire_many(batch)).await;
                drop(gathered);
            }
            let claimed =
                match claim_round(&shared, &permits, &mut paused, &outcomes, &mut tasks).await {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook claim round failed; retrying");
                        0
                    }
                };
            if claimed == 0 {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = wakeups.next() => {}
                    _ = tokio::time::sleep(options.poll_interval) => {}
                }
            }
        }

        tracing::info!(in_flight = tasks.len(), "webhook worker stopping");
        shared.webhooks.close_dispatch(worker_id);
        stop_handoffs.send(()).ok();
        if let Some(retention) = retention {
            // Mid-batch, its transaction rolls back: nothing half done.
            retention.abort();
        }
        let finished = tokio::time::timeout(options.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        direct.await.ok();
        drop(outcomes);
        recorder.await.ok();
        release_leases(&shared).await;
        if let Some(reason) = failed {
            tracing::error!(reason, "webhook worker stopped: a helper failed");
            return Err(tenantkit::Error::Internal(format!(
                "webhook worker: {reason}"
            )));
        }
        tracing::info!("webhook worker stopped");
        Ok(())
    }
}

/// See `Worker::run`.
struct DoorGuard {
    webhooks: Webhooks,
    worker: Uuid,
    direct: tokio::task::AbortHandle,
}

impl Drop for DoorGuard {
    fn drop(&mut self) {
        self.webhooks.close_dispatch(self.worker);
        self.direct.abort();
    }
}

/// How long a claim waits for more free slots when only a few are.
const GATHER: Duration = Duration::from_millis(5);

/// Claims (one transaction each, of one tenant) in progress at once in a
/// round: a round over many tenants takes a fraction of the time, which is
/// what bounds the wait of a delivery published just after one.
const CLAIMS_AT_ONCE: usize = 4;

/// One round: the tenants waiting longest, each claimed up to its share of
/// the free capacity and its budget. Returns how many deliveries started.
async fn claim_round(
    shared: &Arc<Shared>,
    permits: &Arc<Semaphore>,
    paused: &mut HashMap<TenantId, DateTime<Utc>>,
    outcomes: &mpsc::Sender<(TenantId, Outcome)>,
    tasks: &mut JoinSet<()>,
) -> tenantkit::Result<usize> {
    let options = &shared.options;
    let now = (shared.clock)();
    paused.retain(|_, until| *until > now);
    let cap = options.slots_per_tenant();
    // Tenants holding their whole share wait for one of their slots.
    let held: HashMap<TenantId, usize> = shared.held.lock().expect("held map").clone();
    let skip: Vec<TenantId> = paused
        .keys()
        .copied()
        .chain(held.iter().filter(|(_, n)| **n >= cap).map(|(t, _)| *t))
        .collect();
    let due = shared
        .db
        .tenants_with_due_work(&DUE, now, options.tenants_per_round, &skip)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    // Each tenant up to its batch of what is free when its claim starts,
    // the longest waiting first; whoever does not fit now is first in the
    // next round.
    let share = options.batch_per_tenant as usize;
    let lease = chrono::Duration::from_std(options.lease).unwrap_or(chrono::Duration::seconds(60));
    let mut waiting = Vec::new();
    for tenant in due {
        let Some(ctx) = shared
            .db
            .resolve_cached(&TenantRef::Id(tenant.tenant_id))
            .await?
        else {
            continue;
        };
        if ctx.tenant().status != TenantStatus::Active {
            // Paused, not dead-lettered: a suspended tenant's deliveries
            // wait for its reactivation, looked for every few seconds.
            paused.insert(tenant.tenant_id, now + SUSPENDED_RECHECK);
            continue;
        }
        let room = cap.saturating_sub(held.get(&tenant.tenant_id).copied().unwrap_or(0));
        if room > 0 {
            waiting.push((ctx.with_actor(Actor::System), room));
        }
    }
    // Several tenants' claims at once (each its own transaction), their
    // deliveries started as each commits. Slots promised to a claim in
    // progress are not free for the next.
    let promised = AtomicUsize::new(0);
    let mut claims = stream::iter(waiting)
        .map(|(ctx, room)| {
            let free = permits
                .available_permits()
                .saturating_sub(promised.load(Ordering::Relaxed));
            let n = share.min(free).min(room);
            promised.fetch_add(n, Ordering::Relaxed);
            async move {
                if n == 0 {
                    return (ctx.id(), n, Ok(queue::Claim::default()));
                }
                let limit = shared.limits.per_minute(&ctx).await;
                let claim = async {
                    let mut tx = shared.db.begin(&ctx).await?;
                    let claim = Queue(&shared.webhooks)
                        .claim(&mut tx, now, lease, n as u32, limit)
                        .await?;
                    tx.commit().await?;
                    Ok::<_, WebhookError>(claim)
                }
                .await;
                (ctx.id(), n, claim)
            }
        })
        .buffer_unordered(CLAIMS_AT_ONCE);
    let mut started = 0;
    while let Some((tenant_id, promise, claim)) = claims.next().await {
        let claim = match claim {
            Ok(claim) => claim,
            Err(e) => {
                tracing::warn!(%tenant_id, error = %e, "webhook claim failed");
                promised.fetch_sub(promise, Ordering::Relaxed);
                continue;
            }
        };
        if claim.over_budget {
            paused.insert(tenant_id, window_start(now) + chrono::Duration::seconds(60));
        }
        for job in claim.jobs {
            let permit = permits.clone().acquire_owned().await.expect("never closed");
            let slot = Slot::take(&shared.held, tenant_id, 1);
            start_delivery(shared, tasks, outcomes, tenant_id, job, (permit, slot));
            started += 1;
        }
        // Its deliveries hold their permits now.
        promised.fetch_sub(promise, Ordering::Relaxed);
    }
    Ok(started)
}

/// Sends `job` (claimed or handed over) in a task of `tasks`, holding
/// `room` (its permit and its tenant's slot) until its outcome is passed on.
fn start_delivery(
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    outcomes: &mpsc::Sender<(TenantId, Outcome)>,
    tenant_id: TenantId,
    job: Job,
    room: (OwnedSemaphorePermit, Slot),
) {
    shared
        .in_flight
        .lock()
        .expect("in-flight map")
        .insert((job.message_id, job.webhook.id), (tenant_id, job.lease));
    let shared = shared.clone();
    let outcomes = outcomes.clone();
    tasks.spawn(async move {
        let key = (job.message_id, job.webhook.id);
        let outcome = deliver(&shared, job).await;
        shared.in_flight.lock().expect("in-flight map").remove(&key);
        outcomes.send((tenant_id, outcome)).await.ok();
        drop(room);
    });
}

/// Sends what publishes of this process hand over (see `crate::dispatch`)
/// until `stop`; then, within the shutdown grace, lets those deliveries
/// finish and keeps what is still handed over (by publishes that reserved
/// room before the worker stopped) for [`release_leases`] to give back.
async fn deliver_handed_over(
    shared: Arc<Shared>,
    mut handed: mpsc::UnboundedReceiver<Handoff>,
    outcomes: mpsc::Sender<(TenantId, Outcome)>,
    stop: oneshot::Receiver<()>,
) {
    let mut tasks = JoinSet::new();
    let mut stop = std::pin::pin!(stop);
    // Closed when another worker of this process took over the door.
    let mut open = true;
    loop {
        tokio::select! {
            handoff = handed.recv(), if open => match handoff {
                Some(mut handoff) => {
                    for job in std::mem::take(&mut handoff.jobs) {
                        let Some(room) = handoff.room.take_one() else {
                            // Never: a publish leases no more than it reserved.
                            tracing::error!(tenant_id = %handoff.tenant, "a handed-over delivery without room; its lease runs out");
                            continue;
                        };
                        start_delivery(&shared, &mut tasks, &outcomes, handoff.tenant, job, room);
                    }
                }
                None => open = false,
            },
            Some(_) = tasks.join_next() => {}
            _ = &mut stop => break,
        }
    }
    let grace = shared.options.shutdown_grace;
    let finished = tokio::time::timeout(grace, async {
        loop {
            tokio::select! {
                handoff = handed.recv() => match handoff {
                    Some(handoff) => keep_for_release(&shared, handoff),
                    None => break,
                },
                Some(_) = tasks.join_next() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    })
    .await;
    handed.close();
    while let Ok(handoff) = handed.try_recv() {
        keep_for_release(&shared, handoff);
    }
    if finished.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Deliveries handed over as the worker stops: not sent, their leases
/// given back at the end (see [`release_leases`]).
fn keep_for_release(shared: &Shared, handoff: Handoff) {
    let mut in_flight = shared.in_flight.lock().expect("in-flight map");
    for job in handoff.jobs {
        in_flight.insert(
            (job.message_id, job.webhook.id),
            (handoff.tenant, job.lease),
        );
    }
}

/// Signs and sends one claimed delivery: every claimed delivery is
/// attempted and has an outcome. (An endpoint's state lives in the
/// database alone: one that answered `410 Gone` is disabled by the outcome
/// recorder, which stops its pending deliveries in every process, and
/// re-enabling it there is seen everywhere.)
async fn deliver(shared: &Shared, job: Job) -> Outcome {
    let at = (shared.clock)();
    let opened = shared
        .webhooks
        .signing_secrets(&job.webhook, at)
        .and_then(|secrets| Ok((secrets, shared.webhooks.custom_headers(&job.webhook)?)));
    let attempt = match opened {
        Ok((secrets, custom)) => {
            let secrets: Vec<&SigningSecret> = secrets.iter().collect();
            let headers = sign(
                &job.message_id.webhook_id(),
                at.timestamp(),
                job.payload.as_bytes(),
                &secrets,
            );
            shared
                .transport
                .send(&job.webhook.url, &custom, &headers, job.payload.as_bytes())
                .await
        }
        Err(e) => {
            tracing::error!(tenant_id = %job.webhook.tenant_id, webhook_id = %job.webhook.id, error = %e, "cannot sign a webhook delivery");
            Attempt::failed(
                ErrorClass::Signing,
                Duration::ZERO,
                "the delivery could not be signed",
            )
        }
    };
    tracing::debug!(
        tenant_id = %job.webhook.tenant_id,
        webhook_id = %job.webhook.id,
        message_id = %job.message_id,
        attempt = job.attempt,
        result = %queue::describe(&attempt),
        "webhook delivery attempted"
    );
    Outcome {
        message_id: job.message_id,
        webhook_id: job.webhook.id,
        lease: job.lease,
        number: job.attempt,
        at,
        attempt,
    }
}

/// A tenant's outcomes written at once when this many wait, whatever
/// [`WorkerOptions::outcome_linger`].
const OUTCOME_BATCH: usize = 64;

/// Writes outcomes in batches, one transaction per tenant. Under load
/// (at least [`OUTCOME_BATCH`] waiting in all), a tenant's outcomes wait up
/// to [`WorkerOptions::outcome_linger`] for more of its own, so that a busy
/// tenant's share a transaction (deliveries go out one by one; their
/// outcomes need not be written so); a quiet worker writes them at once.
/// Everything waiting is written when the channel closes.
async fn record_outcomes(shared: Arc<Shared>, mut received: mpsc::Receiver<(TenantId, Outcome)>) {
    let linger = shared.options.outcome_linger;
    let mut waiting: HashMap<TenantId, (tokio::time::Instant, Vec<Outcome>)> = HashMap::new();
    let mut batch = Vec::new();
    let mut open = true;
    while open || !waiting.is_empty() {
        let oldest = waiting.values().map(|(since, _)| *since).min();
        tokio::select! {
            n = received.recv_many(&mut batch, 2000), if open => open = n > 0,
            _ = tokio::time::sleep_until(oldest.unwrap_or_else(tokio::time::Instant::now) + linger),
                if oldest.is_some() => {}
        }
        let now = tokio::time::Instant::now();
        for (tenant, outcome) in batch.drain(..) {
            waiting
                .entry(tenant)
                .or_insert_with(|| (now, Vec::new()))
                .1
                .push(outcome);
        }
        // Few waiting in all (a quiet worker): nothing to gain by waiting.
        let quiet = waiting.values().map(|(_, o)| o.len()).sum::<usize>() < OUTCOME_BATCH;
        let ripe: Vec<TenantId> = waiting
            .iter()
            .filter(|(_, (since, outcomes))| {
                !open || quiet || outcomes.len() >= OUTCOME_BATCH || now >= *since + linger
            })
            .map(|(tenant, _)| *tenant)
            .collect();
        let ripe: Vec<(TenantId, Vec<Outcome>)> = ripe
            .into_iter()
            .filter_map(|tenant| waiting.remove(&tenant).map(|(_, o)| (tenant, o)))
            .collect();
        stream::iter(ripe)
            .for_each_concurrent(4, |(tenant, outcomes)| {
                let shared = shared.clone();
                async move { record_tenant(&shared, tenant, &outcomes).await }
            })
            .await;
    }
}

async fn record_tenant(shared: &Shared, tenant: TenantId, outcomes: &[Outcome]) {
    let disable_after = chrono::Duration::from_std(shared.options.disable_after)
        .unwrap_or(chrono::Duration::days(5));
    let mut wait = Duration::from_millis(100);
    for tries in 1..=4 {
        let result = async {
            let Some(ctx) = shared.db.resolve_cached(&TenantRef::Id(tenant)).await? else {
                return Ok(());
            };
            let mut tx = shared.db.begin(&ctx.with_actor(Actor::System)).await?;
            Queue(&shared.webhooks)
                .record(&mut tx, outcomes, disable_after)
                .await?;
            tx.commit().await?;
            Ok::<_, WebhookError>(())
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) if tries < 4 => {
                tracing::warn!(tenant_id = %tenant, error = %e, "writing webhook outcomes failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 4;
            }
            Err(e) => {
                // The leases expire and the deliveries are tried again:
                // at least once still holds.
                tracing::error!(tenant_id = %tenant, error = %e, count = outcomes.len(), "webhook outcomes not written; they will be retried after their leases");
            }
        }
    }
}

/// Every `retention_every`, from start: removes messages older than `keep`.
async fn apply_retention(shared: Arc<Shared>, keep: Duration) {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(30));
    let mut ticks = tokio::time::interval(shared.options.retention_every);
    loop {
        ticks.tick().await;
        let now = (shared.clock)();
        for (purge, cutoff) in [
            (Purge::Messages, now - keep),
            (Purge::Keys, now - crate::idempotency::KEEP_KEYS),
        ] {
            match purge_expired(&shared, purge, cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(?purge, removed = n, %cutoff, "webhook retention"),
                Err(e) => {
                    tracing::warn!(error = %e, ?purge, "webhook retention failed; trying again later");
                }
            }
        }
    }
}

/// What retention removes.
#[derive(Clone, Copy, Debug)]
enum Purge {
    /// Messages, with their deliveries and attempts.
    Messages,
    /// Idempotency keys of publishing over HTTP.
    Keys,
}

/// One pass of retention over every tenant with `purge`'s rows before `cutoff`.
async fn purge_expired(
    shared: &Shared,
    purge: Purge,
    cutoff: DateTime<Utc>,
) -> Result<u64, WebhookError> {
    let finder = match purge {
        Purge::Messages => &crate::retention::EXPIRED,
        Purge::Keys => &crate::idempotency::EXPIRED_KEYS,
    };
    let batch = crate::retention::PURGE_BATCH;
    let mut done: Vec<TenantId> = Vec::new();
    let mut purged = 0;
    loop {
        let due = shared
            .db
            .tenants_with_due_work(finder, cutoff, 100, &done)
            .await?;
        if due.is_empty() {
            return Ok(purged);
        }
        for tenant in due {
            done.push(tenant.tenant_id);
            let Some(ctx) = shared
                .db
                .resolve_cached(&TenantRef::Id(tenant.tenant_id))
                .await?
            else {
                continue;
            };
            let ctx = ctx.with_actor(Actor::System);
            loop {
                let mut tx = shared.db.begin(&ctx).await?;
                let n = match purge {
                    Purge::Messages => {
                        shared
                            .webhooks
                            .purge_expired(&mut tx, cutoff, batch)
                            .await?
                    }
                    Purge::Keys => {
                        shared
                            .webhooks
                            .purge_expired_keys(&mut tx, cutoff, batch)
                            .await?
                    }
                };
                tx.commit().await?;
                purged += n;
                if n < u64::from(batch) {
                    break;
                }
            }
        }
    }
}

/// Gives back the leases of deliveries that were claimed but not attempted.
async fn release_leases(shared: &Shared) {
    let leases: Vec<_> = shared
        .in_flight
        .lock()
        .expect("in-flight map")
        .drain()
        .collect();
    if leases.is_empty() {
        return;
    }
    let mut by_tenant: HashMap<TenantId, Vec<(MessageId, WebhookId, Uuid)>> = HashMap::new();
    for ((message, webhook), (tenant, lease)) in leases {
        by_tenant
            .entry(tenant)
            .or_default()
            .push((message, webhook, lease));
    }
    let now = (shared.clock)();
    for (tenant, leases) in by_tenant {
        let result = async {
            let Some(ctx) = shared.db.resolve_cached(&TenantRef::Id(tenant)).await? else {
                return Ok(0);
            };
            let mut tx = shared.db.begin(&ctx.with_actor(Actor::System)).await?;
            let released = Queue(&shared.webhooks)
                .release(&mut tx, &leases, now)
                .await?;
            tx.commit().await?;
            Ok::<_, WebhookError>(released)
        }
        .await;
        match result {
            Ok(n) => tracing::info!(tenant_id = %tenant, released = n, "webhook leases given back"),
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, error = %e, "could not give back webhook leases; they expire")
            }
        }
    }
}
