//! Direct dispatch: a publish hands its deliveries to this process's
//! worker already leased, and they are sent as soon as it commits, with no
//! claim and no scan for due work in between.
//!
//! - **Only what is free**: a publish reserves slots of the worker (within
//!   its concurrency and the tenant's share) before it writes; its queue
//!   rows are inserted leased to the worker for as many as it reserved, the
//!   rest pending for the claim rounds as before.
//! - **Within the budget**: where the tenant has a budget per minute, the
//!   same statement spends it from the tenant's window (shared by every
//!   worker process), and leases nothing when the budget would be exceeded.
//! - **After the commit, or never**: the jobs reach the worker by
//!   [`tenantkit::TenantTx::after_commit`]; rolled back, the reservation is
//!   given back and nothing was written. A process that dies between the
//!   commit and the delivery loses nothing: the leases run out and any
//!   worker retries, as after a crash mid-delivery.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenantkit::{TenantContext, TenantId, TenantTx};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use uuid::Uuid;

use super::MessageId;
use crate::{Webhook, endpoints::WebhookError, schema::RATE_WINDOWS, sql};

/// Each tenant's delivery budget per minute (e.g. from its plan).
#[async_trait]
pub trait DeliveryLimits: Send + Sync + 'static {
    /// Deliveries per minute for `tenant`; `None` for no limit.
    async fn per_minute(&self, tenant: &TenantContext) -> Option<u32>;
}

/// The same budget for every tenant (`None`: no limit).
#[async_trait]
impl DeliveryLimits for Option<u32> {
    async fn per_minute(&self, _tenant: &TenantContext) -> Option<u32> {
        *self
    }
}

/// The time, as the worker sees it (tests move it forward).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One delivery leased to this worker (claimed, or handed over by a
/// publish), ready to send.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) message_id: MessageId,
    pub(crate) webhook: Webhook,
    /// This attempt's number (1 for the first).
    pub(crate) attempt: u32,
    pub(crate) payload: String,
    pub(crate) lease: Uuid,
}

/// The start of the minute `now` is in.
pub(crate) fn window_start(now: DateTime<Utc>) -> DateTime<Utc> {
    let secs = now.timestamp() - now.timestamp().rem_euclid(60);
    DateTime::from_timestamp(secs, 0).unwrap_or(now)
}

/// A leased delivery as read back, with its body and its endpoint.
#[derive(sqlx::FromRow)]
pub(crate) struct LeasedRow {
    pub(crate) message_id: MessageId,
    pub(crate) attempts: i64,
    pub(crate) payload: String,
    #[sqlx(flatten)]
    pub(crate) webhook: Webhook,
}

impl LeasedRow {
    /// The delivery, to send under `lease`.
    pub(crate) fn job(self, lease: Uuid) -> Job {
        Job {
            message_id: self.message_id,
            webhook: self.webhook,
            attempt: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            payload: self.payload,
            lease,
        }
    }
}

/// What is left of the tenant's budget of `per_minute` in the window
/// starting `window` (opened, or reset when a new minute started, and
/// locked until commit: claims and publishes of every process share it).
pub(crate) async fn budget_left(
    tx: &mut TenantTx,
    window: DateTime<Utc>,
    per_minute: u32,
) -> Result<i64, WebhookError> {
    let take = tx.query(sql::TAKE_RATE_WINDOW).bind(window);
    let used: Vec<(i64,)> = tx.write_operational_returning(RATE_WINDOWS, take).await?;
    let used = used.first().map_or(0, |(n,)| *n);
    Ok((i64::from(per_minute) - used).max(0))
}

/// The deliveries of `lease` just written by a publish on SQLite, ready to
/// send, spent from the tenant's budget window when `spend`.
pub(crate) async fn leased_on_sqlite(
    tx: &mut TenantTx,
    lease: Uuid,
    spend: bool,
) -> Result<Vec<Job>, WebhookError> {
    let rows = tx.query(sql::LEASED_WITH_PAYLOADS).bind(lease);
    let rows: Vec<LeasedRow> = tx.fetch_all(rows).await?;
    if spend && !rows.is_empty() {
        let spend = tx
            .query(sql::SPEND_RATE_WINDOW)
            .bind(i64::try_from(rows.len()).unwrap_or(i64::MAX));
        tx.write_operational(RATE_WINDOWS, spend).await?;
    }
    Ok(rows.into_iter().map(|row| row.job(lease)).collect())
}

/// The most deliveries of one publish handed over directly (an endpoint
/// each; the rest wait for a claim).
pub(crate) const MOST_PER_PUBLISH: usize = 16;

