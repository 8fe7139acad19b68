//! The error type of every tenantkit operation.

use std::borrow::Cow;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in tenantkit.
///
/// Each variant maps to one HTTP status in [`crate::problem::Problem`]; only
/// [`Error::Database`] and [`Error::Internal`] carry details that must never
/// reach a client, and the mapping replaces them with a generic message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row does not exist, or belongs to another tenant (the two are
    /// indistinguishable on purpose).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule would be broken (a taken subdomain, a duplicate e-mail).
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    /// The input breaks a documented rule.
    #[error("{0}")]
    Invalid(Cow<'static, str>),
    /// A quota would be exceeded (e.g. the plan's user limit).
    #[error("{resource} limit of {limit} reached ({usage} in use)")]
    LimitExceeded {
        /// What is limited, e.g. `users`.
        resource: &'static str,
        /// The limit.
        limit: u64,
        /// Current usage.
        usage: u64,
    },
    /// Configuration or deployment is unsafe or incomplete; the process should not start.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// The database failed. Details are logged, never shown to clients.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The transaction lost a race with a concurrent one (a PostgreSQL
    /// deadlock `40P01` or serialization failure `40001`, SQLite's
    /// `SQLITE_BUSY`) and was rolled back: running it again from the start
    /// will succeed. Servers retry such requests themselves (see
    /// [`crate::problem::Contended`]); a client sees `503` with
    /// `Retry-After` only once the retries are spent.
    #[error("transaction conflicted with a concurrent one: {0}")]
    Contention(#[source] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// An invariant was broken inside tenantkit.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An [`Error::Invalid`] with this message.
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Invalid(message.into())
    }

    /// Whether running the whole transaction again may succeed
    /// ([`Error::Contention`]).
    pub fn is_contention(&self) -> bool {
        matches!(self, Self::Contention(_))
    }

    /// Turns a unique-constraint violation into [`Error::Conflict`] with
    /// `message`; passes every other error through.
    pub(crate) fn conflict_if_unique(self, message: &'static str) -> Self {
        match self {
            Self::Conflict(_) => Self::Conflict(Cow::Borrowed(message)),
            other => other,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Self::Conflict(Cow::Borrowed("already exists"))
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::NotFound("referenced row")
            }
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|code| CONTENTION_CODES.contains(&&*code)) =>
            {
                Self::Contention(err)
            }
            // A data exception (class 22: a value the column cannot hold, a
            // NUL in text) or a broken CHECK is caused by the input: running
            // it again cannot succeed. The stores validate first; this keeps
            // any path they missed a 4xx, never a 500 or a retryable 503.
            sqlx::Error::Database(db)
                if db.is_check_violation()
                    || db.code().is_some_and(|code| code.starts_with("22")) =>
            {
                tracing::debug!(error = %db, "the database refused a value");
                Self::Invalid(Cow::Owned(format!(
                    "a value cannot be stored: {}",
                    db.message()
                )))
            }
            _ => Self::Database(err),
        }
    }
}

/// Error codes of a transaction that lost a race and may simply run again:
/// PostgreSQL's `deadlock_detected` and `serialization_failure`; SQLite's
/// `SQLITE_BUSY` and its extended codes (`BUSY_RECOVERY`, `BUSY_SNAPSHOT`,
/// `BUSY_TIMEOUT`), which sqlx reports as numbers.
const CONTENTION_CODES: [&str; 6] = ["40P01", "40001", "5", "261", "517", "773"];
