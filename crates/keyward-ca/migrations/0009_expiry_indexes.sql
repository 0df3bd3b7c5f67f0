CREATE INDEX nonces_by_expiry ON nonces (expires_at);
CREATE INDEX address_events_by_time ON address_events (at)
