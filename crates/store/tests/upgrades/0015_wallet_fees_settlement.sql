-- Schema 0015 (the wallets' fees in the ledger): the WeChat Pay bill line of a payment paid in
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
