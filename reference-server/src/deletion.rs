//! Deleting a tenant across every crate (GDPR Art. 17): suspended first,
//! its Stripe subscription canceled, its waiting webhook deliveries stopped,
//! then every row it owns removed in batches ([`tenantkit::store::Platform::erase_tenant`])
//! and a tombstone left ([`TenantDeletion`]). Every step is idempotent, so a
//! deletion cut short (a crash, a dropped request) finishes when run again,
//! and `serve` resumes unfinished ones at start.

use tenantkit::{
    Db, TenantId,
    audit::{Actor, AuditFilter},
    problem::Problem,
    store::TenantDeletion,
};
use tenantkit_billing::{Billing, BillingError};
use tenantkit_webhooks::{WebhookError, Webhooks};

/// Why a deletion stopped; running it again resumes it.
#[derive(Debug, thiserror::Error)]
pub enum DeletionError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] tenantkit::Error),
    /// The subscription could not be canceled (Stripe failed, or no key).
    #[error("canceling the tenant's subscription: {0}")]
    Billing(#[from] BillingError),
    /// Its webhook deliveries could not be stopped.
    #[error("stopping the tenant's webhook deliveries: {0}")]
    Webhooks(#[from] WebhookError),
}

impl From<&DeletionError> for Problem {
    fn from(err: &DeletionError) -> Self {
        match err {
            DeletionError::Store(e) => Problem::from(e),
            DeletionError::Billing(e) => Problem::from(e),
            DeletionError::Webhooks(e) => Problem::from(e),
        }
    }
}

/// What a deletion needs of each crate.
#[derive(Clone, Debug)]
pub struct Deleter {
    /// The store.
    pub db: Db,
    /// To cancel the subscription.
    pub billing: Billing,
    /// To stop deliveries.
    pub webhooks: Webhooks,
    /// Rows per transaction.
    pub batch: u32,
}

impl Deleter {
    /// Deletes tenant `id` for `by` (or finishes its deletion); returns the
    /// tombstone. The hash of the tenant's latest export, if one was taken,
    /// goes into the tombstone.
    pub async fn delete(&self, id: TenantId, by: &Actor) -> Result<TenantDeletion, DeletionError> {
        let started = self.start(id, by).await?;
        if started.finished_at.is_some() {
            return Ok(started);
        }
        self.resume(id).await
    }

    /// The first step alone: the tenant suspended and its deletion recorded
    /// (with its latest export's hash); the record (finished if it was).
    pub async fn start(&self, id: TenantId, by: &Actor) -> Result<TenantDeletion, DeletionError> {
        let export = self.latest_export(id).await?;
        Ok(self
            .db
            .platform()
            .start_tenant_deletion(id, by, export.as_deref())
            .await?)
    }

    /// The steps after the deletion is recorded, each a no-op when done. A
    /// failure is also recorded on the deletion (`last_error`), for whoever
    /// follows it.
    pub async fn resume(&self, id: TenantId) -> Result<TenantDeletion, DeletionError> {
        let result = self.resume_steps(id).await;
        if let Err(e) = &result
            && let Err(store) = self
                .db
                .platform()
                .record_tenant_deletion_error(id, &e.to_string())
                .await
        {
            tracing::warn!(tenant = %id, error = %store, "recording why a tenant deletion stopped failed");
        }
        result
    }

    async fn resume_steps(&self, id: TenantId) -> Result<TenantDeletion, DeletionError> {
        if let Some(ctx) = self.db.resolve_id(id).await? {
            let ctx = ctx.with_actor(Actor::System);
            if let Some(subscription) = self.billing.cancel_for_deletion(&ctx).await? {
                tracing::info!(tenant = %id, subscription, "subscription canceled for the tenant's deletion");
            }
            let mut tx = self.db.begin(&ctx).await?;
            let stopped = self
                .webhooks
                .stop_deliveries(&mut tx, "tenant deleted")
                .await?;
            tx.commit().await?;
            tracing::info!(tenant = %id, stopped, "webhook deliveries stopped for the tenant's deletion");
        }
        let done = self.db.platform().erase_tenant(id, self.batch).await?;
        tracing::info!(tenant = %id, rows = ?done.rows_removed, "tenant deleted");
        Ok(done)
    }

    /// Resumes every unfinished deletion (after a crash); logs failures.
    pub async fn resume_unfinished(&self) {
        let pending = match self.db.platform().unfinished_tenant_deletions().await {
            Ok(pending) => pending,
            Err(e) => {
                tracing::error!(error = %e, "listing unfinished tenant deletions failed");
                return;
            }
        };
        for deletion in pending {
            let id = deletion.tenant_id;
            tracing::info!(tenant = %id, "resuming an interrupted tenant deletion");
            if let Err(e) = self.resume(id).await {
                tracing::error!(tenant = %id, error = %e, "resuming a tenant deletion failed");
            }
        }
    }

    /// `archive_sha256` of the tenant's newest `tenant.exported` audit entry.
    async fn latest_export(&self, id: TenantId) -> Result<Option<String>, DeletionError> {
        let Some(ctx) = self.db.resolve_id(id).await? else {
            return Ok(None);
        };
        let mut tx = self.db.begin(&ctx).await?;
        let newest = tx
            .list_audit_logs(&AuditFilter {
                action: Some("tenant.exported".into()),
                limit: Some(1),
                ..AuditFilter::default()
            })
            .await?;
        Ok(newest
            .first()
            .and_then(|e| e.after.as_ref())
            .and_then(|after| after["archive_sha256"].as_str().map(str::to_owned)))
    }
}
