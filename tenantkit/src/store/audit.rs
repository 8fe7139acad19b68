//! Appending to, reading and verifying a tenant's audit chain; retention purge.

use chrono::{DateTime, SubsecRound, Utc};

use futures_util::Stream;

use super::{Backend, Db, Sql, TenantTx, driver::Value, sql, transaction::Change};
use crate::{
    AuditEntryId, Error, Result, TenantContext,
    audit::{AuditEntry, AuditFilter, ChainCheck, ChainReport},
    validate,
};

/// How many entries verification and export read per query.
pub const AUDIT_BATCH: u32 = 1000;

/// The owner setting holding the audit retention floor, in days.
pub const AUDIT_RETENTION_SETTING: &str = "audit.retention_days";

impl Db {
    /// Writes the audit retention floor into the database (PostgreSQL; as
    /// the owner, as the server's `migrate` does from
    /// `audit.retention_days`): entries younger than `days` can then never
    /// be purged by the runtime role, whatever cutoff it passes to
    /// [`TenantTx::purge_audit_logs`]. Without a floor nothing is purged
    /// there. A no-op on SQLite, which has no roles.
    pub async fn set_audit_retention_floor(&self, days: u32) -> Result<()> {
        self.set_owner_setting(AUDIT_RETENTION_SETTING, &days.to_string())
            .await
    }
}

/// The head of a tenant's chain.
#[derive(sqlx::FromRow)]
struct Head {
    seq: i64,
    hash: String,
    anchor_seq: i64,
    anchor_hash: String,
}

