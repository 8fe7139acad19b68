//! Every SQL statement of the core, by name, in one place: one text for both
//! backends, a PostgreSQL/SQLite pair where the dialects differ, or one
//! backend's statement where its algorithm differs (on PostgreSQL the
//! runtime role reaches platform tables only through narrow `SECURITY
//! DEFINER` functions; SQLite, one writer at a time, writes them directly).
//! The workspace's statement test prepares each on the backends that run it.
//!
//! The only SQL built at run time is built from catalog names, never from
//! input: a tenant table's export and erase statements (`catalog`, `erase`)
//! and the runtime role's grants (`migrate`).

use super::Sql;

/// The columns of a `tenants` row, in `Tenant`'s order.
macro_rules! tenant_columns {
    () => {
        "id, name, subdomain, status, created_at"
    };
}

/// The columns of a `users` row, in `User`'s order.
macro_rules! user_columns {
    () => {
        "tenant_id, id, email, role, created_at"
    };
}

/// The columns of a `tenant_sso` row.
macro_rules! sso_columns {
    () => {
        "tenant_id, issuer, audience, client_id, jwks_uri, email_claim, role_claim, \
         email_domain, provision_role, created_at, updated_at"
    };
}

/// The columns of an `api_keys` row, in `ApiKey`'s order.
macro_rules! api_key_columns {
    () => {
        "tenant_id, id, name, prefix, hash, scopes, created_at, last_used_at, revoked_at"
    };
}

/// The columns of an `audit_logs` row, in `AuditEntry`'s order.
macro_rules! audit_columns {
    () => {
        "tenant_id, seq, id, actor_type, actor_id, action, resource_type, resource_id, before, \
         after, request_id, client_ip, user_agent, occurred_at, prev_hash, hash"
    };
}

/// The columns of a deletion record.
macro_rules! deletion_columns {
    () => {
        "tenant_id, subdomain, name, actor_type, actor_id, started_at, export_sha256, \
         rows_removed, last_error, finished_at"
    };
}

