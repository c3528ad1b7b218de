-- Migration 0009's set-based group write, corrected. When another transaction took one of the
-- group's keys between the check and the insert, 0009 deleted every row with one of the group's
-- ids. If that other transaction was this very group written again (a write repeated while its
-- first call was still committing), those rows were the first call's, now committed: the loop
-- then wrote them and their receipts a second time and failed on notifications_pkey. The write
-- now takes back only the rows its own insert returned.
--
-- 0009 stays as it landed (a database that applied it keeps its checksum); this replaces the
-- function's body, with the same arguments, so the whole definition is restated.
CREATE OR REPLACE FUNCTION dcbhub_write_answered_charges(
    p_id TEXT[], p_partner_id BIGINT[], p_ext TEXT[], p_fingerprint TEXT[], p_status TEXT[],
    p_customer TEXT[], p_customer_kind TEXT[], p_csp_id TEXT[], p_account_key TEXT[],
    p_amount BIGINT[], p_currency TEXT[], p_description TEXT[], p_product_code TEXT[],
    p_tax_included BOOLEAN[], p_pin_id TEXT[], p_processing_until BIGINT[],
    p_next_check_at BIGINT[], p_now BIGINT[], p_csp_reference TEXT[], p_failure_code TEXT[],
    p_per_transaction BIGINT[], p_per_day BIGINT[], p_per_month BIGINT[], p_day_start BIGINT[],
    p_month_start BIGINT[],
    n_id TEXT[], n_recipient TEXT[], n_recipient_kind TEXT[], n_csp_id TEXT[], n_channel TEXT[],
    n_kind TEXT[], n_text TEXT[], n_redacted_text TEXT[], n_subject TEXT[], n_ext TEXT[],
    n_locale TEXT[], n_status TEXT[], n_attempts INTEGER[], n_next_attempt_at BIGINT[],
    n_partner_code TEXT[]
) RETURNS SMALLINT[] LANGUAGE plpgsql AS $$
DECLARE
    v_n INTEGER := COALESCE(array_length(p_id, 1), 0);
    v_fast BOOLEAN;
    v_inserted TEXT[];
