//! [`OperationalTable`]: tables a crate writes without an audit entry
//! (queues, rollups, logs), still scoped to the tenant. That a statement
//! written through one touches that table only is checked in `checks`.

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
