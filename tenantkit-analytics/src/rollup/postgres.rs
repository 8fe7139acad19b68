//! PostgreSQL's [`RollupWriter`]: a flush is two statements, the events with
//! every per-user rollup in one data-modifying `WITH`, the hot totals in
//! another; a tenant's flushes share an advisory lock that its rebuild takes
//! alone.

use chrono::{DateTime, NaiveDate, Utc};
use tenantkit::{Result, TenantTx};

use super::{
    Active, COUNTS, DAILY_ACTIVE, DAILY_USERS, DayRow, LIVE_TOTALS, Lock, RollupWriter, Row,
    TYPE_COUNTS, Totals, USER_BLOCKS, blocks_of, json_rows,
};
use crate::{sql, storage::EVENTS};

/// The PostgreSQL writer.
pub(super) struct Postgres;

#[async_trait::async_trait]
impl RollupWriter for Postgres {
    async fn lock(&self, tx: &mut TenantTx, lock: Lock) -> Result<()> {
        let statement = match lock {
            Lock::Shared => sql::LOCK_ROLLUPS_SHARED,
            Lock::Exclusive => sql::LOCK_ROLLUPS_EXCLUSIVE,
        };
        let _: Option<(String,)> = tx.fetch_optional(tx.query(statement)).await?;
        Ok(())
    }

    /// Setting a bit that is already set changes nothing (and writes
    /// nothing), so the day maps take every pair; only the pairs not seen
    /// before come back, to count towards daily active users.
    async fn store_events(
        &self,
        tx: &mut TenantTx,
        rows: &[Row<'_>],
        received_at: DateTime<Utc>,
        candidates: &[Active<'_>],
    ) -> Result<(u64, Vec<DayRow>)> {
        let blocks = blocks_of(candidates.iter().map(|a| (a.d, a.u)));
        let written: Vec<(i64, String)> = tx
            .write_operational_all(
                &[EVENTS, DAILY_USERS, USER_BLOCKS],
                tx.query(sql::STORE_EVENTS)
                    .bind(json_rows(rows)?)
                    .bind(received_at)
                    .bind(json_rows(candidates)?)
                    .bind(json_rows(&blocks)?),
            )
            .await?;
        let (stored, per_day) = written.into_iter().next().unwrap_or_default();
        let per_day: Vec<(NaiveDate, i64)> = serde_json::from_str(&per_day)
            .map_err(|e| tenantkit::Error::Internal(format!("new daily users: {e}")))?;
        Ok((
            u64::try_from(stored).unwrap_or(0),
            per_day.into_iter().map(|(d, n)| DayRow { d, n }).collect(),
        ))
    }

    /// The four upserts in one statement (one round trip).
    async fn add_totals(&self, tx: &mut TenantTx, totals: &Totals) -> Result<()> {
        let _: Vec<(i32,)> = tx
            .write_operational_all(
                &[LIVE_TOTALS, COUNTS, TYPE_COUNTS, DAILY_ACTIVE],
                tx.query(sql::ADD_TOTALS)
                    .bind(json_rows(&totals.live)?)
                    .bind(json_rows(&totals.counts)?)
                    .bind(json_rows(&totals.type_counts)?)
                    .bind(json_rows(&totals.per_day)?),
            )
            .await?;
        Ok(())
    }
}
