-- Three-valued CHECKs are spelled with OR: SQLite compiles `IN` with three or more values
-- into an ephemeral table on every insert and update of the column.
-- The outbox: every customer message is a row written in the same transaction as the request
-- that causes it; the worker leases due rows by pushing next_attempt_at forward.
CREATE TABLE notifications (
    id                 TEXT    PRIMARY KEY,
    partner_id         INTEGER NOT NULL REFERENCES partners (id),
    partner_code       TEXT    NOT NULL,
    recipient          TEXT    NOT NULL,
    recipient_kind     TEXT    NOT NULL CHECK (recipient_kind IN ('msisdn', 'email')),
    csp_id             TEXT    NOT NULL,
    channel            TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    text               TEXT    NOT NULL,
    -- What `text` becomes once the message has left: PIN messages keep no PIN at rest.
    redacted_text      TEXT,
    subject            TEXT,
    ext_transaction_id TEXT,
    locale             TEXT,
    status             TEXT    NOT NULL CHECK (status = 'QUEUED' OR status = 'SENT' OR status = 'FAILED'),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL,
    last_error         TEXT,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'QUEUED';
CREATE INDEX notifications_rate ON notifications (partner_id, recipient, created_at);
