-- The web console (`/console`, docs/CONSOLE.md): its users and their roles, their sign-in
-- sessions, the audit log of every change made from it, and the indexes its pages page on.

-- A person who signs in to the console with an email and a password. Provider roles see every
-- merchant and have no merchant; merchant roles belong to exactly one merchant.
-- `password_hash` is an argon2 PHC string, NULL until the person opens their one-time sign-in
-- link (`setup_token_hash`, the SHA-256 of the link's token, valid until `setup_expires_at`).
-- `totp_secret_enc` is the RFC 6238 secret sealed under the master key; `totp_last_step` is
-- the last time step a code was accepted for, so that a code is never accepted twice.
CREATE TABLE console_users (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    email                  TEXT NOT NULL UNIQUE,
    role                   TEXT NOT NULL CHECK (role IN ('provider_admin', 'provider_support', 'merchant_owner', 'merchant_staff')),
    merchant_id            TEXT REFERENCES merchants (id),
    status                 TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    password_hash          TEXT,
    setup_token_hash       TEXT UNIQUE,
    setup_expires_at       BIGINT,
    totp_secret_enc        BLOB,
    totp_enabled           BIGINT NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    totp_last_step         BIGINT,
    failures               BIGINT NOT NULL DEFAULT 0,
    failure_window_start   BIGINT,
    locked_until           BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    CHECK ((role IN ('provider_admin', 'provider_support')) = (merchant_id IS NULL))
);

CREATE INDEX console_users_by_merchant ON console_users (merchant_id);

-- One row per signed-in browser. `token_hash` is the SHA-256 of the cookie's random token. A
-- session whose user has a second factor is `pending_totp` = 1 until the code is given, and
-- opens nothing else meanwhile. It ends at `expires_at`, after 30 minutes unused, at sign-out
-- or when its user is disabled (the rows are deleted).
CREATE TABLE console_sessions (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    user_id       BIGINT NOT NULL REFERENCES console_users (id),
    pending_totp  BIGINT NOT NULL CHECK (pending_totp IN (0, 1)),
    ip            TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE INDEX console_sessions_by_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Every change made from the console or by the console's CLI commands: who (the user, or
-- NULL and `actor` = 'cli'), what, when, from which address, and the state before and after
-- as JSON (never a password, a key or a secret). `merchant_id` is the merchant the change
-- concerns, so that a merchant's owner sees theirs.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      BIGINT REFERENCES console_users (id),
    actor        TEXT NOT NULL,
    merchant_id  TEXT REFERENCES merchants (id),
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    ip           TEXT NOT NULL,
    before_json  TEXT,
    after_json   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX audit_log_by_merchant ON audit_log (merchant_id, id);

-- The console's order list pages by (created_at, key) within a merchant, newest first; it
-- finds an order by the wallet's reference; its exports page refunds the same way; wallet
-- health reads the last hour of wallet calls.
CREATE INDEX orders_by_merchant_time_key ON orders (merchant_id, created_at, key);
CREATE INDEX orders_by_channel_ref ON orders (merchant_id, channel_ref);
CREATE INDEX refunds_by_merchant_time_key ON refunds (merchant_id, created_at, key);
CREATE INDEX order_events_by_time ON order_events (created_at);
