-- A charge an in-process CSP (the sandbox) has already answered, written in one call: one
-- round trip in autocommit instead of BEGIN, the PENDING insert, the limit read, the final
-- update and COMMIT, and one row version instead of two (the update of a fresh row rewrote
-- every index entry). The checks are those of `begin_transaction`, in the same order: the
-- account's limit lock is taken with the insert, the insert finds a twin (answers TRUE), and
-- only then are the limits and the consent checked. A refusal raises one of these SQLSTATEs,
-- so the whole call rolls back: DCB01 over a spending limit, DCB03 consent unusable.
-- Each statement of a plpgsql function takes a fresh snapshot, so the day totals read after
-- the lock include what the previous holder committed. Refunds keep the transaction of
-- `begin_transaction`: their CSP is asked with the original locked.
CREATE FUNCTION dcbhub_write_answered_charge(
    p_id TEXT, p_partner_id BIGINT, p_ext TEXT, p_fingerprint TEXT, p_status TEXT,
    p_customer TEXT, p_customer_kind TEXT, p_csp_id TEXT, p_account_key TEXT, p_amount BIGINT,
    p_currency TEXT, p_description TEXT, p_product_code TEXT, p_tax_included BOOLEAN,
    p_pin_id TEXT, p_processing_until BIGINT, p_next_check_at BIGINT, p_now BIGINT,
    p_csp_reference TEXT, p_failure_code TEXT,
    -- The spending windows; all NULL for a charge that is neither checked nor counted.
    p_per_transaction BIGINT, p_per_day BIGINT, p_per_month BIGINT, p_day_start BIGINT,
    p_month_start BIGINT,
    -- The receipt; all NULL for none.
    n_id TEXT, n_recipient TEXT, n_recipient_kind TEXT, n_csp_id TEXT, n_channel TEXT,
    n_kind TEXT, n_text TEXT, n_redacted_text TEXT, n_subject TEXT, n_ext TEXT, n_locale TEXT,
    n_status TEXT, n_attempts INTEGER, n_next_attempt_at BIGINT, n_partner_code TEXT
) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
DECLARE
    v_day BIGINT;
    v_month BIGINT;
    -- A charge counts in its day unless declined.
    v_spend_day BIGINT := CASE WHEN p_status <> 'FAILED' THEN p_day_start END;
BEGIN
    INSERT INTO transactions (id, partner_id, ext_transaction_id, fingerprint, type, status, customer,
        customer_kind, csp_id, account_key, amount_minor, currency, description, product_code, tax_included,
        pin_id, processing_until, next_check_at, created_at, updated_at, spend_day, csp_reference,
        failure_code)
    SELECT p_id, p_partner_id, p_ext, p_fingerprint, 'CHARGE', p_status, p_customer, p_customer_kind,
        p_csp_id, p_account_key, p_amount, p_currency, p_description, p_product_code, p_tax_included,
        p_pin_id, p_processing_until, p_next_check_at, p_now, p_now, v_spend_day, p_csp_reference,
        p_failure_code
    FROM (SELECT CASE WHEN p_day_start IS NOT NULL
                 THEN pg_advisory_xact_lock(hashtextextended('limits:' || p_account_key, 0)) END) AS l
    ON CONFLICT ON CONSTRAINT transactions_idempotency DO NOTHING;
    IF NOT FOUND THEN
        RETURN TRUE;
    END IF;

    IF p_day_start IS NOT NULL THEN
        SELECT COALESCE(SUM(total) FILTER (WHERE day_start >= p_day_start), 0), COALESCE(SUM(total), 0)
        INTO v_day, v_month
        FROM spending_days
        WHERE account_key = p_account_key AND currency = p_currency AND day_start >= p_month_start;
        -- Subtracted, not added: "no limit" is the largest BIGINT.
        IF p_amount > p_per_transaction OR p_amount > p_per_day - v_day OR p_amount > p_per_month - v_month THEN
            RAISE EXCEPTION 'spending limit exceeded' USING ERRCODE = 'DCB01';
        END IF;
    END IF;
    IF p_pin_id IS NOT NULL THEN
        UPDATE pin_challenges SET status = 'CONSUMED', updated_at = p_now
        WHERE id = p_pin_id AND partner_id = p_partner_id AND status = 'VALIDATED'
          AND consent_expires_at > p_now;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'consent unusable' USING ERRCODE = 'DCB03';
        END IF;
    END IF;

    WITH counted AS (
        INSERT INTO spending_days (account_key, currency, day_start, total)
        SELECT p_account_key, p_currency, v_spend_day, p_amount WHERE v_spend_day IS NOT NULL
        ON CONFLICT (account_key, currency, day_start)
        DO UPDATE SET total = spending_days.total + EXCLUDED.total
    )
    INSERT INTO notifications (id, partner_id, recipient, recipient_kind, csp_id, channel, kind, text,
        redacted_text, subject, ext_transaction_id, locale, status, attempts, next_attempt_at, created_at,
        updated_at, partner_code)
    SELECT n_id, p_partner_id, n_recipient, n_recipient_kind, n_csp_id, n_channel, n_kind, n_text,
        n_redacted_text, n_subject, n_ext, n_locale, n_status, n_attempts, n_next_attempt_at, p_now, p_now,
        n_partner_code
    WHERE n_id IS NOT NULL;
    RETURN FALSE;
END $$;

-- The tables written with every request no longer check their partner by foreign key: the
-- check locked the partner's row (FOR KEY SHARE) in every charge, which under load became
-- MultiXact traffic on one row (a charge's insert took 60% longer with it). The hub writes
-- only the id of the partner it authenticated, and partners are never deleted, which the
-- trigger below now guarantees instead. SQLite keeps its foreign keys (a check there is an
-- index probe under the one writer).
ALTER TABLE transactions DROP CONSTRAINT transactions_partner_id_fkey;
ALTER TABLE notifications DROP CONSTRAINT notifications_partner_id_fkey;
ALTER TABLE pin_challenges DROP CONSTRAINT pin_challenges_partner_id_fkey;

CREATE FUNCTION partners_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'partners are suspended, never deleted or renumbered';
END $$;
CREATE TRIGGER partners_are_kept BEFORE DELETE OR UPDATE OF id ON partners
FOR EACH ROW EXECUTE FUNCTION partners_are_kept();
CREATE TRIGGER partners_are_kept_truncate BEFORE TRUNCATE ON partners
FOR EACH STATEMENT EXECUTE FUNCTION partners_are_kept();
