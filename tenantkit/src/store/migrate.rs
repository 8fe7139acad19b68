//! Migrations, the PostgreSQL runtime role, and the start-up safety check.

use std::fmt;

use super::{
    Backend, Db,
    driver::{Pool, Pooled},
    sql,
};
use crate::{Error, Result};

/// A crate's migrations for both backends, each run with a history table of
/// the crate's own (crates never see each other's versions), for
/// [`Db::apply_migrations`]. Opaque: sqlx's migrator stays inside, so
/// upgrading sqlx does not change tenantkit's API. Made with
/// [`crate::migrations!`] (which needs `sqlx` with its `migrate` and
/// `macros` features in the calling crate).
///
/// ```no_run
/// # async fn migrate(db: &tenantkit::Db) -> tenantkit::Result<()> {
/// let migrations = tenantkit::migrations!(
///     "_my_crate_migrations",
///     "./migrations/postgres",
///     "./migrations/sqlite",
/// );
/// db.apply_migrations(&migrations).await
/// # }
/// ```
pub struct Migrations {
    postgres: sqlx::migrate::Migrator,
    sqlite: sqlx::migrate::Migrator,
}

impl std::fmt::Debug for Migrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrations")
            .field("postgres", &self.postgres.iter().count())
            .field("sqlite", &self.sqlite.iter().count())
            .finish()
    }
}

impl Migrations {
    /// What [`crate::migrations!`] expands to; not for direct use.
    #[doc(hidden)]
    pub fn __with_history_table(
        table: &'static str,
        mut postgres: sqlx::migrate::Migrator,
        mut sqlite: sqlx::migrate::Migrator,
    ) -> Self {
        postgres.dangerous_set_table_name(table);
        sqlite.dangerous_set_table_name(table);
        Self { postgres, sqlite }
    }

    /// The version and checksum of each PostgreSQL migration, in order: a
    /// fingerprint of the schema they make (the test databases are named
    /// after it).
    pub fn postgres_checksums(&self) -> impl Iterator<Item = (i64, &[u8])> {
        self.postgres
            .iter()
            .map(|m| (m.version, m.checksum.as_ref()))
    }
}

/// A crate's [`Migrations`]: a history table of its own and the folders of
/// its PostgreSQL and SQLite migrations (relative to its `Cargo.toml`),
/// embedded at compile time.
#[macro_export]
macro_rules! migrations {
    ($history_table:expr, $postgres:literal, $sqlite:literal $(,)?) => {
        $crate::store::Migrations::__with_history_table(
            $history_table,
            ::sqlx::migrate!($postgres),
            ::sqlx::migrate!($sqlite),
        )
    };
}

/// tenantkit's own migrations (its history table is sqlx's default).
pub fn core_migrations() -> &'static Migrations {
    static CORE: std::sync::LazyLock<Migrations> = std::sync::LazyLock::new(|| Migrations {
        postgres: sqlx::migrate!("./migrations/postgres"),
        sqlite: sqlx::migrate!("./migrations/sqlite"),
    });
    &CORE
}

/// The PostgreSQL role the server runs as: may read and write rows, may not
/// bypass row-level security, owns nothing.
#[derive(Clone)]
pub struct RuntimeRole {
    name: String,
    password: Option<String>,
}

/// **Every function the runtime role may execute**, by signature, for all
/// of tenantkit's crates: one list, so a review sees each of them. Any other
/// function of the schema is revoked from it (and from `PUBLIC`); those a
/// deployment has not migrated (a crate it does not use) are skipped.
///
/// Each is narrow: it acts on the current tenant (`tenantkit.tenant_id`) or
/// checks its arguments against what configuration keeps (e.g. the
/// analytics retention floor, see `tenantkit_settings`). Trigger functions
/// (`tenantkit_audit_guard`), migration helpers (`tenantkit_isolate`) and
/// helpers called only inside `SECURITY DEFINER` functions
/// (`tenantkit_require_deletion`) need no grant.
pub const RUNTIME_FUNCTIONS: &[&str] = &[
    // Row-level security policies call it on every query.
    "tenantkit_current_tenant()",
    // The lock order's first lock (ARCHITECTURE.md).
    "tenantkit_hold_tenant(uuid)",
    "tenantkit_set_tenant_status(uuid,text)",
    "tenantkit_link_external_id(text,text,uuid)",
    "tenantkit_resolve_external_id(text,text)",
    "tenantkit_linked_external_ids(uuid,text)",
    "tenantkit_release_sso_issuer(text)",
    "tenantkit_audit_purge(uuid,timestamp with time zone)",
    "tenantkit_start_tenant_deletion(uuid,text,text,text)",
    "tenantkit_lock_deleted_tenant(uuid)",
    "tenantkit_erase_tenant_audit(uuid,text,integer)",
    "tenantkit_tenant_deletion_progress(uuid,text,bigint)",
    "tenantkit_tenant_deletion_failed(uuid,text)",
    "tenantkit_finish_tenant_deletion(uuid)",
    "tenantkit_tenant_deletion(uuid)",
    "tenantkit_unfinished_tenant_deletions()",
    // tenantkit-webhooks' worker and retention.
    "tenantkit_webhooks_due_tenants(timestamp with time zone,bigint,text)",
    "tenantkit_webhooks_expired_tenants(timestamp with time zone,bigint,text)",
    "tenantkit_webhooks_expired_key_tenants(timestamp with time zone,bigint,text)",
    // tenantkit-analytics' writer and retention.
    "tenantkit_analytics_ensure_partitions(date,integer)",
    "tenantkit_analytics_drop_partitions_before(date)",
];

