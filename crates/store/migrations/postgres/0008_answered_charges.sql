-- Answered charges written in groups: one call, one transaction and one commit (one WAL
-- flush) for every charge an instance has waiting, instead of one each. The arrays are the
-- columns of `dcbhub_write_answered_charge` (migration 0007), one element per charge, and each
-- charge gets that function's checks in the same order: the account's limit lock with the
-- insert, the twin by the idempotency key, then the limits and the consent, then the day
-- total and the receipt. A refusal cannot raise here (it would roll back the whole group), and
-- a subtransaction per charge would cost more than it saves, so a refused charge's row is
-- deleted again inside the transaction that inserted it: no other transaction ever sees it.
-- The answer has one code per charge: 0 written (by this call or an earlier one), 1 a twin
-- was there, 2 over a spending limit, 3 consent unusable. The caller sorts a group by account so that groups committing in
-- parallel take the accounts' locks in one order. Each statement takes a fresh snapshot, so
-- the totals read after a lock include what the previous holder committed, and a charge sees
-- the ones before it in its own group. Migration 0007's function stays, as a call of this one
-- (at the end), for instances of the previous build during a rolling upgrade.
CREATE FUNCTION dcbhub_write_answered_charges(
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
    v_codes SMALLINT[] := '{}';
    v_day BIGINT;
    v_month BIGINT;
    v_spend_day BIGINT;
BEGIN
    FOR i IN 1 .. COALESCE(array_length(p_id, 1), 0) LOOP
        -- A charge counts in its day unless declined.
        v_spend_day := CASE WHEN p_status[i] <> 'FAILED' THEN p_day_start[i] END;
        INSERT INTO transactions (id, partner_id, ext_transaction_id, fingerprint, type, status,
            customer, customer_kind, csp_id, account_key, amount_minor, currency, description,
            product_code, tax_included, pin_id, processing_until, next_check_at, created_at,
            updated_at, spend_day, csp_reference, failure_code)
        SELECT p_id[i], p_partner_id[i], p_ext[i], p_fingerprint[i], 'CHARGE', p_status[i],
            p_customer[i], p_customer_kind[i], p_csp_id[i], p_account_key[i], p_amount[i],
            p_currency[i], p_description[i], p_product_code[i], p_tax_included[i], p_pin_id[i],
            p_processing_until[i], p_next_check_at[i], p_now[i], p_now[i], v_spend_day,
            p_csp_reference[i], p_failure_code[i]
        FROM (SELECT CASE WHEN p_day_start[i] IS NOT NULL
                     THEN pg_advisory_xact_lock(hashtextextended('limits:' || p_account_key[i], 0)) END) AS l
        ON CONFLICT ON CONSTRAINT transactions_idempotency DO NOTHING;
        IF NOT FOUND THEN
            -- The row with this very id is this charge's own write: a call repeated after a
            -- commit whose answer was lost finds it written, not a twin (whose booking the
            -- caller would undo).
            v_codes := v_codes || CASE WHEN EXISTS (SELECT 1 FROM transactions WHERE id = p_id[i])
                                       THEN 0 ELSE 1 END::SMALLINT;
            CONTINUE;
        END IF;

        IF p_day_start[i] IS NOT NULL THEN
            SELECT COALESCE(SUM(total) FILTER (WHERE day_start >= p_day_start[i]), 0), COALESCE(SUM(total), 0)
            INTO v_day, v_month
            FROM spending_days
            WHERE account_key = p_account_key[i] AND currency = p_currency[i]
              AND day_start >= p_month_start[i];
            -- Subtracted, not added: "no limit" is the largest BIGINT.
            IF p_amount[i] > p_per_transaction[i] OR p_amount[i] > p_per_day[i] - v_day
               OR p_amount[i] > p_per_month[i] - v_month THEN
                DELETE FROM transactions WHERE id = p_id[i];
                v_codes := v_codes || 2::SMALLINT;
                CONTINUE;
            END IF;
        END IF;
        IF p_pin_id[i] IS NOT NULL THEN
            UPDATE pin_challenges SET status = 'CONSUMED', updated_at = p_now[i]
            WHERE id = p_pin_id[i] AND partner_id = p_partner_id[i] AND status = 'VALIDATED'
              AND consent_expires_at > p_now[i];
            IF NOT FOUND THEN
                DELETE FROM transactions WHERE id = p_id[i];
                v_codes := v_codes || 3::SMALLINT;
                CONTINUE;
            END IF;
        END IF;

        WITH counted AS (
            INSERT INTO spending_days (account_key, currency, day_start, total)
            SELECT p_account_key[i], p_currency[i], v_spend_day, p_amount[i] WHERE v_spend_day IS NOT NULL
            ON CONFLICT (account_key, currency, day_start)
            DO UPDATE SET total = spending_days.total + EXCLUDED.total
        )
        INSERT INTO notifications (id, partner_id, recipient, recipient_kind, csp_id, channel, kind,
            text, redacted_text, subject, ext_transaction_id, locale, status, attempts,
            next_attempt_at, created_at, updated_at, partner_code)
        SELECT n_id[i], p_partner_id[i], n_recipient[i], n_recipient_kind[i], n_csp_id[i],
            n_channel[i], n_kind[i], n_text[i], n_redacted_text[i], n_subject[i], n_ext[i],
            n_locale[i], n_status[i], n_attempts[i], n_next_attempt_at[i], p_now[i], p_now[i],
            n_partner_code[i]
        WHERE n_id[i] IS NOT NULL;
        v_codes := v_codes || 0::SMALLINT;
    END LOOP;
    RETURN v_codes;
END $$;

-- Migration 0007's one-charge function becomes a call of the group function with one element,
-- so the checks live in one place; instances of the previous build keep its answers: TRUE for
-- a twin, FALSE for written, a refusal raised (DCB01 over a limit, DCB03 consent unusable).
CREATE OR REPLACE FUNCTION dcbhub_write_answered_charge(
    p_id TEXT, p_partner_id BIGINT, p_ext TEXT, p_fingerprint TEXT, p_status TEXT,
    p_customer TEXT, p_customer_kind TEXT, p_csp_id TEXT, p_account_key TEXT, p_amount BIGINT,
    p_currency TEXT, p_description TEXT, p_product_code TEXT, p_tax_included BOOLEAN,
    p_pin_id TEXT, p_processing_until BIGINT, p_next_check_at BIGINT, p_now BIGINT,
    p_csp_reference TEXT, p_failure_code TEXT,
    p_per_transaction BIGINT, p_per_day BIGINT, p_per_month BIGINT, p_day_start BIGINT,
    p_month_start BIGINT,
    n_id TEXT, n_recipient TEXT, n_recipient_kind TEXT, n_csp_id TEXT, n_channel TEXT,
    n_kind TEXT, n_text TEXT, n_redacted_text TEXT, n_subject TEXT, n_ext TEXT, n_locale TEXT,
    n_status TEXT, n_attempts INTEGER, n_next_attempt_at BIGINT, n_partner_code TEXT
) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    v_code SMALLINT;
BEGIN
    v_code := (dcbhub_write_answered_charges(
        ARRAY[p_id], ARRAY[p_partner_id], ARRAY[p_ext], ARRAY[p_fingerprint], ARRAY[p_status],
        ARRAY[p_customer], ARRAY[p_customer_kind], ARRAY[p_csp_id], ARRAY[p_account_key],
        ARRAY[p_amount], ARRAY[p_currency], ARRAY[p_description], ARRAY[p_product_code],
        ARRAY[p_tax_included], ARRAY[p_pin_id], ARRAY[p_processing_until],
        ARRAY[p_next_check_at], ARRAY[p_now], ARRAY[p_csp_reference], ARRAY[p_failure_code],
        ARRAY[p_per_transaction], ARRAY[p_per_day], ARRAY[p_per_month], ARRAY[p_day_start],
        ARRAY[p_month_start],
        ARRAY[n_id], ARRAY[n_recipient], ARRAY[n_recipient_kind], ARRAY[n_csp_id],
        ARRAY[n_channel], ARRAY[n_kind], ARRAY[n_text], ARRAY[n_redacted_text],
        ARRAY[n_subject], ARRAY[n_ext], ARRAY[n_locale], ARRAY[n_status], ARRAY[n_attempts],
        ARRAY[n_next_attempt_at], ARRAY[n_partner_code]))[1];
    IF v_code = 2 THEN
        RAISE EXCEPTION 'spending limit exceeded' USING ERRCODE = 'DCB01';
    ELSIF v_code = 3 THEN
        RAISE EXCEPTION 'consent unusable' USING ERRCODE = 'DCB03';
    END IF;
    RETURN v_code = 1;
END $$;
