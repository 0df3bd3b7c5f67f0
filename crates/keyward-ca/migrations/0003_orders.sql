CREATE TABLE invoices (
    business_id TEXT PRIMARY KEY REFERENCES businesses (id),
    amount_fen BIGINT NOT NULL,
    title TEXT NOT NULL,
    tax_id TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_at BIGINT NOT NULL
)
