//! **Hard deletion of a tenant**: every row it owns in every crate's tables
//! (found by [`Db::tenant_tables`], so a crate's new table is covered
//! without a list), removed in short batches, then the tenant itself, with a
//! platform record of it left behind (the tombstone, [`TenantDeletion`]).
//!
//! The steps, each idempotent, so an interrupted deletion finishes when run
//! again:
//!
//! 1. [`Platform::start_tenant_deletion`]: the tenant is suspended (audited, so
//!    every process refuses its requests), then its deletion is recorded.
//!    From here it cannot be reactivated.
//! 2. (The caller's own subsystems: cancel its subscription, stop its
//!    webhook deliveries; see the reference server.)
//! 3. [`Platform::erase_tenant`]: the tables children first, [`ERASE_BATCH`] rows
//!    per transaction, each batch's count added to the record in the same
//!    transaction (exact across a crash). Audit rows go through the trail's
//!    one deletion exception (on PostgreSQL `tenantkit_erase_tenant_audit`,
//!    an owner function that works only while the deletion is recorded).
//!    The last transaction locks the tenant's row (waiting for any writer
//!    still holding it), sweeps what arrived meanwhile, and removes the
//!    tenant and its external ids: the subdomain is free again.

mod postgres;
mod sqlite;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    Backend, Platform, TenantTx,
    access::AccessChange,
    catalog::{TenantTable, ident, qualified},
    driver::{Pooled, Tx},
    sql,
};
use crate::{Error, Result, TenantId, TenantStatus, audit::Actor};

/// Rows removed per transaction by [`Platform::erase_tenant`] unless told otherwise:
/// short enough that no other tenant waits long on a lock.
pub const ERASE_BATCH: u32 = 1000;

/// The tenantkit tables whose rows only the audit trail's deletion exception
/// may remove.
const AUDIT_TABLES: [&str; 2] = ["audit_logs", "audit_heads"];

