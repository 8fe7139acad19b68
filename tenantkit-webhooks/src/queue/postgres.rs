//! PostgreSQL's [`Claimer`]: one statement leases the due rows
//! (`FOR UPDATE SKIP LOCKED`) and returns them with their bodies; two write
//! a batch's outcomes.

use tenantkit::{
    TenantTx,
    store::{Scoped, Value},
};
use uuid::Uuid;

use super::{ClaimedRow, Claimer, OutcomeRow};
use crate::{
    endpoints::WebhookError,
    schema::{DELIVERIES, QUEUE},
    sql,
};

/// The PostgreSQL claimer.
pub(super) struct Postgres;

#[async_trait::async_trait]
impl Claimer for Postgres {
    async fn lease_due(
        &self,
        tx: &mut TenantTx,
        due: Scoped,
        _lease: Uuid,
    ) -> Result<Vec<ClaimedRow>, WebhookError> {
        Ok(tx.write_operational_returning(QUEUE, due).await?)
    }

    async fn write_outcomes(
        &self,
        tx: &mut TenantTx,
        rows: Vec<OutcomeRow>,
    ) -> Result<(), WebhookError> {
        let rows = serde_json::to_value(&rows)
            .map_err(|e| tenantkit::Error::Internal(format!("outcomes: {e}")))?;
        let log = tx.query(sql::LOG_ATTEMPTS).bind(Value::Json(rows.clone()));
        tx.write_operational(DELIVERIES, log).await?;
        let update = tx.query(sql::APPLY_OUTCOMES).bind(Value::Json(rows));
        tx.write_operational(QUEUE, update).await?;
        Ok(())
    }
}
