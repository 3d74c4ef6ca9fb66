-- The till's defences (docs/TILL.md, "Signing in"): wrong PINs are counted per typed
-- (merchant id, operator id), whether those ids exist or not, so that the answers do not tell
-- which ids exist; operators can be disabled.

-- Unanswered or wrong PIN attempts for one typed pair of ids, apart for browsers that have
-- signed in to that merchant before (`known_till`) and all others (`other`), so that guessing
-- from elsewhere cannot lock the shop's own till out. No foreign key: the ids need not exist.
-- An attempt is counted before its PIN is checked and forgotten when it was right, so the count
-- holds across gateway nodes and restarts. Rows whose window and lock are over are deleted.
CREATE TABLE till_pin_attempts (
    merchant_id   TEXT NOT NULL,
    operator_id   TEXT NOT NULL,
    device        TEXT NOT NULL CHECK (device IN ('known_till', 'other')),
    failures      BIGINT NOT NULL,
    window_start  BIGINT NOT NULL,
    locked_until  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, operator_id, device)
);

CREATE INDEX till_pin_attempts_window ON till_pin_attempts (window_start);

-- The lock that replaced it: per operator, for everyone, right PIN or not.
ALTER TABLE operators DROP COLUMN pin_failures;
ALTER TABLE operators DROP COLUMN pin_failure_window_start;
ALTER TABLE operators DROP COLUMN pin_locked_until;

-- A disabled operator cannot sign in to the till, and their sessions end.
ALTER TABLE operators ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'disabled'));
