CREATE TABLE partners (
    id               BIGSERIAL PRIMARY KEY,
    code             TEXT      NOT NULL UNIQUE,
    name             TEXT      NOT NULL,
    status           TEXT      NOT NULL CHECK (status IN ('active', 'suspended')),
    consent_policy   TEXT      NOT NULL CHECK (consent_policy IN ('pin', 'none')),
    receipts_enabled BOOLEAN   NOT NULL DEFAULT TRUE,
    created_at       BIGINT    NOT NULL,
    updated_at       BIGINT    NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT   PRIMARY KEY,
    partner_id BIGINT NOT NULL REFERENCES partners (id),
    key_hash   TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX api_keys_partner ON api_keys (partner_id);

-- Bumped on every change to partners or keys, so every instance can notice cheaply.
CREATE TABLE config_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT  NOT NULL
);
INSERT INTO config_version (id, version) VALUES (1, 0);
