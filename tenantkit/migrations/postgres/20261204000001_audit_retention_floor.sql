-- The audit retention floor, inside the database: the runtime role purges
-- only entries older than `audit.retention_days` (tenantkit_settings,
-- written by `migrate` from configuration), whatever cutoff it passes; with
-- no floor written, nothing goes. Until now any cutoff a day old was taken.
ALTER FUNCTION tenantkit_audit_purge(uuid, timestamptz)
    RENAME TO tenantkit_audit_purge_unchecked;
REVOKE EXECUTE ON FUNCTION tenantkit_audit_purge_unchecked(uuid, timestamptz) FROM PUBLIC;

CREATE FUNCTION tenantkit_audit_purge(tenant uuid, cutoff timestamptz)
    RETURNS TABLE (purged bigint, through_seq bigint, through_hash text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    keep integer;
BEGIN
    SELECT value::integer INTO keep FROM public.tenantkit_settings WHERE name = 'audit.retention_days';
    IF keep IS NULL OR keep < 1 THEN
        RAISE EXCEPTION 'tenantkit_audit_purge: no audit retention floor is set (run migrate)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cutoff IS NULL OR cutoff > now() - make_interval(days => keep) THEN
        RAISE EXCEPTION 'tenantkit_audit_purge: the audit trail keeps % days; only entries before % may go',
            keep, now() - make_interval(days => keep)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY SELECT * FROM public.tenantkit_audit_purge_unchecked(tenant, cutoff);
END $$;
REVOKE EXECUTE ON FUNCTION tenantkit_audit_purge(uuid, timestamptz) FROM PUBLIC;
