//! Retention: messages published longer ago than the retention period go,
//! with their deliveries and attempt log, unless one of their deliveries is
//! still pending (a paused tenant's, say). Dead letters older than the
//! period go too: replay them before then.
//!
//! The worker runs [`Webhooks::purge_expired`] for each tenant that
//! [`EXPIRED`] names, in that tenant's `TenantTx`, in bounded batches, and
//! [`Webhooks::purge_expired_keys`] for each that
//! [`crate::idempotency::EXPIRED_KEYS`] names (idempotency keys older than
//! 24 hours).

use chrono::{DateTime, Utc};
use tenantkit::{TenantTx, store::DueWork};

use crate::{Webhooks, endpoints::WebhookError, schema::MESSAGES, sql};

/// Tenants with messages published before a cutoff: ids and times only.
pub const EXPIRED: DueWork = DueWork::new(sql::EXPIRED_TENANTS);

/// At most this many messages are removed per statement.
pub const PURGE_BATCH: u32 = 1000;

impl Webhooks {
    /// Removes up to `limit` of the tenant's messages published before
    /// `cutoff` that have no pending delivery (their deliveries and attempts
    /// go with them); returns how many went.
    pub async fn purge_expired(
        &self,
        tx: &mut TenantTx,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, WebhookError> {
        let purge = tx
            .query(sql::PURGE_EXPIRED_MESSAGES)
            .bind(cutoff)
            .bind(i64::from(limit));
        Ok(tx.write_operational(MESSAGES, purge).await?)
    }

    /// Removes up to `limit` of the tenant's idempotency keys claimed before
    /// `cutoff` (at least [`crate::idempotency::KEEP_KEYS`] ago); returns how
    /// many went.
    pub async fn purge_expired_keys(
        &self,
        tx: &mut TenantTx,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> Result<u64, WebhookError> {
        crate::idempotency::purge_expired(tx, cutoff, limit).await
    }
}
