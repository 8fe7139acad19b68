//! The one place that talks to the sqlx drivers.
//!
//! Store code is written once: a named statement (an [`Sql`] of the `sql`
//! module, `$N` placeholders, which both PostgreSQL and SQLite accept) and a
//! list of [`Value`]s. This module runs the statement's text for whichever
//! backend the [`Conn`] is, binds the values and decodes rows.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::{Backend, Sql};
use crate::{ApiKeyId, AuditEntryId, Result, Role, Scope, TenantId, TenantStatus, UserId};

/// A value bound to a query parameter.
///
/// Conversions exist for ids, text, integers, timestamps, JSON and the model's
/// enums, so store code writes `.bind(user_id)` and never sees a driver type.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// A UUID (every id).
    Uuid(Uuid),
    /// A UUID or NULL.
    OptUuid(Option<Uuid>),
    /// Text.
    Text(String),
    /// Text or NULL.
    OptText(Option<String>),
    /// A boolean (`boolean` on PostgreSQL, `0`/`1` on SQLite).
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A point in time.
    Time(DateTime<Utc>),
    /// A point in time or NULL.
    OptTime(Option<DateTime<Utc>>),
    /// A calendar day (`date` on PostgreSQL, `YYYY-MM-DD` on SQLite).
    Date(NaiveDate),
    /// A 64-bit integer or NULL.
    OptInt(Option<i64>),
    /// A JSON document (`jsonb` on PostgreSQL, text on SQLite).
    Json(serde_json::Value),
    /// A JSON document or NULL.
    OptJson(Option<serde_json::Value>),
}

macro_rules! value_from {
    ($($ty:ty => $variant:ident),+ $(,)?) => {
        $(impl From<$ty> for Value {
            fn from(v: $ty) -> Self {
                Value::$variant(v.into())
            }
        })+
    };
}

value_from!(
    Uuid => Uuid,
    Option<Uuid> => OptUuid,
    String => Text,
    &str => Text,
    Option<String> => OptText,
    bool => Bool,
    i64 => Int,
    Option<i64> => OptInt,
    DateTime<Utc> => Time,
    Option<DateTime<Utc>> => OptTime,
    NaiveDate => Date,
    serde_json::Value => Json,
);

// The core's ids and text enums bind as UUIDs and text. They are declared
// here, not beside the types, so the model does not know about the store.
macro_rules! value_from_id {
    ($($ty:ty),+) => {
        $(impl From<$ty> for Value {
            fn from(id: $ty) -> Self {
                Value::Uuid(id.as_uuid())
            }
        })+
    };
}

value_from_id!(TenantId, UserId, ApiKeyId, AuditEntryId);

macro_rules! value_from_text_enum {
    ($($ty:ty),+) => {
        $(impl From<$ty> for Value {
            fn from(v: $ty) -> Self {
                Value::Text(v.as_str().to_owned())
            }
        })+
    };
}

value_from_text_enum!(TenantStatus, Role, Scope);

/// A connection pool of either backend.
#[derive(Clone, Debug)]
pub(in crate::store) enum Pool {
    #[cfg(feature = "postgres")]
    Pg(sqlx::PgPool),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
}

impl Pool {
    /// A PostgreSQL connection of its own listening on `channel` (every
    /// notification committed from then on is heard); `None` on SQLite,
    /// where one process has nothing to hear.
    #[cfg(feature = "postgres")]
    pub(in crate::store) async fn listen(
        &self,
        channel: &str,
    ) -> Result<Option<sqlx::postgres::PgListener>> {
        let Pool::Pg(pool) = self else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(crate::Error::from_sqlx)?;
        listener
            .listen(channel)
            .await
            .map_err(crate::Error::from_sqlx)?;
        Ok(Some(listener))
    }
}

/// An open transaction of either backend.
pub(in crate::store) enum Tx {
    #[cfg(feature = "postgres")]
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

/// A pooled connection outside any transaction, for single reads.
pub(in crate::store) enum Pooled {
    #[cfg(feature = "postgres")]
    Pg(sqlx::pool::PoolConnection<sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
}

impl Pooled {
    pub(in crate::store) async fn acquire(pool: &Pool) -> Result<Self> {
        Ok(match pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => Pooled::Pg(pool.acquire().await.map_err(crate::Error::from_sqlx)?),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => {
                Pooled::Sqlite(pool.acquire().await.map_err(crate::Error::from_sqlx)?)
            }
        })
    }

