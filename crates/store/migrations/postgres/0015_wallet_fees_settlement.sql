-- The wallets' fees and settlement to merchants in the ledger (issue 15 §5–6,
-- docs/RECONCILIATION.md): postings of kind `wallet_fee` (a bill's fee on one line, between
-- `wallet_fees:<wallet>` and `wallet_clearing:<wallet>`) and `settlement` (a merchant's day
-- moved from `merchant_payable` to `merchant_settled`).

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('payment', 'refund', 'wallet_fee', 'settlement'));

CREATE INDEX ledger_by_time ON ledger_entries (created_at);
