//! Refused requests (`auth.failed`, `auth.tenant_mismatch`), recorded in
//! their tenant's audit trail without taking the tenant's write lock per
//! request: [`Db::count_refusal`] only counts the refusal in memory, by
//! tenant, action, claimed actor, client IP and reason; a flush a second
//! later writes one entry per such group, with its `count` and first and
//! last times, in one transaction per tenant. A flood of bad credentials
//! therefore costs the tenant's chain one short transaction a second, not
//! one per request, and every refusal is still in the trail (SOC 2).
//!
//! Memory is bounded: past [`MAX_PENDING_GROUPS`] groups waiting, further
//! refusals of a tenant are counted together in one overflow group per
//! tenant and action. [`Db::flush_refusals`] writes what waits at once
//! ([`Db::close`] calls it).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, Utc};

use super::Db;
use crate::{Error, TenantContext, TenantId, audit::Actor};

/// A refused request, as the audit trail records it.
#[derive(Clone, Debug, PartialEq)]
pub struct SecurityEvent {
    /// `auth.failed` (401) or `auth.tenant_mismatch` (403).
    pub action: &'static str,
    /// Who the credential claimed to be; [`Actor::Anonymous`] when unknown.
    pub actor: Actor,
    /// Status, reason, credential kind and any claimed tenant.
    pub details: serde_json::Value,
}

/// How long a refusal waits to be written with the others of its second.
pub const REFUSAL_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// At most this many groups wait to be written, across every tenant.
pub const MAX_PENDING_GROUPS: usize = 10_000;

/// The refusals waiting to be written, shared by every clone of a [`Db`].
#[derive(Debug, Default)]
pub(in crate::store) struct Refusals {
    pending: Mutex<HashMap<Group, Count>>,
    /// Whether a flush is scheduled.
    scheduled: AtomicBool,
}

/// What refusals are counted together by.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Group {
    tenant: TenantId,
    action: &'static str,
    actor: (&'static str, Option<String>),
    client_ip: Option<String>,
    /// The event's details, as canonical JSON (`None` for the overflow group).
    details: Option<String>,
}

#[derive(Debug)]
struct Count {
    /// The first refusal's context (its request id, user agent, actor).
    ctx: TenantContext,
    details: serde_json::Value,
    count: u64,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
}

impl Count {
    fn merge(&mut self, other: Count) {
        self.count += other.count;
        self.first_at = self.first_at.min(other.first_at);
        self.last_at = self.last_at.max(other.last_at);
    }
}

/// The schedule a flush task holds: reset when the task ends, however it
/// ends, unless it handed the schedule on ([`Scheduled::handed_on`]).
struct Scheduled(Option<Arc<Refusals>>);

impl Scheduled {
    /// After a flush: whether refusals counted meanwhile are waiting with
    /// no flush to take them (they found this one scheduled and scheduled
    /// none), in which case this task keeps the schedule and flushes again.
    fn again(&mut self) -> bool {
        let Some(refusals) = &self.0 else {
            return false;
        };
        refusals.scheduled.store(false, Ordering::Release);
        if refusals.len() == 0 {
            return false;
        }
        if refusals.scheduled.swap(true, Ordering::AcqRel) {
            // A refusal counted just now scheduled a flush of its own.
            self.0 = None;
            return false;
        }
        true
    }
}

impl Drop for Scheduled {
    fn drop(&mut self) {
        if let Some(refusals) = &self.0 {
            refusals.scheduled.store(false, Ordering::Release);
        }
    }
}

impl Db {
    /// Counts a refused request of `tenant`'s to be written to its audit
    /// trail within [`REFUSAL_FLUSH_EVERY`] (see the module docs); never
    /// waits for the database.
    pub fn count_refusal(&self, tenant: &TenantContext, refusal: &SecurityEvent) {
        let now = Utc::now();
        let ctx = tenant.clone().with_actor(refusal.actor.clone());
        let group = Group {
            tenant: ctx.id(),
            action: refusal.action,
            actor: (refusal.actor.kind(), refusal.actor.id()),
            client_ip: ctx.request().client_ip.clone(),
            details: Some(refusal.details.to_string()),
        };
        let count = Count {
            ctx,
            details: refusal.details.clone(),
            count: 1,
            first_at: now,
            last_at: now,
        };
        self.refusals.add(group, count);
        if !self.refusals.scheduled.swap(true, Ordering::AcqRel)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let db = self.clone();
            let mut scheduled = Scheduled(Some(self.refusals.clone()));
            runtime.spawn(async move {
                loop {
                    tokio::time::sleep(REFUSAL_FLUSH_EVERY).await;
                    db.flush_refusals().await;
                    if !scheduled.again() {
                        break;
                    }
                }
            });
        }
    }

    /// Writes every refusal counted so far, one transaction per tenant.
    /// A tenant's that fails to write is kept for the next flush.
    pub async fn flush_refusals(&self) {
        let pending = std::mem::take(&mut *self.refusals.pending.lock().expect("not poisoned"));
        let mut by_tenant: HashMap<TenantId, Vec<(Group, Count)>> = HashMap::new();
        for (group, count) in pending {
            by_tenant
                .entry(group.tenant)
                .or_default()
                .push((group, count));
        }
        for (tenant, mut groups) in by_tenant {
            groups.sort_by_key(|(_, c)| c.first_at);
            match self.write_refusals(&groups).await {
                Ok(()) => {}
                // The tenant is gone: so are its refusals.
                Err(Error::NotFound(_)) => {}
                Err(e) => {
                    let refusals: u64 = groups.iter().map(|(_, c)| c.count).sum();
                    tracing::warn!(tenant_id = %tenant, error = %e, refusals, "could not write refused requests to the audit trail; kept for the next flush");
                    for (group, count) in groups {
                        self.refusals.add(group, count);
                    }
                }
            }
        }
    }

    async fn write_refusals(&self, groups: &[(Group, Count)]) -> crate::Result<()> {
        let Some((_, first)) = groups.first() else {
            return Ok(());
        };
        let mut tx = self.begin(&first.ctx).await?;
        for (group, count) in groups {
            tx.set_context(count.ctx.clone());
            let mut details = match &count.details {
                serde_json::Value::Object(map) => map.clone(),
                other => {
                    let mut map = serde_json::Map::new();
                    map.insert("details".into(), other.clone());
                    map
                }
            };
            details.insert("count".into(), count.count.into());
            details.insert(
                "first_at".into(),
                count
                    .first_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true)
                    .into(),
            );
            details.insert(
                "last_at".into(),
                count
                    .last_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true)
                    .into(),
            );
            tx.record_event(group.action, "auth", None, details.into())
                .await?;
        }
        tx.commit().await
    }
}

