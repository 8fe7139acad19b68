//! **The one place that lists tenant-owned tables**, read from the
//! database's own catalog, so a table any crate adds later is found without
//! a list kept by hand: whatever has a `tenant_id` column and is not a
//! platform table (or, on PostgreSQL, a partition: its parent stands for it).
//! Tenant export and deletion walk this list.
//!
//! Secret columns are marked in the catalog too, beside their DDL, so an
//! export leaves out a new crate's secret without a list to forget: on
//! PostgreSQL `COMMENT ON COLUMN <table>.<column> IS 'tenantkit:secret'`,
//! on SQLite (no comments) a row in `tenantkit_secret_columns`, written by
//! the migration that adds the column.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Backend, Db, TenantTx,
    driver::{Tx, Value},
    sql,
};
use crate::Result;

/// Tables that carry `tenant_id` but are not the tenant's data: the
/// platform's `tenant_external_ids` and `tenant_deletions` (the record that
/// outlives a deleted tenant; on PostgreSQL both are also marked `COMMENT ...
/// 'tenantkit:platform'`) and SQLite's `audit_purge_in_progress`, the marker
/// that lets the retention purge and a deletion remove audit rows, empty
/// outside them.
pub const NOT_TENANT_DATA: &[&str] = &[
    "tenant_external_ids",
    "tenant_deletions",
    "audit_purge_in_progress",
];

/// The mark of a secret column (a secret or its hash), never exported: a
/// PostgreSQL column comment, or on SQLite a `tenantkit_secret_columns` row.
///
/// ```sql
/// -- PostgreSQL
/// COMMENT ON COLUMN api_keys.hash IS 'tenantkit:secret';
/// -- SQLite
/// INSERT INTO tenantkit_secret_columns (table_name, column_name) VALUES ('api_keys', 'hash');
/// ```
pub const SECRET_MARK: &str = "tenantkit:secret";

/// A tenant-owned table as the catalog describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantTable {
    /// Its name (schema `public` on PostgreSQL).
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// Its primary key's columns, in order (`tenant_id` first).
    pub primary_key: Vec<String>,
    /// The other tenant-owned tables its foreign keys name.
    pub references: Vec<String>,
    /// Its columns marked secret ([`SECRET_MARK`]), in order: never exported.
    pub secret_columns: Vec<String>,
}

impl Db {
    /// Every tenant-owned table, each after the tables it references (so
    /// rows can be written in this order and removed in the reverse one),
    /// ties by name.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let db = tenantkit::Db::connect("sqlite::memory:").await?;
    /// db.migrate().await?;
    /// let names: Vec<_> = db.tenant_tables().await?.into_iter().map(|t| t.name).collect();
    /// assert_eq!(names, ["api_keys", "audit_heads", "audit_logs", "tenant_sso", "users"]);
    /// # Ok::<_, tenantkit::Error>(()) }).unwrap();
    /// ```
    pub async fn tenant_tables(&self) -> Result<Vec<TenantTable>> {
        let mut tx = Tx::begin(&self.pool).await?;
        let names: Vec<(String,)> = tx
            .conn()
            .fetch_all(sql::TENANT_TABLE_NAMES, Vec::new())
            .await?;
        let mut tables = BTreeMap::new();
        for (name,) in names {
            if NOT_TENANT_DATA.contains(&name.as_str()) {
                continue;
            }
            let column = |rows: Vec<(String,)>| rows.into_iter().map(|(c,)| c).collect::<Vec<_>>();
            let columns = column(
                tx.conn()
                    .fetch_all(sql::TABLE_COLUMNS, vec![name.clone().into()])
                    .await?,
            );
            let primary_key = column(
                tx.conn()
                    .fetch_all(sql::PRIMARY_KEY_COLUMNS, vec![name.clone().into()])
                    .await?,
            );
            let references = column(
                tx.conn()
                    .fetch_all(sql::REFERENCED_TABLES, vec![name.clone().into()])
                    .await?,
            );
            let secret_columns = column(
                tx.conn()
                    .fetch_all(sql::SECRET_COLUMNS, vec![name.clone().into()])
                    .await?,
            );
            tables.insert(
                name.clone(),
                TenantTable {
                    name,
                    columns,
                    primary_key,
                    references,
                    secret_columns,
                },
            );
        }
        for table in tables.values_mut() {
            table.references.retain(|r| r != &table.name);
        }
        let known: BTreeSet<String> = tables.keys().cloned().collect();
        for table in tables.values_mut() {
            table.references.retain(|r| known.contains(r));
        }
        Ok(parents_first(tables))
    }
}

