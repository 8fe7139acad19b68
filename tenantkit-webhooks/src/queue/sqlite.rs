//! SQLite's [`Claimer`]: one writer at a time, so leasing the due rows,
//! spending the budget and reading them back are plain statements, and
//! outcomes are written one by one.

use tenantkit::{TenantTx, store::Value};

use super::{Claimer, Lease, LeasedRow, OutcomeRow};
use crate::{
    WebhookId,
    endpoints::WebhookError,
    schema::{DELIVERIES, HEALTH, QUEUE, RATE_WINDOWS},
    sql,
};

/// The SQLite claimer.
pub(super) struct Sqlite;

#[async_trait::async_trait]
impl Claimer for Sqlite {
    async fn lease_due(
        &self,
        tx: &mut TenantTx,
        lease: &Lease,
    ) -> Result<Vec<LeasedRow>, WebhookError> {
        let due = lease.query(tx, sql::LEASE_DUE_ONLY);
        let leased = tx.write_operational(QUEUE, due).await?;
        if leased == 0 {
            return Ok(Vec::new());
        }
        if lease.spend {
            let spend = tx
                .query(sql::SPEND_RATE_WINDOW)
                .bind(i64::try_from(leased).unwrap_or(i64::MAX));
            tx.write_operational(RATE_WINDOWS, spend).await?;
        }
        let rows = tx.query(sql::LEASED_WITH_PAYLOADS).bind(lease.id);
        Ok(tx.fetch_all(rows).await?)
    }

    async fn write_outcomes(
        &self,
        tx: &mut TenantTx,
        rows: Vec<OutcomeRow>,
        healthy: &[WebhookId],
    ) -> Result<(), WebhookError> {
        for row in rows {
            let log = tx
                .query(sql::LOG_ATTEMPT)
                .bind(row.id)
                .bind(row.message_id)
                .bind(row.webhook_id)
                .bind(row.attempt)
                .bind(row.at)
                .bind(row.duration_ms)
                .bind(Value::OptInt(row.status))
                .bind(Value::OptText(row.error.clone()))
                .bind(row.excerpt);
            tx.write_operational(DELIVERIES, log).await?;
            let update = tx
                .query(sql::APPLY_OUTCOME)
                .bind(row.message_id)
                .bind(row.webhook_id)
                .bind(row.state)
                .bind(Value::OptTime(row.next_attempt_at))
                .bind(row.at)
                .bind(Value::OptInt(row.status))
                .bind(Value::OptText(row.error))
                .bind(row.lease);
            tx.write_operational(QUEUE, update).await?;
        }
        for webhook in healthy {
            let cleared = tx.query(sql::CLEAR_FAILING).bind(*webhook);
            tx.write_operational(HEALTH, cleared).await?;
        }
        Ok(())
    }
}