    pub(in crate::store) fn conn(&mut self) -> Conn<'_> {
        match self {
            #[cfg(feature = "postgres")]
            Pooled::Pg(c) => Conn::Pg(c),
            #[cfg(feature = "sqlite")]
            Pooled::Sqlite(c) => Conn::Sqlite(c),
        }
    }
}

impl Tx {
    /// Which database it runs on.
    pub(in crate::store) fn backend(&self) -> super::Backend {
        match self {
            #[cfg(feature = "postgres")]
            Tx::Pg(_) => super::Backend::Postgres,
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(_) => super::Backend::Sqlite,
        }
    }

    /// A read-only snapshot: every read sees the database as of its first
    /// one (PostgreSQL `REPEATABLE READ READ ONLY`; SQLite a deferred
    /// transaction, which in WAL mode blocks no writer).
    pub(in crate::store) async fn begin_snapshot(pool: &Pool) -> Result<Self> {
        Ok(match pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => Tx::Pg(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(crate::Error::from_sqlx)?,
            ),
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => Tx::Sqlite(
                pool.begin_with("BEGIN DEFERRED")
                    .await
                    .map_err(crate::Error::from_sqlx)?,
            ),
        })
    }

    /// Opens a transaction whose tenant the database already knows: on
    /// PostgreSQL `BEGIN` and the tenant's binding (as `sql::BIND_TENANT`
    /// does it, the id written as the literal it is) go in one round trip.
    pub(in crate::store) async fn begin_bound(
        pool: &Pool,
        tenant: TenantId,
        snapshot: bool,
    ) -> Result<Self> {
        #[cfg(feature = "postgres")]
        if let Pool::Pg(pool) = pool {
            let begin = if snapshot {
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
            } else {
                "BEGIN"
            };
            // A UUID's text is hex digits and dashes: nothing to escape.
            let bound = format!(
                "{begin}; SELECT set_config('tenantkit.tenant_id', '{}', true)",
                tenant.as_uuid().hyphenated()
            );
            return Ok(Tx::Pg(
                pool.begin_with(sqlx::AssertSqlSafe(bound))
                    .await
                    .map_err(crate::Error::from_sqlx)?,
            ));
        }
        let _ = tenant;
        if snapshot {
            Self::begin_snapshot(pool).await
        } else {
            Self::begin(pool).await
        }
    }

    pub(in crate::store) async fn begin(pool: &Pool) -> Result<Self> {
        Ok(match pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => Tx::Pg(pool.begin().await.map_err(crate::Error::from_sqlx)?),
            // IMMEDIATE takes the write lock up front, so two writers queue on
            // the busy timeout instead of failing on lock upgrade.
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => Tx::Sqlite(
                pool.begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(crate::Error::from_sqlx)?,
            ),
        })
    }

    pub(in crate::store) fn conn(&mut self) -> Conn<'_> {
        match self {
            #[cfg(feature = "postgres")]
            Tx::Pg(tx) => Conn::Pg(tx),
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }

    pub(in crate::store) async fn commit(self) -> Result<()> {
        match self {
            #[cfg(feature = "postgres")]
            Tx::Pg(tx) => tx.commit().await.map_err(crate::Error::from_sqlx)?,
            #[cfg(feature = "sqlite")]
            Tx::Sqlite(tx) => tx.commit().await.map_err(crate::Error::from_sqlx)?,
        }
        Ok(())
    }
}

/// A row type both backends can decode (every `#[derive(sqlx::FromRow)]` struct
/// of the model qualifies).
pub trait Record: Send + Unpin + PgRecord + SqliteRecord {}
impl<T: Send + Unpin + PgRecord + SqliteRecord> Record for T {}

