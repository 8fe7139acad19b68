//! SQLite's [`Claimer`]: one writer at a time, so leasing the due rows and
//! reading them back are two plain statements, and outcomes are written
//! one by one.

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

/// The SQLite claimer.
pub(super) struct Sqlite;

#[async_trait::async_trait]
impl Claimer for Sqlite {
    async fn lease_due(
        &self,
        tx: &mut TenantTx,
        due: Scoped,
        lease: Uuid,
    ) -> Result<Vec<ClaimedRow>, WebhookError> {
        if tx.write_operational(QUEUE, due).await? == 0 {
            return Ok(Vec::new());
        }
        let rows = tx.query(sql::LEASED_WITH_PAYLOADS).bind(lease);
        Ok(tx.fetch_all(rows).await?)
    }

    async fn write_outcomes(
        &self,
        tx: &mut TenantTx,
        rows: Vec<OutcomeRow>,
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
        Ok(())
    }
}
