-- Routing within a tenant: an endpoint's channels (none: every message of
-- its types); a message published on channels reaches the endpoints that
-- have none or share one. Wildcard event types (`user.*`) need no column.
ALTER TABLE webhooks ADD COLUMN channels jsonb NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(channels) = 'array' AND jsonb_array_length(channels) <= 10);