#[cfg(feature = "postgres")]
#[doc(hidden)]
pub trait PgRecord: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> {}
#[cfg(feature = "postgres")]
impl<T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>> PgRecord for T {}
#[cfg(not(feature = "postgres"))]
#[doc(hidden)]
pub trait PgRecord {}
#[cfg(not(feature = "postgres"))]
impl<T> PgRecord for T {}

#[cfg(feature = "sqlite")]
#[doc(hidden)]
pub trait SqliteRecord: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> {}
#[cfg(feature = "sqlite")]
impl<T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>> SqliteRecord for T {}
#[cfg(not(feature = "sqlite"))]
#[doc(hidden)]
pub trait SqliteRecord {}
#[cfg(not(feature = "sqlite"))]
impl<T> SqliteRecord for T {}

/// A borrowed connection of either backend.
pub(in crate::store) enum Conn<'a> {
    #[cfg(feature = "postgres")]
    Pg(&'a mut sqlx::PgConnection),
    #[cfg(feature = "sqlite")]
    Sqlite(&'a mut sqlx::SqliteConnection),
}

/// Binds `values` in order onto a `sqlx::query`.
macro_rules! bind_values {
    ($query:expr, $values:expr) => {{
        let mut query = $query;
        for value in $values {
            query = match value {
                Value::Uuid(v) => query.bind(v),
                Value::OptUuid(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::OptText(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::Time(v) => query.bind(v),
                Value::OptTime(v) => query.bind(v),
                Value::Date(v) => query.bind(v),
                Value::OptInt(v) => query.bind(v),
                Value::Json(v) => query.bind(sqlx::types::Json(v)),
                Value::OptJson(v) => query.bind(v.map(sqlx::types::Json)),
            };
        }
        query
    }};
}

/// Runs `$body` with `$q`, the bound query, and `$c`, the connection, for
/// whichever backend `$conn` is; `$sql` is an [`Sql`] (its text for that
/// backend runs) or, with `built`, SQL this crate built.
macro_rules! on_backend {
    ($conn:expr, $sql:expr, $values:expr, |$c:ident, $q:ident| $body:expr) => {
        on_backend!(@ $conn, |backend| text_on($sql, backend)?, $values, |$c, $q| $body)
    };
    (built $conn:expr, $sql:expr, $values:expr, |$c:ident, $q:ident| $body:expr) => {
        on_backend!(@ $conn, |_backend| $sql, $values, |$c, $q| $body)
    };
    (@ $conn:expr, |$backend:ident| $text:expr, $values:expr, |$c:ident, $q:ident| $body:expr) => {{
        refuse_nul(&$values)?;
        match $conn {
            #[cfg(feature = "postgres")]
            Conn::Pg($c) => {
                let $backend = Backend::Postgres;
                let $q = bind_values!(sqlx::query::<sqlx::Postgres>($text), $values);
                $body
            }
            #[cfg(feature = "sqlite")]
            Conn::Sqlite($c) => {
                let $backend = Backend::Sqlite;
                let $q = bind_values!(sqlx::query::<sqlx::Sqlite>($text), $values);
                $body
            }
        }
    }};
}

/// `sql`'s text for `backend`; a statement without one is a bug in the
/// code path that ran it, reported rather than run.
fn text_on(sql: Sql, backend: Backend) -> Result<&'static str> {
    sql.on(backend).ok_or_else(|| {
        crate::Error::Internal(format!(
            "a statement without a {backend:?} form ran on {backend:?}: {sql:?}"
        ))
    })
}

/// The text rule ([`crate::validate::text`]) for every value bound to a
/// statement: PostgreSQL cannot store a NUL character and SQLite can, so
/// refusing it here keeps the two backends alike for every caller, also one
/// that skipped validating its input. The HTTP edge refuses it first, naming
/// the field.
fn refuse_nul(values: &[Value]) -> Result<()> {
    for (i, value) in values.iter().enumerate() {
        let parameter = format!("${}", i + 1);
        match value {
            Value::Text(s) | Value::OptText(Some(s)) => crate::validate::text(&parameter, s)?,
            Value::Json(v) | Value::OptJson(Some(v)) => crate::validate::json::check_value(v)
                .map_err(|e| crate::Error::invalid(format!("{parameter}: {e}")))?,
            _ => {}
        }
    }
    Ok(())
}

impl<'c> Conn<'c> {
    /// Runs `sql` (built by this crate from catalog names, never from input)
    /// and yields each row's single text column as it is read, so a table of
    /// any size passes through in constant memory.
    pub(in crate::store) fn text_rows(
        self,
        sql: String,
        values: Vec<Value>,
    ) -> futures_util::stream::BoxStream<'c, Result<String>> {
        use futures_util::TryStreamExt;
        match self {
            #[cfg(feature = "postgres")]
            Conn::Pg(c) => Box::pin(pg_text_rows(c, sql, values).map_err(crate::Error::from_sqlx)),
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => {
                Box::pin(sqlite_text_rows(c, sql, values).map_err(crate::Error::from_sqlx))
            }
        }
    }

    pub(in crate::store) async fn fetch_all<O: Record>(
        &mut self,
        sql: impl Into<Sql>,
        values: Vec<Value>,
    ) -> Result<Vec<O>> {
        let sql = sql.into();
        on_backend!(self, sql, values, |c, q| {
            let rows = q
                .fetch_all(&mut **c)
                .await
                .map_err(crate::Error::from_sqlx)?;
            Ok(rows
                .iter()
                .map(O::from_row)
                .collect::<Result<_, _>>()
                .map_err(crate::Error::from_sqlx)?)
        })
    }

    pub(in crate::store) async fn fetch_optional<O: Record>(
        &mut self,
        sql: impl Into<Sql>,
        values: Vec<Value>,
    ) -> Result<Option<O>> {
        let sql = sql.into();
        on_backend!(self, sql, values, |c, q| {
            let row = q
                .fetch_optional(&mut **c)
                .await
                .map_err(crate::Error::from_sqlx)?;
            Ok(row
                .as_ref()
                .map(O::from_row)
                .transpose()
                .map_err(crate::Error::from_sqlx)?)
        })
    }

    pub(in crate::store) async fn fetch_one<O: Record>(
        &mut self,
        sql: impl Into<Sql>,
        values: Vec<Value>,
    ) -> Result<O> {
        let sql = sql.into();
        self.fetch_optional(sql, values)
            .await?
            .ok_or_else(|| crate::Error::Internal(format!("expected a row from: {sql:?}")))
    }

    /// Like [`Conn::execute`], for SQL this crate built from catalog names
    /// (never from input).
    pub(in crate::store) async fn execute_built(
        &mut self,
        sql: String,
        values: Vec<Value>,
    ) -> Result<u64> {
        on_backend!(built self, sqlx::AssertSqlSafe(sql), values, |c, q| Ok(q
            .execute(&mut **c)
            .await
            .map_err(crate::Error::from_sqlx)?
            .rows_affected()))
    }

    pub(in crate::store) async fn execute(
        &mut self,
        sql: impl Into<Sql>,
        values: Vec<Value>,
    ) -> Result<u64> {
        let sql = sql.into();
        on_backend!(self, sql, values, |c, q| Ok(q
            .execute(&mut **c)
            .await
            .map_err(crate::Error::from_sqlx)?
            .rows_affected()))
    }
}

/// The rows of a one-text-column query as a boxed `Send` stream, made outside
/// any `async fn` so the driver's borrowed types never live in a caller's
/// future (which must be `Send` for every lifetime, e.g. in an axum handler).
macro_rules! text_rows {
    ($name:ident, $db:ty, $conn:ty) => {
        fn $name(
            conn: &mut $conn,
            sql: String,
            values: Vec<Value>,
        ) -> futures_util::stream::BoxStream<'_, sqlx::Result<String>> {
            let q = bind_values!(
                sqlx::query_scalar::<$db, String>(sqlx::AssertSqlSafe(sql)),
                values
            );
            Box::pin(q.fetch(conn))
        }
    };
}
#[cfg(feature = "postgres")]
text_rows!(pg_text_rows, sqlx::Postgres, sqlx::PgConnection);
#[cfg(feature = "sqlite")]
text_rows!(sqlite_text_rows, sqlx::Sqlite, sqlx::SqliteConnection);
