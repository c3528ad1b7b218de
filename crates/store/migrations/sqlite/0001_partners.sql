CREATE TABLE partners (
    id               INTEGER PRIMARY KEY,
    code             TEXT    NOT NULL UNIQUE,
    name             TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('active', 'suspended')),
    consent_policy   TEXT    NOT NULL CHECK (consent_policy IN ('pin', 'none')),
    receipts_enabled INTEGER NOT NULL DEFAULT 1 CHECK (receipts_enabled IN (0, 1)),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    partner_id INTEGER NOT NULL REFERENCES partners (id),
    key_hash   TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE INDEX api_keys_partner ON api_keys (partner_id);

-- Bumped on every change to partners or keys, so every instance can notice cheaply.
CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO config_version (id, version) VALUES (1, 0);