/// The record of a tenant's deletion: under way until `finished_at`, then the
/// tombstone that proves it (the tenant row itself is gone by then).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantDeletion {
    /// The deleted tenant's id.
    pub tenant_id: TenantId,
    /// Its subdomain (free for a new tenant once finished).
    pub subdomain: String,
    /// Its display name.
    pub name: String,
    /// Who asked for the deletion: `platform_admin`, `system`, ...
    pub actor_type: String,
    /// Which one (the operator's token subject, say).
    pub actor_id: Option<String>,
    /// When the deletion started.
    pub started_at: DateTime<Utc>,
    /// SHA-256 of the tenant's latest export archive, if one was taken.
    pub export_sha256: Option<String>,
    /// Rows removed, by table (`tenants` and `tenant_external_ids` included
    /// once finished).
    #[sqlx(json)]
    pub rows_removed: BTreeMap<String, i64>,
    /// Why the last run stopped short (Stripe unreachable, say), until a
    /// later run makes progress.
    pub last_error: Option<String>,
    /// When the last row went; `None` while under way.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Platform<'_> {
    /// Starts deleting tenant `id`, for `by`: suspends it if active (audited
    /// as `tenant.status_changed`, and seen at once by every process) and
    /// records the deletion, with `export_sha256` (the hash of the export
    /// taken before, if any). Starting again returns the record as it is
    /// (a finished one too, after the tenant is gone); it cannot be undone.
    ///
    /// [`Error::NotFound`] when there is no such tenant and no deletion of it.
    pub async fn start_tenant_deletion(
        &self,
        id: TenantId,
        by: &Actor,
        export_sha256: Option<&str>,
    ) -> Result<TenantDeletion> {
        if let Some(sha) = export_sha256
            && (sha.len() != 64 || !sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        {
            return Err(Error::invalid(
                "an export hash is 64 lower-case hex digits (SHA-256)",
            ));
        }
        let Some(ctx) = self.db.resolve_id(id).await? else {
            return self
                .tenant_deletion(id)
                .await?
                .ok_or(Error::NotFound("tenant"));
        };
        if ctx.tenant().status != TenantStatus::Suspended {
            self.set_tenant_status(id, TenantStatus::Suspended, by)
                .await?;
        }
        let mut tx = Tx::begin(&self.db.pool).await?;
        let deletion = eraser(self.db.backend())
            .start(&mut tx, id, by, export_sha256)
            .await?;
        tx.commit().await?;
        // None: reactivated between the suspension and here.
        deletion.ok_or(Error::Conflict(
            "the tenant was reactivated while its deletion started; try again".into(),
        ))
    }

    /// The finished deletion of `id`, for a run that found another one done.
    async fn finished_deletion(&self, id: TenantId) -> Result<TenantDeletion> {
        self.tenant_deletion(id)
            .await?
            .filter(|d| d.finished_at.is_some())
            .ok_or(Error::Internal(format!(
                "tenant {id} is gone but its deletion is not finished"
            )))
    }

    /// The deletion of tenant `id`, under way or finished, if there is one.
    pub async fn tenant_deletion(&self, id: TenantId) -> Result<Option<TenantDeletion>> {
        Pooled::acquire(&self.db.pool)
            .await?
            .conn()
            .fetch_optional(sql::TENANT_DELETION, vec![id.into()])
            .await
    }

    /// Records why a run of tenant `id`'s unfinished deletion stopped
    /// (kept to 1,000 characters) for whoever follows it; the next batch
    /// removed clears it.
    pub async fn record_tenant_deletion_error(&self, id: TenantId, error: &str) -> Result<()> {
        let error: String = error.chars().take(1000).collect();
        Pooled::acquire(&self.db.pool)
            .await?
            .conn()
            .execute(sql::RECORD_DELETION_ERROR, vec![id.into(), error.into()])
            .await?;
        Ok(())
    }

    /// Deletions started and not finished (interrupted ones, to resume with
    /// [`Platform::erase_tenant`]), oldest first.
    pub async fn unfinished_tenant_deletions(&self) -> Result<Vec<TenantDeletion>> {
        Pooled::acquire(&self.db.pool)
            .await?
            .conn()
            .fetch_all(sql::UNFINISHED_DELETIONS, Vec::new())
            .await
    }

    /// Removes every row tenant `id` owns, `batch` rows per transaction
    /// (at most [`ERASE_BATCH`] × 10), then the tenant; returns the finished
    /// record. The deletion must have been started
    /// ([`Platform::start_tenant_deletion`]); running it again after a crash picks
    /// up where it stopped, and after it finished returns the tombstone.
    pub async fn erase_tenant(&self, id: TenantId, batch: u32) -> Result<TenantDeletion> {
        if !(1..=ERASE_BATCH * 10).contains(&batch) {
            return Err(Error::invalid(format!(
                "a deletion batch is 1 to {} rows, got {batch}",
                ERASE_BATCH * 10
            )));
        }
        let deletion = self
            .tenant_deletion(id)
            .await?
            .ok_or(Error::NotFound("tenant deletion"))?;
        if deletion.finished_at.is_some() {
            return Ok(deletion);
        }
        let Some(ctx) = self.db.resolve_id(id).await? else {
            // Another run finished it a moment ago.
            return self.finished_deletion(id).await;
        };
        let ctx = ctx.with_actor(Actor::System);
        let tables = self.db.tenant_tables().await?;
        for table in tables.iter().rev() {
            loop {
                let mut tx = self.db.begin(&ctx).await?;
                let removed = tx.erase_batch(table, Some(batch)).await?;
                tx.commit().await?;
                if removed < u64::from(batch) {
                    break;
                }
            }
        }
        // The last transaction: writers still holding the tenant finish
        // first, nothing new starts, and what they wrote goes too.
        let mut tx = self.db.begin(&ctx).await?;
        let eraser = eraser(self.db.backend());
        let locked = eraser.hold_for_last_sweep(&mut tx, id).await?;
        if !locked {
            // Another run finished it while this one swept.
            drop(tx);
            return self.finished_deletion(id).await;
        }
        for table in tables.iter().rev() {
            tx.erase_batch(table, None).await?;
        }
        tx.access_changed(AccessChange::Tenant(id)).await?;
        let finished = eraser.finish(&mut tx, id).await?;
        tx.commit().await?;
        Ok(finished)
    }
}

