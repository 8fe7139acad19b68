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
    Database(#[source] BackendError),
    /// The transaction lost a race with a concurrent one (a PostgreSQL
    /// deadlock `40P01` or serialization failure `40001`, SQLite's
    /// `SQLITE_BUSY`) and was rolled back: running it again from the start
    /// will succeed. Servers retry such requests themselves (see
    /// [`crate::problem::Contended`]); a client sees `503` with
    /// `Retry-After` only once the retries are spent.
    #[error("transaction conflicted with a concurrent one: {0}")]
    Contention(#[source] BackendError),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[source] BackendError),
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

impl Error {
    /// The error a driver failure means: a conflict, a missing reference,
    /// contention, refused input, or an opaque backend failure.
    pub(crate) fn from_sqlx(err: sqlx::Error) -> Self {
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
                Self::Contention(BackendError::new(err))
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
            _ => Self::Database(BackendError::new(err)),
        }
    }

    /// The error a failure of the database driver means, for code that
    /// talks to the database itself: a unique violation is
    /// [`Error::Conflict`], a deadlock or serialization failure
    /// [`Error::Contention`] (which [`crate::retry::RetryContendedLayer`] runs
    /// again), refused input [`Error::Invalid`], anything else an opaque
    /// [`Error::Database`]. No driver type is named, so this survives a
    /// driver upgrade.
    pub fn from_backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        let boxed: Box<dyn std::error::Error + Send + Sync + 'static> = Box::new(err);
        match boxed.downcast::<sqlx::Error>() {
            Ok(driver) => Self::from_sqlx(*driver),
            Err(other) => Self::Database(BackendError {
                inner: other,
                code: None,
            }),
        }
    }

    /// A failed migration.
    pub(crate) fn from_migrate(err: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(BackendError::new(err))
    }
}

/// A failure of the database driver, opaque on purpose: tenantkit's API
/// names no driver type, so upgrading the driver is not a breaking change.
/// It displays the driver's message (for logs, never for clients: see
/// [`crate::problem::Problem`]) and keeps the driver's error as its
/// [`source`](std::error::Error::source).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use tenantkit::{Db, Error, PageRequest};
///
/// let db = Db::connect("sqlite::memory:").await?;
/// db.close().await;
/// match db.platform().list_tenants(PageRequest::first(1)).await {
///     Err(Error::Database(e)) => {
///         assert_eq!(e.code(), None, "no database answered");
///         assert!(e.to_string().contains("closed"), "{e}");
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<_, Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct BackendError {
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
    code: Option<String>,
}

impl BackendError {
    /// Wraps a driver's error (its code is kept when it is one of the
    /// database's own errors).
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        let code = (&err as &dyn std::any::Any)
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|db| db.code().map(|c| c.into_owned()));
        Self {
            inner: Box::new(err),
            code,
        }
    }

    /// The database's error code, if it gave one: a PostgreSQL SQLSTATE
    /// (e.g. `40P01`) or an SQLite result code (e.g. `5`).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.inner)
    }
}

/// Error codes of a transaction that lost a race and may simply run again:
/// PostgreSQL's `deadlock_detected` and `serialization_failure`; SQLite's
/// `SQLITE_BUSY` and its extended codes (`BUSY_RECOVERY`, `BUSY_SNAPSHOT`,
/// `BUSY_TIMEOUT`), which sqlx reports as numbers.
const CONTENTION_CODES: [&str; 6] = ["40P01", "40001", "5", "261", "517", "773"];
