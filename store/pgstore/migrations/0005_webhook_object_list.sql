-- The console's subscriber timeline: the events of a few gateway objects (a subscription
-- and its payments), newest first, across every state; webhook_events_object (0004) holds
-- pending events only.
CREATE INDEX webhook_events_object_received ON {schema}.webhook_events
	(gateway, object_key, received_at DESC, (event_id COLLATE "C") DESC);
