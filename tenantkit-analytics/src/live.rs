//! The live stream: what each tenant's events add up to, second by second,
//! for the connections that watch it (the reference server's
//! `/ws/analytics`).
//!
//! [`Live`] keeps one feed per tenant that somebody watches. A feed's state
//! is read from the database (`event_live_totals`, every event ever stored
//! per type with the newest id, and today's DAU), never accumulated from
//! messages, so nothing is double-counted or lost whichever process stored
//! the events:
//!
//! - a flush committed in this process wakes the feeds of its tenants at
//!   once ([`Analytics::commits`]);
//! - on PostgreSQL a flush committed anywhere wakes them through
//!   `LISTEN` on [`crate::ingest::LIVE_CHANNEL`]; when the listener's
//!   connection was lost, every feed is read again;
//! - every feed is read again every [`LiveConfig::refresh_every`] anyway.
//!
//! Reads come in rounds at most every 200 ms: wake-ups meanwhile coalesce,
//! so a busy tenant costs a few small reads a second, not one per flush.
//!
//! [`Live::shutdown`] ends every subscription and the hub's tasks.
//!
//! A [`Subscription`] compares the feed's latest state with what it last
//! sent ([`Subscription::update`], once a second at most): a connection that
//! could not keep up gets the sum of what it missed in its next message, not
//! a backlog, and its state is bounded by [`LiveConfig::max_types`].
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use chrono::Utc;
//! use tenantkit::{Db, NewTenant, audit::Actor};
//! use tenantkit_analytics::{Analytics, IngestConfig, event::NewEvent, live::{Live, LiveConfig}};
//!
//! let db = Db::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! tenantkit_analytics::storage::migrate(&db).await?;
//! db.platform().create_tenant(&NewTenant { name: "Acme".into(), subdomain: "acme".into() }, &Actor::System).await?;
//! let acme = db.resolve_subdomain("acme").await?.expect("just created");
//!
//! let (analytics, _writer) = Analytics::start(db.clone(), IngestConfig::default());
//! let live = Live::start(db.clone(), &analytics, LiveConfig::default()).await?;
//! let mut watching = live.subscribe(&acme, None).expect("under the limits");
//! watching.ready().await;
//!
//! let signup = NewEvent { event_type: "signup".into(), user_id: Some("u1".into()), ..Default::default() };
//! analytics.record(&acme, signup).await.expect("stored");
//! watching.changed().await;
//! let update = watching.update(Utc::now()).expect("something new");
//! assert_eq!(update.counts["signup"], 1);
//! assert_eq!(update.dau_today, 1);
//! assert!(watching.update(Utc::now()).is_none(), "nothing new since");
//! # Ok::<_, tenantkit::Error>(()) }).unwrap();
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use chrono::{DateTime, NaiveDate, TimeDelta, Timelike as _, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use tenantkit::{Db, Result, TenantContext, TenantId, store::Value};
use tokio::{
    sync::{Notify, broadcast::error::RecvError, watch},
    task::JoinHandle,
};
use uuid::Uuid;

use crate::{Analytics, ingest::LIVE_CHANNEL, sql};

/// The key under which the types beyond [`LiveConfig::max_types`] are
/// summed (not a valid event type, so never a real one).
pub const OTHER_TYPES: &str = "(other)";

/// How long "recent" is for [`Update::events_last_minute`].
const MINUTE: TimeDelta = TimeDelta::seconds(60);

/// Feeds read from the database at once.
const PARALLEL_READS: usize = 4;

/// A feed is read at most this often, however often it is woken (updates
/// go out once a second; this bounds the database work a busy tenant makes).
const MIN_ROUND: Duration = Duration::from_millis(200);

/// The most types one subscription may name.
pub const MAX_FOLLOWED: usize = 256;

/// The types a subscription names, checked: each a valid event type (or
/// [`OTHER_TYPES`]), at least one, at most [`MAX_FOLLOWED`].
pub fn followed_types<S: AsRef<str>>(
    types: impl IntoIterator<Item = S>,
) -> Result<BTreeSet<String>, String> {
    let mut followed = BTreeSet::new();
    for ty in types {
        let ty = ty.as_ref().trim();
        if !(crate::event::valid_type(ty) || ty == OTHER_TYPES) {
            return Err(format!(
                "`{ty}` is not an event type (`[a-z0-9_.:-]{{1,64}}`)"
            ));
        }
        followed.insert(ty.to_owned());
    }
    if followed.is_empty() {
        return Err("name at least one event type (or none to follow all)".into());
    }
    if followed.len() > MAX_FOLLOWED {
        return Err(format!(
            "at most {MAX_FOLLOWED} event types may be followed (got {})",
            followed.len()
        ));
    }
    Ok(followed)
}

/// Limits of the live stream.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Connections one tenant may hold in this process.
    pub max_per_tenant: usize,
    /// Connections this process holds at most.
    pub max_connections: usize,
    /// Event types followed per tenant; the least frequent beyond these are
    /// summed under [`OTHER_TYPES`].
    pub max_types: usize,
    /// Every feed is read again this often, whatever was announced.
    pub refresh_every: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            max_per_tenant: 100,
            max_connections: 10_000,
            max_types: 256,
            refresh_every: Duration::from_secs(10),
        }
    }
}

