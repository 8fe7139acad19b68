-- tenantkit-analytics: the live stream's counters (see the PostgreSQL twin).
CREATE TABLE event_live_totals (
    tenant_id     BLOB    NOT NULL,
    event_type    TEXT    NOT NULL,
    events        INTEGER NOT NULL CHECK (events > 0),
    last_event_id BLOB    NOT NULL,
    updated_at    TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, event_type)
) STRICT, WITHOUT ROWID;
