-- Reconciliation (issue 15, docs/RECONCILIATION.md): each run of a wallet's bill of one day,
-- the bill's lines as matched, and the breaks found.

-- One run of one wallet's bill day. `outcome`: `reconciled` (the lines were matched),
-- `no_bill` (the wallet has no bill: nothing traded), `totals_mismatch` (the file's own
-- summary disagrees with its lines: recorded, not matched). The file is kept as downloaded
-- with its SHA-256 (hex). Counts of both sides; `bill_totals` and `our_totals` are the sums by
-- currency in words, for people (`CAD 12.34, CNY 5.00`).
CREATE TABLE recon_runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet         TEXT NOT NULL CHECK (wallet IN ('wechatpay', 'alipay', 'unionpay')),
    day            TEXT NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('reconciled', 'no_bill', 'totals_mismatch')),
    file_name      TEXT,
    file_bytes     BLOB,
    file_sha256    TEXT,
    bill_lines     BIGINT NOT NULL,
    bill_totals    TEXT NOT NULL,
    our_items      BIGINT NOT NULL,
    our_totals     TEXT NOT NULL,
    matched        BIGINT NOT NULL,
    held           BIGINT NOT NULL,
    breaks_found   BIGINT NOT NULL,
    worked         BIGINT NOT NULL,
    run_by         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE INDEX recon_runs_by_day ON recon_runs (wallet, day);

-- The lines of the newest run of a wallet's bill day (replaced when the day is run again).
-- `subject` is our number the line names: the order's key (payment, reversal) or the
-- refund's key (refund); else the wallet's number. `fee_milli` is the fee in thousandths of
-- a minor unit of `currency`, signed from the merchant's side.
CREATE TABLE recon_lines (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet      TEXT NOT NULL CHECK (wallet IN ('wechatpay', 'alipay', 'unionpay')),
    day         TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('payment', 'refund', 'reversal')),
    subject     TEXT NOT NULL,
    order_key   TEXT,
    wallet_ref  TEXT NOT NULL,
    currency    TEXT NOT NULL,
    amount      BIGINT NOT NULL,
    fee_milli   BIGINT,
    status      TEXT NOT NULL CHECK (status IN ('succeeded', 'processing', 'failed', 'unknown')),
    at          BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX recon_lines_by_day ON recon_lines (wallet, day);
CREATE INDEX recon_lines_by_subject ON recon_lines (wallet, subject);

-- A difference between a bill and our records. One per (wallet, kind, subject): running a
-- day again finds the same break and adds none. `status`: `open` (waits for a person),
-- `worked` (the gateway settled it itself; `note` says how), `resolved` (a person accepted
-- it: `resolved_by`, `note`, `resolved_at`).
CREATE TABLE recon_breaks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    wallet       TEXT NOT NULL CHECK (wallet IN ('wechatpay', 'alipay', 'unionpay')),
    day          TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('missing_at_wallet', 'missing_at_ours', 'amount', 'status', 'fee', 'currency', 'totals')),
    subject      TEXT NOT NULL,
    order_key    TEXT,
    refund_key   TEXT,
    wallet_ref   TEXT,
    ours         TEXT NOT NULL,
    theirs       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('open', 'worked', 'resolved')),
    note         TEXT,
    resolved_by  TEXT,
    resolved_at  BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (wallet, kind, subject)
);

CREATE INDEX recon_breaks_by_day ON recon_breaks (day, wallet);
