-- tenantkit-analytics: raw events, partitioned by day (range on occurred_at)
-- and, within a day, by tenant (hash on tenant_id, 4 ways). Every key leads
-- with tenant_id; every partition, at every level, has row-level security
-- enabled and forced with the tenant policy (tenantkit_isolate), because a
-- policy on the parent does not protect a partition queried directly.
-- Events are operational records (written through
-- TenantTx::write_operational), not audited one by one.

CREATE TABLE events (
    tenant_id   uuid        NOT NULL,
    occurred_at timestamptz NOT NULL,
    id          uuid        NOT NULL,
    event_type  text        NOT NULL CHECK (char_length(event_type) BETWEEN 1 AND 64),
    user_id     text        CHECK (char_length(user_id) BETWEEN 1 AND 128),
    name        text        CHECK (char_length(name) BETWEEN 1 AND 200),
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    received_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, occurred_at, id)
) PARTITION BY RANGE (occurred_at);
SELECT tenantkit_isolate('events');
COMMENT ON TABLE events IS 'tenantkit:operational';

-- Creates the day partitions (each with its 4 tenant-hash partitions) of
-- p_days days from p_from that do not exist yet; returns how many days it
-- made. The runtime role cannot create tables: it calls this (the writer
-- does, ahead of time), which runs as the owner and does nothing else.
CREATE FUNCTION tenantkit_analytics_ensure_partitions(p_from date, p_days integer)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    day  date;
    part text;
    made integer := 0;
BEGIN
    IF p_from IS NULL OR p_days IS NULL OR p_days < 1 OR p_days > 100 THEN
        RAISE EXCEPTION 'tenantkit_analytics_ensure_partitions: 1 to 100 days from a date'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One creator at a time, across processes.
    PERFORM pg_advisory_xact_lock(hashtext('tenantkit_analytics_partitions'));
    FOR i IN 0 .. p_days - 1 LOOP
        day := p_from + i;
        part := format('events_%s', to_char(day, 'YYYYMMDD'));
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;
        EXECUTE format(
            'CREATE TABLE public.%I PARTITION OF public.events FOR VALUES FROM (%L) TO (%L) PARTITION BY HASH (tenant_id)',
            part, (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
        PERFORM tenantkit_isolate(format('public.%I', part)::regclass);
        EXECUTE format('COMMENT ON TABLE public.%I IS %L', part, 'tenantkit:operational');
        FOR h IN 0 .. 3 LOOP
            EXECUTE format('CREATE TABLE public.%I PARTITION OF public.%I FOR VALUES WITH (MODULUS 4, REMAINDER %s)',
                part || '_h' || h, part, h);
            PERFORM tenantkit_isolate(format('public.%I', part || '_h' || h)::regclass);
            EXECUTE format('COMMENT ON TABLE public.%I IS %L', part || '_h' || h, 'tenantkit:operational');
        END LOOP;
        made := made + 1;
    END LOOP;
    RETURN made;
END $$;

-- Retention: drops whole day partitions that end before p_before (at least
-- one day ago); returns how many days went.
CREATE FUNCTION tenantkit_analytics_drop_partitions_before(p_before date)
    RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    part    record;
    dropped integer := 0;
BEGIN
    IF p_before IS NULL OR p_before > current_date - 1 THEN
        RAISE EXCEPTION 'tenantkit_analytics_drop_partitions_before: only days before yesterday'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tenantkit_analytics_partitions'));
    FOR part IN
        SELECT c.relname::text AS name FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'public.events'::regclass
           AND c.relname ~ '^events_[0-9]{8}$'
           AND to_date(substr(c.relname, 8), 'YYYYMMDD') < p_before
    LOOP
        EXECUTE format('DROP TABLE public.%I', part.name);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;

REVOKE EXECUTE ON FUNCTION tenantkit_analytics_ensure_partitions(date, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION tenantkit_analytics_drop_partitions_before(date) FROM PUBLIC;

-- The accepted window: 35 days back, a week ahead.
SELECT tenantkit_analytics_ensure_partitions(current_date - 35, 43);
