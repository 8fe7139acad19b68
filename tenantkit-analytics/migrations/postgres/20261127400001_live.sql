-- tenantkit-analytics: the live stream's counters. Every event ever stored,
-- per tenant and type, with the newest event's id; updated in the flush's
-- transaction, so any server process can tell what is new since it last
-- looked, whichever process stored it and whatever notification was lost.
CREATE TABLE event_live_totals (
    tenant_id     uuid        NOT NULL,
    event_type    text        NOT NULL,
    events        bigint      NOT NULL CHECK (events > 0),
    last_event_id uuid        NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_type)
);
SELECT tenantkit_isolate('event_live_totals');
COMMENT ON TABLE event_live_totals IS 'tenantkit:operational';
