-- Charges and refunds. A row is written PENDING before the CSP is called; PENDING moves once,
-- to SUCCESS or FAILED, and those never change. (partner_id, ext_transaction_id) is the
-- idempotency key; `fingerprint` tells a repeat from a different request.
CREATE TABLE transactions (
    id                 TEXT    PRIMARY KEY,
    partner_id         BIGINT  NOT NULL REFERENCES partners (id),
    ext_transaction_id TEXT    NOT NULL,
    fingerprint        TEXT    NOT NULL,
    type               TEXT    NOT NULL CHECK (type IN ('CHARGE', 'REFUND')),
    status             TEXT    NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'FAILED')),
    customer           TEXT    NOT NULL,
    customer_kind      TEXT    NOT NULL CHECK (customer_kind IN ('msisdn', 'email')),
    csp_id             TEXT    NOT NULL,
    account_key        TEXT    NOT NULL,
    amount_minor       BIGINT  NOT NULL CHECK (amount_minor > 0),
    currency           TEXT    NOT NULL,
    description        TEXT    NOT NULL,
    product_code       TEXT,
    tax_included       BOOLEAN NOT NULL,
    original_id        TEXT    REFERENCES transactions (id),
    refunded_minor     BIGINT  NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    csp_reference      TEXT,
    -- A two-phase CSP's reservation, kept so the reconciler can finish it after a crash.
    reservation_ref    TEXT,
    failure_code       TEXT,
    pin_id             TEXT,
    processing_until   BIGINT  NOT NULL,
    next_check_at      BIGINT  NOT NULL,
    check_attempts     INTEGER NOT NULL DEFAULT 0,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    CONSTRAINT transactions_idempotency UNIQUE (partner_id, ext_transaction_id)
);

-- Covers the spending-limit sums, so they never touch the table.
CREATE INDEX transactions_account ON transactions (account_key, created_at, type, status, currency, amount_minor);
CREATE INDEX transactions_pending ON transactions (next_check_at) WHERE status = 'PENDING';
CREATE INDEX transactions_customer ON transactions (customer, created_at);
CREATE INDEX transactions_original ON transactions (original_id) WHERE original_id IS NOT NULL;

-- Final states never change, whatever code runs against the database.
CREATE FUNCTION transactions_final_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'PENDING' AND (NEW.status <> OLD.status OR NEW.amount_minor <> OLD.amount_minor
        OR NEW.currency <> OLD.currency OR NEW.customer <> OLD.customer) THEN
        RAISE EXCEPTION 'final transaction state cannot change';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER transactions_final_is_final BEFORE UPDATE ON transactions
FOR EACH ROW EXECUTE FUNCTION transactions_final_is_final();
