-- Hard deletion of a tenant (GDPR Art. 17): a platform record of each
-- deletion, kept after the tenant is gone (its tombstone), and the narrow
-- functions the runtime role deletes through. The runtime role may read and
-- start deletions; it changes one only through these functions.

CREATE TABLE tenant_deletions (
    tenant_id     uuid        PRIMARY KEY,
    subdomain     text        NOT NULL,
    name          text        NOT NULL,
    actor_type    text        NOT NULL,
    actor_id      text,
    started_at    timestamptz NOT NULL,
    export_sha256 text        CHECK (export_sha256 ~ '^[0-9a-f]{64}$'),
    -- Rows removed so far, by table; each batch adds to it in its own
    -- transaction, so the counts stay exact across a crash.
    rows_removed  jsonb       NOT NULL DEFAULT '{}',
    -- Why the last run stopped, until a later one makes progress.
    last_error    text,
    finished_at   timestamptz
);
COMMENT ON TABLE tenant_deletions IS 'tenantkit:platform';

-- Starts the deletion of a suspended tenant, or returns the one started
-- before (keeping its first export hash, or taking this one if it had none).
-- Locks the tenant's row, so a reactivation cannot slip in between.
CREATE FUNCTION tenantkit_start_tenant_deletion(
    p_tenant uuid, p_actor_type text, p_actor_id text, p_export_sha256 text)
    RETURNS SETOF tenant_deletions
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM 1 FROM tenants t WHERE t.id = p_tenant AND t.status = 'suspended' FOR UPDATE;
    IF FOUND THEN
        INSERT INTO tenant_deletions (tenant_id, subdomain, name, actor_type, actor_id, started_at, export_sha256)
            SELECT t.id, t.subdomain, t.name, p_actor_type, p_actor_id, now(), p_export_sha256
              FROM tenants t WHERE t.id = p_tenant
            ON CONFLICT (tenant_id) DO UPDATE
               SET export_sha256 = COALESCE(tenant_deletions.export_sha256, EXCLUDED.export_sha256)
             WHERE tenant_deletions.finished_at IS NULL;
    END IF;
    RETURN QUERY SELECT * FROM tenant_deletions d WHERE d.tenant_id = p_tenant;
END $$;

-- Adds one batch's count to an unfinished deletion's tally.
CREATE FUNCTION tenantkit_tenant_deletion_progress(p_tenant uuid, p_table text, p_removed bigint)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE tenant_deletions d
       SET rows_removed = jsonb_set(d.rows_removed, ARRAY[p_table],
                                    to_jsonb(COALESCE((d.rows_removed ->> p_table)::bigint, 0) + p_removed)),
           last_error = NULL
     WHERE d.tenant_id = p_tenant AND d.finished_at IS NULL
$$;

-- Records why a run of an unfinished deletion stopped (at most 1,000 characters).
CREATE FUNCTION tenantkit_tenant_deletion_failed(p_tenant uuid, p_error text)
    RETURNS void
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    UPDATE tenant_deletions d SET last_error = left(p_error, 1000)
     WHERE d.tenant_id = p_tenant AND d.finished_at IS NULL
$$;

-- Refuses (for `p_caller`) a tenant other than the current one, or one
-- whose deletion is not under way.
CREATE FUNCTION tenantkit_require_deletion(p_tenant uuid, p_caller text)
    RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, public AS $$
BEGIN
    IF p_tenant IS NULL OR p_tenant IS DISTINCT FROM tenantkit_current_tenant() THEN
        RAISE EXCEPTION '%: tenant must be the current tenant', p_caller
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tenant_deletions d WHERE d.tenant_id = p_tenant AND d.finished_at IS NULL) THEN
        RAISE EXCEPTION '%: the tenant is not being deleted', p_caller
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;

-- The audit trail's second and last exception to append-only (the first is
-- tenantkit_audit_purge): up to `p_limit` rows of the current tenant's
-- audit_logs, or its audit_heads row, removed only while that tenant's
-- deletion is under way. Returns how many rows went.
CREATE FUNCTION tenantkit_erase_tenant_audit(p_tenant uuid, p_table text, p_limit integer)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM tenantkit_require_deletion(p_tenant, 'tenantkit_erase_tenant_audit');
    IF p_table = 'audit_logs' THEN
        PERFORM set_config('tenantkit.audit_purge', 'on', true);
        DELETE FROM audit_logs a WHERE a.tenant_id = p_tenant AND a.seq IN (
            SELECT l.seq FROM audit_logs l WHERE l.tenant_id = p_tenant ORDER BY l.seq DESC LIMIT p_limit);
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM set_config('tenantkit.audit_purge', 'off', true);
    ELSIF p_table = 'audit_heads' THEN
        DELETE FROM audit_heads h WHERE h.tenant_id = p_tenant;
        GET DIAGNOSTICS n = ROW_COUNT;
    ELSE
        RAISE EXCEPTION 'tenantkit_erase_tenant_audit: % is not an audit table', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN n;
END $$;

-- Holds a tenant (FOR KEY SHARE, as a foreign key check does) until the
-- transaction ends; false when it is gone. Writers to tables without a
-- foreign key to `tenants` (batched analytics) call it, so a deletion's
-- last step waits for them and no row outlives its tenant.
CREATE FUNCTION tenantkit_hold_tenant(p_tenant uuid)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM 1 FROM tenants t WHERE t.id = p_tenant FOR KEY SHARE;
    RETURN FOUND;
END $$;

-- A deletion's last transaction starts here: the tenant's row locked, so
-- every writer still holding it has committed and no new one starts. False
-- when the tenant is gone or not being deleted.
CREATE FUNCTION tenantkit_lock_deleted_tenant(p_tenant uuid)
    RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tenant_deletions d WHERE d.tenant_id = p_tenant AND d.finished_at IS NULL) THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM tenants t WHERE t.id = p_tenant FOR UPDATE;
    RETURN FOUND;
END $$;

-- ...and ends here, once every tenant-owned row is gone: the platform's rows
-- of the tenant removed (a foreign key still pointing at it fails this), the
-- tombstone finished and returned.
CREATE FUNCTION tenantkit_finish_tenant_deletion(p_tenant uuid)
    RETURNS SETOF tenant_deletions
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    ids bigint;
BEGIN
    PERFORM tenantkit_require_deletion(p_tenant, 'tenantkit_finish_tenant_deletion');
    DELETE FROM tenant_external_ids e WHERE e.tenant_id = p_tenant;
    GET DIAGNOSTICS ids = ROW_COUNT;
    DELETE FROM tenants t WHERE t.id = p_tenant;
    RETURN QUERY UPDATE tenant_deletions d
       SET finished_at = now(), last_error = NULL,
           rows_removed = d.rows_removed || jsonb_build_object('tenant_external_ids', ids, 'tenants', 1)
     WHERE d.tenant_id = p_tenant
    RETURNING d.*;
END $$;

REVOKE EXECUTE ON FUNCTION tenantkit_start_tenant_deletion(uuid, text, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_tenant_deletion_progress(uuid, text, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_tenant_deletion_failed(uuid, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_erase_tenant_audit(uuid, text, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_hold_tenant(uuid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_lock_deleted_tenant(uuid) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_finish_tenant_deletion(uuid) FROM PUBLIC;
