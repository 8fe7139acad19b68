//! Migrations, the PostgreSQL runtime role, and the start-up safety check.

use std::fmt;

use super::{Db, Pool};
use crate::{Error, Result};

#[cfg(feature = "postgres")]
static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
/// tenantkit's PostgreSQL migrations, as compiled in.
#[cfg(feature = "postgres")]
pub fn postgres_migrator() -> &'static sqlx::migrate::Migrator {
    &PG_MIGRATOR
}

#[cfg(feature = "sqlite")]
static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL role the server runs as: may read and write rows, may not
/// bypass row-level security, owns nothing.
#[derive(Clone)]
pub struct RuntimeRole {
    name: String,
    password: Option<String>,
}

impl fmt::Debug for RuntimeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeRole")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl RuntimeRole {
    /// The default role name.
    pub const DEFAULT_NAME: &'static str = "tenantkit_app";

    /// A role called `name` (lower-case letters, digits and `_`, at most 63).
    pub fn new(name: &str) -> Result<Self> {
        let ok = (1..=63).contains(&name.len())
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(Error::Misconfigured(format!(
                "runtime role name `{name}` must be 1 to 63 of a-z, 0-9 and _, starting with a letter or _"
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            password: None,
        })
    }

    /// Sets the password the role logs in with.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `owner_url` with its user (and password) replaced by this role's.
    pub fn connection_url(&self, owner_url: &str) -> Result<String> {
        let (scheme, rest) = owner_url
            .split_once("://")
            .ok_or_else(|| Error::Misconfigured("the database URL has no scheme".into()))?;
        let host_part = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let userinfo = match &self.password {
            Some(p) => format!("{}:{}", self.name, percent_encode(p)),
            None => self.name.clone(),
        };
        Ok(format!("{scheme}://{userinfo}@{host_part}"))
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Db {
    /// Applies tenantkit's migrations. On PostgreSQL, connect as the schema
    /// owner, then call [`Db::setup_runtime_role`].
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => PG_MIGRATOR.run(pool).await?,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => SQLITE_MIGRATOR.run(pool).await?,
        }
        Ok(())
    }

    /// Applies another crate's migrations: one migrator per backend, each with
    /// its own history table (see `Migrator::dangerous_set_table_name`), so
    /// crates never see each other's migrations. Connect as the owner on
    /// PostgreSQL, then call [`Db::setup_runtime_role`] again.
    pub async fn apply_migrations(
        &self,
        postgres: &sqlx::migrate::Migrator,
        sqlite: &sqlx::migrate::Migrator,
    ) -> Result<()> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => postgres.run(pool).await?,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => sqlite.run(pool).await?,
        }
        let _ = (postgres, sqlite);
        Ok(())
    }

    /// PostgreSQL: creates the runtime role if missing (without superuser,
    /// `BYPASSRLS` or ownership) and grants it row access to every table of the
    /// current schema. Run it as the owner after every migration, so tables
    /// added by later crates are granted too. A no-op on SQLite.
    pub async fn setup_runtime_role(&self, role: &RuntimeRole) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let Pool::Pg(pool) = &self.pool {
            use sqlx::AssertSqlSafe;
            let name = &role.name; // validated to [a-z0-9_] in RuntimeRole::new
            let mut tx = pool.begin().await?;
            sqlx::query(AssertSqlSafe(format!(
                "DO $$ BEGIN CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )))
            .execute(&mut *tx)
            .await?;
            if let Some(password) = &role.password {
                let literal = password.replace('\'', "''");
                sqlx::query(AssertSqlSafe(format!(
                    "ALTER ROLE {name} PASSWORD '{literal}'"
                )))
                .execute(&mut *tx)
                .await?;
            }
            for statement in [
                format!("GRANT USAGE ON SCHEMA public TO {name}"),
                format!(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}"
                ),
                format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}"),
                format!("GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO {name}"),
                // Every crate's migration history (`_..._migrations`) is the owner's alone.
                format!(
                    "DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables \
                     WHERE schemaname = 'public' AND tablename LIKE '\\_%migrations' LOOP \
                     EXECUTE format('REVOKE ALL ON TABLE %I FROM {name}', t); END LOOP; END $$"
                ),
                // The audit trail is append-only for the runtime: insert and read.
                format!("REVOKE UPDATE, DELETE, TRUNCATE ON TABLE audit_logs FROM {name}"),
                // The chain head: only its position and hash move; the purge
                // anchor moves only inside tenantkit_audit_purge.
                format!("REVOKE UPDATE, DELETE, TRUNCATE ON TABLE audit_heads FROM {name}"),
                format!("GRANT UPDATE (seq, hash) ON TABLE audit_heads TO {name}"),
                // Platform tables: read and create tenants; change a status,
                // or touch the external-id mapping, only through the narrow
                // SECURITY DEFINER functions (tenantkit_set_tenant_status,
                // tenantkit_link/resolve/linked_external_id(s)).
                format!("REVOKE UPDATE, DELETE, TRUNCATE ON TABLE tenants FROM {name}"),
                format!("REVOKE ALL ON TABLE tenant_external_ids FROM {name}"),
                // Deletions: read; started, counted and finished only through
                // tenantkit_start/finish_tenant_deletion and _progress.
                format!(
                    "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON TABLE tenant_deletions FROM {name}"
                ),
            ] {
                sqlx::query(AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            // The role must be safe even if it existed before with other attributes.
            let runtime = Db::from(pool.clone());
            runtime.check_role_attributes(name).await?;
        }
        let _ = role;
        Ok(())
    }

    /// Refuses (with [`Error::Misconfigured`]) a PostgreSQL connection whose
    /// role could bypass row-level security: a superuser, a role with
    /// `BYPASSRLS`, or one that owns (or inherits ownership of) a table in the
    /// schema. Always passes on SQLite. The server calls it at start.
    pub async fn ensure_cannot_bypass_isolation(&self) -> Result<()> {
        #[cfg(feature = "postgres")]
        if let Pool::Pg(pool) = &self.pool {
            let (user,): (String,) = sqlx::query_as("SELECT current_user::text")
                .fetch_one(pool)
                .await?;
            self.check_role_attributes(&user).await?;
            let owned: Vec<(String,)> = sqlx::query_as(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
                 AND pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY 1",
            )
            .fetch_all(pool)
            .await?;
            if !owned.is_empty() {
                let tables: Vec<_> = owned.into_iter().map(|(t,)| t).collect();
                return Err(Error::Misconfigured(format!(
                    "database role `{user}` owns (or is a member of the owner of) {}: table owners bypass \
                     row-level security. Run migrations as the owner and serve as a separate runtime role \
                     (`tenantkit-server migrate` creates `{}`)",
                    tables.join(", "),
                    RuntimeRole::DEFAULT_NAME
                )));
            }
        }
        Ok(())
    }

    #[cfg(feature = "postgres")]
    async fn check_role_attributes(&self, role: &str) -> Result<()> {
        let Pool::Pg(pool) = &self.pool else {
            return Ok(());
        };
        let row: Option<(bool, bool)> =
            sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
                .bind(role)
                .fetch_optional(pool)
                .await?;
        match row {
            Some((false, false)) => Ok(()),
            Some((superuser, bypass)) => Err(Error::Misconfigured(format!(
                "database role `{role}` can bypass row-level security (superuser: {superuser}, BYPASSRLS: {bypass}); \
                 the server must run as a role without either"
            ))),
            None => Err(Error::Misconfigured(format!(
                "database role `{role}` does not exist"
            ))),
        }
    }
}
