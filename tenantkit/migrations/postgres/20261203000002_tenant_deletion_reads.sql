-- Tombstones (the names and subdomains of every deleted tenant) are not the
-- runtime role's to read in full: it gets one deletion by id, and the
-- unfinished ones (which the resumer continues), through these functions
-- only. `setup_runtime_role` revokes its SELECT on the table.
CREATE FUNCTION tenantkit_tenant_deletion(p_tenant uuid)
    RETURNS SETOF tenant_deletions
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT * FROM public.tenant_deletions d WHERE d.tenant_id = p_tenant
$$;

CREATE FUNCTION tenantkit_unfinished_tenant_deletions()
    RETURNS SETOF tenant_deletions
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT * FROM public.tenant_deletions d WHERE d.finished_at IS NULL ORDER BY d.started_at
$$;

REVOKE EXECUTE ON FUNCTION tenantkit_tenant_deletion(uuid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_unfinished_tenant_deletions() FROM PUBLIC;
