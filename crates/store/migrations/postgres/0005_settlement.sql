-- Settlement: models per partner (and optionally per product code), tax rates per CSP,
-- statements per partner and period with their lines. A FINAL statement and its lines never
-- change: the triggers below refuse it, whatever code runs against the database.

-- Statements aggregate one partner's successful transactions over a time range.
CREATE INDEX transactions_settlement ON transactions (partner_id, status, created_at);

-- `valid_from` inclusive, `valid_to` exclusive (NULL: open-ended), Unix ms. A row with a
-- `product_code` wins over the partner's default (NULL `product_code`).
CREATE TABLE settlement_models (
    id            BIGSERIAL PRIMARY KEY,
    partner_id    BIGINT  NOT NULL REFERENCES partners (id),
    product_code  TEXT,
    kind          TEXT    NOT NULL CHECK (kind IN ('REVENUE_SHARE', 'FLAT_COST')),
    share_bp      BIGINT  CHECK (share_bp BETWEEN 0 AND 10000),
    flat_minor    BIGINT  CHECK (flat_minor >= 0),
    flat_currency TEXT,
    valid_from    BIGINT  NOT NULL,
    valid_to      BIGINT  CHECK (valid_to > valid_from),
    created_at    BIGINT  NOT NULL,
    CHECK ((kind = 'REVENUE_SHARE' AND share_bp IS NOT NULL AND flat_minor IS NULL AND flat_currency IS NULL)
        OR (kind = 'FLAT_COST' AND share_bp IS NULL AND flat_minor IS NOT NULL AND flat_currency IS NOT NULL))
);

CREATE INDEX settlement_models_partner ON settlement_models (partner_id, product_code, valid_from);

-- Tax rate of a CSP in basis points (2000 = 20.00 %), in force from `valid_from` until the
-- next row of the same CSP.
CREATE TABLE csp_tax_rates (
    csp_id     TEXT   NOT NULL,
    valid_from BIGINT NOT NULL,
    rate_bp    BIGINT NOT NULL CHECK (rate_bp BETWEEN 0 AND 100000),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (csp_id, valid_from)
);

-- Bumped by every change to models or tax rates (same table as on SQLite, where statements
-- are computed on a snapshot and must tell whether their inputs moved).
CREATE TABLE settlement_inputs_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO settlement_inputs_version (id, version) VALUES (1, 0);

CREATE TABLE settlement_statements (
    id           BIGSERIAL PRIMARY KEY,
    partner_id   BIGINT NOT NULL REFERENCES partners (id),
    period_from  BIGINT NOT NULL,
    period_to    BIGINT NOT NULL CHECK (period_to > period_from),
    status       TEXT   NOT NULL CHECK (status IN ('DRAFT', 'FINAL')),
    revision     BIGINT NOT NULL,
    computed_at  BIGINT NOT NULL,
    finalised_at BIGINT,
    created_at   BIGINT NOT NULL,
    CONSTRAINT settlement_statements_period UNIQUE (partner_id, period_from, period_to),
    CHECK ((status = 'FINAL') = (finalised_at IS NOT NULL))
);

CREATE TABLE settlement_lines (
    statement_id    BIGINT NOT NULL REFERENCES settlement_statements (id),
    line_no         BIGINT NOT NULL,
    kind            TEXT   NOT NULL CHECK (kind IN ('charges', 'adjustment')),
    currency        TEXT   NOT NULL,
    product_code    TEXT,
    model_id        BIGINT REFERENCES settlement_models (id),
    model_kind      TEXT   CHECK (model_kind IN ('REVENUE_SHARE', 'FLAT_COST')),
    share_bp        BIGINT,
    flat_minor      BIGINT,
    flat_currency   TEXT,
    tax_rate_bp     BIGINT NOT NULL,
    charges         BIGINT NOT NULL CHECK (charges >= 0),
    refunds         BIGINT NOT NULL CHECK (refunds >= 0),
    gross_minor     BIGINT NOT NULL,
    refunded_minor  BIGINT NOT NULL,
    net_minor       BIGINT NOT NULL,
    tax_minor       BIGINT NOT NULL,
    csp_share_minor BIGINT NOT NULL,
    payout_minor    BIGINT NOT NULL,
    issue           TEXT   CHECK (issue IN ('no-model', 'currency-mismatch')),
    PRIMARY KEY (statement_id, line_no),
    -- The statement's arithmetic holds in every row.
    CHECK (net_minor = gross_minor - refunded_minor),
    CHECK (net_minor = tax_minor + csp_share_minor + payout_minor)
);

