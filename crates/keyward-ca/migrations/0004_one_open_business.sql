CREATE UNIQUE INDEX businesses_one_open_per_key_and_kind ON businesses (key_serial, kind) WHERE state NOT IN ('completed', 'rejected', 'cancelled')
