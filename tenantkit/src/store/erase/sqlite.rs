//! SQLite's [`Eraser`]: one writer at a time, so each step is plain
//! statements in the write transaction (nothing moves in between); audit
//! rows go through the trail's marked delete exception.

use chrono::Utc;

use super::{Eraser, TenantDeletion, count};
use crate::{
    Result, TenantId,
    audit::Actor,
    store::{TenantTx, driver::Tx, sql},
};

/// The SQLite eraser.
pub(super) struct Sqlite;

#[async_trait::async_trait]
impl Eraser for Sqlite {
    async fn start(
        &self,
        tx: &mut Tx,
        id: TenantId,
        by: &Actor,
        export_sha256: Option<&str>,
    ) -> Result<Option<TenantDeletion>> {
        let mut conn = tx.conn();
        let args = vec![
            id.into(),
            by.kind().into(),
            by.id().into(),
            export_sha256.map(str::to_owned).into(),
            Utc::now().into(),
        ];
        conn.execute(sql::INSERT_TENANT_DELETION, args).await?;
        conn.fetch_optional(sql::TENANT_DELETION, vec![id.into()])
            .await
    }

    async fn hold_for_last_sweep(&self, tx: &mut TenantTx, id: TenantId) -> Result<bool> {
        let unfinished: Option<(TenantId,)> = tx
            .conn()
            .fetch_optional(sql::UNFINISHED_DELETION, vec![id.into()])
            .await?;
        Ok(unfinished.is_some())
    }

    async fn finish(&self, tx: &mut TenantTx, id: TenantId) -> Result<TenantDeletion> {
        let mut conn = tx.conn();
        let ids = conn
            .execute(sql::DELETE_EXTERNAL_IDS, vec![id.into()])
            .await?;
        conn.execute(sql::DELETE_TENANT, vec![id.into()]).await?;
        conn.fetch_one(
            sql::FINISH_DELETION_RECORD,
            vec![id.into(), Utc::now().into(), count(ids).into()],
        )
        .await
    }

    async fn erase_audit_rows(&self, tx: &mut TenantTx, table: &str, limit: u32) -> Result<u64> {
        if table == "audit_heads" {
            let tenant = tx.tenant_id();
            return tx
                .conn()
                .execute(sql::DELETE_AUDIT_HEAD, vec![tenant.into()])
                .await;
        }
        tx.sqlite_delete_audit_rows(sql::DELETE_AUDIT_BATCH, i64::from(limit))
            .await
    }
}
