//! The delivery queue as the worker sees it, one tenant at a time: claim
//! due deliveries under a lease (and the tenant's rate budget), write what
//! each attempt came to, release what was not attempted.
//!
//! Everything here runs in a [`TenantTx`] of one tenant. Finding *which*
//! tenants have due deliveries is the one cross-tenant step: [`DUE`], a
//! [`DueWork`] that returns tenant ids and times only.

mod postgres;
mod sqlite;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantkit::{Backend, TenantTx, store::DueWork};
use uuid::Uuid;

use crate::{
    WebhookId, Webhooks,
    endpoints::WebhookError,
    outbox::{
        MessageId,
        dispatch::{Job, LeasedRow, budget_left, window_start},
    },
    retry::{self, Next},
    schema::{HEALTH, QUEUE},
    sql,
    transport::Attempt,
};

/// Tenants with due deliveries: ids and times only (see `tenantkit::store::DueWork`).
pub const DUE: DueWork = DueWork::new(sql::DUE_TENANTS);

/// What one claim got.
#[derive(Debug, Default)]
pub(crate) struct Claim {
    pub(crate) jobs: Vec<Job>,
    /// The tenant's budget ran out for this minute.
    pub(crate) over_budget: bool,
}

/// One claim's lease: its id, from `now` until `until`, over at most `max`
/// deliveries, spending the budget window when `spend`.
struct Lease {
    id: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    max: i64,
    spend: bool,
}

/// A leased delivery, with its body and its endpoint.
impl Lease {
    /// `sql` (a lease statement: `$2` now, `$3` until, `$4` the lease,
    /// `$5` the most) with this lease bound.
    fn query(&self, tx: &TenantTx, sql: tenantkit::store::Sql) -> tenantkit::store::Scoped {
        tx.query(sql)
            .bind(self.now)
            .bind(self.until)
            .bind(self.id)
            .bind(self.max)
    }
}

/// What an attempt led to.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub(crate) message_id: MessageId,
    pub(crate) webhook_id: WebhookId,
    pub(crate) lease: Uuid,
    pub(crate) number: u32,
    pub(crate) at: DateTime<Utc>,
    pub(crate) attempt: Attempt,
}

/// An outcome as written: the attempt log row and the delivery's next state.
#[derive(Serialize)]
struct OutcomeRow {
    id: Uuid,
    message_id: MessageId,
    webhook_id: WebhookId,
    lease: Uuid,
    attempt: i64,
    at: DateTime<Utc>,
    duration_ms: i64,
    status: Option<i64>,
    error: Option<String>,
    excerpt: String,
    state: &'static str,
    next_attempt_at: Option<DateTime<Utc>>,
}

impl OutcomeRow {
    fn new(outcome: &Outcome) -> Self {
        let attempt = &outcome.attempt;
        let (state, next_attempt_at) = if attempt.succeeded() {
            ("succeeded", None)
        } else if attempt.status == Some(410) {
            ("failed", None)
        } else {
            match retry::after_failure(outcome.number, attempt.retry_after, retry::random_jitter())
            {
                Next::RetryIn(wait) => (
                    "pending",
                    Some(outcome.at + chrono::Duration::from_std(wait).unwrap_or_default()),
                ),
                Next::DeadLetter => ("dead", None),
            }
        };
        Self {
            id: Uuid::now_v7(),
            message_id: outcome.message_id,
            webhook_id: outcome.webhook_id,
            lease: outcome.lease,
            attempt: i64::from(outcome.number.max(1)),
            at: outcome.at,
            duration_ms: i64::try_from(attempt.duration.as_millis()).unwrap_or(i64::MAX),
            status: attempt.status.map(i64::from),
            error: attempt.error.map(|e| e.as_str().to_owned()),
            // PostgreSQL text cannot hold NUL.
            excerpt: attempt.excerpt.replace('\0', "\u{FFFD}"),
            state,
            next_attempt_at,
        }
    }
}

/// The queue as the worker uses it (crate-private): the endpoints' store,
/// [`Webhooks`], stays the tenant-facing API, and what only the worker does
/// to the queue is here, in one place.
pub(crate) struct Queue<'a>(pub(crate) &'a Webhooks);

