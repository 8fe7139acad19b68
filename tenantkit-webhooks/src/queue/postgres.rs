//! PostgreSQL's [`Claimer`]: one statement leases the due rows
//! (`FOR UPDATE SKIP LOCKED`) and returns them with their bodies; one writes
//! a batch's outcomes.

use tenantkit::{TenantTx, store::Value};

use super::{Claimer, Lease, LeasedRow, OutcomeRow};
use crate::{
    WebhookId,
    endpoints::WebhookError,
    schema::{DELIVERIES, HEALTH, QUEUE, RATE_WINDOWS},
    sql,
};

/// The PostgreSQL claimer.
pub(super) struct Postgres;

#[async_trait::async_trait]
impl Claimer for Postgres {
    async fn lease_due(
        &self,
        tx: &mut TenantTx,
        lease: &Lease,
    ) -> Result<Vec<LeasedRow>, WebhookError> {
        let due = lease.query(tx, sql::LEASE_DUE).bind(lease.spend);
        Ok(tx
            .write_operational_all(&[QUEUE, RATE_WINDOWS], due)
            .await?)
    }

    async fn write_outcomes(
        &self,
        tx: &mut TenantTx,
        rows: Vec<OutcomeRow>,
        healthy: &[WebhookId],
    ) -> Result<(), WebhookError> {
        let json = |v: serde_json::Result<serde_json::Value>| {
            v.map_err(|e| tenantkit::Error::Internal(format!("outcomes: {e}")))
        };
        let record = tx
            .query(sql::RECORD_OUTCOMES)
            .bind(Value::Json(json(serde_json::to_value(&rows))?))
            .bind(Value::Json(json(serde_json::to_value(healthy))?));
        let _: Vec<(i64, i64)> = tx
            .write_operational_all(&[DELIVERIES, QUEUE, HEALTH], record)
            .await?;
        Ok(())
    }
}
