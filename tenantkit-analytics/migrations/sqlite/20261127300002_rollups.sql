-- tenantkit-analytics: rollups (see the PostgreSQL migration for what each holds).
CREATE TABLE event_counts (
    tenant_id  BLOB    NOT NULL,
    event_type TEXT    NOT NULL,
    hour       TEXT    NOT NULL,
    name       TEXT    NOT NULL DEFAULT '',
    count      INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (tenant_id, event_type, hour, name)
) STRICT, WITHOUT ROWID;
CREATE INDEX event_counts_by_hour ON event_counts (tenant_id, hour);

CREATE TABLE event_daily_users (
    tenant_id BLOB NOT NULL,
    day       TEXT NOT NULL,
    user_id   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, day, user_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE event_daily_active (
    tenant_id BLOB    NOT NULL,
    day       TEXT    NOT NULL,
    users     INTEGER NOT NULL CHECK (users > 0),
    PRIMARY KEY (tenant_id, day)
) STRICT, WITHOUT ROWID;

CREATE TABLE event_user_blocks (
    tenant_id BLOB    NOT NULL,
    block     TEXT    NOT NULL,
    user_id   TEXT    NOT NULL,
    days      INTEGER NOT NULL CHECK (days <> 0),
    PRIMARY KEY (tenant_id, block, user_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE event_type_counts (
    tenant_id  BLOB    NOT NULL,
    event_type TEXT    NOT NULL,
    hour       TEXT    NOT NULL,
    count      INTEGER NOT NULL CHECK (count > 0),
    PRIMARY KEY (tenant_id, hour, event_type)
) STRICT, WITHOUT ROWID;
