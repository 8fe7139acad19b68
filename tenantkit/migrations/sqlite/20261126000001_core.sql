-- tenantkit core schema (SQLite). Same tables and keys as PostgreSQL; SQLite
-- has no row-level security, so isolation is enforced by TenantTx, which binds
-- the tenant id as $1 of every query.

CREATE TABLE tenants (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    subdomain   TEXT NOT NULL UNIQUE CHECK (
                    length(subdomain) BETWEEN 1 AND 63
                    AND subdomain NOT GLOB '*[^a-z0-9-]*'
                    AND subdomain NOT GLOB '-*'
                    AND subdomain NOT GLOB '*-'),
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          BLOB NOT NULL CHECK (length(id) = 16),
    email       TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
) STRICT, WITHOUT ROWID;

CREATE TABLE api_keys (
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           BLOB NOT NULL CHECK (length(id) = 16),
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    prefix       TEXT NOT NULL,
    hash         TEXT NOT NULL,
    scopes       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(scopes)),
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, prefix)
) STRICT, WITHOUT ROWID;
