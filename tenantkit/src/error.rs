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
            _ => Self::Database(err),
        }
    }
}