/// Why a subscription was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// The tenant holds [`LiveConfig::max_per_tenant`] connections already.
    #[error("this tenant already holds {0} live connections in this server process")]
    TenantFull(usize),
    /// The process holds [`LiveConfig::max_connections`] already.
    #[error("this server process already holds {0} live connections")]
    ProcessFull(usize),
}

/// One event type's totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct TypeTotal {
    events: u64,
    last_event_id: Uuid,
}

/// A tenant's state as last read.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Read at least once (a subscription's baseline).
    loaded: bool,
    /// Events ever stored, by type.
    types: BTreeMap<String, TypeTotal>,
    /// Distinct users of today (UTC).
    dau_today: u64,
    /// Events that arrived in each second of the last minute, by type.
    recent: VecDeque<(DateTime<Utc>, BTreeMap<String, u64>)>,
}

/// One message of the stream: what is new since the previous one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Update {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// Events by type since the previous message (followed types only).
    pub counts: BTreeMap<String, u64>,
    /// Their sum.
    pub events: u64,
    /// Events (of the followed types) stored in the last 60 seconds.
    pub events_last_minute: u64,
    /// Distinct users active today (UTC), all types.
    pub dau_today: u64,
    /// The newest event of the followed types (UUIDv7, time-ordered).
    pub last_event_id: Option<Uuid>,
}

/// The live stream's hub: cheap to clone, one per process.
#[derive(Clone)]
pub struct Live {
    hub: Arc<Hub>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

struct Hub {
    db: Db,
    config: LiveConfig,
    feeds: Mutex<Feeds>,
    /// Tenants whose feed should be read again.
    pending: Mutex<HashSet<TenantId>>,
    wake: Arc<Notify>,
    closing: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The listener opened by [`Live::new`], for the first
    /// [`Live::follow_announcements`] (later ones open their own).
    first_wakeups: Mutex<Option<tenantkit::store::Wakeups>>,
}

#[derive(Default)]
struct Feeds {
    by_tenant: HashMap<TenantId, Watched>,
    connections: usize,
}

/// A feed and how many subscriptions watch it.
struct Watched {
    feed: Arc<Feed>,
    subscribers: usize,
}

struct Feed {
    ctx: TenantContext,
    state: watch::Sender<Arc<Snapshot>>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().expect("not poisoned").drain(..) {
            task.abort();
        }
    }
}

impl Live {
    /// Starts the hub on `db` (with the analytics migrations applied),
    /// woken by `analytics`' flushes and, on PostgreSQL, by every process's:
    /// [`Live::new`] with its three loops spawned (not restarted should one
    /// fail; a server supervises them itself).
    pub async fn start(db: Db, analytics: &Analytics, config: LiveConfig) -> Result<Self> {
        let live = Self::new(db, config).await?;
        let tasks = vec![
            tokio::spawn(live.refresh()),
            tokio::spawn(live.follow_commits(analytics)),
            tokio::spawn({
                let live = live.clone();
                async move {
                    if let Err(e) = live.follow_announcements().await {
                        tracing::warn!(error = %e, "live announcements stopped");
                    }
                }
            }),
        ];
        *live.hub.tasks.lock().expect("not poisoned") = tasks;
        Ok(live)
    }