/// Slots each tenant's deliveries hold now, in one worker.
pub(crate) type Held = Arc<Mutex<HashMap<TenantId, usize>>>;

/// Slots held by a tenant, given back when dropped (the delivery finished,
/// or its task was cancelled, or the publish that reserved them did not
/// commit).
pub(crate) struct Slot {
    held: Held,
    tenant: TenantId,
    n: usize,
}

impl Slot {
    /// Takes `n` of `tenant`'s slots (the caller checked its share).
    pub(crate) fn take(held: &Held, tenant: TenantId, n: usize) -> Self {
        *held.lock().expect("held map").entry(tenant).or_default() += n;
        Self {
            held: held.clone(),
            tenant,
            n,
        }
    }

    /// One of these slots, as a slot of its own.
    fn split_one(&mut self) -> Option<Self> {
        if self.n == 0 {
            return None;
        }
        self.n -= 1;
        Some(Self {
            held: self.held.clone(),
            tenant: self.tenant,
            n: 1,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.n == 0 {
            return;
        }
        let mut held = self.held.lock().expect("held map");
        if let Some(count) = held.get_mut(&self.tenant) {
            *count = count.saturating_sub(self.n);
            if *count == 0 {
                held.remove(&self.tenant);
            }
        }
    }
}

/// Capacity of the worker reserved for one publish: permits of its
/// concurrency and slots of the tenant's share.
pub(crate) struct Reservation {
    permit: OwnedSemaphorePermit,
    slot: Slot,
}

impl Reservation {
    /// How many deliveries it holds room for.
    pub(crate) fn len(&self) -> usize {
        self.slot.n
    }

    /// Keeps room for `n` deliveries, gives back the rest now.
    pub(crate) fn keep(&mut self, n: usize) {
        let extra = self.slot.n.saturating_sub(n);
        if extra > 0 {
            drop(self.permit.split(extra));
            self.slot.n -= extra;
            // Dropped, it gives its slots back.
            drop(Slot {
                held: self.slot.held.clone(),
                tenant: self.slot.tenant,
                n: extra,
            });
        }
    }

    /// The room for one delivery.
    pub(crate) fn take_one(&mut self) -> Option<(OwnedSemaphorePermit, Slot)> {
        let slot = self.slot.split_one()?;
        let permit = self.permit.split(1)?;
        Some((permit, slot))
    }
}

/// Deliveries of one committed publish, leased to the worker.
pub(crate) struct Handoff {
    pub(crate) tenant: TenantId,
    pub(crate) jobs: Vec<Job>,
    pub(crate) room: Reservation,
}

/// A running worker's door for publishes of this process (see the module
/// documentation). Registered with [`crate::Webhooks`] while the worker runs.
#[derive(Clone)]
pub(crate) struct Dispatch {
    /// Which worker registered it.
    pub(crate) worker: Uuid,
    pub(crate) handoffs: mpsc::UnboundedSender<Handoff>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) held: Held,
    /// The slots one tenant may hold.
    pub(crate) tenant_cap: usize,
    pub(crate) lease: chrono::Duration,
    pub(crate) limits: Arc<dyn DeliveryLimits>,
    pub(crate) known: KnownLimits,
    /// The worker's time: leases and budget windows as its claims see them.
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Dispatch {
    /// Room for up to `most` of `tenant`'s deliveries, if the worker has
    /// any free now (never waits).
    pub(crate) fn reserve(&self, tenant: TenantId, most: usize) -> Option<Reservation> {
        if self.handoffs.is_closed() {
            return None;
        }
        let mut held = self.held.lock().expect("held map");
        let room = self
            .tenant_cap
            .saturating_sub(held.get(&tenant).copied().unwrap_or(0));
        let n = most.min(room).min(self.permits.available_permits());
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(u32::try_from(n).ok().filter(|n| *n > 0)?)
            .ok()?;
        *held.entry(tenant).or_default() += n;
        drop(held);
        Some(Reservation {
            permit,
            slot: Slot {
                held: self.held.clone(),
                tenant,
                n,
            },
        })
    }

    /// Hands committed deliveries to the worker. A worker that has stopped
    /// meanwhile cannot take them: their leases run out and they are
    /// claimed again.
    pub(crate) fn hand_over(&self, handoff: Handoff) {
        if let Err(lost) = self.handoffs.send(handoff) {
            tracing::info!(
                tenant_id = %lost.0.tenant,
                deliveries = lost.0.jobs.len(),
                "the webhook worker stopped before taking deliveries handed to it; they are retried once their leases run out"
            );
        }
    }
}

/// A publish's plan to hand its deliveries over: the room reserved, the
/// lease its rows get, and the tenant's budget to spend.
pub(crate) struct Direct {
    pub(crate) dispatch: Dispatch,
    pub(crate) room: Reservation,
    pub(crate) lease: Uuid,
    pub(crate) until: DateTime<Utc>,
    /// The start of the budget window it spends from.
    pub(crate) window: DateTime<Utc>,
    pub(crate) per_minute: Option<u32>,
}

/// How long a tenant's budget, once looked up, serves publishes (looked up
/// again in the background when older).
pub(crate) const KNOWN_LIMIT_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Tenants' budgets as last looked up, for publishes: looking one up may
/// read the database, which a publish must not do from inside its
/// transaction (its connection held while it waits for another).
#[derive(Clone, Default)]
pub(crate) struct KnownLimits(Arc<Mutex<HashMap<TenantId, Known>>>);

#[derive(Clone, Copy)]
enum Known {
    /// The budget, looked up at that instant.
    Limit(Option<u32>, std::time::Instant),
    /// Being looked up since then (tried again if it never ends).
    LookingUp(std::time::Instant),
}

impl KnownLimits {
    /// `ctx`'s budget if known. One older than [`KNOWN_LIMIT_FOR`] still
    /// serves while it is looked up again; an unknown one is `None`, and
    /// looked up for the next publish.
    fn get(&self, ctx: &TenantContext, limits: &Arc<dyn DeliveryLimits>) -> Option<Option<u32>> {
        let now = std::time::Instant::now();
        let mut known = self.0.lock().expect("known limits");
        let old = |at: &std::time::Instant| now.duration_since(*at) > KNOWN_LIMIT_FOR;
        let (value, look_up) = match known.get(&ctx.id()) {
            Some(Known::Limit(limit, at)) => (Some(*limit), old(at)),
            Some(Known::LookingUp(at)) => (None, old(at)),
            None => (None, true),
        };
        if look_up {
            // One lookup at a time per tenant: the entry is fresh again
            // until it ends.
            let entry = match value {
                Some(limit) => Known::Limit(limit, now),
                None => Known::LookingUp(now),
            };
            known.insert(ctx.id(), entry);
            // Tenants not seen for a while go: the map stays as large as
            // the set of tenants publishing.
            known.retain(|_, k| match k {
                Known::Limit(_, at) | Known::LookingUp(at) => {
                    now.duration_since(*at) < 10 * KNOWN_LIMIT_FOR
                }
            });
            let (map, limits, ctx) = (self.0.clone(), limits.clone(), ctx.clone());
            tokio::spawn(async move {
                let limit = limits.per_minute(&ctx).await;
                map.lock()
                    .expect("known limits")
                    .insert(ctx.id(), Known::Limit(limit, std::time::Instant::now()));
            });
        }
        value
    }
}

impl Dispatch {
    /// Room for a publish of `ctx`'s tenant, if the worker has any now and
    /// the tenant's budget is known (else the publish's deliveries are
    /// claimed, and the budget is looked up for the next).
    pub(crate) fn prepare(&self, ctx: &TenantContext) -> Option<Direct> {
        let per_minute = self.known.get(ctx, &self.limits)?;
        let room = self.reserve(ctx.id(), MOST_PER_PUBLISH)?;
        let now = (self.clock)();
        Some(Direct {
            dispatch: self.clone(),
            room,
            lease: Uuid::now_v7(),
            until: now + self.lease,
            window: window_start(now),
            per_minute,
        })
    }
}

impl crate::Webhooks {
    /// Lets publishes hand deliveries to a running worker of this process.
    pub(crate) fn open_dispatch(&self, dispatch: Dispatch) {
        *self.dispatch_slot().write().expect("dispatch slot") = Some(Arc::new(dispatch));
    }

    /// Stops handing deliveries to `worker` (it is stopping).
    pub(crate) fn close_dispatch(&self, worker: Uuid) {
        let mut slot = self.dispatch_slot().write().expect("dispatch slot");
        let ours = slot
            .as_ref()
            .and_then(|d| d.downcast_ref::<Dispatch>())
            .is_some_and(|d| d.worker == worker);
        if ours {
            *slot = None;
        }
    }

    /// The running worker of this process, if one takes deliveries directly.
    pub(crate) fn dispatch(&self) -> Option<Dispatch> {
        self.dispatch_slot()
            .read()
            .expect("dispatch slot")
            .as_ref()
            .and_then(|d| d.downcast_ref::<Dispatch>())
            .cloned()
    }
}
