-- tenantkit on Citus: every tenant-owned table distributed by tenant_id and
-- co-located with `users` (so a tenant's rows of every table live on one
-- node and every transaction of a request stays on it), the platform
-- tables as reference tables (a copy on every node).
--
-- Run as the owner on the coordinator of a NEW database, right after
-- `tenantkit-server migrate` and before any traffic (to move an existing
-- database, restore a dump into a cluster prepared this way). Read
-- docs/scaling.md first: the runtime role's tenant setting must reach the
-- workers.
--
-- `cargo test -p tenantkit-e2e --test e2e citus` reads the catalog of a
-- migrated database and fails if a tenant-owned table is missing here, if a
-- table here is not tenant-owned, or if a unique constraint or foreign key
-- of one lacks tenant_id. This file is the one copy of the layout.

CREATE EXTENSION IF NOT EXISTS citus;

-- Platform tables: read before a tenant is known, small, on every node.
SELECT create_reference_table('tenants');
SELECT create_reference_table('tenant_external_ids');
SELECT create_reference_table('tenant_deletions');
SELECT create_reference_table('tenantkit_settings');

-- Citus distributes one level of partitioning. On one PostgreSQL, each day
-- of `events` is hash-split four ways by tenant; on Citus the shards split by
-- tenant already, so the days are made without that split. The function
-- keeps its name, arguments and guarantees (the runtime role calls it as
-- before); the empty split days made by `migrate` are replaced.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM events) THEN
        RAISE EXCEPTION 'events is not empty: prepare a new database, then restore into it';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION tenantkit_analytics_ensure_partitions(p_from date, p_days integer)
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
    PERFORM pg_advisory_xact_lock(hashtext('tenantkit_analytics_partitions'));
    FOR i IN 0 .. p_days - 1 LOOP
        day := p_from + i;
        part := format('events_%s', to_char(day, 'YYYYMMDD'));
        CONTINUE WHEN to_regclass('public.' || part) IS NOT NULL;
        EXECUTE format(
            'CREATE TABLE public.%I PARTITION OF public.events FOR VALUES FROM (%L) TO (%L)',
            part, (day::timestamp AT TIME ZONE 'UTC'), ((day + 1)::timestamp AT TIME ZONE 'UTC'));
        PERFORM tenantkit_isolate(format('public.%I', part)::regclass);
        EXECUTE format('COMMENT ON TABLE public.%I IS %L', part, 'tenantkit:operational');
        made := made + 1;
    END LOOP;
    RETURN made;
END $$;
REVOKE EXECUTE ON FUNCTION tenantkit_analytics_ensure_partitions(date, integer) FROM PUBLIC;

DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname::text AS name FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'public.events'::regclass
    LOOP
        EXECUTE format('DROP TABLE public.%I', part.name);
    END LOOP;
END $$;
SELECT tenantkit_analytics_ensure_partitions(current_date - 35, 43);

-- Tenant-owned tables, parents before the tables whose foreign keys name
-- them; every one co-located with `users`.
SELECT create_distributed_table('users', 'tenant_id');
SELECT create_distributed_table('api_keys', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('audit_logs', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('audit_heads', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('tenant_sso', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('subscriptions', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('stripe_events', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('webhooks', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('webhook_messages', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('webhook_queue', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('webhook_deliveries', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('webhook_health', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('webhook_rate_windows', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('webhook_idempotency', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('events', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('event_counts', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('event_type_counts', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('event_daily_users', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('event_daily_active', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('event_user_blocks', 'tenant_id', colocate_with => 'users');
SELECT create_distributed_table('event_live_totals', 'tenant_id', colocate_with => 'users');