-- No two models of one partner and product (or two defaults) in force at the same time; only
-- `valid_to` may move (a newer model supersedes an open-ended one). The code also takes a
-- lock before writing models, so concurrent writers cannot both pass this check.
CREATE FUNCTION settlement_models_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.partner_id <> OLD.partner_id
        OR NEW.product_code IS DISTINCT FROM OLD.product_code OR NEW.kind <> OLD.kind
        OR NEW.share_bp IS DISTINCT FROM OLD.share_bp OR NEW.flat_minor IS DISTINCT FROM OLD.flat_minor
        OR NEW.flat_currency IS DISTINCT FROM OLD.flat_currency OR NEW.valid_from <> OLD.valid_from) THEN
        RAISE EXCEPTION 'settlement model terms cannot change';
    END IF;
    IF EXISTS (SELECT 1 FROM settlement_models m
               WHERE m.id <> NEW.id AND m.partner_id = NEW.partner_id
                 AND m.product_code IS NOT DISTINCT FROM NEW.product_code
                 AND (m.valid_to IS NULL OR m.valid_to > NEW.valid_from)
                 AND (NEW.valid_to IS NULL OR NEW.valid_to > m.valid_from)) THEN
        RAISE EXCEPTION 'settlement models overlap';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_models_guard BEFORE INSERT OR UPDATE ON settlement_models
FOR EACH ROW EXECUTE FUNCTION settlement_models_guard();

CREATE FUNCTION settlement_inputs_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE settlement_inputs_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END $$;
CREATE TRIGGER settlement_models_version AFTER INSERT OR UPDATE OR DELETE ON settlement_models
FOR EACH STATEMENT EXECUTE FUNCTION settlement_inputs_bump();
CREATE TRIGGER csp_tax_rates_version AFTER INSERT OR UPDATE OR DELETE ON csp_tax_rates
FOR EACH STATEMENT EXECUTE FUNCTION settlement_inputs_bump();

-- FINAL is final: neither the statement nor its lines can be changed or removed.
CREATE FUNCTION settlement_statements_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'FINAL' THEN
        RAISE EXCEPTION 'settlement statement is final';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_statements_final BEFORE UPDATE OR DELETE ON settlement_statements
FOR EACH ROW EXECUTE FUNCTION settlement_statements_final();

CREATE FUNCTION settlement_lines_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND EXISTS (
        SELECT 1 FROM settlement_statements WHERE id = OLD.statement_id AND status = 'FINAL') THEN
        RAISE EXCEPTION 'settlement statement is final';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND EXISTS (
        SELECT 1 FROM settlement_statements WHERE id = NEW.statement_id AND status = 'FINAL') THEN
        RAISE EXCEPTION 'settlement statement is final';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER settlement_lines_final BEFORE INSERT OR UPDATE OR DELETE ON settlement_lines
FOR EACH ROW EXECUTE FUNCTION settlement_lines_final();

-- TRUNCATE skips row triggers; refuse it while any statement is final.
CREATE FUNCTION settlement_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM settlement_statements WHERE status = 'FINAL') THEN
        RAISE EXCEPTION 'settlement statement is final';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER settlement_statements_no_truncate BEFORE TRUNCATE ON settlement_statements
FOR EACH STATEMENT EXECUTE FUNCTION settlement_no_truncate();
CREATE TRIGGER settlement_lines_no_truncate BEFORE TRUNCATE ON settlement_lines
FOR EACH STATEMENT EXECUTE FUNCTION settlement_no_truncate();
