//! Background work across tenants, without weakening isolation.
//!
//! A worker (webhook deliveries, later other queues) must learn *which*
//! tenants have work waiting before it can open a [`TenantTx`] for each. The
//! runtime role sees no tenant's rows without a tenant set, and no role with
//! `BYPASSRLS` exists, so a crate declares a [`DueWork`]: on PostgreSQL an
//! owner-defined `SECURITY DEFINER` function that returns **only tenant ids
//! and times**; on SQLite (one process, no row-level security) the equivalent
//! query. [`Db::tenants_with_due_work`] is the only caller, and its result type
//! holds nothing else: the work itself is then read and changed in a
//! [`TenantTx`] of that tenant.
//!
//! [`TenantTx::notify`] and [`Db::wakeups`] let a worker wake as soon as work
//! is committed (PostgreSQL `LISTEN/NOTIFY`); polling stays the fallback.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    Backend, Db, Sql, TenantTx,
    driver::{Pooled, Value},
    sql,
};
use crate::{Result, TenantId};

/// A declared way to find the tenants with due work in one queue.
///
/// A [`Sql`] pair:
///
/// - PostgreSQL's must be `SELECT tenant_id, due_at FROM <function>($1, $2, $3)`
///   where the function (owned by the migration role, `SECURITY DEFINER`)
///   takes the time now, how many tenants to return and a comma-separated
///   list of tenant ids to skip, and returns nothing but tenant ids and the
///   time their oldest due item became due.
/// - SQLite's is a query with the same columns, taking the time now (`$1`)
///   and how many tenants to return (`$2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DueWork {
    sql: Sql,
}

impl DueWork {
    /// Declares a queue's finder (see the type's documentation).
    ///
    /// # Panics
    ///
    /// When `sql` lacks a backend's text, or PostgreSQL's is not a
    /// `SELECT tenant_id, due_at FROM` a function (checked at compile time
    /// in a `const`).
    pub const fn new(sql: Sql) -> Self {
        match (sql.on(Backend::Postgres), sql.on(Backend::Sqlite)) {
            (Some(postgres), Some(_)) => assert!(
                starts_with(postgres, "SELECT tenant_id, due_at FROM "),
                "a DueWork finder returns tenant ids and times only"
            ),
            _ => panic!("a DueWork finder runs on both backends"),
        }
        Self { sql }
    }
}

const fn starts_with(text: &str, prefix: &str) -> bool {
    let (text, prefix) = (text.as_bytes(), prefix.as_bytes());
    if text.len() < prefix.len() {
        return false;
    }
    let mut i = 0;
    while i < prefix.len() {
        if text[i] != prefix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// A declared maintenance call, PostgreSQL only: `SELECT tenantkit_…(…)::bigint`
/// of an owner-defined `SECURITY DEFINER` function that does one narrow
/// thing the runtime role may not do itself (create the partitions of the
/// coming days, drop expired ones) and returns a count. [`Db::maintain`]
/// is the only caller; on SQLite there is nothing to maintain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Maintenance {
    sql: Sql,
}

impl Maintenance {
    /// Declares a maintenance call ([`Sql::postgres_only`]).
    ///
    /// # Panics
    ///
    /// When `sql` has a SQLite text, or is not a `SELECT tenantkit_…`
    /// function call (checked at compile time in a `const`).
    pub const fn new(sql: Sql) -> Self {
        match (sql.on(Backend::Postgres), sql.on(Backend::Sqlite)) {
            (Some(postgres), None) => assert!(
                starts_with(postgres, "SELECT tenantkit_"),
                "maintenance calls a tenantkit_ function"
            ),
            _ => panic!("maintenance runs on PostgreSQL only"),
        }
        Self { sql }
    }
}

impl Db {
    /// Runs `call` with `args` (from `$1`); its count, or 0 on SQLite.
    pub async fn maintain(&self, call: &Maintenance, args: Vec<Value>) -> Result<i64> {
        if self.backend() == Backend::Sqlite {
            return Ok(0);
        }
        let (count,): (i64,) = Pooled::acquire(&self.pool)
            .await?
            .conn()
            .fetch_one(call.sql, args)
            .await?;
        Ok(count)
    }
}

/// A tenant with work due, and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DueTenant {
    /// The tenant.
    pub tenant_id: TenantId,
    /// When its oldest due item became due.
    pub due_at: DateTime<Utc>,
}

impl Db {
    /// At most `limit` tenants with work due at `now` in `work`, the longest
    /// waiting first, leaving out `skip` (e.g. tenants over a rate limit).
    pub async fn tenants_with_due_work(
        &self,
        work: &DueWork,
        now: DateTime<Utc>,
        limit: u32,
        skip: &[TenantId],
    ) -> Result<Vec<DueTenant>> {
        let mut conn = Pooled::acquire(&self.pool).await?;
        match self.backend() {
            Backend::Postgres => {
                let skip = skip
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                conn.conn()
                    .fetch_all(
                        work.sql,
                        vec![now.into(), i64::from(limit).into(), skip.into()],
                    )
                    .await
            }
            Backend::Sqlite => {
                let wanted = i64::from(limit) + skip.len() as i64;
                let mut due: Vec<DueTenant> = conn
                    .conn()
                    .fetch_all(work.sql, vec![now.into(), wanted.into()])
                    .await?;
                due.retain(|d| !skip.contains(&d.tenant_id));
                due.truncate(limit as usize);
                Ok(due)
            }
        }
    }

