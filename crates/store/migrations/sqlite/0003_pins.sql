-- Three-valued CHECKs are spelled with OR: SQLite compiles `IN` with three or more values
-- into an ephemeral table on every insert and update of the column.
-- PIN challenges: only a keyed hash of the code is kept. A challenge is ACTIVE while the
-- customer may still enter it, VALIDATED once entered correctly (consent given), CONSUMED
-- once a transaction used that consent.
CREATE TABLE pin_challenges (
    id                 TEXT    PRIMARY KEY,
    partner_id         INTEGER NOT NULL REFERENCES partners (id),
    customer           TEXT    NOT NULL,
    customer_kind      TEXT    NOT NULL CHECK (customer_kind IN ('msisdn', 'email')),
    csp_id             TEXT    NOT NULL,
    account_key        TEXT    NOT NULL,
    ext_transaction_id TEXT,
    amount_minor       INTEGER,
    currency           TEXT,
    description        TEXT,
    pin_hash           TEXT    NOT NULL,
    sends              INTEGER NOT NULL,
    last_sent_at       INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    status             TEXT    NOT NULL CHECK (status = 'ACTIVE' OR status = 'VALIDATED' OR status = 'CONSUMED'),
    consent_expires_at INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

-- One row per PIN message sent, for the per-customer cap across partners.
CREATE TABLE pin_sends (
    account_key TEXT    NOT NULL,
    pin_id      TEXT    NOT NULL,
    sent_at     INTEGER NOT NULL
) STRICT;
CREATE INDEX pin_sends_account ON pin_sends (account_key, sent_at);