impl Refusals {
    fn add(&self, group: Group, count: Count) {
        let mut pending = self.pending.lock().expect("not poisoned");
        if let Some(existing) = pending.get_mut(&group) {
            existing.merge(count);
            return;
        }
        if pending.len() < MAX_PENDING_GROUPS {
            pending.insert(group, count);
            return;
        }
        // Full: counted with the tenant's other overflow of this action.
        let overflow = Group {
            actor: ("anonymous", None),
            client_ip: None,
            details: None,
            ..group
        };
        let count = Count {
            ctx: count.ctx.with_actor(crate::audit::Actor::Anonymous),
            details: serde_json::json!({
                "overflow": true,
                "reason": "more distinct refused requests than are kept apart; counted together",
            }),
            ..count
        };
        match pending.get_mut(&overflow) {
            Some(existing) => existing.merge(count),
            // One overflow group per tenant and action may exceed the bound.
            None => {
                pending.insert(overflow, count);
            }
        }
    }

    /// How many groups wait.
    fn len(&self) -> usize {
        self.pending.lock().expect("not poisoned").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Tenant, TenantStatus, audit::Actor};

    fn refusal(tenant: TenantId, reason: &str) -> (Group, Count) {
        let ctx = TenantContext::new(Tenant {
            id: tenant,
            name: "t".into(),
            subdomain: "t".into(),
            status: TenantStatus::Active,
            created_at: Utc::now(),
        });
        let details = serde_json::json!({ "reason": reason });
        let group = Group {
            tenant,
            action: "auth.failed",
            actor: ("anonymous", None),
            client_ip: Some("203.0.113.9".into()),
            details: Some(details.to_string()),
        };
        let now = Utc::now();
        let count = Count {
            ctx: ctx.with_actor(Actor::Anonymous),
            details,
            count: 1,
            first_at: now,
            last_at: now,
        };
        (group, count)
    }

    #[test]
    fn a_refusal_counted_during_a_flush_is_flushed_after_it() {
        let refusals = Arc::new(Refusals::default());
        // A flush task holds the schedule; nothing came in meanwhile: it ends
        // and leaves the schedule free.
        refusals.scheduled.store(true, Ordering::Release);
        let mut scheduled = Scheduled(Some(refusals.clone()));
        assert!(!scheduled.again());
        assert!(!refusals.scheduled.load(Ordering::Acquire));
        // A refusal counted while it flushed found the schedule taken and
        // scheduled nothing: the task flushes again, keeping the schedule.
        refusals.scheduled.store(true, Ordering::Release);
        let mut scheduled = Scheduled(Some(refusals.clone()));
        let (group, count) = refusal(TenantId::new(), "during the flush");
        refusals.add(group, count);
        assert!(scheduled.again(), "the waiting refusal is flushed");
        assert!(refusals.scheduled.load(Ordering::Acquire));
        drop(scheduled);
        assert!(
            !refusals.scheduled.load(Ordering::Acquire),
            "however the task ends, the schedule is freed"
        );
    }

    #[test]
    fn the_same_refusal_is_counted_not_repeated_and_memory_is_bounded() {
        let refusals = Refusals::default();
        let tenant = TenantId::new();
        let (group, count) = refusal(tenant, "bad");
        refusals.add(group.clone(), count);
        refusals.add(group.clone(), refusal(tenant, "bad").1);
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals.pending.lock().unwrap()[&group].count, 2);
        // A spray of distinct refusals: at most the bound, plus the
        // tenant's one overflow group, which counts the rest.
        let sprayed = MAX_PENDING_GROUPS + 500;
        for i in 0..sprayed {
            let (g, c) = refusal(tenant, &format!("reason {i}"));
            refusals.add(g, c);
        }
        assert_eq!(refusals.len(), MAX_PENDING_GROUPS + 1);
        let counted: u64 = refusals
            .pending
            .lock()
            .unwrap()
            .values()
            .map(|c| c.count)
            .sum();
        assert_eq!(counted, sprayed as u64 + 2, "every refusal is counted");
    }
}
