-- Spending-limit totals kept as charges are written, per account, currency and day, so that
-- a limit check reads at most a month of day rows of one account instead of every charge it
-- made (the covering index on (account_key, created_at, …) it replaces). A charge counts
-- (while PENDING or SUCCESS) in the day it was written in, `transactions.spend_day`; it
-- leaves that day again if it fails or is abandoned. Charges written without spending
-- windows (refunds) have no `spend_day` and never count.
CREATE TABLE spending_days (
    account_key TEXT   NOT NULL,
    currency    TEXT   NOT NULL,
    day_start   BIGINT NOT NULL,
    total       BIGINT NOT NULL CHECK (total >= 0),
    PRIMARY KEY (account_key, currency, day_start)
);

ALTER TABLE transactions ADD COLUMN spend_day BIGINT;

-- The charges of the last month already written count in UTC days: the configured offset of
-- the limit windows is not known here, so on the day of this migration a window that does
-- not start at midnight UTC may count them a few hours early or late.
UPDATE transactions SET spend_day = created_at - created_at % 86400000
WHERE type = 'CHARGE' AND status <> 'FAILED'
  AND created_at >= (EXTRACT(EPOCH FROM now() - INTERVAL '32 days') * 1000)::BIGINT;
INSERT INTO spending_days (account_key, currency, day_start, total)
SELECT account_key, currency, spend_day, SUM(amount_minor) FROM transactions
WHERE spend_day IS NOT NULL
GROUP BY account_key, currency, spend_day;

DROP INDEX transactions_account;

-- The partner's hourly message cap counts what the partner sends, not the receipts the hub
-- sends for its charges.
DROP INDEX notifications_rate;
CREATE INDEX notifications_rate ON notifications (partner_id, recipient, created_at) WHERE kind <> 'RECEIPT';

-- The guard of final states is called only for rows that are final already: a trigger's WHEN
-- is checked without calling the function, so a PENDING row's settle pays nothing for it.
DROP TRIGGER transactions_final_is_final ON transactions;
CREATE TRIGGER transactions_final_is_final BEFORE UPDATE ON transactions
FOR EACH ROW WHEN (OLD.status <> 'PENDING') EXECUTE FUNCTION transactions_final_is_final();