    /// Announces `payload` on `channel` to [`Db::wakeups`] listeners at once,
    /// in a statement of its own (a no-op on SQLite).
    ///
    /// For announcements that follow a commit rather than ride in it:
    /// PostgreSQL serializes the commits of notifying transactions, WAL
    /// flush included, so a busy writer should commit first and announce
    /// after (a crash in between loses the announcement, not the data).
    pub async fn announce(&self, channel: &'static str, payload: &str) -> Result<()> {
        if self.backend() == Backend::Postgres {
            let mut conn = Pooled::acquire(&self.pool).await?;
            conn.conn()
                .execute(
                    sql::NOTIFY,
                    vec![
                        Value::Text(channel.to_owned()),
                        Value::Text(payload.to_owned()),
                    ],
                )
                .await?;
        }
        Ok(())
    }

    /// Wake-ups for work announced on `channel` by [`TenantTx::notify`].
    /// Once this returns, every later commit is heard. On SQLite nothing is
    /// announced: [`Wakeups::next`] never returns, and the worker's polling
    /// finds the work.
    pub async fn wakeups(&self, channel: &'static str) -> Result<Wakeups> {
        #[cfg(not(feature = "postgres"))]
        let _ = channel;
        Ok(Wakeups {
            #[cfg(feature = "postgres")]
            pg: self.pool.listen(channel).await?,
            pool: self.clone(),
        })
    }
}

/// Announcements of new work (see [`Db::wakeups`]).
pub struct Wakeups {
    #[cfg(feature = "postgres")]
    pg: Option<sqlx::postgres::PgListener>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pool: Db,
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wakeups").finish_non_exhaustive()
    }
}

impl Wakeups {
    /// Returns when work was announced, or when announcements may have been
    /// missed (the connection was lost and re-made): either way, look for
    /// work. Never returns on SQLite or once the pool is closed.
    pub async fn next(&mut self) {
        self.next_announcement().await;
    }

    /// Like [`Wakeups::next`], with what was announced: `Some(payload)`, or
    /// `None` when announcements may have been missed.
    pub async fn next_announcement(&mut self) -> Option<String> {
        #[cfg(feature = "postgres")]
        if let Some(listener) = &mut self.pg {
            match listener.try_recv().await {
                Ok(Some(notification)) => return Some(notification.payload().to_owned()),
                Ok(None) => return None,
                Err(_) if self.pool.is_closed() => {}
                Err(e) => {
                    tracing::warn!(error = %e, "work listener failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    return None;
                }
            }
        }
        std::future::pending().await
    }
}

impl TenantTx {
    /// Announces new work on `channel` to [`Db::wakeups`] listeners once
    /// (and only if) this transaction commits. A no-op on SQLite.
    ///
    /// The announcement follows the commit, coalesced: PostgreSQL serializes
    /// the commits of notifying transactions (their WAL flush included), so
    /// a notification riding in every publish would serialize the
    /// publishers. Instead each process sends at most one per channel every
    /// [`ANNOUNCE_EVERY`], with an empty payload, after the commits it
    /// covers; a crash in between loses a wake-up, never work (workers poll).
    pub async fn notify(&mut self, channel: &'static str) -> Result<()> {
        if self.backend() == Backend::Postgres && !self.announce.contains(&channel) {
            self.announce.push(channel);
        }
        Ok(())
    }
}

/// How long a process gathers commits' announcements on one channel before
/// it sends one notification for them all.
pub const ANNOUNCE_EVERY: Duration = Duration::from_millis(10);

/// The channels with a notification on its way (see [`TenantTx::notify`]),
/// shared by every handle of a [`Db`].
#[derive(Clone, Debug, Default)]
pub(in crate::store) struct Announcer(
    std::sync::Arc<std::sync::Mutex<std::collections::HashSet<&'static str>>>,
);

impl Announcer {
    /// Announces work committed on `channel`: within [`ANNOUNCE_EVERY`],
    /// by a notification sent after this call (so after the commit).
    pub(in crate::store) fn committed(&self, db: &Db, channel: &'static str) {
        let first = self.0.lock().expect("announcer").insert(channel);
        if !first {
            // The one on its way is sent after this commit.
            return;
        }
        let (pending, db) = (self.clone(), db.clone());
        tokio::spawn(async move {
            tokio::time::sleep(ANNOUNCE_EVERY).await;
            // Taken off before sending: a commit from now on sends again.
            pending.0.lock().expect("announcer").remove(channel);
            if let Err(e) = db.announce(channel, "").await {
                tracing::warn!(channel, error = %e, "announcing committed work failed; workers poll");
            }
        });
    }
}