impl TenantTx {
    /// Appends an entry for `change` to this tenant's chain, in this
    /// transaction, under the tenant's write lock
    /// ([`TenantTx::lock_tenant_writes`]), so concurrent writers of one
    /// tenant take turns and links never fork.
    pub(in crate::store) async fn append(&mut self, change: Change) -> Result<AuditEntry> {
        self.lock_tenant_writes().await?;
        let tenant = self.tenant_id();
        let ctx = self.context().clone();
        let mut conn = self.conn();
        let (seq, prev_hash): (i64, String) = conn
            .fetch_one(sql::ADVANCE_AUDIT_HEAD, vec![tenant.into()])
            .await?;
        let request = ctx.request();
        let mut entry = AuditEntry {
            tenant_id: tenant,
            seq,
            id: AuditEntryId::new(),
            actor_type: ctx.actor().kind().to_owned(),
            actor_id: ctx.actor().id(),
            action: change.action,
            resource_type: change.resource_type,
            resource_id: change.resource_id,
            before: change.before,
            after: change.after,
            request_id: request.request_id.clone(),
            client_ip: request.client_ip.clone(),
            user_agent: request.user_agent.clone(),
            // Both databases keep microseconds; hash what they will give back.
            occurred_at: Utc::now().trunc_subsecs(6),
            prev_hash,
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        conn.execute(
            sql::INSERT_AUDIT_ENTRY,
            vec![
                tenant.into(),
                entry.seq.into(),
                entry.id.into(),
                entry.actor_type.clone().into(),
                entry.actor_id.clone().into(),
                entry.action.clone().into(),
                entry.resource_type.clone().into(),
                entry.resource_id.clone().into(),
                Value::OptJson(entry.before.clone()),
                Value::OptJson(entry.after.clone()),
                entry.request_id.clone().into(),
                entry.client_ip.clone().into(),
                entry.user_agent.clone().into(),
                entry.occurred_at.into(),
                entry.prev_hash.clone().into(),
                entry.hash.clone().into(),
            ],
        )
        .await?;
        conn.execute(
            sql::SET_AUDIT_HEAD_HASH,
            vec![tenant.into(), entry.hash.clone().into()],
        )
        .await?;
        Ok(entry)
    }

    /// Takes this tenant's write lock until the transaction ends, in **the
    /// one lock order** every write path follows: first the tenant row
    /// (`FOR KEY SHARE`, as a foreign key check takes it; a status change or
    /// a deletion holds it exclusively), then the tenant's audit head (its
    /// row locked), and only then domain rows and the outbox. Every audited
    /// write takes it before its statement runs, so writers of one tenant
    /// queue on the head instead of deadlocking on rows taken in different
    /// orders; a transaction that writes operational records and then audits
    /// must take it before the first of them. Taking it again is free.
    ///
    /// It also makes a check followed by a write safe against another writer
    /// of the same tenant. [`Error::NotFound`] when the tenant is gone.
    pub async fn lock_tenant_writes(&mut self) -> Result<()> {
        if self.write_locked {
            return Ok(());
        }
        debug_assert!(
            !self.wrote_unlocked,
            "lock order: this transaction wrote operational records before taking the \
             tenant's write lock, and now audits (call lock_tenant_writes first)"
        );
        let tenant = self.tenant_id();
        let locked: Option<(i64,)> = self
            .conn()
            .fetch_optional(sql::LOCK_TENANT_WRITES, vec![tenant.into()])
            .await?;
        if locked.is_none() {
            return Err(Error::NotFound("tenant"));
        }
        self.write_locked = true;
        Ok(())
    }

    /// Entries matching `filter`, newest first (keyset-paginated by `before_seq`).
    pub async fn list_audit_logs(&mut self, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        if let Some(kind) = &filter.actor_type
            && !["user", "api_key", "system", "platform_admin", "anonymous"]
                .contains(&kind.as_str())
        {
            return Err(Error::invalid(format!(
                "`actor_type` must be user, api_key, system, platform_admin or anonymous, got `{kind}`"
            )));
        }
        let limit = validate::limit(filter.limit.unwrap_or(50))?;
        let from = validate::optional_instant("from", filter.from)?;
        let to = validate::optional_instant("to", filter.to)?;
        let q = self
            .query(sql::LIST_AUDIT_LOGS)
            .bind(filter.actor_type.clone())
            .bind(filter.actor_id.clone())
            .bind(filter.action.clone())
            .bind(filter.resource_type.clone())
            .bind(filter.resource_id.clone())
            .bind(from)
            .bind(to)
            .bind(filter.before_seq)
            .bind(limit);
        self.fetch_all(q).await
    }

    /// Up to `limit` entries after `after_seq` in `[from, to)`, oldest first:
    /// one page of an export.
    pub async fn audit_page(
        &mut self,
        after_seq: i64,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let limit = i64::from(limit.clamp(1, AUDIT_BATCH));
        let q = self
            .query(sql::AUDIT_PAGE)
            .bind(after_seq)
            .bind(from)
            .bind(to)
            .bind(limit);
        self.fetch_all(q).await
    }

    /// Walks the whole chain and reports the first broken or missing link:
    /// an entry whose hash does not match its contents, whose `prev_hash` is
    /// not its predecessor's hash, a gap in `seq`, or a head that does not
    /// match the last entry (a deleted tail).
    pub async fn verify_audit_chain(&mut self) -> Result<ChainReport> {
        let head: Option<Head> = self.fetch_optional(self.query(sql::AUDIT_HEAD)).await?;
        let head = head.unwrap_or(Head {
            seq: 0,
            hash: String::new(),
            anchor_seq: 0,
            anchor_hash: String::new(),
        });
        let mut check = ChainCheck::new(head.anchor_seq, &head.anchor_hash);
        'pages: loop {
            let page = self
                .audit_page(check.next_seq() - 1, None, None, AUDIT_BATCH)
                .await?;
            if page.is_empty() {
                break;
            }
            for entry in &page {
                if !check.push(entry) {
                    break 'pages;
                }
            }
        }
        Ok(check.finish(head.seq, &head.hash))
    }

