//! [`Sql`]: one statement for both backends, or a PostgreSQL/SQLite pair;
//! and [`statements!`](crate::statements), which declares a crate's
//! statements as named constants in one place, with the list
//! ([`Statement`]) that a test walks to prepare every one of them on both
//! backends.

use super::Backend;

/// A statement as each backend runs it: the same text for both (most
/// statements: `$N` placeholders, standard SQL), a PostgreSQL/SQLite pair
/// where the dialects differ (JSON operators, `FOR UPDATE`), or a text for
/// one backend only, where the algorithm itself differs and the other
/// backend runs other statements.
///
/// [`TenantTx::query`](super::TenantTx::query) takes either a `&'static str`
/// or an `Sql` and runs the text for its backend.
///
/// ```
/// use tenantkit::{Backend, store::Sql};
///
/// const LOCK_WINDOW: Sql = Sql::pair(
///     "SELECT used FROM windows WHERE tenant_id = $1 FOR UPDATE",
///     // SQLite's write transactions are serial already.
///     "SELECT used FROM windows WHERE tenant_id = $1",
/// );
/// assert!(LOCK_WINDOW.on(Backend::Postgres).unwrap().ends_with("FOR UPDATE"));
/// assert!(!LOCK_WINDOW.on(Backend::Sqlite).unwrap().contains("FOR UPDATE"));
/// assert_eq!(Sql::both("SELECT 1").on(Backend::Sqlite), Some("SELECT 1"));
/// assert_eq!(Sql::postgres_only("SELECT 1").on(Backend::Sqlite), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sql {
    postgres: Option<&'static str>,
    sqlite: Option<&'static str>,
}

impl Sql {
    /// One text for both backends.
    pub const fn both(sql: &'static str) -> Self {
        Self {
            postgres: Some(sql),
            sqlite: Some(sql),
        }
    }

    /// A text for each backend.
    pub const fn pair(postgres: &'static str, sqlite: &'static str) -> Self {
        Self {
            postgres: Some(postgres),
            sqlite: Some(sqlite),
        }
    }

    /// A statement only PostgreSQL runs (its code path is PostgreSQL's).
    pub const fn postgres_only(sql: &'static str) -> Self {
        Self {
            postgres: Some(sql),
            sqlite: None,
        }
    }

    /// A statement only SQLite runs (its code path is SQLite's).
    pub const fn sqlite_only(sql: &'static str) -> Self {
        Self {
            postgres: None,
            sqlite: Some(sql),
        }
    }

    /// The text `backend` runs, if it runs this statement.
    pub const fn on(self, backend: Backend) -> Option<&'static str> {
        match backend {
            Backend::Postgres => self.postgres,
            Backend::Sqlite => self.sqlite,
        }
    }
}

impl From<&'static str> for Sql {
    fn from(sql: &'static str) -> Self {
        Self::both(sql)
    }
}

/// A named statement, as [`statements!`](crate::statements) lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement {
    /// The constant's name, e.g. `LOAD_SUBSCRIPTION`.
    pub name: &'static str,
    /// Its text on each backend.
    pub sql: Sql,
}

/// Declares a module's SQL statements as named [`Sql`] constants, and `ALL`,
/// the list of them (a `&[Statement]`) that the workspace's statement test
/// prepares on both backends, so a typo, a missing column or a dead arm
/// fails a test instead of waiting for its code path.
///
/// ```
/// mod sql {
///     use tenantkit::store::Sql;
///
///     tenantkit::statements! {
///         /// The tenant's users.
///         pub const COUNT_USERS: Sql = Sql::both("SELECT COUNT(*) FROM users WHERE tenant_id = $1");
///         /// Locks the tenant row (SQLite's writers are serial already).
///         pub const LOCK_TENANT: Sql = Sql::pair(
///             "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE",
///             "SELECT 1 FROM tenants WHERE id = $1",
///         );
///     }
/// }
///
/// assert_eq!(sql::ALL.len(), 2);
/// assert_eq!(sql::ALL[0].name, "COUNT_USERS");
/// assert_eq!(sql::ALL[1].sql, sql::LOCK_TENANT);
/// ```
#[macro_export]
macro_rules! statements {
    ($($(#[$meta:meta])* $vis:vis const $name:ident: Sql = $sql:expr;)*) => {
        $($(#[$meta])* $vis const $name: $crate::store::Sql = $sql;)*

        /// Every statement of this module, by name (for the statement test).
        pub const ALL: &[$crate::store::Statement] = &[
            $($crate::store::Statement { name: stringify!($name), sql: $name },)*
        ];
    };
}