crate::statements! {
    // Health.
    /// Whether the database answers.
    pub const PING: Sql = Sql::both("SELECT 1");

    // Binding a transaction to its tenant (see `scope`).
    /// Tells PostgreSQL's row-level security the transaction's tenant.
    pub const BIND_TENANT: Sql =
        Sql::postgres_only("SELECT set_config('tenantkit.tenant_id', $1, true)");
    /// Binds the tenant and holds its row (`FOR KEY SHARE`) until the
    /// transaction ends; no row when the tenant is gone. SQLite's writers
    /// are serial: the row only has to exist.
    pub const HOLD_TENANT: Sql = Sql::pair(
        "SELECT 1::bigint WHERE tenantkit_hold_tenant($1::uuid) \
         AND set_config('tenantkit.tenant_id', $1::text, true) IS NOT NULL",
        "SELECT 1 FROM tenants WHERE id = $1",
    );
    /// Announces `$2` on channel `$1` (at commit, when inside a transaction).
    pub const NOTIFY: Sql = Sql::postgres_only("SELECT pg_notify($1, $2)");

    // Tenants (platform).
    /// A new tenant.
    pub const INSERT_TENANT: Sql = Sql::both(concat!(
        "INSERT INTO tenants (id, name, subdomain, status, created_at) VALUES ($1, $2, $3, $4, $5) \
         RETURNING ",
        tenant_columns!()
    ));
    /// A page of tenants in id order (`$1`: after this id, `$2`: how many).
    pub const LIST_TENANTS: Sql = Sql::both(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE (id > $1 OR $1 IS NULL) ORDER BY id LIMIT $2"
    ));
    /// A tenant by id.
    pub const TENANT_BY_ID: Sql = Sql::both(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE id = $1"
    ));
    /// A tenant by (lower-case) subdomain.
    pub const TENANT_BY_SUBDOMAIN: Sql = Sql::both(concat!(
        "SELECT ",
        tenant_columns!(),
        " FROM tenants WHERE subdomain = $1"
    ));
    /// A tenant's status set, with the status before (the row locked).
    pub const SET_TENANT_STATUS: Sql = Sql::postgres_only(concat!(
        "SELECT before_status, ",
        tenant_columns!(),
        " FROM tenantkit_set_tenant_status($1, $2)"
    ));
    /// SQLite's side of [`SET_TENANT_STATUS`], after reading the row.
    pub const UPDATE_TENANT_STATUS: Sql = Sql::sqlite_only(concat!(
        "UPDATE tenants SET status = $2 WHERE id = $1 RETURNING ",
        tenant_columns!()
    ));
    /// Links external id `$2` at provider `$1` to tenant `$3` unless it is
    /// linked already; the owner it has.
    pub const LINK_EXTERNAL_ID: Sql =
        Sql::postgres_only("SELECT tenantkit_link_external_id($1, $2, $3)");
    /// SQLite's side of [`LINK_EXTERNAL_ID`]; [`EXTERNAL_ID_OWNER`] then reads the owner.
    pub const INSERT_EXTERNAL_ID: Sql = Sql::sqlite_only(
        "INSERT INTO tenant_external_ids (provider, external_id, tenant_id, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (provider, external_id) DO NOTHING",
    );
    /// The tenant external id `$2` at provider `$1` belongs to.
    pub const EXTERNAL_ID_OWNER: Sql = Sql::pair(
        "SELECT tenantkit_resolve_external_id($1, $2)",
        "SELECT tenant_id FROM tenant_external_ids WHERE provider = $1 AND external_id = $2",
    );
    /// The tenant's ids at provider `$2`, oldest first.
    pub const LINKED_EXTERNAL_IDS: Sql = Sql::pair(
        "SELECT external_id FROM tenantkit_linked_external_ids($1, $2)",
        "SELECT external_id FROM tenant_external_ids WHERE tenant_id = $1 AND provider = $2 \
         ORDER BY created_at, external_id",
    );

    // A tenant's single sign-on.
    /// The tenant's identity provider.
    pub const GET_SSO: Sql = Sql::both(concat!(
        "SELECT ",
        sso_columns!(),
        " FROM tenant_sso WHERE tenant_id = $1"
    ));
    /// The tenant's identity provider registered (`$10`: now).
    pub const INSERT_SSO: Sql = Sql::both(concat!(
        "INSERT INTO tenant_sso (tenant_id, issuer, audience, client_id, jwks_uri, email_claim, \
         role_claim, email_domain, provision_role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING ",
        sso_columns!()
    ));
    /// The tenant's identity provider changed (`$10`: now).
    pub const UPDATE_SSO: Sql = Sql::both(concat!(
        "UPDATE tenant_sso SET issuer = $2, audience = $3, client_id = $4, jwks_uri = $5, \
         email_claim = $6, role_claim = $7, email_domain = $8, provision_role = $9, \
         updated_at = $10 WHERE tenant_id = $1 RETURNING ",
        sso_columns!()
    ));
    /// The tenant's identity provider removed.
    pub const DELETE_SSO: Sql = Sql::both("DELETE FROM tenant_sso WHERE tenant_id = $1");
    /// Releases the current tenant's link of single sign-on issuer `$1`
    /// (on SQLite, `$2` is the tenant).
    pub const RELEASE_SSO_ISSUER: Sql = Sql::pair(
        "SELECT tenantkit_release_sso_issuer($1)",
        "DELETE FROM tenant_external_ids WHERE provider = 'sso_issuer' AND external_id = $1 \
         AND tenant_id = $2",
    );

    // Users.
    /// A page of the tenant's users in id order.
    pub const LIST_USERS: Sql = Sql::both(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND (id > $2 OR $2 IS NULL) ORDER BY id LIMIT $3"
    ));
    /// One user.
    pub const GET_USER: Sql = Sql::both(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND id = $2"
    ));
    /// One user, by (lower-case) e-mail.
    pub const USER_BY_EMAIL: Sql = Sql::both(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND email = $2"
    ));
    /// A new user.
    pub const INSERT_USER: Sql = Sql::both(concat!(
        "INSERT INTO users (tenant_id, id, email, role, created_at) VALUES ($1, $2, $3, $4, $5) \
         RETURNING ",
        user_columns!()
    ));
    /// A user's e-mail and role.
    pub const UPDATE_USER: Sql = Sql::both(concat!(
        "UPDATE users SET email = $3, role = $4 WHERE tenant_id = $1 AND id = $2 RETURNING ",
        user_columns!()
    ));
    /// A user removed.
    pub const DELETE_USER: Sql = Sql::both("DELETE FROM users WHERE tenant_id = $1 AND id = $2");
    /// The tenant's oldest owner.
    pub const FIRST_OWNER: Sql = Sql::both(concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE tenant_id = $1 AND role = 'owner' ORDER BY created_at, id LIMIT 1"
    ));
    /// How many users the tenant has.
    pub const COUNT_USERS: Sql = Sql::both("SELECT COUNT(*) FROM users WHERE tenant_id = $1");
    /// How many owners the tenant has besides user `$2`.
    pub const COUNT_OTHER_OWNERS: Sql = Sql::both(
        "SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND role = 'owner' AND id <> $2",
    );
    /// A user's id and role, by id.
    pub const USER_ACCESS_BY_ID: Sql =
        Sql::both("SELECT id, role FROM users WHERE tenant_id = $1 AND id = $2");
    /// A user's id and role, by (lower-case) e-mail.
    pub const USER_ACCESS_BY_EMAIL: Sql =
        Sql::both("SELECT id, role FROM users WHERE tenant_id = $1 AND email = $2");

    // API keys.
    /// A new key (its hash; the secret is never stored).
    pub const INSERT_API_KEY: Sql = Sql::both(concat!(
        "INSERT INTO api_keys (tenant_id, id, name, prefix, hash, scopes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        api_key_columns!()
    ));
    /// A page of the tenant's keys in id order.
    pub const LIST_API_KEYS: Sql = Sql::both(concat!(
        "SELECT ",
        api_key_columns!(),
        " FROM api_keys WHERE tenant_id = $1 AND (id > $2 OR $2 IS NULL) ORDER BY id LIMIT $3"
    ));
    /// One key.
    pub const GET_API_KEY: Sql = Sql::both(concat!(
        "SELECT ",
        api_key_columns!(),
        " FROM api_keys WHERE tenant_id = $1 AND id = $2"
    ));
    /// The key with prefix `$2`.
    pub const API_KEY_BY_PREFIX: Sql = Sql::both(concat!(
        "SELECT ",
        api_key_columns!(),
        " FROM api_keys WHERE tenant_id = $1 AND prefix = $2"
    ));
    /// A key revoked at `$3`.
    pub const REVOKE_API_KEY: Sql = Sql::both(concat!(
        "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 RETURNING ",
        api_key_columns!()
    ));
    /// A key's last use.
    pub const RECORD_API_KEY_USE: Sql = Sql::both(concat!(
        "UPDATE api_keys SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2 RETURNING ",
        api_key_columns!()
    ));

    // The audit chain.
    /// Takes the tenant's write lock: the tenant row held, then its audit
    /// head locked (created on first use); no row when the tenant is gone.
    pub const LOCK_TENANT_WRITES: Sql = Sql::pair(
        // One statement: the tenant row is held before the head is locked.
        "INSERT INTO audit_heads (tenant_id) SELECT $1 WHERE tenantkit_hold_tenant($1::uuid) \
         ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_heads.seq RETURNING seq",
        // One writer at a time: the tenant row cannot change under it.
        "INSERT INTO audit_heads (tenant_id) SELECT $1 WHERE EXISTS (SELECT 1 FROM tenants WHERE id = $1) \
         ON CONFLICT (tenant_id) DO UPDATE SET seq = audit_heads.seq RETURNING seq",
    );
    /// The next position in the chain, and the hash it links to.
    pub const ADVANCE_AUDIT_HEAD: Sql = Sql::both(
        "UPDATE audit_heads SET seq = seq + 1 WHERE tenant_id = $1 RETURNING seq, hash",
    );
    /// An entry.
    pub const INSERT_AUDIT_ENTRY: Sql = Sql::both(concat!(
        "INSERT INTO audit_logs (",
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    ));
    /// The head's hash, after an entry.
    pub const SET_AUDIT_HEAD_HASH: Sql =
        Sql::both("UPDATE audit_heads SET hash = $2 WHERE tenant_id = $1");
    /// Entries matching the filter (`$2`–`$9`), newest first.
    pub const LIST_AUDIT_LOGS: Sql = Sql::both(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_logs WHERE tenant_id = $1 AND (actor_type = $2 OR $2 IS NULL) \
         AND (actor_id = $3 OR $3 IS NULL) AND (action = $4 OR $4 IS NULL) \
         AND (resource_type = $5 OR $5 IS NULL) AND (resource_id = $6 OR $6 IS NULL) \
         AND (occurred_at >= $7 OR $7 IS NULL) AND (occurred_at < $8 OR $8 IS NULL) \
         AND (seq < $9 OR $9 IS NULL) ORDER BY seq DESC LIMIT $10"
    ));
    /// Entries after `$2` in `[$3, $4)`, oldest first.
    pub const AUDIT_PAGE: Sql = Sql::both(concat!(
        "SELECT ",
        audit_columns!(),
        " FROM audit_logs WHERE tenant_id = $1 AND seq > $2 AND (occurred_at >= $3 OR $3 IS NULL) \
         AND (occurred_at < $4 OR $4 IS NULL) ORDER BY seq LIMIT $5"
    ));
    /// The chain's head and the anchor a purge left.
    pub const AUDIT_HEAD: Sql = Sql::both(
        "SELECT seq, hash, anchor_seq, anchor_hash FROM audit_heads WHERE tenant_id = $1",
    );
    /// Entries before `$2` purged, the anchor moved.
    pub const PURGE_AUDIT_LOGS: Sql =
        Sql::postgres_only("SELECT purged, through_seq FROM tenantkit_audit_purge($1, $2)");
    /// SQLite's purge: the last entry before `$2` …
    pub const LAST_AUDIT_ENTRY_BEFORE: Sql = Sql::sqlite_only(
        "SELECT seq, hash FROM audit_logs WHERE tenant_id = $1 AND occurred_at < $2 \
         ORDER BY seq DESC LIMIT 1",
    );
    /// … entries up to it removed …
    pub const DELETE_AUDIT_THROUGH: Sql =
        Sql::sqlite_only("DELETE FROM audit_logs WHERE tenant_id = $1 AND seq <= $2");
    /// … and the anchor moved to it.
    pub const SET_AUDIT_ANCHOR: Sql = Sql::sqlite_only(
        "UPDATE audit_heads SET anchor_seq = $2, anchor_hash = $3 WHERE tenant_id = $1",
    );
    /// The marker SQLite's `audit_logs_no_delete` trigger looks for, set …
    pub const ALLOW_AUDIT_DELETE: Sql =
        Sql::sqlite_only("INSERT INTO audit_purge_in_progress (tenant_id) VALUES ($1)");
    /// … and removed.
    pub const DISALLOW_AUDIT_DELETE: Sql =
        Sql::sqlite_only("DELETE FROM audit_purge_in_progress WHERE tenant_id = $1");

    // Tenant deletion.
    /// Starts (or joins) the deletion of a suspended tenant; its record.
    pub const START_TENANT_DELETION: Sql = Sql::postgres_only(concat!(
        "SELECT ",
        deletion_columns!(),
        " FROM tenantkit_start_tenant_deletion($1, $2, $3, $4)"
    ));
    /// SQLite's side of [`START_TENANT_DELETION`]; [`TENANT_DELETION`] reads it back.
    pub const INSERT_TENANT_DELETION: Sql = Sql::sqlite_only(
        "INSERT INTO tenant_deletions (tenant_id, subdomain, name, actor_type, actor_id, started_at, export_sha256) \
         SELECT t.id, t.subdomain, t.name, $2, $3, $5, $4 FROM tenants t \
         WHERE t.id = $1 AND t.status = 'suspended' \
         ON CONFLICT (tenant_id) DO UPDATE \
         SET export_sha256 = COALESCE(tenant_deletions.export_sha256, excluded.export_sha256) \
         WHERE tenant_deletions.finished_at IS NULL",
    );
    /// A tenant's deletion record (the runtime role cannot read the
    /// tombstones table on PostgreSQL).
    pub const TENANT_DELETION: Sql = Sql::pair(
        concat!("SELECT ", deletion_columns!(), " FROM tenantkit_tenant_deletion($1)"),
        concat!("SELECT ", deletion_columns!(), " FROM tenant_deletions WHERE tenant_id = $1"),
    );
    /// Whether a deletion of the tenant was started (its id, if so).
    pub const TENANT_BEING_DELETED: Sql = Sql::pair(
        "SELECT tenant_id FROM tenantkit_tenant_deletion($1)",
        "SELECT tenant_id FROM tenant_deletions WHERE tenant_id = $1",
    );
    /// Why the last run of an unfinished deletion stopped.
    pub const RECORD_DELETION_ERROR: Sql = Sql::pair(
        "SELECT tenantkit_tenant_deletion_failed($1, $2)",
        "UPDATE tenant_deletions SET last_error = $2 WHERE tenant_id = $1 AND finished_at IS NULL",
    );
    /// Deletions not finished, oldest first.
    pub const UNFINISHED_DELETIONS: Sql = Sql::pair(
        concat!("SELECT ", deletion_columns!(), " FROM tenantkit_unfinished_tenant_deletions()"),
        concat!(
            "SELECT ",
            deletion_columns!(),
            " FROM tenant_deletions WHERE finished_at IS NULL ORDER BY started_at"
        ),
    );
    /// Adds `$3` rows of table `$2` to the deletion's count.
    pub const DELETION_PROGRESS: Sql = Sql::pair(
        "SELECT tenantkit_tenant_deletion_progress($1, $2, $3)",
        "UPDATE tenant_deletions SET rows_removed = json_set(rows_removed, '$.' || $2, \
         COALESCE(json_extract(rows_removed, '$.' || $2), 0) + $3), last_error = NULL \
         WHERE tenant_id = $1 AND finished_at IS NULL",
    );
    /// Up to `$3` rows of audit table `$2` removed (the trail's deletion exception).
    pub const ERASE_TENANT_AUDIT: Sql =
        Sql::postgres_only("SELECT tenantkit_erase_tenant_audit($1, $2, $3::integer)");
    /// SQLite's side of [`ERASE_TENANT_AUDIT`] for the head …
    pub const DELETE_AUDIT_HEAD: Sql =
        Sql::sqlite_only("DELETE FROM audit_heads WHERE tenant_id = $1");
    /// … and for up to `$2` entries, newest first.
    pub const DELETE_AUDIT_BATCH: Sql = Sql::sqlite_only(
        "DELETE FROM audit_logs WHERE tenant_id = $1 AND seq IN \
         (SELECT seq FROM audit_logs WHERE tenant_id = $1 ORDER BY seq DESC LIMIT $2)",
    );
    /// Locks the tenant row for the last sweep; false when another run finished.
    pub const LOCK_DELETED_TENANT: Sql =
        Sql::postgres_only("SELECT tenantkit_lock_deleted_tenant($1)");
    /// SQLite's side of [`LOCK_DELETED_TENANT`]: whether the deletion is unfinished.
    pub const UNFINISHED_DELETION: Sql = Sql::sqlite_only(
        "SELECT tenant_id FROM tenant_deletions WHERE tenant_id = $1 AND finished_at IS NULL",
    );
    /// The tenant row and its external ids removed, the record finished.
    pub const FINISH_TENANT_DELETION: Sql = Sql::postgres_only(concat!(
        "SELECT ",
        deletion_columns!(),
        " FROM tenantkit_finish_tenant_deletion($1)"
    ));
    /// SQLite's side of [`FINISH_TENANT_DELETION`]: the external ids …
    pub const DELETE_EXTERNAL_IDS: Sql =
        Sql::sqlite_only("DELETE FROM tenant_external_ids WHERE tenant_id = $1");
    /// … the tenant row …
    pub const DELETE_TENANT: Sql = Sql::sqlite_only("DELETE FROM tenants WHERE id = $1");
    /// … and the record finished (`$3` external ids removed).
    pub const FINISH_DELETION_RECORD: Sql = Sql::sqlite_only(concat!(
        "UPDATE tenant_deletions SET finished_at = $2, last_error = NULL, \
         rows_removed = json_set(rows_removed, '$.tenant_external_ids', $3, '$.tenants', 1) \
         WHERE tenant_id = $1 RETURNING ",
        deletion_columns!()
    ));

    // The catalog: which tables a tenant owns.
    /// Every table with a `tenant_id` column (partitions as their parent;
    /// platform tables marked `tenantkit:platform` left out).
    pub const TENANT_TABLE_NAMES: Sql = Sql::pair(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') \
         AND NOT c.relispartition \
         AND obj_description(c.oid, 'pg_class') IS DISTINCT FROM 'tenantkit:platform' \
         ORDER BY 1",
        "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' \
         AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) p WHERE p.name = 'tenant_id') \
         ORDER BY 1",
    );
    /// Table `$1`'s columns in order.
    pub const TABLE_COLUMNS: Sql = Sql::pair(
        "SELECT attname::text FROM pg_attribute \
         WHERE attrelid = ('public.' || quote_ident($1))::regclass AND attnum > 0 AND NOT attisdropped \
         ORDER BY attnum",
        "SELECT name FROM pragma_table_info($1) ORDER BY cid",
    );
    /// Table `$1`'s primary key columns in order.
    pub const PRIMARY_KEY_COLUMNS: Sql = Sql::pair(
        "SELECT a.attname::text FROM pg_index i \
         CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
         WHERE i.indrelid = ('public.' || quote_ident($1))::regclass AND i.indisprimary \
         ORDER BY k.n",
        "SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk",
    );
    /// The tables table `$1` references.
    pub const REFERENCED_TABLES: Sql = Sql::pair(
        "SELECT DISTINCT p.relname::text FROM pg_constraint con \
         JOIN pg_class p ON p.oid = con.confrelid \
         WHERE con.conrelid = ('public.' || quote_ident($1))::regclass AND con.contype = 'f' \
         ORDER BY 1",
        "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1) ORDER BY 1",
    );
    /// Table `$1`'s columns marked secret.
    pub const SECRET_COLUMNS: Sql = Sql::pair(
        "SELECT attname::text FROM pg_attribute \
         WHERE attrelid = ('public.' || quote_ident($1))::regclass AND attnum > 0 AND NOT attisdropped \
         AND col_description(attrelid, attnum) = 'tenantkit:secret' \
         ORDER BY attnum",
        "SELECT p.name FROM pragma_table_info($1) p \
         JOIN tenantkit_secret_columns s ON s.table_name = $1 AND s.column_name = p.name \
         ORDER BY p.cid",
    );

    // Roles and settings (PostgreSQL; the owner runs the first).
    /// A setting only the owner can change.
    pub const SET_OWNER_SETTING: Sql = Sql::postgres_only(
        "INSERT INTO tenantkit_settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
    );
    /// The connection's role.
    pub const CURRENT_ROLE: Sql = Sql::postgres_only("SELECT current_user::text");
    /// The schema's tables the connection's role owns (or inherits).
    pub const OWNED_TABLES: Sql = Sql::postgres_only(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
         AND pg_has_role(current_user, c.relowner, 'USAGE') ORDER BY 1",
    );
    /// Whether role `$1` is a superuser or bypasses row-level security.
    pub const ROLE_ATTRIBUTES: Sql =
        Sql::postgres_only("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1");
}
