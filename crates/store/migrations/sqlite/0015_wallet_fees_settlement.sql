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
