-- Settlement: models per partner (and optionally per product code), tax rates per CSP,
-- statements per partner and period with their lines. A FINAL statement and its lines never
-- change: the triggers below refuse it, whatever code runs against the database.

-- Statements aggregate one partner's successful transactions over a time range.
CREATE INDEX transactions_settlement ON transactions (partner_id, status, created_at);

-- `valid_from` inclusive, `valid_to` exclusive (NULL: open-ended), Unix ms. A row with a
-- `product_code` wins over the partner's default (NULL `product_code`).
CREATE TABLE settlement_models (
    id            INTEGER PRIMARY KEY,
    partner_id    INTEGER NOT NULL REFERENCES partners (id),
    product_code  TEXT,
    kind          TEXT    NOT NULL CHECK (kind IN ('REVENUE_SHARE', 'FLAT_COST')),
    share_bp      INTEGER CHECK (share_bp BETWEEN 0 AND 10000),
    flat_minor    INTEGER CHECK (flat_minor >= 0),
    flat_currency TEXT,
    valid_from    INTEGER NOT NULL,
    valid_to      INTEGER CHECK (valid_to > valid_from),
    created_at    INTEGER NOT NULL,
    CHECK ((kind = 'REVENUE_SHARE' AND share_bp IS NOT NULL AND flat_minor IS NULL AND flat_currency IS NULL)
        OR (kind = 'FLAT_COST' AND share_bp IS NULL AND flat_minor IS NOT NULL AND flat_currency IS NOT NULL))
) STRICT;

CREATE INDEX settlement_models_partner ON settlement_models (partner_id, product_code, valid_from);

-- Tax rate of a CSP in basis points (2000 = 20.00 %), in force from `valid_from` until the
-- next row of the same CSP.
CREATE TABLE csp_tax_rates (
    csp_id     TEXT    NOT NULL,
    valid_from INTEGER NOT NULL,
    rate_bp    INTEGER NOT NULL CHECK (rate_bp BETWEEN 0 AND 100000),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (csp_id, valid_from)
) STRICT;

-- Bumped by every change to models or tax rates, so a statement computed on a snapshot
-- can tell whether its inputs moved before it is written.
CREATE TABLE settlement_inputs_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO settlement_inputs_version (id, version) VALUES (1, 0);

CREATE TABLE settlement_statements (
    id           INTEGER PRIMARY KEY,
    partner_id   INTEGER NOT NULL REFERENCES partners (id),
    period_from  INTEGER NOT NULL,
    period_to    INTEGER NOT NULL CHECK (period_to > period_from),
    status       TEXT    NOT NULL CHECK (status IN ('DRAFT', 'FINAL')),
    revision     INTEGER NOT NULL,
    computed_at  INTEGER NOT NULL,
    finalised_at INTEGER,
    created_at   INTEGER NOT NULL,
    CONSTRAINT settlement_statements_period UNIQUE (partner_id, period_from, period_to),
    CHECK ((status = 'FINAL') = (finalised_at IS NOT NULL))
) STRICT;

CREATE TABLE settlement_lines (
    statement_id    INTEGER NOT NULL REFERENCES settlement_statements (id),
    line_no         INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('charges', 'adjustment')),
    currency        TEXT    NOT NULL,
    product_code    TEXT,
    model_id        INTEGER REFERENCES settlement_models (id),
    model_kind      TEXT    CHECK (model_kind IN ('REVENUE_SHARE', 'FLAT_COST')),
    share_bp        INTEGER,
    flat_minor      INTEGER,
    flat_currency   TEXT,
    tax_rate_bp     INTEGER NOT NULL,
    charges         INTEGER NOT NULL CHECK (charges >= 0),
    refunds         INTEGER NOT NULL CHECK (refunds >= 0),
    gross_minor     INTEGER NOT NULL,
    refunded_minor  INTEGER NOT NULL,
    net_minor       INTEGER NOT NULL,
    tax_minor       INTEGER NOT NULL,
    csp_share_minor INTEGER NOT NULL,
    payout_minor    INTEGER NOT NULL,
    issue           TEXT    CHECK (issue IN ('no-model', 'currency-mismatch')),
    PRIMARY KEY (statement_id, line_no),
    -- The statement's arithmetic holds in every row.
    CHECK (net_minor = gross_minor - refunded_minor),
    CHECK (net_minor = tax_minor + csp_share_minor + payout_minor)
) STRICT;

