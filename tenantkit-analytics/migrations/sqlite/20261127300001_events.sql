-- tenantkit-analytics: raw events (one table on SQLite).
CREATE TABLE events (
    tenant_id   BLOB NOT NULL,
    occurred_at TEXT NOT NULL,
    id          BLOB NOT NULL,
    event_type  TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 64),
    user_id     TEXT CHECK (length(user_id) BETWEEN 1 AND 128),
    name        TEXT CHECK (length(name) BETWEEN 1 AND 200),
    metadata    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    received_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, occurred_at, id)
) STRICT, WITHOUT ROWID;
