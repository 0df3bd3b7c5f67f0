CREATE TABLE seals (
    business_id TEXT PRIMARY KEY REFERENCES businesses (id),
    key_serial TEXT NOT NULL,
    cert_serial TEXT NOT NULL,
    seal_name TEXT NOT NULL,
    seal_kind TEXT NOT NULL,
    der_base64 TEXT NOT NULL,
    made_at BIGINT NOT NULL,
    installed_at BIGINT
);
CREATE INDEX seals_by_key ON seals (key_serial, made_at)
