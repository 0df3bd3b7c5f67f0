CREATE TABLE organisations (
    uscc TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    legal_address TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE handlers (
    id TEXT PRIMARY KEY,
    uscc TEXT NOT NULL REFERENCES organisations (uscc),
    name TEXT NOT NULL,
    id_number TEXT NOT NULL,
    phone TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE certificates (
    serial TEXT PRIMARY KEY,
    uscc TEXT NOT NULL REFERENCES organisations (uscc),
    key_serial TEXT,
    pem TEXT NOT NULL,
    spki_sha256 TEXT NOT NULL,
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE TABLE keys (
    key_serial TEXT PRIMARY KEY,
    uscc TEXT NOT NULL REFERENCES organisations (uscc),
    handler_id TEXT NOT NULL REFERENCES handlers (id),
    state TEXT NOT NULL,
    current_cert TEXT NOT NULL REFERENCES certificates (serial),
    so_pin_enc TEXT NOT NULL,
    transport_pin_enc TEXT,
    delivered_at BIGINT NOT NULL,
    activated_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE key_certificates (
    key_serial TEXT NOT NULL REFERENCES keys (key_serial),
    cert_serial TEXT NOT NULL REFERENCES certificates (serial),
    role TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (key_serial, cert_serial)
);
CREATE TABLE businesses (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    key_serial TEXT,
    uscc TEXT NOT NULL,
    handler_id TEXT,
    fee_fen BIGINT NOT NULL,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX businesses_by_key ON businesses (key_serial);
CREATE INDEX businesses_by_org ON businesses (uscc);
CREATE TABLE business_events (
    id TEXT PRIMARY KEY,
    business_id TEXT NOT NULL REFERENCES businesses (id),
    at BIGINT NOT NULL,
    state TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX business_events_by_business ON business_events (business_id);
CREATE TABLE sms_outbox (
    id TEXT PRIMARY KEY,
    phone TEXT NOT NULL,
    key_serial TEXT,
    purpose TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE sms_codes (
    id TEXT PRIMARY KEY,
    key_serial TEXT NOT NULL,
    purpose TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    used_at BIGINT,
    void BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sms_codes_by_key ON sms_codes (key_serial, purpose);
CREATE TABLE nonces (
    nonce TEXT PRIMARY KEY,
    key_serial TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    business_id TEXT NOT NULL REFERENCES businesses (id),
    amount_fen BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    key_serial TEXT,
    business_id TEXT,
    detail TEXT NOT NULL
)
