CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL,
    heartbeat_seconds BIGINT NOT NULL,
    escrow_keys TEXT NOT NULL
);
CREATE TABLE attachment_contents (
    sha256 TEXT PRIMARY KEY,
    content_base64 TEXT NOT NULL,
    created_at BIGINT NOT NULL
)