BEGIN
    IF v_n = 0 THEN
        RETURN '{}';
    END IF;
    SELECT bool_and(pin IS NULL) AND count(DISTINCT (pid, ext)) = v_n
           AND count(DISTINCT d) <= 1 AND count(DISTINCT m) FILTER (WHERE d IS NOT NULL) <= 1
           AND COALESCE(bool_and(m IS NOT NULL AND d >= m) FILTER (WHERE d IS NOT NULL), TRUE)
    INTO v_fast
    FROM unnest(p_pin_id, p_partner_id, p_ext, p_day_start, p_month_start) AS u(pin, pid, ext, d, m);

    IF v_fast THEN
        -- The accounts' limit locks in the group's order, as the loop takes them.
        PERFORM pg_advisory_xact_lock(hashtextextended('limits:' || a, 0))
        FROM (SELECT a FROM unnest(p_account_key, p_day_start) WITH ORDINALITY AS u(a, d, i)
              WHERE d IS NOT NULL ORDER BY i) AS ordered;
        v_fast := NOT EXISTS (
            SELECT 1 FROM unnest(p_partner_id, p_ext) AS u(pid, ext)
            JOIN transactions t ON t.partner_id = u.pid AND t.ext_transaction_id = u.ext);
    END IF;

    IF v_fast THEN
        -- `before`: what the group's earlier charges of the account add to its totals. NULL
        -- comparisons admit, as the loop's IF does.
        SELECT COALESCE(bool_and(NOT COALESCE(
                   c.amount > c.per_tx OR c.amount > c.per_day - (s.day + c.before)
                   OR c.amount > c.per_month - (s.month + c.before), FALSE)), TRUE)
        INTO v_fast
        FROM (SELECT u.*, COALESCE(SUM(u.amount) FILTER (WHERE u.status <> 'FAILED') OVER (
                        PARTITION BY u.acct, u.cur ORDER BY u.i
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before
              FROM unnest(p_account_key, p_currency, p_amount, p_status, p_day_start,
                          p_month_start, p_per_transaction, p_per_day, p_per_month)
                   WITH ORDINALITY AS u(acct, cur, amount, status, d, m, per_tx, per_day, per_month, i)
              WHERE u.d IS NOT NULL) AS c
        CROSS JOIN LATERAL (
            SELECT COALESCE(SUM(total) FILTER (WHERE day_start >= c.d), 0) AS day,
                   COALESCE(SUM(total), 0) AS month
            FROM spending_days
            WHERE account_key = c.acct AND currency = c.cur AND day_start >= c.m) AS s;
    END IF;

    IF v_fast THEN
        WITH inserted AS (
            INSERT INTO transactions (id, partner_id, ext_transaction_id, fingerprint, type, status,
                customer, customer_kind, csp_id, account_key, amount_minor, currency, description,
                product_code, tax_included, pin_id, processing_until, next_check_at, created_at,
                updated_at, spend_day, csp_reference, failure_code)
            SELECT id, pid, ext, fp, 'CHARGE', status, customer, ckind, csp, acct, amount, cur, descr,
                product, tax, NULL, until, next_check, now, now,
                CASE WHEN status <> 'FAILED' THEN d END, reference, failure
            FROM unnest(p_id, p_partner_id, p_ext, p_fingerprint, p_status, p_customer,
                        p_customer_kind, p_csp_id, p_account_key, p_amount, p_currency, p_description,
                        p_product_code, p_tax_included, p_processing_until, p_next_check_at, p_now,
                        p_csp_reference, p_failure_code, p_day_start)
                 AS u(id, pid, ext, fp, status, customer, ckind, csp, acct, amount, cur, descr,
                      product, tax, until, next_check, now, reference, failure, d)
            ON CONFLICT ON CONSTRAINT transactions_idempotency DO NOTHING
            RETURNING id)
        SELECT COALESCE(array_agg(id), '{}') INTO v_inserted FROM inserted;
        IF cardinality(v_inserted) = v_n THEN
            INSERT INTO spending_days (account_key, currency, day_start, total)
            SELECT acct, cur, d, SUM(amount)
            FROM unnest(p_account_key, p_currency, p_day_start, p_amount, p_status)
                 AS u(acct, cur, d, amount, status)
            WHERE d IS NOT NULL AND status <> 'FAILED'
            GROUP BY acct, cur, d
            ON CONFLICT (account_key, currency, day_start)
            DO UPDATE SET total = spending_days.total + EXCLUDED.total;
            INSERT INTO notifications (id, partner_id, recipient, recipient_kind, csp_id, channel,
                kind, text, redacted_text, subject, ext_transaction_id, locale, status, attempts,
                next_attempt_at, created_at, updated_at, partner_code)
            SELECT id, pid, recipient, rkind, csp, channel, kind, text, redacted, subject, ext,
                locale, status, attempts, next_attempt, now, now, partner_code
            FROM unnest(n_id, p_partner_id, n_recipient, n_recipient_kind, n_csp_id, n_channel,
                        n_kind, n_text, n_redacted_text, n_subject, n_ext, n_locale, n_status,
                        n_attempts, n_next_attempt_at, p_now, n_partner_code)
                 AS u(id, pid, recipient, rkind, csp, channel, kind, text, redacted, subject, ext,
                      locale, status, attempts, next_attempt, now, partner_code)
            WHERE id IS NOT NULL;
            RETURN array_fill(0::SMALLINT, ARRAY[v_n]);
        END IF;
        -- Another transaction took one of the keys since the check (an instance's twin, or this
        -- very write repeated while its first call was still committing): the rows this
        -- statement inserted go, and the loop answers each charge.
        DELETE FROM transactions WHERE id = ANY (v_inserted);
    END IF;

    RETURN dcbhub_write_answered_charges_each(
        p_id, p_partner_id, p_ext, p_fingerprint, p_status, p_customer, p_customer_kind,
        p_csp_id, p_account_key, p_amount, p_currency, p_description, p_product_code,
        p_tax_included, p_pin_id, p_processing_until, p_next_check_at, p_now, p_csp_reference,
        p_failure_code, p_per_transaction, p_per_day, p_per_month, p_day_start, p_month_start,
        n_id, n_recipient, n_recipient_kind, n_csp_id, n_channel, n_kind, n_text,
        n_redacted_text, n_subject, n_ext, n_locale, n_status, n_attempts, n_next_attempt_at,
        n_partner_code);
END $$;