impl TenantTx {
    /// The tenant's rows of `table`, each as one JSON object (primary-key
    /// order), without its secret columns. Rows are read as the
    /// stream is polled, so memory stays bounded whatever the table's size;
    /// open the transaction with [`Db::begin_snapshot`] to read many tables
    /// as of one moment.
    ///
    /// Values are as each backend stores them: on PostgreSQL JSON columns
    /// are nested objects and times RFC 3339; on SQLite ids (16-byte blobs)
    /// are UUID strings and JSON columns are strings.
    pub fn export_rows(
        &mut self,
        table: &TenantTable,
    ) -> futures_util::stream::BoxStream<'_, Result<String>> {
        let sql = export_sql(self.backend(), table);
        let tenant = Value::from(self.tenant_id());
        self.conn().text_rows(sql, vec![tenant])
    }
}

/// `SELECT <one JSON object per row but its secrets> FROM table WHERE
/// tenant_id = $1 ORDER BY <primary key>`, from catalog names (quoted;
/// never from input).
fn export_sql(backend: Backend, table: &TenantTable) -> String {
    let literal = |name: &str| format!("'{}'", name.replace('\'', "''"));
    let kept: Vec<&String> = table
        .columns
        .iter()
        .filter(|c| !table.secret_columns.contains(c))
        .collect();
    // At most 40 columns per call (both backends cap a function's arguments).
    let parts: Vec<String> = kept
        .chunks(40)
        .map(|chunk| {
            let pairs: Vec<String> = chunk
                .iter()
                .map(|c| {
                    let value = match backend {
                        Backend::Postgres => ident(c),
                        Backend::Sqlite => {
                            let v = ident(c);
                            format!(
                                "CASE WHEN typeof({v}) = 'blob' AND length({v}) = 16 THEN \
                                 lower(substr(hex({v}), 1, 8) || '-' || substr(hex({v}), 9, 4) || '-' || \
                                 substr(hex({v}), 13, 4) || '-' || substr(hex({v}), 17, 4) || '-' || substr(hex({v}), 21)) \
                                 WHEN typeof({v}) = 'blob' THEN hex({v}) ELSE {v} END"
                            )
                        }
                    };
                    format!("{}, {value}", literal(c))
                })
                .collect();
            match backend {
                Backend::Postgres => format!("jsonb_build_object({})", pairs.join(", ")),
                Backend::Sqlite => format!("json_object({})", pairs.join(", ")),
            }
        })
        .collect();
    let object = match backend {
        Backend::Postgres => format!("({})::text", parts.join(" || ")),
        Backend::Sqlite => parts
            .into_iter()
            .reduce(|a, b| format!("json_patch({a}, {b})"))
            .unwrap_or_else(|| "json_object()".into()),
    };
    let from = qualified(backend, &table.name);
    let order: Vec<String> = table.primary_key.iter().map(|c| ident(c)).collect();
    format!(
        "SELECT {object} FROM {from} WHERE tenant_id = $1 ORDER BY {}",
        order.join(", ")
    )
}

/// `name` quoted as an SQL identifier (both backends).
pub(super) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A catalog table's name as queries name it (schema `public` on PostgreSQL).
pub(super) fn qualified(backend: Backend, table: &str) -> String {
    match backend {
        Backend::Postgres => format!("public.{}", ident(table)),
        Backend::Sqlite => ident(table),
    }
}

/// Orders `tables` so each comes after every table it references; ties (and
/// cycles, which no schema of ours has) by name.
fn parents_first(mut tables: BTreeMap<String, TenantTable>) -> Vec<TenantTable> {
    let mut ordered = Vec::with_capacity(tables.len());
    let mut placed = BTreeSet::new();
    while !tables.is_empty() {
        let ready = tables
            .values()
            .find(|t| t.references.iter().all(|r| placed.contains(r)))
            .or_else(|| tables.values().next())
            .map(|t| t.name.clone())
            .expect("not empty");
        let table = tables.remove(&ready).expect("present");
        placed.insert(table.name.clone());
        ordered.push(table);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, references: &[&str]) -> (String, TenantTable) {
        (
            name.to_owned(),
            TenantTable {
                name: name.to_owned(),
                columns: vec!["tenant_id".into()],
                primary_key: vec!["tenant_id".into()],
                references: references.iter().map(|r| (*r).to_owned()).collect(),
                secret_columns: Vec::new(),
            },
        )
    }

    #[test]
    fn parents_come_before_the_tables_that_reference_them() {
        let tables = BTreeMap::from([
            table("a_deliveries", &["b_queue"]),
            table("b_queue", &["c_messages", "d_hooks"]),
            table("c_messages", &[]),
            table("d_hooks", &[]),
            table("e_alone", &[]),
        ]);
        let names: Vec<_> = parents_first(tables).into_iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "c_messages",
                "d_hooks",
                "b_queue",
                "a_deliveries",
                "e_alone"
            ]
        );
    }

    #[test]
    fn a_cycle_still_yields_every_table_once() {
        let tables = BTreeMap::from([table("x", &["y"]), table("y", &["x"])]);
        let names: Vec<_> = parents_first(tables).into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["x", "y"]);
    }
}