impl TenantTx {
    /// Removes up to `limit` (or all, with `None`) of this tenant's rows of
    /// `table`, and adds the count to the deletion record, in this
    /// transaction; returns the count.
    async fn erase_batch(&mut self, table: &TenantTable, limit: Option<u32>) -> Result<u64> {
        let tenant = self.tenant_id();
        let backend = self.backend();
        let mut removed = 0;
        loop {
            let step = limit.unwrap_or(ERASE_BATCH);
            let n = if AUDIT_TABLES.contains(&table.name.as_str()) {
                eraser(backend)
                    .erase_audit_rows(self, &table.name, step)
                    .await?
            } else {
                let sql = erase_sql(backend, table, step);
                self.conn().execute_built(sql, vec![tenant.into()]).await?
            };
            removed += n;
            if limit.is_some() || n < u64::from(step) {
                break;
            }
        }
        if removed > 0 {
            let args = vec![
                tenant.into(),
                table.name.clone().into(),
                count(removed).into(),
            ];
            self.conn().execute(sql::DELETION_PROGRESS, args).await?;
        }
        Ok(removed)
    }
}

/// The steps of a deletion whose algorithm differs by backend: on
/// PostgreSQL the runtime role reaches the tombstones, the tenant row and
/// the audit trail only through narrow `SECURITY DEFINER` functions (one
/// call a step); on SQLite, one writer at a time, the steps are plain
/// statements in the write transaction.
#[async_trait::async_trait]
trait Eraser: Sync {
    /// Records the deletion of suspended tenant `id` (or leaves an
    /// existing record as it is); the record, or `None` when the tenant is
    /// no longer suspended.
    async fn start(
        &self,
        tx: &mut Tx,
        id: TenantId,
        by: &Actor,
        export_sha256: Option<&str>,
    ) -> Result<Option<TenantDeletion>>;

    /// Holds the tenant for the last sweep (writers still holding it finish
    /// first); false when another run finished the deletion meanwhile.
    async fn hold_for_last_sweep(&self, tx: &mut TenantTx, id: TenantId) -> Result<bool>;

    /// Removes the tenant row and its external ids, and finishes the record.
    async fn finish(&self, tx: &mut TenantTx, id: TenantId) -> Result<TenantDeletion>;

    /// The audit trail's deletion exception: up to `limit` rows of
    /// `audit_logs`, or the `audit_heads` row.
    async fn erase_audit_rows(&self, tx: &mut TenantTx, table: &str, limit: u32) -> Result<u64>;
}

/// The eraser of `backend`.
fn eraser(backend: Backend) -> &'static dyn Eraser {
    match backend {
        Backend::Postgres => &postgres::Postgres,
        Backend::Sqlite => &sqlite::Sqlite,
    }
}

/// `DELETE` of up to `limit` of the tenant's (`$1`) rows of `table`, picked
/// by primary key (partitions included: the parent is named), from catalog
/// names only.
fn erase_sql(backend: Backend, table: &TenantTable, limit: u32) -> String {
    let from = qualified(backend, &table.name);
    if table.primary_key.is_empty() {
        return format!("DELETE FROM {from} WHERE tenant_id = $1");
    }
    let key: Vec<String> = table.primary_key.iter().map(|c| ident(c)).collect();
    let key = key.join(", ");
    format!(
        "DELETE FROM {from} WHERE tenant_id = $1 AND ({key}) IN \
         (SELECT {key} FROM {from} WHERE tenant_id = $1 LIMIT {limit})"
    )
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_pick_rows_by_primary_key() {
        let table = TenantTable {
            name: "events".into(),
            columns: vec!["tenant_id".into(), "occurred_at".into(), "id".into()],
            primary_key: vec!["tenant_id".into(), "occurred_at".into(), "id".into()],
            references: Vec::new(),
            secret_columns: Vec::new(),
        };
        assert_eq!(
            erase_sql(Backend::Postgres, &table, 500),
            "DELETE FROM public.\"events\" WHERE tenant_id = $1 AND (\"tenant_id\", \"occurred_at\", \"id\") IN \
             (SELECT \"tenant_id\", \"occurred_at\", \"id\" FROM public.\"events\" WHERE tenant_id = $1 LIMIT 500)"
        );
    }
}
