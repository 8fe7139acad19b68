//! Retention: raw events of days before a cut-off go (on PostgreSQL whole
//! day partitions are dropped, never row by row), and so do the rollups of
//! those days, tenant by tenant through each tenant's scope.

use chrono::{Days, NaiveDate};
use tenantkit::{
    Backend, Db, Result,
    store::{OperationalTable, Sql, Value},
};

use crate::{
    rollup::{
        BLOCK_STRIDE, COUNTS, DAILY_ACTIVE, DAILY_USERS, TYPE_COUNTS, USER_BLOCKS, block_of,
        epoch_day,
    },
    sql,
    storage::{self, EVENTS},
};

/// What [`purge`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Day partitions dropped (PostgreSQL).
    pub partitions: i64,
    /// Rows deleted: events (SQLite) and rollups (both).
    pub rows: u64,
}

/// Removes the events and rollups of the UTC days before `before`.
pub async fn purge(db: &Db, before: NaiveDate) -> Result<Purged> {
    let mut purged = Purged::default();
    if db.backend() == Backend::Postgres {
        purged.partitions = storage::drop_partitions_before(db, before).await?;
    }
    let start = before.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    // A block goes once its last day is before the cut-off; the (at most
    // two) blocks holding the cut-off lose the bits of the days before it.
    let last_block = before - Days::new(2 * BLOCK_STRIDE as u64);
    let straddling: Vec<(NaiveDate, i64)> = [
        block_of(before),
        block_of(before) - Days::new(BLOCK_STRIDE as u64),
    ]
    .into_iter()
    .filter(|block| *block < before)
    .map(|block| {
        let kept_from = epoch_day(before) - epoch_day(block);
        (block, !((1i64 << kept_from) - 1))
    })
    .collect();
    // Each table, the statement removing its old rows, and the cut-off.
    let mut deletes: Vec<(OperationalTable, Sql, Value)> = vec![
        (COUNTS, sql::PURGE_COUNTS, start.into()),
        (TYPE_COUNTS, sql::PURGE_TYPE_COUNTS, start.into()),
        (DAILY_USERS, sql::PURGE_DAILY_USERS, before.into()),
        (DAILY_ACTIVE, sql::PURGE_DAILY_ACTIVE, before.into()),
        (USER_BLOCKS, sql::PURGE_USER_BLOCKS, last_block.into()),
    ];
    // PostgreSQL dropped whole partitions above; SQLite deletes rows.
    if db.backend() == Backend::Sqlite {
        deletes.push((EVENTS, sql::PURGE_EVENTS, start.into()));
    }
    let mut pages = db.platform().tenant_pages(500);
    while let Some(page) = pages.next().await? {
        for ctx in page {
            let mut tx = db.begin(&ctx).await?;
            for (table, statement, cutoff) in &deletes {
                purged.rows += tx
                    .write_operational(*table, tx.query(*statement).bind(cutoff.clone()))
                    .await?;
            }
            for (block, keep) in &straddling {
                purged.rows += tx
                    .write_operational(
                        USER_BLOCKS,
                        tx.query(sql::PURGE_EMPTIED_USER_BLOCKS)
                            .bind(*block)
                            .bind(*keep),
                    )
                    .await?;
                tx.write_operational(
                    USER_BLOCKS,
                    tx.query(sql::TRIM_USER_BLOCKS).bind(*block).bind(*keep),
                )
                .await?;
            }
            tx.commit().await?;
        }
    }
    Ok(purged)
}
