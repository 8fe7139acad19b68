//! SQLite's [`RollupWriter`]: no data-modifying `WITH`, so a flush runs one
//! statement per table in its transaction: the events, then the (day, user)
//! pairs (the new ones read back), then the day maps of the new pairs, and
//! the hot totals last. SQLite has one writer at a time: no lock to take.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use tenantkit::{Result, TenantTx};

use super::{
    Active, COUNTS, DAILY_ACTIVE, DAILY_USERS, DayRow, LIVE_TOTALS, Lock, RollupWriter, Row,
    TYPE_COUNTS, Totals, USER_BLOCKS, blocks_of, json_rows,
};
use crate::{sql, storage::EVENTS};

/// The SQLite writer.
pub(super) struct Sqlite;

#[async_trait::async_trait]
impl RollupWriter for Sqlite {
    async fn lock(&self, _: &mut TenantTx, _: Lock) -> Result<()> {
        Ok(())
    }

    async fn store_events(
        &self,
        tx: &mut TenantTx,
        rows: &[Row<'_>],
        received_at: DateTime<Utc>,
        candidates: &[Active<'_>],
    ) -> Result<(u64, Vec<DayRow>)> {
        let stored = tx
            .write_operational(
                EVENTS,
                tx.query(sql::INSERT_EVENTS)
                    .bind(json_rows(rows)?)
                    .bind(received_at),
            )
            .await?;
        if candidates.is_empty() {
            return Ok((stored, Vec::new()));
        }
        // Only the (day, user) pairs not seen before count towards DAU and MAU.
        let fresh: Vec<(NaiveDate, String)> = tx
            .write_operational_returning(
                DAILY_USERS,
                tx.query(sql::INSERT_DAILY_USERS)
                    .bind(json_rows(candidates)?),
            )
            .await?;
        if fresh.is_empty() {
            return Ok((stored, Vec::new()));
        }
        let mut per_day: BTreeMap<NaiveDate, i64> = BTreeMap::new();
        for (day, _) in &fresh {
            *per_day.entry(*day).or_default() += 1;
        }
        let blocks = blocks_of(fresh.iter().map(|(d, u)| (*d, u.as_str())));
        tx.write_operational(
            USER_BLOCKS,
            tx.query(sql::MERGE_USER_BLOCKS).bind(json_rows(&blocks)?),
        )
        .await?;
        Ok((
            stored,
            per_day.into_iter().map(|(d, n)| DayRow { d, n }).collect(),
        ))
    }

    /// One upsert per rollup table, each only when it has rows to add.
    async fn add_totals(&self, tx: &mut TenantTx, totals: &Totals) -> Result<()> {
        if !totals.live.is_empty() {
            tx.write_operational(
                LIVE_TOTALS,
                tx.query(sql::ADD_LIVE_TOTALS)
                    .bind(json_rows(&totals.live)?),
            )
            .await?;
        }
        if !totals.counts.is_empty() {
            tx.write_operational(
                COUNTS,
                tx.query(sql::ADD_COUNTS).bind(json_rows(&totals.counts)?),
            )
            .await?;
            tx.write_operational(
                TYPE_COUNTS,
                tx.query(sql::ADD_TYPE_COUNTS)
                    .bind(json_rows(&totals.type_counts)?),
            )
            .await?;
        }
        if !totals.per_day.is_empty() {
            tx.write_operational(
                DAILY_ACTIVE,
                tx.query(sql::ADD_DAILY_ACTIVE)
                    .bind(json_rows(&totals.per_day)?),
            )
            .await?;
        }
        Ok(())
    }
}