-- No two models of one partner and product (or two defaults) in force at the same time.
CREATE TRIGGER settlement_models_no_overlap_insert BEFORE INSERT ON settlement_models
WHEN EXISTS (SELECT 1 FROM settlement_models m
             WHERE m.partner_id = NEW.partner_id AND m.product_code IS NEW.product_code
               AND (m.valid_to IS NULL OR m.valid_to > NEW.valid_from)
               AND (NEW.valid_to IS NULL OR NEW.valid_to > m.valid_from))
BEGIN
    SELECT RAISE(ABORT, 'settlement models overlap');
END;

-- Only `valid_to` may move (a newer model supersedes an open-ended one).
CREATE TRIGGER settlement_models_terms_fixed BEFORE UPDATE OF partner_id, product_code, kind, share_bp,
    flat_minor, flat_currency, valid_from ON settlement_models
BEGIN
    SELECT RAISE(ABORT, 'settlement model terms cannot change');
END;

CREATE TRIGGER settlement_models_no_overlap_update BEFORE UPDATE OF valid_to ON settlement_models
WHEN EXISTS (SELECT 1 FROM settlement_models m
             WHERE m.id <> NEW.id AND m.partner_id = NEW.partner_id AND m.product_code IS NEW.product_code
               AND (m.valid_to IS NULL OR m.valid_to > NEW.valid_from)
               AND (NEW.valid_to IS NULL OR NEW.valid_to > m.valid_from))
BEGIN
    SELECT RAISE(ABORT, 'settlement models overlap');
END;

CREATE TRIGGER settlement_models_version_insert AFTER INSERT ON settlement_models
BEGIN
    UPDATE settlement_inputs_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER settlement_models_version_update AFTER UPDATE ON settlement_models
BEGIN
    UPDATE settlement_inputs_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER settlement_models_version_delete AFTER DELETE ON settlement_models
BEGIN
    UPDATE settlement_inputs_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER csp_tax_rates_version_insert AFTER INSERT ON csp_tax_rates
BEGIN
    UPDATE settlement_inputs_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER csp_tax_rates_version_update AFTER UPDATE ON csp_tax_rates
BEGIN
    UPDATE settlement_inputs_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER csp_tax_rates_version_delete AFTER DELETE ON csp_tax_rates
BEGIN
    UPDATE settlement_inputs_version SET version = version + 1 WHERE id = 1;
END;

-- FINAL is final: neither the statement nor its lines can be changed or removed.
CREATE TRIGGER settlement_statements_final_update BEFORE UPDATE ON settlement_statements
WHEN OLD.status = 'FINAL'
BEGIN
    SELECT RAISE(ABORT, 'settlement statement is final');
END;

CREATE TRIGGER settlement_statements_final_delete BEFORE DELETE ON settlement_statements
WHEN OLD.status = 'FINAL'
BEGIN
    SELECT RAISE(ABORT, 'settlement statement is final');
END;

CREATE TRIGGER settlement_lines_final_insert BEFORE INSERT ON settlement_lines
WHEN (SELECT status FROM settlement_statements WHERE id = NEW.statement_id) = 'FINAL'
BEGIN
    SELECT RAISE(ABORT, 'settlement statement is final');
END;

CREATE TRIGGER settlement_lines_final_update BEFORE UPDATE ON settlement_lines
WHEN (SELECT status FROM settlement_statements WHERE id = OLD.statement_id) = 'FINAL'
  OR (SELECT status FROM settlement_statements WHERE id = NEW.statement_id) = 'FINAL'
BEGIN
    SELECT RAISE(ABORT, 'settlement statement is final');
END;

CREATE TRIGGER settlement_lines_final_delete BEFORE DELETE ON settlement_lines
WHEN (SELECT status FROM settlement_statements WHERE id = OLD.statement_id) = 'FINAL'
BEGIN
    SELECT RAISE(ABORT, 'settlement statement is final');
END;
