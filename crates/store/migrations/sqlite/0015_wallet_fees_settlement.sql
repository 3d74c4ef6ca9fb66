-- The wallets' fees and settlement to merchants in the ledger (issue 15 §5–6,
-- docs/RECONCILIATION.md): postings of kind `wallet_fee` (a bill's fee on one line, between
-- `wallet_fees:<wallet>` and `wallet_clearing:<wallet>`) and `settlement` (a merchant's day
-- moved from `merchant_payable` to `merchant_settled`). SQLite cannot change a CHECK in
-- place: the table is rebuilt with the same rows and ids.

CREATE TABLE ledger_entries_0015 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    txn           TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('payment', 'refund', 'wallet_fee', 'settlement')),
    account       TEXT NOT NULL,
    currency      TEXT NOT NULL CHECK (currency IN ('CAD', 'USD', 'CNY')),
    amount        BIGINT NOT NULL,
    payer_amount  BIGINT,
    order_key     TEXT NOT NULL REFERENCES orders (key),
    refund_key    TEXT REFERENCES refunds (key),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (txn, account)
);

INSERT INTO ledger_entries_0015 (id, txn, kind, account, currency, amount, payer_amount,
                                 order_key, refund_key, created_at, updated_at)
SELECT id, txn, kind, account, currency, amount, payer_amount, order_key, refund_key,
       created_at, updated_at
FROM ledger_entries;

DROP TABLE ledger_entries;
ALTER TABLE ledger_entries_0015 RENAME TO ledger_entries;

CREATE INDEX ledger_by_account ON ledger_entries (account);
CREATE INDEX ledger_by_order ON ledger_entries (order_key);
CREATE INDEX ledger_by_time ON ledger_entries (created_at);

-- A merchant's settled day in one currency (the merchant's time zone): the statement's
-- figures, fixed when written. `statement_id` names it on the statement and the payout file.
CREATE TABLE settlements (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    statement_id  TEXT NOT NULL UNIQUE,
    merchant_id   TEXT NOT NULL REFERENCES merchants (id),
    day           TEXT NOT NULL,
    currency      TEXT NOT NULL CHECK (currency IN ('CAD', 'USD', 'CNY')),
    gross         BIGINT NOT NULL,
    refunds       BIGINT NOT NULL,
    fees          BIGINT NOT NULL,
    net           BIGINT NOT NULL,
    lines         BIGINT NOT NULL,
    run_by        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (merchant_id, day, currency),
    CHECK (net = gross - refunds - fees)
);

-- The statement's lines: each payment or refund posting settled, once (`posting_txn` is
-- unique), with what it moved for the merchant.
CREATE TABLE settlement_lines (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    statement_id  TEXT NOT NULL REFERENCES settlements (statement_id),
    posting_txn   TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
    order_key     TEXT NOT NULL REFERENCES orders (key),
    refund_key    TEXT REFERENCES refunds (key),
    merchant_order_id TEXT NOT NULL,
    wallet        TEXT NOT NULL CHECK (wallet IN ('wechatpay', 'alipay', 'unionpay')),
    gross         BIGINT NOT NULL,
    fee           BIGINT NOT NULL,
    net           BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

CREATE INDEX settlement_lines_by_statement ON settlement_lines (statement_id);

-- The daily reconciliation job (`serve`): one row per wallet and bill day, due at
-- `next_attempt_at` (NULL once done or given up), claimed like the loops' rows (holder and
-- lease) so that one node among several runs it.
CREATE TABLE recon_schedule (
    key              TEXT PRIMARY KEY NOT NULL,
    wallet           TEXT NOT NULL CHECK (wallet IN ('wechatpay', 'alipay', 'unionpay')),
    day              TEXT NOT NULL,
    next_attempt_at  BIGINT,
    attempts         BIGINT NOT NULL DEFAULT 0,
    last_error       TEXT,
    claimed_by       TEXT,
    claimed_until    BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE INDEX recon_schedule_due ON recon_schedule (next_attempt_at);
