-- tenantkit core schema (PostgreSQL).
--
-- Invariants (checked by tests that read the catalog):
-- * every tenant-owned table has `tenant_id`; its primary key and every foreign
--   key lead with `tenant_id` (ready for Citus distribution on tenant_id);
-- * every tenant-owned table has ENABLE and FORCE ROW LEVEL SECURITY and a
--   policy USING and WITH CHECK `tenant_id = tenantkit_current_tenant()`.

-- The tenant of the current transaction, set with
-- set_config('tenantkit.tenant_id', <uuid>, true). NULL when none is set, so
-- policies then match no row and reject every write.
CREATE FUNCTION tenantkit_current_tenant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT NULLIF(current_setting('tenantkit.tenant_id', true), '')::uuid $$;

-- Platform table: not tenant-owned, read by tenant resolution before any tenant is known.
CREATE TABLE tenants (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    subdomain   text        NOT NULL UNIQUE CHECK (subdomain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    status      text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          uuid        NOT NULL,
    email       text        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    role        text        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);

CREATE TABLE api_keys (
    tenant_id    uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id           uuid        NOT NULL,
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    prefix       text        NOT NULL,
    hash         text        NOT NULL,
    scopes       jsonb       NOT NULL DEFAULT '[]',
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, prefix)
);

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users
    USING (tenant_id = tenantkit_current_tenant())
    WITH CHECK (tenant_id = tenantkit_current_tenant());

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant_id = tenantkit_current_tenant())
    WITH CHECK (tenant_id = tenantkit_current_tenant());
