//! Every SQL statement of tenantkit-analytics, by name, in one place: one
//! text for both backends, a PostgreSQL/SQLite pair where only the dialect
//! differs (date arithmetic in a rebuild), or one backend's statement where
//! the algorithm differs (a flush is one data-modifying `WITH` on
//! PostgreSQL, several upserts on SQLite; see `rollup::postgres` and
//! `rollup::sqlite`). The workspace's statement test prepares each on the
//! backends that run it.

use tenantkit::store::Sql;

tenantkit::statements! {
    // Partitions (`tenantkit::store::Maintenance`, PostgreSQL only).
    /// Creates the missing day partitions of `$2` days from `$1`.
    pub const ENSURE_PARTITIONS: Sql = Sql::postgres_only(
        "SELECT tenantkit_analytics_ensure_partitions($1::date, $2::integer)::bigint",
    );
    /// Drops the day partitions before `$1`.
    pub const DROP_PARTITIONS_BEFORE: Sql =
        Sql::postgres_only("SELECT tenantkit_analytics_drop_partitions_before($1::date)::bigint");

    // A flush (PostgreSQL): rollup writers share a tenant's lock, a rebuild takes it alone.
    /// The tenant's rollup lock, shared (a flush).
    pub const LOCK_ROLLUPS_SHARED: Sql = Sql::postgres_only(
        "SELECT pg_advisory_xact_lock_shared(hashtext('tenantkit_analytics_rollups'), hashtext($1::text))::text",
    );
    /// The tenant's rollup lock, exclusive (a rebuild).
    pub const LOCK_ROLLUPS_EXCLUSIVE: Sql = Sql::postgres_only(
        "SELECT pg_advisory_xact_lock(hashtext('tenantkit_analytics_rollups'), hashtext($1::text))::text",
    );
    /// The events (`$2`), the (day, user) pairs (`$4`) and the users' day
    /// maps (`$5`) in one statement; how many events were stored and the
    /// new pairs per day (JSON).
    pub const STORE_EVENTS: Sql = Sql::postgres_only(
        "WITH stored AS ( \
             INSERT INTO events (tenant_id, occurred_at, id, event_type, user_id, name, metadata, received_at) \
             SELECT $1, e.t, e.id, e.ty, e.u, e.n, e.m, $3 \
               FROM json_to_recordset($2::json) AS e(t timestamptz, id uuid, ty text, u text, n text, m jsonb) \
             RETURNING 1), \
         fresh AS ( \
             INSERT INTO event_daily_users (tenant_id, day, user_id) \
             SELECT $1, d.d, d.u FROM json_to_recordset($4::json) AS d(d date, u text) \
             ON CONFLICT DO NOTHING RETURNING day), \
         maps AS ( \
             INSERT INTO event_user_blocks (tenant_id, block, user_id, days) \
             SELECT $1, b.b, b.u, b.m FROM json_to_recordset($5::json) AS b(b date, u text, m bigint) \
             ON CONFLICT (tenant_id, block, user_id) DO UPDATE SET days = event_user_blocks.days | EXCLUDED.days \
             WHERE event_user_blocks.days | EXCLUDED.days <> event_user_blocks.days) \
         SELECT (SELECT count(*) FROM stored)::bigint, \
                COALESCE((SELECT json_agg(json_build_array(day, n)) \
                            FROM (SELECT day, count(*) AS n FROM fresh GROUP BY day) AS f)::text, '[]')",
    );
    /// The four hot rollups' upserts in one statement: live totals (`$2`),
    /// counts (`$3`), type counts (`$4`), daily active users (`$5`).
    pub const ADD_TOTALS: Sql = Sql::postgres_only(
        "WITH live AS ( \
             INSERT INTO event_live_totals (tenant_id, event_type, events, last_event_id, updated_at) \
             SELECT $1, l.ty, l.c, l.id, l.at FROM json_to_recordset($2::json) AS l(ty text, c bigint, id uuid, at timestamptz) \
             ON CONFLICT (tenant_id, event_type) DO UPDATE SET events = event_live_totals.events + EXCLUDED.events, \
                last_event_id = GREATEST(event_live_totals.last_event_id, EXCLUDED.last_event_id), \
                updated_at = EXCLUDED.updated_at), \
         counts AS ( \
             INSERT INTO event_counts (tenant_id, event_type, hour, name, count) \
             SELECT $1, c.ty, c.h, c.n, c.c FROM json_to_recordset($3::json) AS c(ty text, h timestamptz, n text, c bigint) \
             ON CONFLICT (tenant_id, event_type, hour, name) DO UPDATE SET count = event_counts.count + EXCLUDED.count), \
         types AS ( \
             INSERT INTO event_type_counts (tenant_id, event_type, hour, count) \
             SELECT $1, c.ty, c.h, c.c FROM json_to_recordset($4::json) AS c(ty text, h timestamptz, c bigint) \
             ON CONFLICT (tenant_id, hour, event_type) DO UPDATE SET count = event_type_counts.count + EXCLUDED.count), \
         active AS ( \
             INSERT INTO event_daily_active (tenant_id, day, users) \
             SELECT $1, a.d, a.n FROM json_to_recordset($5::json) AS a(d date, n bigint) \
             ON CONFLICT (tenant_id, day) DO UPDATE SET users = event_daily_active.users + EXCLUDED.users) \
         SELECT 1",
    );

    // A flush (SQLite: no data-modifying `WITH`, one upsert per table).
    /// The events (`$2`, a JSON array).
    pub const INSERT_EVENTS: Sql = Sql::sqlite_only(
        "INSERT INTO events (tenant_id, occurred_at, id, event_type, user_id, name, metadata, received_at) \
         SELECT $1, json_extract(e.value, '$.t'), unhex(json_extract(e.value, '$.id')), \
                json_extract(e.value, '$.ty'), json_extract(e.value, '$.u'), json_extract(e.value, '$.n'), \
                json(json_extract(e.value, '$.m')), $3 \
           FROM json_each($2) AS e",
    );
    /// The (day, user) pairs (`$2`); the new ones come back.
    pub const INSERT_DAILY_USERS: Sql = Sql::sqlite_only(
        "INSERT INTO event_daily_users (tenant_id, day, user_id) \
         SELECT $1, json_extract(d.value, '$.d'), json_extract(d.value, '$.u') FROM json_each($2) AS d WHERE true \
         ON CONFLICT DO NOTHING RETURNING day, user_id",
    );
    /// The new pairs' bits merged into the users' day maps (`$2`).
    pub const MERGE_USER_BLOCKS: Sql = Sql::sqlite_only(
        "INSERT INTO event_user_blocks (tenant_id, block, user_id, days) \
         SELECT $1, json_extract(b.value, '$.b'), json_extract(b.value, '$.u'), json_extract(b.value, '$.m') \
           FROM json_each($2) AS b WHERE true \
         ON CONFLICT (tenant_id, block, user_id) DO UPDATE SET days = days | excluded.days",
    );
    /// Events per type and the newest id added to the live totals (`$2`).
    pub const ADD_LIVE_TOTALS: Sql = Sql::sqlite_only(
        "INSERT INTO event_live_totals (tenant_id, event_type, events, last_event_id, updated_at) \
         SELECT $1, json_extract(l.value, '$.ty'), json_extract(l.value, '$.c'), \
                unhex(json_extract(l.value, '$.id')), json_extract(l.value, '$.at') \
           FROM json_each($2) AS l WHERE true \
         ON CONFLICT (tenant_id, event_type) DO UPDATE SET events = events + excluded.events, \
            last_event_id = max(last_event_id, excluded.last_event_id), updated_at = excluded.updated_at",
    );
    /// Events per hour, type and name added (`$2`).
    pub const ADD_COUNTS: Sql = Sql::sqlite_only(
        "INSERT INTO event_counts (tenant_id, event_type, hour, name, count) \
         SELECT $1, json_extract(c.value, '$.ty'), json_extract(c.value, '$.h'), \
                json_extract(c.value, '$.n'), json_extract(c.value, '$.c') \
           FROM json_each($2) AS c WHERE true \
         ON CONFLICT (tenant_id, event_type, hour, name) DO UPDATE SET count = count + excluded.count",
    );
    /// Events per hour and type added (`$2`).
    pub const ADD_TYPE_COUNTS: Sql = Sql::sqlite_only(
        "INSERT INTO event_type_counts (tenant_id, event_type, hour, count) \
         SELECT $1, json_extract(c.value, '$.ty'), json_extract(c.value, '$.h'), json_extract(c.value, '$.c') \
           FROM json_each($2) AS c WHERE true \
         ON CONFLICT (tenant_id, hour, event_type) DO UPDATE SET count = count + excluded.count",
    );
    /// New users per day added to the daily active users (`$2`).
    pub const ADD_DAILY_ACTIVE: Sql = Sql::sqlite_only(
        "INSERT INTO event_daily_active (tenant_id, day, users) \
         SELECT $1, json_extract(a.value, '$.d'), json_extract(a.value, '$.n') FROM json_each($2) AS a WHERE true \
         ON CONFLICT (tenant_id, day) DO UPDATE SET users = users + excluded.users",
    );

    // A rebuild of `[$2, $3)` (hours) or `[$2, $3]` (days) from the raw events.
    /// Raw events in the span.
    pub const COUNT_EVENTS_BETWEEN: Sql = Sql::both(
        "SELECT COUNT(*) FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
    );
    /// The span's hour/type/name counts removed …
    pub const DELETE_COUNTS_BETWEEN: Sql =
        Sql::both("DELETE FROM event_counts WHERE tenant_id = $1 AND hour >= $2 AND hour < $3");
    /// … and recomputed.
    pub const REBUILD_COUNTS: Sql = Sql::pair(
        "INSERT INTO event_counts (tenant_id, event_type, hour, name, count) \
         SELECT $1, event_type, date_trunc('hour', occurred_at, 'UTC'), coalesce(name, ''), COUNT(*) \
           FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
          GROUP BY 2, 3, 4",
        "INSERT INTO event_counts (tenant_id, event_type, hour, name, count) \
         SELECT $1, event_type, strftime('%Y-%m-%dT%H:00:00+00:00', occurred_at), coalesce(name, ''), COUNT(*) \
           FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
          GROUP BY 2, 3, 4",
    );
    /// The span's hour/type counts removed …
    pub const DELETE_TYPE_COUNTS_BETWEEN: Sql = Sql::both(
        "DELETE FROM event_type_counts WHERE tenant_id = $1 AND hour >= $2 AND hour < $3",
    );
    /// … and recomputed.
    pub const REBUILD_TYPE_COUNTS: Sql = Sql::pair(
        "INSERT INTO event_type_counts (tenant_id, event_type, hour, count) \
         SELECT $1, event_type, date_trunc('hour', occurred_at, 'UTC'), COUNT(*) \
           FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
          GROUP BY 2, 3",
        "INSERT INTO event_type_counts (tenant_id, event_type, hour, count) \
         SELECT $1, event_type, strftime('%Y-%m-%dT%H:00:00+00:00', occurred_at), COUNT(*) \
           FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 \
          GROUP BY 2, 3",
    );
    /// The span's (day, user) pairs removed …
    pub const DELETE_DAILY_USERS_BETWEEN: Sql = Sql::both(
        "DELETE FROM event_daily_users WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
    );
    /// … and recomputed (from the events of `[$2, $3)`).
    pub const REBUILD_DAILY_USERS: Sql = Sql::pair(
        "INSERT INTO event_daily_users (tenant_id, day, user_id) \
         SELECT DISTINCT tenant_id, (occurred_at AT TIME ZONE 'UTC')::date, user_id FROM events \
          WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND user_id IS NOT NULL",
        "INSERT INTO event_daily_users (tenant_id, day, user_id) \
         SELECT DISTINCT $1, date(occurred_at), user_id FROM events \
          WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 AND user_id IS NOT NULL",
    );
    /// The span's daily active users removed …
    pub const DELETE_DAILY_ACTIVE_BETWEEN: Sql = Sql::both(
        "DELETE FROM event_daily_active WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
    );
    /// … and recomputed from the pairs.
    pub const REBUILD_DAILY_ACTIVE: Sql = Sql::both(
        "INSERT INTO event_daily_active (tenant_id, day, users) \
         SELECT $1, day, COUNT(*) FROM event_daily_users \
          WHERE tenant_id = $1 AND day >= $2 AND day <= $3 GROUP BY day",
    );
    /// The day maps of blocks `[$2, $3]` removed …
    pub const DELETE_USER_BLOCKS_BETWEEN: Sql = Sql::both(
        "DELETE FROM event_user_blocks WHERE tenant_id = $1 AND block >= $2 AND block <= $3",
    );
    /// … and recomputed from the pairs before `$4`: each (day, user) sets
    /// one bit in each of its two blocks; a user's bits in a block are
    /// distinct, so their sum is their union.
    pub const REBUILD_USER_BLOCKS: Sql = Sql::pair(
        "INSERT INTO event_user_blocks (tenant_id, block, user_id, days) \
         SELECT $1, b.block, b.user_id, SUM(1::bigint << b.bit)::bigint FROM ( \
             SELECT s.user_id, DATE '1970-01-01' + (s.start + k.shift) AS block, s.e - (s.start + k.shift) AS bit \
               FROM (SELECT user_id, e, (e / 32) * 32 AS start FROM ( \
                       SELECT user_id, day - DATE '1970-01-01' AS e FROM event_daily_users \
                        WHERE tenant_id = $1 AND day >= $2 AND day < $4) AS d) AS s \
              CROSS JOIN (VALUES (0), (-32)) AS k(shift)) AS b \
          WHERE b.block >= $2 AND b.block <= $3 GROUP BY b.block, b.user_id",
        "INSERT INTO event_user_blocks (tenant_id, block, user_id, days) \
         SELECT $1, b.block, b.user_id, SUM(1 << b.bit) FROM ( \
             SELECT s.user_id, date('1970-01-01', '+' || (s.start + k.shift) || ' days') AS block, \
                    s.e - (s.start + k.shift) AS bit \
               FROM (SELECT user_id, e, (e / 32) * 32 AS start FROM ( \
                       SELECT user_id, CAST(julianday(day) - 2440587.5 AS INTEGER) AS e FROM event_daily_users \
                        WHERE tenant_id = $1 AND day >= $2 AND day < $4)) AS s \
              CROSS JOIN (SELECT 0 AS shift UNION ALL SELECT -32) AS k) AS b \
          WHERE b.block >= $2 AND b.block <= $3 GROUP BY b.block, b.user_id",
    );

    // Queries.
    /// Users active in block `$2` on any day of mask `$3` (rolling MAU).
    pub const USERS_IN_WINDOW: Sql = Sql::both(
        "SELECT COUNT(*) FROM event_user_blocks WHERE tenant_id = $1 AND block = $2 AND (days & $3) <> 0",
    );
    /// Events per type in the hours `[$2, $3)`.
    pub const EVENTS_PER_TYPE: Sql = Sql::both(
        "SELECT event_type, CAST(SUM(count) AS BIGINT) FROM event_type_counts \
          WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 GROUP BY event_type",
    );
    /// The `$4` most used features in the hours `[$2, $3)`.
    pub const TOP_FEATURES: Sql = Sql::both(
        "SELECT name, CAST(SUM(count) AS BIGINT) AS n FROM event_counts \
          WHERE tenant_id = $1 AND event_type = 'feature_used' AND hour >= $2 AND hour < $3 AND name <> '' \
          GROUP BY name ORDER BY n DESC, name LIMIT $4",
    );
    /// Distinct users of day `$2`.
    pub const DAILY_ACTIVE: Sql =
        Sql::both("SELECT users FROM event_daily_active WHERE tenant_id = $1 AND day = $2");
    /// Distinct users per day of `[$2, $3]`.
    pub const DAILY_ACTIVE_BETWEEN: Sql = Sql::both(
        "SELECT day, users FROM event_daily_active WHERE tenant_id = $1 AND day >= $2 AND day <= $3",
    );
    /// Events per hour of `[$2, $3)`.
    pub const EVENTS_PER_HOUR: Sql = Sql::both(
        "SELECT hour, CAST(SUM(count) AS BIGINT) FROM event_type_counts \
          WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 GROUP BY hour",
    );
    /// Uses of feature `$4` per hour of `[$2, $3)`.
    pub const FEATURE_PER_HOUR: Sql = Sql::both(
        "SELECT hour, count FROM event_counts \
          WHERE tenant_id = $1 AND event_type = 'feature_used' AND hour >= $2 AND hour < $3 AND name = $4",
    );
    /// Events of type `$4` per hour of `[$2, $3)`.
    pub const TYPE_PER_HOUR: Sql = Sql::both(
        "SELECT hour, count FROM event_type_counts \
          WHERE tenant_id = $1 AND event_type = $4 AND hour >= $2 AND hour < $3",
    );
    /// Events ever stored per type, with the newest id (the live stream).
    pub const LIVE_TOTALS: Sql = Sql::both(
        "SELECT event_type, events, last_event_id FROM event_live_totals WHERE tenant_id = $1",
    );

    // Retention: rows before the cut-off `$2`.
    /// Hour/type/name counts.
    pub const PURGE_COUNTS: Sql =
        Sql::both("DELETE FROM event_counts WHERE tenant_id = $1 AND hour < $2");
    /// Hour/type counts.
    pub const PURGE_TYPE_COUNTS: Sql =
        Sql::both("DELETE FROM event_type_counts WHERE tenant_id = $1 AND hour < $2");
    /// (day, user) pairs.
    pub const PURGE_DAILY_USERS: Sql =
        Sql::both("DELETE FROM event_daily_users WHERE tenant_id = $1 AND day < $2");
    /// Daily active users.
    pub const PURGE_DAILY_ACTIVE: Sql =
        Sql::both("DELETE FROM event_daily_active WHERE tenant_id = $1 AND day < $2");
    /// Day maps of blocks up to `$2`, wholly before the cut-off.
    pub const PURGE_USER_BLOCKS: Sql =
        Sql::both("DELETE FROM event_user_blocks WHERE tenant_id = $1 AND block <= $2");
    /// Raw events (PostgreSQL drops whole partitions instead).
    pub const PURGE_EVENTS: Sql =
        Sql::sqlite_only("DELETE FROM events WHERE tenant_id = $1 AND occurred_at < $2");
    /// Day maps of block `$2` with no day left after mask `$3` …
    pub const PURGE_EMPTIED_USER_BLOCKS: Sql = Sql::both(
        "DELETE FROM event_user_blocks WHERE tenant_id = $1 AND block = $2 AND (days & $3) = 0",
    );
    /// … and the others cut to it.
    pub const TRIM_USER_BLOCKS: Sql = Sql::both(
        "UPDATE event_user_blocks SET days = days & $3 WHERE tenant_id = $1 AND block = $2 AND days <> (days & $3)",
    );
}
