-- Hard deletion of a tenant: the platform's record of each deletion, kept
-- after the tenant is gone (its tombstone). Same shape as PostgreSQL; one
-- process writes at a time, so the steps PostgreSQL guards with functions
-- run as plain statements in tenantkit's store.

CREATE TABLE tenant_deletions (
    tenant_id     BLOB    NOT NULL PRIMARY KEY CHECK (length(tenant_id) = 16),
    subdomain     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    actor_type    TEXT    NOT NULL,
    actor_id      TEXT,
    started_at    TEXT    NOT NULL,
    export_sha256 TEXT    CHECK (export_sha256 IS NULL OR (length(export_sha256) = 64 AND export_sha256 NOT GLOB '*[^0-9a-f]*')),
    rows_removed  TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(rows_removed)),
    last_error    TEXT,
    finished_at   TEXT
) STRICT, WITHOUT ROWID;
