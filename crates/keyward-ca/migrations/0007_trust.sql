ALTER TABLE businesses ADD COLUMN secret_hash TEXT;
CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
ALTER TABLE sms_codes ADD COLUMN business_id TEXT;
ALTER TABLE sms_codes ADD COLUMN ticket_hash TEXT;
ALTER TABLE sms_codes ADD COLUMN reference TEXT;
ALTER TABLE sms_codes ADD COLUMN address TEXT;
CREATE INDEX sms_codes_by_business ON sms_codes (business_id);
CREATE TABLE address_events (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    key_serial TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX address_events_by_address ON address_events (address, action, at);
CREATE INDEX nonces_by_key ON nonces (key_serial, created_at)
