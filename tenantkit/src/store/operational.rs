//! [`OperationalTable`]: tables a crate writes without an audit entry
//! (queues, rollups, logs), still scoped to the tenant, and the checks that
//! a statement written through one touches that table only.

use super::scope::Scoped;

/// A table of operational records, written unaudited through
/// [`TenantTx::write_operational`](super::TenantTx::write_operational). Declare one constant per table next to the
/// crate's migrations, and mark the table in its PostgreSQL migration with
/// `COMMENT ON TABLE <t> IS 'tenantkit:operational'` (a crate's tests check
/// the two agree). tenantkit's own audited tables cannot be declared.
///
/// ```
/// use tenantkit::store::OperationalTable;
///
/// pub const QUEUE: OperationalTable = OperationalTable::new("webhook_queue");
/// assert_eq!(QUEUE.name(), "webhook_queue");
/// ```
///
/// ```should_panic
/// use tenantkit::store::OperationalTable;
///
/// // A `const` of it would not even compile.
/// let side_door = OperationalTable::new("audit_logs");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationalTable(&'static str);

/// Tables whose every change must be audited: never operational.
const AUDITED_CORE: [&str; 5] = ["tenants", "users", "api_keys", "audit_logs", "audit_heads"];

impl OperationalTable {
    /// Declares `name` an operational table.
    ///
    /// # Panics
    ///
    /// For one of tenantkit's audited tables, or a name that is not a plain
    /// lower-case identifier.
    pub const fn new(name: &'static str) -> Self {
        let bytes = name.as_bytes();
        assert!(!bytes.is_empty(), "an operational table needs a name");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
                "operational table names are lower-case identifiers"
            );
            i += 1;
        }
        let mut t = 0;
        while t < AUDITED_CORE.len() {
            assert!(
                !const_eq(name, AUDITED_CORE[t]),
                "tenantkit's audited tables cannot be written unaudited"
            );
            t += 1;
        }
        Self(name)
    }

    /// The table's name.
    pub const fn name(self) -> &'static str {
        self.0
    }
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl Scoped {
    /// Panics unless the statement is an `INSERT INTO`, `UPDATE` or
    /// `DELETE FROM` of `table`.
    pub(super) fn expect_operational(&self, table: OperationalTable) {
        let words: Vec<&str> = self.sql.split_whitespace().take(3).collect();
        let target = match words.as_slice() {
            [verb, into, t, ..]
                if verb.eq_ignore_ascii_case("INSERT") && into.eq_ignore_ascii_case("INTO") =>
            {
                *t
            }
            [verb, from, t, ..]
                if verb.eq_ignore_ascii_case("DELETE") && from.eq_ignore_ascii_case("FROM") =>
            {
                *t
            }
            [verb, t, ..] if verb.eq_ignore_ascii_case("UPDATE") => *t,
            _ => "",
        };
        let target = target.split('(').next().unwrap_or_default();
        assert!(
            target == table.name(),
            "an operational write must be an INSERT INTO, UPDATE or DELETE FROM `{}`: {}",
            table.name(),
            self.sql
        );
    }

    /// Panics unless every table the statement writes is one of `tables`
    /// (and it writes at least one).
    pub(super) fn expect_operational_all(&self, tables: &[OperationalTable]) {
        let words: Vec<&str> = self
            .sql
            .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
            .filter(|w| !w.is_empty())
            .collect();
        let mut writes = 0;
        for (i, word) in words.iter().enumerate() {
            let next = |k: usize| words.get(i + k).copied().unwrap_or_default();
            let target = if word.eq_ignore_ascii_case("INSERT")
                && next(1).eq_ignore_ascii_case("INTO")
                || word.eq_ignore_ascii_case("DELETE") && next(1).eq_ignore_ascii_case("FROM")
            {
                next(2)
            } else if word.eq_ignore_ascii_case("UPDATE")
                && !(i > 0 && words[i - 1].eq_ignore_ascii_case("DO"))
            {
                next(1)
            } else {
                continue;
            };
            assert!(
                tables.iter().any(|t| t.name() == target),
                "an operational write may only write {:?}, not `{target}`: {}",
                tables.iter().map(|t| t.name()).collect::<Vec<_>>(),
                self.sql
            );
            writes += 1;
        }
        assert!(writes > 0, "an operational write must write: {}", self.sql);
    }

    /// Panics unless the statement starts with `verb`: reads cannot write, and
    /// writes go only through the audited methods.
    pub(super) fn expect_verb(&self, verb: &str) {
        let first = self.sql.split_whitespace().next().unwrap_or_default();
        assert!(
            first.eq_ignore_ascii_case(verb),
            "expected a {verb} statement here (writes must go through TenantTx::insert/update/delete): {}",
            self.sql
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scope::placeholders;

    const EVENTS: OperationalTable = OperationalTable::new("events");
    const COUNTS: OperationalTable = OperationalTable::new("event_counts");

    fn scoped(sql: &'static str) -> Scoped {
        Scoped {
            sql,
            values: Vec::new(),
            built_by: 0,
            unrunnable: None,
        }
    }

    fn numbers(sql: &str) -> Vec<u32> {
        placeholders(sql).collect()
    }

    #[test]
    fn placeholders_are_read_as_sql_reads_them() {
        assert_eq!(
            numbers("SELECT * FROM t WHERE tenant_id = $1 AND a = $2"),
            [1, 2]
        );
        assert_eq!(numbers("SELECT $10, $12"), [10, 12], "`$10` is not `$1`");
        assert_eq!(numbers("SELECT 1 -- tenant_id = $1\n, $2"), [2]);
        assert_eq!(numbers("SELECT /* $1 */ $3"), [3]);
        assert_eq!(numbers("SELECT '$1', 'it''s $1', $4"), [4]);
        assert_eq!(numbers(r#"SELECT "$1" FROM t WHERE x = $5"#), [5]);
        assert_eq!(numbers("SELECT $$ $1 $$, $tag$ $1 $tag$, $6"), [6]);
        assert_eq!(numbers("SELECT $1::uuid"), [1]);
        assert!(numbers("SELECT 'unterminated $1").is_empty());
    }

    #[test]
    fn a_statement_writing_only_its_operational_tables_passes() {
        scoped(
            "WITH a AS (INSERT INTO events (tenant_id) SELECT $1), \
             b AS (INSERT INTO event_counts(tenant_id) SELECT $1 ON CONFLICT (tenant_id) DO UPDATE SET count = 1) \
             SELECT 1",
        )
        .expect_operational_all(&[EVENTS, COUNTS]);
    }

    #[test]
    #[should_panic(expected = "not `audit_logs`")]
    fn a_write_to_another_table_is_refused() {
        scoped("WITH a AS (INSERT INTO events SELECT $1), b AS (DELETE FROM audit_logs WHERE tenant_id = $1) SELECT 1")
            .expect_operational_all(&[EVENTS]);
    }

    #[test]
    #[should_panic(expected = "not `users`")]
    fn an_update_is_checked_too() {
        scoped("WITH a AS (UPDATE users SET role = 'owner' WHERE tenant_id = $1) INSERT INTO events SELECT $1")
            .expect_operational_all(&[EVENTS]);
    }

    #[test]
    #[should_panic(expected = "must write")]
    fn a_read_is_not_an_operational_write() {
        scoped("SELECT * FROM events WHERE tenant_id = $1").expect_operational_all(&[EVENTS]);
    }
}