/// PBKDF2 rounds of the verifiers [`Db::setup_runtime_role`] sends
/// (PostgreSQL's own default, `scram_iterations`).
pub const SCRAM_ITERATIONS: u32 = 4096;

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802,
/// RFC 7677): `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`,
/// base64. `ALTER ROLE ... PASSWORD '<verifier>'` sets the password without
/// the password itself ever reaching the server or its logs.
///
/// ```
/// let v = tenantkit::store::scram_sha256_verifier("pencil", b"0123456789abcdef", 4096);
/// assert_eq!(
///     v,
///     "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$\
///      nQpbZ77WudtqufPwikHXGRt6g2QJ4zns8bZLw273DRM=:jn2amWP1q1h+jgjy0YTO14S6/F02SV7taipOeB7ef20="
/// );
/// ```
pub fn scram_sha256_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    // As PostgreSQL does: SASLprep, or the bytes as they are when that fails.
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_owned());
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut salted);
    let keyed = |message: &[u8]| {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&salted).expect("HMAC takes a key of any length");
        mac.update(message);
        mac.finalize().into_bytes()
    };
    let stored_key = Sha256::digest(keyed(b"Client Key"));
    let server_key = keyed(b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
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
        self.apply_migrations(core_migrations()).await
    }

    /// Applies another crate's [`Migrations`] (in their own history table).
    /// Connect as the owner on PostgreSQL, then call
    /// [`Db::setup_runtime_role`] again.
    pub async fn apply_migrations(&self, migrations: &Migrations) -> Result<()> {
        match &self.pool {
            #[cfg(feature = "postgres")]
            Pool::Pg(pool) => migrations
                .postgres
                .run(pool)
                .await
                .map_err(crate::Error::from_migrate)?,
            #[cfg(feature = "sqlite")]
            Pool::Sqlite(pool) => migrations
                .sqlite
                .run(pool)
                .await
                .map_err(crate::Error::from_migrate)?,
        }
        Ok(())
    }

    /// PostgreSQL: writes a setting that only the owner can change
    /// (`tenantkit_settings`), read by the `SECURITY DEFINER` functions
    /// that hold the runtime role to what configuration keeps (such as
    /// `analytics.retention_days`). Connect as the owner; `migrate` calls it
    /// with the configured values. A no-op on SQLite, which has no roles.
    pub async fn set_owner_setting(&self, name: &str, value: &str) -> Result<()> {
        if self.backend() == Backend::Postgres {
            Pooled::acquire(&self.pool)
                .await?
                .conn()
                .execute(sql::SET_OWNER_SETTING, vec![name.into(), value.into()])
                .await?;
        }
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
            let mut tx = pool.begin().await.map_err(crate::Error::from_sqlx)?;
            sqlx::query(AssertSqlSafe(format!(
                "DO $$ BEGIN CREATE ROLE {name} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
            )))
            .execute(&mut *tx)
            .await.map_err(crate::Error::from_sqlx)?;
            if let Some(password) = &role.password {
                // The verifier, never the password, goes into the statement
                // text (which statement logs and pg_stat_activity show).
                let mut salt = [0u8; 16];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
                let verifier = scram_sha256_verifier(password, &salt, SCRAM_ITERATIONS);
                sqlx::query(AssertSqlSafe(format!(
                    "ALTER ROLE {name} PASSWORD '{verifier}'" // base64 and `$:`: no quote
                )))
                .execute(&mut *tx)
                .await
                .map_err(crate::Error::from_sqlx)?;
            }
            for statement in [
                format!("GRANT USAGE ON SCHEMA public TO {name}"),
                format!(
                    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}"
                ),
                format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}"),
                // Functions: none by default (PostgreSQL grants EXECUTE to
                // PUBLIC), then each one the runtime calls, by name.
                format!("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA public FROM PUBLIC, {name}"),
                format!(
                    "DO $$ DECLARE f text; p regprocedure; BEGIN FOREACH f IN ARRAY ARRAY['{}'] LOOP \
                     p := to_regprocedure('public.' || f); \
                     IF p IS NOT NULL THEN EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO {name}', p); END IF; \
                     END LOOP; END $$",
                    RUNTIME_FUNCTIONS.join("','")
                ),
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
                // What configuration keeps is the owner's to say.
                format!("REVOKE ALL ON TABLE tenantkit_settings FROM {name}"),
                // Deletions: started, counted and finished only through
                // tenantkit_start/finish_tenant_deletion and _progress.
                // Tombstones too: read one by id or the unfinished ones through
                // tenantkit_tenant_deletion / _unfinished_tenant_deletions.
                format!("REVOKE ALL ON TABLE tenant_deletions FROM {name}"),
            ] {
                sqlx::query(AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await
                    .map_err(crate::Error::from_sqlx)?;
            }
            tx.commit().await.map_err(crate::Error::from_sqlx)?;
            // The role must be safe even if it existed before with other attributes.
            let runtime = Db::on_pool(super::driver::Pool::Pg(pool.clone()));
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
        if self.backend() == Backend::Postgres {
            // One connection at a time: a pool of one must do.
            let (user,): (String,) = Pooled::acquire(&self.pool)
                .await?
                .conn()
                .fetch_one(sql::CURRENT_ROLE, Vec::new())
                .await?;
            self.check_role_attributes(&user).await?;
            let owned: Vec<(String,)> = Pooled::acquire(&self.pool)
                .await?
                .conn()
                .fetch_all(sql::OWNED_TABLES, Vec::new())
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

    /// Refuses `role` if it is a superuser or bypasses row-level security
    /// (PostgreSQL only).
    async fn check_role_attributes(&self, role: &str) -> Result<()> {
        let row: Option<(bool, bool)> = Pooled::acquire(&self.pool)
            .await?
            .conn()
            .fetch_optional(sql::ROLE_ATTRIBUTES, vec![role.into()])
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
