CREATE UNIQUE INDEX payments_one_pending_per_business ON payments (business_id) WHERE status = 'pending'
