-- Three-valued CHECKs are spelled with OR: SQLite compiles `IN` with three or more values
-- into an ephemeral table on every insert and update of the column.
-- Charges and refunds. A row is written PENDING before the CSP is called; PENDING moves once,
-- to SUCCESS or FAILED, and those never change. (partner_id, ext_transaction_id) is the
-- idempotency key; `fingerprint` tells a repeat from a different request.
CREATE TABLE transactions (
    id                 TEXT    PRIMARY KEY,
    partner_id         INTEGER NOT NULL REFERENCES partners (id),
    ext_transaction_id TEXT    NOT NULL,
    fingerprint        TEXT    NOT NULL,
    type               TEXT    NOT NULL CHECK (type IN ('CHARGE', 'REFUND')),
    status             TEXT    NOT NULL CHECK (status = 'PENDING' OR status = 'SUCCESS' OR status = 'FAILED'),
    customer           TEXT    NOT NULL,
    customer_kind      TEXT    NOT NULL CHECK (customer_kind IN ('msisdn', 'email')),
    csp_id             TEXT    NOT NULL,
    account_key        TEXT    NOT NULL,
    amount_minor       INTEGER NOT NULL CHECK (amount_minor > 0),
    currency           TEXT    NOT NULL,
    description        TEXT    NOT NULL,
    product_code       TEXT,
    tax_included       INTEGER NOT NULL CHECK (tax_included IN (0, 1)),
    original_id        TEXT    REFERENCES transactions (id),
    refunded_minor     INTEGER NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    csp_reference      TEXT,
    -- A two-phase CSP's reservation, kept so the reconciler can finish it after a crash.
    reservation_ref    TEXT,
    failure_code       TEXT,
    pin_id             TEXT,
    processing_until   INTEGER NOT NULL,
    next_check_at      INTEGER NOT NULL,
    check_attempts     INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CONSTRAINT transactions_idempotency UNIQUE (partner_id, ext_transaction_id)
) STRICT;

-- Covers the spending-limit sums, so they never touch the table.
CREATE INDEX transactions_account ON transactions (account_key, created_at, type, status, currency, amount_minor);
CREATE INDEX transactions_pending ON transactions (next_check_at) WHERE status = 'PENDING';
CREATE INDEX transactions_customer ON transactions (customer, created_at);
CREATE INDEX transactions_original ON transactions (original_id) WHERE original_id IS NOT NULL;

-- Final states never change, whatever code runs against the database.
CREATE TRIGGER transactions_final_is_final BEFORE UPDATE OF status, amount_minor, currency, customer ON transactions
WHEN OLD.status <> 'PENDING' AND (NEW.status <> OLD.status OR NEW.amount_minor <> OLD.amount_minor
     OR NEW.currency <> OLD.currency OR NEW.customer <> OLD.customer)
BEGIN
    SELECT RAISE(ABORT, 'final transaction state cannot change');
END;
