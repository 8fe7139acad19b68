//! PostgreSQL's [`Eraser`]: each step is one call of the owner's narrow
//! `SECURITY DEFINER` function for it (the runtime role cannot read the
//! tombstones, change the tenant row or delete audit rows itself).

use super::{Eraser, TenantDeletion};
use crate::{
    Result, TenantId,
    audit::Actor,
    store::{TenantTx, driver::Tx, sql},
};

/// The PostgreSQL eraser.
pub(super) struct Postgres;

#[async_trait::async_trait]
impl Eraser for Postgres {
    async fn start(
        &self,
        tx: &mut Tx,
        id: TenantId,
        by: &Actor,
        export_sha256: Option<&str>,
    ) -> Result<Option<TenantDeletion>> {
        let args = vec![
            id.into(),
            by.kind().into(),
            by.id().into(),
            export_sha256.map(str::to_owned).into(),
        ];
        tx.conn()
            .fetch_optional(sql::START_TENANT_DELETION, args)
            .await
    }

    async fn hold_for_last_sweep(&self, tx: &mut TenantTx, id: TenantId) -> Result<bool> {
        let (locked,): (bool,) = tx
            .conn()
            .fetch_one(sql::LOCK_DELETED_TENANT, vec![id.into()])
            .await?;
        Ok(locked)
    }

    async fn finish(&self, tx: &mut TenantTx, id: TenantId) -> Result<TenantDeletion> {
        tx.conn()
            .fetch_one(sql::FINISH_TENANT_DELETION, vec![id.into()])
            .await
    }

    async fn erase_audit_rows(&self, tx: &mut TenantTx, table: &str, limit: u32) -> Result<u64> {
        let args = vec![tx.tenant_id().into(), table.into(), i64::from(limit).into()];
        let (n,): (i64,) = tx.conn().fetch_one(sql::ERASE_TENANT_AUDIT, args).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
