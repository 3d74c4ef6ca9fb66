-- Schema 0015 (the wallets' fees in the ledger, settlement): the WeChat Pay bill line of a payment paid in
-- the 0007 fixture, and the fee that bill states posted between the wallet's fees and its
-- clearing account. Times: 2026-11-15 02:00 UTC = 1794708000000.

INSERT INTO recon_lines (wallet, day, kind, subject, order_key, wallet_ref, currency, amount,
                         fee_milli, status, at, created_at, updated_at)
VALUES
    ('wechatpay', '2026-11-07', 'payment', 'Q261107090000UUUUUUUUUUUU', 'Q261107090000UUUUUUUUUUUU',
     '4200000007202611070001', 'CAD', 1100, 7000, 'succeeded', 1794387600000, 1794708000000,
     1794708000000);

INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, order_key,
                            refund_key, created_at, updated_at)
VALUES
    ('wallet_fee:wechatpay:payment:Q261107090000UUUUUUUUUUUU', 'wallet_fee', 'wallet_fees:wechatpay',
     'CAD', 7, NULL, 'Q261107090000UUUUUUUUUUUU', NULL, 1794708000000, 1794708000000),
    ('wallet_fee:wechatpay:payment:Q261107090000UUUUUUUUUUUU', 'wallet_fee',
     'wallet_clearing:wechatpay', 'CAD', -7, NULL, 'Q261107090000UUUUUUUUUUUU', NULL,
     1794708000000, 1794708000000);

-- The day of the till sale of the 0008 fixture settled: its statement, its line and the
-- settlement posting moving what it left payable to the merchant's settled account.
INSERT INTO settlements (statement_id, merchant_id, day, currency, gross, refunds, fees, net,
                         lines, run_by, created_at, updated_at)
VALUES
    ('ST-ON00000001-20261108-CAD', 'ON00000001', '2026-11-08', 'CAD', 2000, 0, 12, 1988, 1,
     'cli:ops', 1794708060000, 1794708060000);

INSERT INTO settlement_lines (statement_id, posting_txn, kind, order_key, refund_key,
                              merchant_order_id, wallet, gross, fee, net, at, created_at,
                              updated_at)
VALUES
    ('ST-ON00000001-20261108-CAD', 'payment:Q261108090000ABCDEFGHJKLM', 'payment',
     'Q261108090000ABCDEFGHJKLM', NULL, 'T8001', 'alipay', 2000, 12, 1988, 1794128461000,
     1794708060000, 1794708060000);

INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, order_key,
                            refund_key, created_at, updated_at)
VALUES
    ('settlement:payment:Q261108090000ABCDEFGHJKLM', 'settlement', 'merchant_payable:ON00000001',
     'CAD', 1988, NULL, 'Q261108090000ABCDEFGHJKLM', NULL, 1794708060000, 1794708060000),
    ('settlement:payment:Q261108090000ABCDEFGHJKLM', 'settlement', 'merchant_settled:ON00000001',
     'CAD', -1988, NULL, 'Q261108090000ABCDEFGHJKLM', NULL, 1794708060000, 1794708060000);

-- The daily job: a day reconciled, and one waiting for its bill after two "not ready" answers.
INSERT INTO recon_schedule (key, wallet, day, next_attempt_at, attempts, last_error, claimed_by,
                            claimed_until, created_at, updated_at)
VALUES
    ('wechatpay:2026-11-13', 'wechatpay', '2026-11-13', NULL, 1, NULL, NULL, NULL,
     1794621600000, 1794621600000),
    ('unionpay:2026-11-14', 'unionpay', '2026-11-14', 1794715200000, 2,
     'the unionpay bill of 2026-11-14 is not ready yet: 98', NULL, NULL, 1794708000000,
     1794711600000);
