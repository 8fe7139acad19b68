-- Least privilege on platform tables. The runtime role may read `tenants`
-- (resolution) and insert into it (new tenants), but changes a tenant's
-- status, and reads or writes `tenant_external_ids`, only through these
-- functions, each doing one narrow thing. `setup_runtime_role` revokes the
-- direct grants (UPDATE/DELETE on `tenants`, everything on
-- `tenant_external_ids`).

-- The tenant one external id belongs to (NULL when unlinked).
CREATE FUNCTION tenantkit_resolve_external_id(p_provider text, p_external_id text)
    RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT tenant_id FROM tenant_external_ids
     WHERE provider = p_provider AND external_id = p_external_id
$$;

-- Links an external id to a tenant unless it is linked already; never
-- re-homes one. Returns the tenant it belongs to afterwards, which is another
-- tenant when it was linked before.
CREATE FUNCTION tenantkit_link_external_id(p_provider text, p_external_id text, p_tenant uuid)
    RETURNS uuid
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    owner uuid;
BEGIN
    INSERT INTO tenant_external_ids (provider, external_id, tenant_id, created_at)
        VALUES (p_provider, p_external_id, p_tenant, now())
        ON CONFLICT (provider, external_id) DO NOTHING;
    SELECT tenant_id INTO owner FROM tenant_external_ids
     WHERE provider = p_provider AND external_id = p_external_id;
    RETURN owner;
END $$;

-- The current tenant's ids at one provider, oldest first: a tenant's own
-- mapping only, never the whole table.
CREATE FUNCTION tenantkit_linked_external_ids(p_tenant uuid, p_provider text)
    RETURNS TABLE (external_id text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF p_tenant IS NULL OR p_tenant IS DISTINCT FROM tenantkit_current_tenant() THEN
        RAISE EXCEPTION 'tenantkit_linked_external_ids: tenant must be the current tenant'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY SELECT e.external_id FROM tenant_external_ids e
        WHERE e.tenant_id = p_tenant AND e.provider = p_provider
        ORDER BY e.created_at, e.external_id;
END $$;

-- Sets one tenant's status; returns its status before and the row after
-- (no row when there is no such tenant).
CREATE FUNCTION tenantkit_set_tenant_status(p_tenant uuid, p_status text)
    RETURNS TABLE (before_status text, id uuid, name text, subdomain text, status text, created_at timestamptz)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    old text;
BEGIN
    SELECT t.status INTO old FROM tenants t WHERE t.id = p_tenant FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY UPDATE tenants t SET status = p_status WHERE t.id = p_tenant
        RETURNING old, t.id, t.name, t.subdomain, t.status, t.created_at;
END $$;

REVOKE EXECUTE ON FUNCTION tenantkit_resolve_external_id(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_link_external_id(text, text, uuid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_linked_external_ids(uuid, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_set_tenant_status(uuid, text) FROM PUBLIC;