impl Queue<'_> {
    /// Claims up to `max` of the tenant's due deliveries for `lease_for`,
    /// within its budget of `per_minute` (`None`: no limit). The lease is
    /// committed with `tx`, before anything is sent.
    pub(crate) async fn claim(
        &self,
        tx: &mut TenantTx,
        now: DateTime<Utc>,
        lease_for: chrono::Duration,
        max: u32,
        per_minute: Option<u32>,
    ) -> Result<Claim, WebhookError> {
        let mut max = i64::from(max);
        if let Some(limit) = per_minute {
            // Opens (or resets) the tenant's window and locks it until
            // commit: claims of every process share one budget.
            let left = budget_left(tx, window_start(now), limit).await?;
            if left == 0 {
                return Ok(Claim {
                    jobs: Vec::new(),
                    over_budget: true,
                });
            }
            max = max.min(left);
        }
        let lease = Lease {
            id: Uuid::now_v7(),
            now,
            until: now + lease_for,
            max,
            spend: per_minute.is_some(),
        };
        let rows = claimer(tx.backend()).lease_due(tx, &lease).await?;
        if rows.is_empty() {
            return Ok(Claim::default());
        }
        let jobs = rows.into_iter().map(|row| row.job(lease.id)).collect();
        Ok(Claim {
            jobs,
            over_budget: false,
        })
    }

    /// Writes what attempts came to: the attempt log, the delivery's next
    /// state (only while this worker still holds its lease), the endpoint's
    /// health; `410 Gone`, or failing for longer than `disable_after`,
    /// disables the endpoint.
    pub(crate) async fn record(
        &self,
        tx: &mut TenantTx,
        outcomes: &[Outcome],
        disable_after: chrono::Duration,
    ) -> Result<(), WebhookError> {
        // A failure may disable its endpoint (an audited write, after the
        // queue's rows): the tenant's write lock comes first.
        if outcomes.iter().any(|o| !o.attempt.succeeded()) {
            tx.lock_tenant_writes().await?;
        }
        // The latest outcome per endpoint decides its health.
        let mut health: HashMap<WebhookId, &Outcome> = HashMap::new();
        let rows: Vec<OutcomeRow> = outcomes
            .iter()
            .map(|outcome| {
                health.insert(outcome.webhook_id, outcome);
                OutcomeRow::new(outcome)
            })
            .collect();
        let healthy: Vec<WebhookId> = health
            .iter()
            .filter(|(_, o)| o.attempt.succeeded())
            .map(|(id, _)| *id)
            .collect();
        claimer(tx.backend())
            .write_outcomes(tx, rows, &healthy)
            .await?;

        for (webhook, outcome) in health {
            if outcome.attempt.succeeded() {
                // No longer failing: written with the outcomes.
                continue;
            }
            if outcome.attempt.status == Some(410) {
                self.0
                    .disable_by_worker(
                        tx,
                        webhook,
                        "the endpoint answered 410 Gone".to_owned(),
                        outcome.at,
                    )
                    .await?;
                continue;
            }
            let failing = tx.query(sql::MARK_FAILING).bind(webhook).bind(outcome.at);
            let since: Vec<(DateTime<Utc>,)> =
                tx.write_operational_returning(HEALTH, failing).await?;
            if let Some((since,)) = since.first()
                && outcome.at - *since >= disable_after
            {
                let reason = format!(
                    "every delivery has failed since {} (the last: {})",
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    describe(&outcome.attempt)
                );
                self.0
                    .disable_by_worker(tx, webhook, reason, outcome.at)
                    .await?;
            }
        }
        Ok(())
    }

    /// Gives back leases this worker will not use (shutdown): the
    /// deliveries are due again at once, the claim not counted as an attempt.
    pub(crate) async fn release(
        &self,
        tx: &mut TenantTx,
        leases: &[(MessageId, WebhookId, Uuid)],
        now: DateTime<Utc>,
    ) -> Result<u64, WebhookError> {
        let mut released = 0;
        for (message, webhook, lease) in leases {
            let q = tx
                .query(sql::RELEASE_LEASED)
                .bind(*message)
                .bind(*webhook)
                .bind(*lease)
                .bind(now);
            released += tx.write_operational(QUEUE, q).await?;
        }
        Ok(released)
    }
}

/// How one backend leases due deliveries and writes what attempts came
/// to. The algorithms differ: PostgreSQL leases and returns the rows with
/// their bodies in one statement (`FOR UPDATE SKIP LOCKED`, so workers of
/// several processes never claim the same row) and writes a batch's
/// outcomes in one; SQLite, one writer at a time, leases and then reads the
/// leased rows, and writes outcome by outcome.
#[async_trait::async_trait]
trait Claimer: Sync {
    /// Leases up to `lease.max` due deliveries (counted against the
    /// tenant's budget window when `lease.spend`); the leased rows with
    /// their payloads.
    async fn lease_due(
        &self,
        tx: &mut TenantTx,
        lease: &Lease,
    ) -> Result<Vec<LeasedRow>, WebhookError>;

    /// Logs each attempt and moves its delivery to its next state (only
    /// while the lease is still the one it was attempted under); the
    /// `healthy` endpoints (whose latest attempt succeeded) are no longer
    /// failing.
    async fn write_outcomes(
        &self,
        tx: &mut TenantTx,
        rows: Vec<OutcomeRow>,
        healthy: &[WebhookId],
    ) -> Result<(), WebhookError>;
}

/// The claimer of `backend`.
fn claimer(backend: Backend) -> &'static dyn Claimer {
    match backend {
        Backend::Postgres => &postgres::Postgres,
        Backend::Sqlite => &sqlite::Sqlite,
    }
}

/// An attempt in a few words, for reasons and logs.
pub(crate) fn describe(attempt: &Attempt) -> String {
    match (attempt.status, attempt.error) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(error)) => error.as_str().replace('_', " "),
        (None, None) => "no answer".to_owned(),
    }
}