    /// The hub on `db`, listening for other processes' announcements from
    /// now on; its loops ([`Live::refresh`], [`Live::follow_commits`],
    /// [`Live::follow_announcements`]) are the caller's to run, and to run
    /// again should one fail.
    pub async fn new(db: Db, config: LiveConfig) -> Result<Self> {
        let wakeups = db.wakeups(LIVE_CHANNEL).await?;
        let hub = Arc::new(Hub {
            db,
            config,
            feeds: Mutex::default(),
            pending: Mutex::default(),
            wake: Arc::new(Notify::new()),
            closing: watch::Sender::new(false),
            tasks: Mutex::default(),
            first_wakeups: Mutex::new(Some(wakeups)),
        });
        Ok(Self { hub })
    }

    /// The loop that reads marked feeds (and every feed every
    /// [`LiveConfig::refresh_every`]); ends when the hub is dropped.
    pub fn refresh(&self) -> impl Future<Output = ()> + Send + use<> {
        refresh(Arc::downgrade(&self.hub))
    }

    /// The loop that marks the feeds of `analytics`' flushes in this
    /// process; ends when the hub or `analytics` is gone.
    pub fn follow_commits(&self, analytics: &Analytics) -> impl Future<Output = ()> + Send + use<> {
        local_commits(Arc::downgrade(&self.hub), analytics.commits())
    }

    /// The loop that marks the feeds other processes announce (PostgreSQL;
    /// on SQLite it waits forever). Run again, it first has every feed read,
    /// since announcements may have been missed meanwhile.
    pub async fn follow_announcements(&self) -> Result<()> {
        let first = self.hub.first_wakeups.lock().expect("not poisoned").take();
        let wakeups = match first {
            Some(wakeups) => wakeups,
            None => {
                let wakeups = self.hub.db.wakeups(LIVE_CHANNEL).await?;
                self.hub.mark_all();
                wakeups
            }
        };
        announcements(Arc::downgrade(&self.hub), wakeups).await;
        Ok(())
    }

    /// Watches `ctx`'s tenant, following `types` (all when `None`); refused
    /// beyond the connection limits.
    pub fn subscribe(
        &self,
        ctx: &TenantContext,
        types: Option<BTreeSet<String>>,
    ) -> Result<Subscription, LiveError> {
        let config = &self.hub.config;
        let mut feeds = self.hub.feeds.lock().expect("not poisoned");
        if feeds.connections >= config.max_connections {
            return Err(LiveError::ProcessFull(config.max_connections));
        }
        let fresh = !feeds.by_tenant.contains_key(&ctx.id());
        let watched = feeds.by_tenant.entry(ctx.id()).or_insert_with(|| Watched {
            feed: Arc::new(Feed {
                ctx: ctx.clone(),
                state: watch::Sender::new(Arc::default()),
            }),
            subscribers: 0,
        });
        if watched.subscribers >= config.max_per_tenant {
            return Err(LiveError::TenantFull(config.max_per_tenant));
        }
        watched.subscribers += 1;
        let state = watched.feed.state.subscribe();
        feeds.connections += 1;
        drop(feeds);
        if fresh {
            self.hub.mark([ctx.id()]);
        }
        Ok(Subscription {
            hub: self.hub.clone(),
            tenant: ctx.id(),
            state,
            types,
            sent: None,
            closing: self.hub.closing.subscribe(),
        })
    }

    /// Live connections in this process.
    pub fn connections(&self) -> usize {
        self.hub.feeds.lock().expect("not poisoned").connections
    }

    /// Tells every subscription the process is closing
    /// ([`Subscription::closing`]) and stops the hub's tasks, giving back
    /// the listener's connection (call before closing the pool).
    pub fn shutdown(&self) {
        self.hub.closing.send_replace(true);
        for task in self.hub.tasks.lock().expect("not poisoned").drain(..) {
            task.abort();
        }
    }
}

