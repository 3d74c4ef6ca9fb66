-- The web till (`/pos`, docs/TILL.md): operators' PINs, the lockout after wrong PINs, and
-- sign-in sessions.

-- An argon2 PHC string (`$argon2id$v=19$…`), never the PIN; NULL until the provider sets one
-- with `qrgate operator set-pin`, and until then the operator cannot sign in to the till.
ALTER TABLE operators ADD COLUMN pin_hash TEXT;
-- Wrong PINs in the current five-minute window, when the window began, and until when sign-in
-- is refused after the fifth. Kept in the database so that the count holds across restarts
-- and across gateway nodes.
ALTER TABLE operators ADD COLUMN pin_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE operators ADD COLUMN pin_failure_window_start BIGINT;
ALTER TABLE operators ADD COLUMN pin_locked_until BIGINT;

-- One row per signed-in till. `token_hash` is the SHA-256 of the cookie's random token, so a
-- copy of the database signs nobody in. A session ends at `expires_at` (12 h after sign-in),
-- or 30 minutes after `last_seen_at`, or at sign-out (the row is deleted).
CREATE TABLE till_sessions (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    merchant_id   TEXT NOT NULL REFERENCES merchants (id),
    operator_id   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    FOREIGN KEY (merchant_id, operator_id) REFERENCES operators (merchant_id, id)
);

CREATE INDEX till_sessions_expiry ON till_sessions (expires_at);

-- Today's transactions on the till: a merchant's orders by time.
CREATE INDEX orders_by_merchant_time ON orders (merchant_id, created_at);
