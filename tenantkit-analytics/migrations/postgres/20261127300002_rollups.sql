-- tenantkit-analytics: rollups, updated in the same transaction that inserts
-- the events they count, so every query reads these and never raw events.
-- All are operational records (written unaudited through TenantTx), every
-- key leads with tenant_id, every table is isolated.

-- Events per tenant, UTC hour, type and name ('' when the event has none).
CREATE TABLE event_counts (
    tenant_id  uuid        NOT NULL,
    event_type text        NOT NULL,
    hour       timestamptz NOT NULL CHECK (hour = date_trunc('hour', hour, 'UTC')),
    name       text        NOT NULL DEFAULT '',
    count      bigint      NOT NULL CHECK (count > 0),
    PRIMARY KEY (tenant_id, event_type, hour, name)
);
CREATE INDEX event_counts_by_hour ON event_counts (tenant_id, hour);
SELECT tenantkit_isolate('event_counts');
COMMENT ON TABLE event_counts IS 'tenantkit:operational';

-- The set of distinct users per tenant and UTC day.
CREATE TABLE event_daily_users (
    tenant_id uuid NOT NULL,
    day       date NOT NULL,
    user_id   text NOT NULL,
    PRIMARY KEY (tenant_id, day, user_id)
);
SELECT tenantkit_isolate('event_daily_users');
COMMENT ON TABLE event_daily_users IS 'tenantkit:operational';

-- Its size per day (DAU), kept beside it so a time series reads one row a day.
CREATE TABLE event_daily_active (
    tenant_id uuid   NOT NULL,
    day       date   NOT NULL,
    users     bigint NOT NULL CHECK (users > 0),
    PRIMARY KEY (tenant_id, day)
);
SELECT tenantkit_isolate('event_daily_active');
COMMENT ON TABLE event_daily_active IS 'tenantkit:operational';

-- Each user's active days as a 64-bit map per block of 64 days. Blocks start
-- every 32 days (days since 1970-01-01 divisible by 32), so each day is in two
-- blocks and any 30-day window lies inside one: rolling MAU is one index
-- range of at most one row per user, counted without DISTINCT.
CREATE TABLE event_user_blocks (
    tenant_id uuid   NOT NULL,
    block     date   NOT NULL,
    user_id   text   NOT NULL,
    days      bigint NOT NULL CHECK (days <> 0),
    PRIMARY KEY (tenant_id, block, user_id)
);
SELECT tenantkit_isolate('event_user_blocks');
COMMENT ON TABLE event_user_blocks IS 'tenantkit:operational';

-- Events per tenant, UTC hour and type (the sum of event_counts over names),
-- so totals and per-type series read one row per hour and type.
CREATE TABLE event_type_counts (
    tenant_id  uuid        NOT NULL,
    event_type text        NOT NULL,
    hour       timestamptz NOT NULL,
    count      bigint      NOT NULL CHECK (count > 0),
    PRIMARY KEY (tenant_id, hour, event_type)
);
SELECT tenantkit_isolate('event_type_counts');
COMMENT ON TABLE event_type_counts IS 'tenantkit:operational';
