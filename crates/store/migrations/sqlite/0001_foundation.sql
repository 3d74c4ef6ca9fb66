-- Foundation schema: metadata, merchants and their people, exchange rates.
-- Timestamps are UTC milliseconds since the Unix epoch (BIGINT), the same on both backends.

CREATE TABLE meta (
    key         TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE merchants (
    id                          TEXT PRIMARY KEY NOT NULL,
    seq                         BIGINT NOT NULL UNIQUE,
    name                        TEXT NOT NULL,
    currency                    TEXT NOT NULL CHECK (currency IN ('CAD', 'USD', 'CNY')),
    time_zone                   TEXT NOT NULL,
    status                      TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    sign_key_enc                BLOB NOT NULL,
    sign_key_version            BIGINT NOT NULL,
    previous_sign_key_enc       BLOB,
    previous_sign_key_until     BIGINT,
    created_at                  BIGINT NOT NULL,
    updated_at                  BIGINT NOT NULL
);

CREATE TABLE shops (
    id           TEXT PRIMARY KEY NOT NULL,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    number       BIGINT NOT NULL,
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (merchant_id, number)
);

CREATE TABLE operators (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    id           TEXT NOT NULL,
    number       BIGINT NOT NULL,
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, number)
);

CREATE TABLE terminals (
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    terminal_no  TEXT NOT NULL,
    shop_id      TEXT REFERENCES shops (id),
    name         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, terminal_no)
);

CREATE TABLE fx_rates (
    currency    TEXT PRIMARY KEY NOT NULL CHECK (currency IN ('CAD', 'USD', 'CNY')),
    rate_e8     BIGINT NOT NULL CHECK (rate_e8 > 0),
    source      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