    /// Deletes this tenant's entries older than `cutoff` (which must be at
    /// least a day ago, and on PostgreSQL before the floor written by
    /// [`Db::set_audit_retention_floor`]), oldest first, through the one
    /// purge path the database allows, and audits the purge itself. Returns
    /// how many entries were removed.
    pub async fn purge_audit_logs(&mut self, cutoff: DateTime<Utc>) -> Result<u64> {
        if cutoff > Utc::now() - chrono::Duration::days(1) {
            return Err(Error::invalid("audit retention must be at least one day"));
        }
        let tenant = self.tenant_id();
        let (purged, through_seq): (i64, Option<i64>) = match self.backend() {
            Backend::Postgres => {
                self.conn()
                    .fetch_one(sql::PURGE_AUDIT_LOGS, vec![tenant.into(), cutoff.into()])
                    .await?
            }
            Backend::Sqlite => {
                let last: Option<(i64, String)> = self
                    .conn()
                    .fetch_optional(
                        sql::LAST_AUDIT_ENTRY_BEFORE,
                        vec![tenant.into(), cutoff.into()],
                    )
                    .await?;
                match last {
                    None => (0, None),
                    Some((seq, hash)) => {
                        let n = self
                            .sqlite_delete_audit_rows(sql::DELETE_AUDIT_THROUGH, seq)
                            .await?;
                        self.conn()
                            .execute(
                                sql::SET_AUDIT_ANCHOR,
                                vec![tenant.into(), seq.into(), hash.into()],
                            )
                            .await?;
                        (i64::try_from(n).unwrap_or(i64::MAX), Some(seq))
                    }
                }
            }
        };
        if purged > 0 {
            self.record_event(
                "audit_log.purged",
                "audit_log",
                None,
                serde_json::json!({ "purged": purged, "through_seq": through_seq, "cutoff": cutoff }),
            )
            .await?;
        }
        Ok(u64::try_from(purged).unwrap_or(0))
    }
}

impl TenantTx {
    /// SQLite's side of the audit trail's two delete exceptions (retention
    /// purge, tenant deletion): `delete` (binding the tenant as `$1` and
    /// `arg` as `$2`) run with the marker `audit_logs_no_delete` looks for,
    /// present only around it, in this transaction. Returns the rows removed.
    pub(super) async fn sqlite_delete_audit_rows(&mut self, delete: Sql, arg: i64) -> Result<u64> {
        let tenant = self.tenant_id();
        let mut conn = self.conn();
        conn.execute(sql::ALLOW_AUDIT_DELETE, vec![tenant.into()])
            .await?;
        let removed = conn
            .execute(delete, vec![tenant.into(), arg.into()])
            .await?;
        conn.execute(sql::DISALLOW_AUDIT_DELETE, vec![tenant.into()])
            .await?;
        Ok(removed)
    }
}

impl Db {
    /// `ctx`'s tenant's entries in `[from, to)`, oldest first, as NDJSON
    /// chunks of at most [`AUDIT_BATCH`] lines: one short transaction per
    /// chunk, so memory stays bounded however long the range.
    pub fn export_audit_logs(
        &self,
        ctx: TenantContext,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> impl Stream<Item = Result<String>> + Send + 'static {
        let state = (self.clone(), ctx, 0_i64, false);
        futures_util::stream::try_unfold(state, move |(db, ctx, after_seq, done)| async move {
            if done {
                return Ok(None);
            }
            let mut tx = db.begin(&ctx).await?;
            let page = tx.audit_page(after_seq, from, to, AUDIT_BATCH).await?;
            tx.commit().await?;
            let Some(last) = page.last().map(|e| e.seq) else {
                return Ok(None);
            };
            let finished = page.len() < AUDIT_BATCH as usize;
            let mut chunk = String::with_capacity(page.len() * 512);
            for entry in &page {
                chunk.push_str(
                    &serde_json::to_string(entry).map_err(|e| Error::Internal(e.to_string()))?,
                );
                chunk.push('\n');
            }
            Ok(Some((chunk, (db, ctx, last, finished))))
        })
    }
}
