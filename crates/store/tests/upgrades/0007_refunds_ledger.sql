-- Schema 0007 (refunds and the ledger): a merchant fee, a payment posted with its fee and
-- partly refunded (docs/LEDGER.md's worked example), a full refund of an order paid before the
-- ledger (posted by 0007's backfill, without a fee), a refund in progress, a failed one, a
-- payment without CNY amount, and the wallets' published rates. Postings are as the 0007 code
-- wrote them: zero-amount lines are left out.
-- Times: 2026-11-07 09:00 UTC = 1794042000000.

UPDATE merchants SET fee_bps = 60, updated_at = 1794042000000 WHERE id = 'ON00000001';

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at, code_url, expires_at, call_back_url, refund_reserved, refunded)
VALUES
    ('Q261107090000UUUUUUUUUUUU', 'ON00000001', 'A7001', 'passive', 'wechatpay', 'CAD', 1000, 100,
     5720, 520000000, '0000000001', 'TILL-1', NULL, 'paid', NULL, NULL,
     '4200000001202611070000000005', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1794042001000, 1794042000000,
     NULL, NULL, NULL, '93a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182',
     1794042000000, 1794043800000, NULL, NULL, NULL, 300, 300),
    ('Q261107090100ZZZZZZZZZZZZ', 'QC00000002', 'B7001', 'passive', 'unionpay', 'USD', 2000, 0,
     NULL, NULL, NULL, 'pos_7.a', NULL, 'paid', NULL, NULL,
     '102611070901000000002', NULL, 1794042061000, 1794042060000,
     NULL, NULL, NULL, 'a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293',
     1794042060000, 1794042061000, NULL, NULL, NULL, 0, 0);

-- The full refund and the refund in progress hold their amounts on orders of schema 0002.
UPDATE orders SET refund_reserved = 1100, refunded = 1100, updated_at = 1794043860000
WHERE key = 'Q261102090000AAAAAAAAAAAA';
UPDATE orders SET refund_reserved = 550, updated_at = 1794043920000
WHERE key = 'Q261102090100BBBBBBBBBBBB';

INSERT INTO refunds (key, merchant_id, refund_order_id, order_key, wallet, currency, amount,
                     cny_amount, status, wallet_code, wallet_message, channel_ref, sends,
                     operator_id, request_digest, wallet_created_at, next_check_at, claimed_by,
                     claimed_until, finished_at, created_at, updated_at)
VALUES
    ('R261107093000VVVVVVVVVVVV', 'ON00000001', 'RF7001', 'Q261107090000UUUUUUUUUUUU',
     'wechatpay', 'CAD', 300, 1560, 'succeeded', NULL, NULL, '50000001202611070000000001', 1,
     '0000000001', 'b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4',
     1794043800000, NULL, NULL, NULL, 1794043801000, 1794043800000, 1794043801000),
    ('R261107093100WWWWWWWWWWWW', 'ON00000001', 'RF7002', 'Q261102090000AAAAAAAAAAAA',
     'wechatpay', 'CAD', 1100, 5720, 'succeeded', NULL, NULL, '50000001202611070000000002', 1,
     NULL, 'c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5',
     1794043860000, NULL, NULL, NULL, 1794043860000, 1794043860000, 1794043860000),
    ('R261107093200XXXXXXXXXXXX', 'ON00000001', 'RF7003', 'Q261102090100BBBBBBBBBBBB',
     'alipay', 'CAD', 550, NULL, 'processing', 'SYSTEM_ERROR', 'system busy', NULL, 2,
     NULL, 'd7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6',
     1794043920000, 1794043980000, NULL, NULL, NULL, 1794043920000, 1794043950000),
    ('R261107093300YYYYYYYYYYYY', 'QC00000002', 'RF7004', 'Q261102090400EEEEEEEEEEEE',
     'unionpay', 'USD', 4500, NULL, 'failed', '3100', 'refund refused', NULL, 1,
     NULL, 'e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7',
     1794043980000, NULL, NULL, NULL, 1794043981000, 1794043980000, 1794043981000);

INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, order_key,
                            refund_key, created_at, updated_at)
VALUES
    ('payment:Q261107090000UUUUUUUUUUUU', 'payment', 'wallet_clearing:wechatpay', 'CAD', 1100,
     5720, 'Q261107090000UUUUUUUUUUUU', NULL, 1794042001000, 1794042001000),
    ('payment:Q261107090000UUUUUUUUUUUU', 'payment', 'merchant_payable:ON00000001', 'CAD', -1093,
     NULL, 'Q261107090000UUUUUUUUUUUU', NULL, 1794042001000, 1794042001000),
    ('payment:Q261107090000UUUUUUUUUUUU', 'payment', 'provider_fees', 'CAD', -7,
     NULL, 'Q261107090000UUUUUUUUUUUU', NULL, 1794042001000, 1794042001000),
    ('refund:R261107093000VVVVVVVVVVVV', 'refund', 'wallet_clearing:wechatpay', 'CAD', -300,
     -1560, 'Q261107090000UUUUUUUUUUUU', 'R261107093000VVVVVVVVVVVV', 1794043801000, 1794043801000),
    ('refund:R261107093000VVVVVVVVVVVV', 'refund', 'merchant_payable:ON00000001', 'CAD', 298,
     NULL, 'Q261107090000UUUUUUUUUUUU', 'R261107093000VVVVVVVVVVVV', 1794043801000, 1794043801000),
    ('refund:R261107093000VVVVVVVVVVVV', 'refund', 'provider_fees', 'CAD', 2,
     NULL, 'Q261107090000UUUUUUUUUUUU', 'R261107093000VVVVVVVVVVVV', 1794043801000, 1794043801000),
    ('refund:R261107093100WWWWWWWWWWWW', 'refund', 'wallet_clearing:wechatpay', 'CAD', -1100,
     -5720, 'Q261102090000AAAAAAAAAAAA', 'R261107093100WWWWWWWWWWWW', 1794043860000, 1794043860000),
    ('refund:R261107093100WWWWWWWWWWWW', 'refund', 'merchant_payable:ON00000001', 'CAD', 1100,
     NULL, 'Q261102090000AAAAAAAAAAAA', 'R261107093100WWWWWWWWWWWW', 1794043860000, 1794043860000),
    ('payment:Q261107090100ZZZZZZZZZZZZ', 'payment', 'wallet_clearing:unionpay', 'USD', 2000,
     NULL, 'Q261107090100ZZZZZZZZZZZZ', NULL, 1794042061000, 1794042061000),
    ('payment:Q261107090100ZZZZZZZZZZZZ', 'payment', 'merchant_payable:QC00000002', 'USD', -2000,
     NULL, 'Q261107090100ZZZZZZZZZZZZ', NULL, 1794042061000, 1794042061000);

INSERT INTO wallet_fx_rates (wallet, currency, rate_e8, rate_time, fetched_at, created_at,
                             updated_at)
VALUES
    ('wechatpay', 'CAD', 523450000, '20261107100000', 1794042000000, 1794042000000, 1794042000000),
    ('wechatpay', 'USD', 718120000, '20261107100000', 1794042000000, 1794042000000, 1794042000000);
