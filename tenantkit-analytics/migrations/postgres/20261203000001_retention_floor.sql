-- The retention floor, inside the database: partitions go only when they
-- are older than `analytics.retention_days` (tenantkit_settings, written by
-- `migrate` from configuration), whatever date the caller passes; with no
-- floor written, nothing goes. Partitions are made only around today (the
-- accepted window of event timestamps: 35 days back, a few days ahead).
--
-- The functions of 20261127300001 keep their bodies under new names, for
-- the owner alone; the names the runtime role calls become these checks.
ALTER FUNCTION tenantkit_analytics_drop_partitions_before(date)
    RENAME TO tenantkit_analytics_drop_partitions_unchecked;
ALTER FUNCTION tenantkit_analytics_ensure_partitions(date, integer)
    RENAME TO tenantkit_analytics_make_partitions_unchecked;

CREATE FUNCTION tenantkit_analytics_drop_partitions_before(p_before date)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    keep  integer;
    today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    SELECT value::integer INTO keep FROM public.tenantkit_settings WHERE name = 'analytics.retention_days';
    IF keep IS NULL OR keep < 1 THEN
        RAISE EXCEPTION 'tenantkit_analytics_drop_partitions_before: no retention floor is set (run migrate)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_before IS NULL OR p_before > today - keep THEN
        RAISE EXCEPTION 'tenantkit_analytics_drop_partitions_before: analytics keeps % days; only days before % may go',
            keep, today - keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN public.tenantkit_analytics_drop_partitions_unchecked(p_before);
END $$;

CREATE FUNCTION tenantkit_analytics_ensure_partitions(p_from date, p_days integer)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    IF p_from < today - 36 OR p_from + p_days > today + 8 THEN
        RAISE EXCEPTION 'tenantkit_analytics_ensure_partitions: only days from % to %',
            today - 36, today + 7
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN public.tenantkit_analytics_make_partitions_unchecked(p_from, p_days);
END $$;

REVOKE EXECUTE ON FUNCTION tenantkit_analytics_ensure_partitions(date, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_analytics_drop_partitions_before(date) FROM PUBLIC;