impl Hub {
    /// Has the feeds of `tenants` (those that exist) read again soon.
    fn mark(&self, tenants: impl IntoIterator<Item = TenantId>) {
        let feeds = self.feeds.lock().expect("not poisoned");
        let mut pending = self.pending.lock().expect("not poisoned");
        pending.extend(
            tenants
                .into_iter()
                .filter(|t| feeds.by_tenant.contains_key(t)),
        );
        drop((feeds, pending));
        self.wake.notify_one();
    }

    fn mark_all(&self) {
        let all: Vec<TenantId> = {
            let feeds = self.feeds.lock().expect("not poisoned");
            feeds.by_tenant.keys().copied().collect()
        };
        self.mark(all);
    }

    fn leave(&self, tenant: TenantId) {
        let mut feeds = self.feeds.lock().expect("not poisoned");
        feeds.connections -= 1;
        let gone = feeds.by_tenant.get_mut(&tenant).is_some_and(|watched| {
            watched.subscribers -= 1;
            watched.subscribers == 0
        });
        if gone {
            feeds.by_tenant.remove(&tenant);
        }
    }

    /// Reads one feed's state and publishes it if anything changed.
    async fn read(&self, feed: Arc<Feed>) {
        let today = Utc::now().date_naive();
        match read_totals(&self.db, &feed.ctx, today).await {
            Ok((rows, dau)) => {
                let types = fold_types(rows, self.config.max_types);
                let now = Utc::now();
                feed.state.send_if_modified(|current| {
                    let dau = u64::try_from(dau).unwrap_or_default();
                    let next = Arc::new(next_snapshot(current, types, dau, now));
                    let changed = !current.loaded
                        || next.types != current.types
                        || next.dau_today != current.dau_today
                        || next.recent.len() != current.recent.len();
                    *current = next;
                    changed
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, tenant = %feed.ctx.id(), "reading a live feed failed; retrying");
                self.pending
                    .lock()
                    .expect("not poisoned")
                    .insert(feed.ctx.id());
            }
        }
    }
}

/// The rows of `event_live_totals` and today's DAU, for one tenant.
async fn read_totals(
    db: &Db,
    ctx: &TenantContext,
    today: NaiveDate,
) -> Result<(Vec<(String, i64, Uuid)>, i64)> {
    let mut tx = db.begin_snapshot(ctx).await?;
    let rows = tx.fetch_all(tx.query(sql::LIVE_TOTALS)).await?;
    let dau: Option<(i64,)> = tx
        .fetch_optional(tx.query(sql::DAILY_ACTIVE).bind(Value::Date(today)))
        .await?;
    tx.commit().await?;
    Ok((rows, dau.map_or(0, |(n,)| n)))
}

/// The `max` most frequent types, the others summed under [`OTHER_TYPES`].
fn fold_types(mut rows: Vec<(String, i64, Uuid)>, max: usize) -> BTreeMap<String, TypeTotal> {
    rows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut types = BTreeMap::new();
    for (i, (ty, events, last_event_id)) in rows.into_iter().enumerate() {
        let events = u64::try_from(events).unwrap_or_default();
        if i < max {
            types.insert(
                ty,
                TypeTotal {
                    events,
                    last_event_id,
                },
            );
        } else {
            let other = types.entry(OTHER_TYPES.to_owned()).or_insert(TypeTotal {
                events: 0,
                last_event_id,
            });
            other.events += events;
            other.last_event_id = other.last_event_id.max(last_event_id);
        }
    }
    types
}

/// The state after a read at `now`: what grew since `current` is added to
/// the second `now` falls in, and seconds older than a minute are let go.
fn next_snapshot(
    current: &Snapshot,
    types: BTreeMap<String, TypeTotal>,
    dau_today: u64,
    now: DateTime<Utc>,
) -> Snapshot {
    let mut recent = current.recent.clone();
    if current.loaded {
        let grown: BTreeMap<String, u64> = types
            .iter()
            .filter_map(|(ty, t)| {
                let before = current.types.get(ty).map_or(0, |b| b.events);
                (t.events > before).then(|| (ty.clone(), t.events - before))
            })
            .collect();
        if !grown.is_empty() {
            let second = now
                .with_nanosecond(0)
                .expect("zero nanoseconds is always valid");
            match recent.back_mut() {
                Some((s, counts)) if *s == second => {
                    for (ty, n) in grown {
                        *counts.entry(ty).or_default() += n;
                    }
                }
                _ => recent.push_back((second, grown)),
            }
        }
    }
    while recent.front().is_some_and(|(s, _)| now - *s > MINUTE) {
        recent.pop_front();
    }
    Snapshot {
        loaded: true,
        types,
        dau_today,
        recent,
    }
}

/// Reads pending feeds as they are marked, and every feed now and then.
async fn refresh(hub: Weak<Hub>) {
    let Some((wake, every)) = hub
        .upgrade()
        .map(|hub| (hub.wake.clone(), hub.config.refresh_every))
    else {
        return;
    };
    loop {
        let woken = tokio::time::timeout(every, wake.notified()).await.is_ok();
        let round = tokio::time::Instant::now();
        let Some(hub) = hub.upgrade() else { return };
        if !woken {
            hub.mark_all();
        }
        let tenants: Vec<TenantId> = hub.pending.lock().expect("not poisoned").drain().collect();
        let feeds: Vec<Arc<Feed>> = {
            let feeds = hub.feeds.lock().expect("not poisoned");
            tenants
                .iter()
                .filter_map(|t| feeds.by_tenant.get(t).map(|w| w.feed.clone()))
                .collect()
        };
        futures_util::stream::iter(feeds)
            .for_each_concurrent(PARALLEL_READS, |feed| hub.read(feed))
            .await;
        drop(hub);
        // Wake-ups meanwhile are kept (Notify stores one), and coalesce.
        tokio::time::sleep_until(round + MIN_ROUND).await;
    }
}

/// This process's flushes, as they commit.
async fn local_commits(
    hub: Weak<Hub>,
    mut commits: tokio::sync::broadcast::Receiver<Arc<[TenantId]>>,
) {
    loop {
        let received = commits.recv().await;
        let Some(hub) = hub.upgrade() else { return };
        match received {
            Ok(tenants) => hub.mark(tenants.iter().copied()),
            Err(RecvError::Lagged(_)) => hub.mark_all(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Every process's flushes, announced on PostgreSQL (never on SQLite).
async fn announcements(hub: Weak<Hub>, mut wakeups: tenantkit::store::Wakeups) {
    loop {
        let announced = wakeups.next_announcement().await;
        let Some(hub) = hub.upgrade() else { return };
        match announced {
            Some(payload) => hub.mark(payload.split(',').filter_map(|id| id.parse().ok())),
            // Announcements may have been lost while reconnecting.
            None => hub.mark_all(),
        }
    }
}

/// One connection's view of its tenant's feed.
pub struct Subscription {
    hub: Arc<Hub>,
    tenant: TenantId,
    state: watch::Receiver<Arc<Snapshot>>,
    types: Option<BTreeSet<String>>,
    /// Totals as of the previous message, of the followed types; `None`
    /// before [`Subscription::ready`].
    sent: Option<BTreeMap<String, u64>>,
    closing: watch::Receiver<bool>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("tenant", &self.tenant)
            .field("types", &self.types)
            .finish_non_exhaustive()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.leave(self.tenant);
    }
}

impl Subscription {
    /// Waits for the feed's first read and takes it as the starting point:
    /// later updates count what comes after. Returns today's DAU.
    pub async fn ready(&mut self) -> u64 {
        let snapshot = match self.state.wait_for(|s| s.loaded).await {
            Ok(s) => s.clone(),
            // The hub is gone: nothing will ever come.
            Err(_) => Arc::default(),
        };
        self.sent = Some(self.totals(&snapshot));
        snapshot.dau_today
    }

    /// Follows `types` from now on (all when `None`).
    pub fn follow(&mut self, types: Option<BTreeSet<String>>) {
        self.types = types;
        if self.sent.is_some() {
            let snapshot = self.state.borrow().clone();
            self.sent = Some(self.totals(&snapshot));
        }
    }

    /// The types followed (`None`: all).
    pub fn types(&self) -> Option<&BTreeSet<String>> {
        self.types.as_ref()
    }

    /// Returns once the feed may hold something new.
    pub async fn changed(&mut self) {
        if self.state.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Returns once the process is closing ([`Live::shutdown`]).
    pub async fn closing(&mut self) {
        if self.closing.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// What is new since the previous update (or [`Subscription::ready`]),
    /// stamped `at`; `None` when nothing is.
    pub fn update(&mut self, at: DateTime<Utc>) -> Option<Update> {
        let snapshot = self.state.borrow_and_update().clone();
        let sent = self.sent.as_ref()?;
        let now = self.totals(&snapshot);
        let counts: BTreeMap<String, u64> = now
            .iter()
            .filter_map(|(ty, n)| {
                let before = sent.get(ty).copied().unwrap_or_default();
                (*n > before).then(|| (ty.clone(), n - before))
            })
            .collect();
        if counts.is_empty() {
            return None;
        }
        let events_last_minute = snapshot
            .recent
            .iter()
            .filter(|(second, _)| at - *second <= MINUTE)
            .flat_map(|(_, counts)| counts.iter())
            .filter(|(ty, _)| self.follows(ty))
            .map(|(_, n)| n)
            .sum();
        let last_event_id = snapshot
            .types
            .iter()
            .filter(|(ty, _)| self.follows(ty))
            .map(|(_, t)| t.last_event_id)
            .max();
        self.sent = Some(now);
        Some(Update {
            at,
            events: counts.values().sum(),
            counts,
            events_last_minute,
            dau_today: snapshot.dau_today,
            last_event_id,
        })
    }

    fn follows(&self, ty: &str) -> bool {
        self.types.as_ref().is_none_or(|types| types.contains(ty))
    }

    fn totals(&self, snapshot: &Snapshot) -> BTreeMap<String, u64> {
        snapshot
            .types
            .iter()
            .filter(|(ty, _)| self.follows(ty))
            .map(|(ty, t)| (ty.clone(), t.events))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn followed_types_are_checked() {
        assert_eq!(
            followed_types(["signup", " page_view", "signup"])
                .unwrap()
                .len(),
            2
        );
        assert!(followed_types(["Signup"]).unwrap_err().contains("`Signup`"));
        assert!(followed_types(Vec::<String>::new()).is_err());
        let many: Vec<String> = (0..=MAX_FOLLOWED).map(|i| format!("t{i}")).collect();
        assert!(followed_types(&many).unwrap_err().contains("at most 256"));
        assert!(followed_types([OTHER_TYPES]).is_ok());
    }

    #[test]
    fn types_beyond_the_limit_are_summed_as_other() {
        let rows = vec![
            ("a".into(), 5, id(1)),
            ("b".into(), 9, id(2)),
            ("c".into(), 1, id(7)),
            ("d".into(), 2, id(3)),
        ];
        let types = fold_types(rows, 2);
        assert_eq!(types.keys().collect::<Vec<_>>(), ["(other)", "a", "b"]);
        assert_eq!(types[OTHER_TYPES].events, 3);
        assert_eq!(types[OTHER_TYPES].last_event_id, id(7));
    }

    #[test]
    fn growth_lands_in_its_second_and_leaves_after_a_minute() {
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let total = |n| {
            BTreeMap::from([(
                "x".to_owned(),
                TypeTotal {
                    events: n,
                    last_event_id: id(n.into()),
                },
            )])
        };
        let first = next_snapshot(&Snapshot::default(), total(10), 1, t0);
        assert!(first.recent.is_empty(), "the first read is the baseline");
        let second = next_snapshot(&first, total(15), 1, t0 + TimeDelta::milliseconds(300));
        let third = next_snapshot(&second, total(18), 1, t0 + TimeDelta::milliseconds(700));
        assert_eq!(third.recent.len(), 1, "one second, one bucket");
        assert_eq!(third.recent[0].1["x"], 8);
        let later = next_snapshot(&third, total(19), 1, t0 + TimeDelta::seconds(61));
        assert_eq!(later.recent.len(), 1);
        assert_eq!(later.recent[0].1["x"], 1);
    }
}
