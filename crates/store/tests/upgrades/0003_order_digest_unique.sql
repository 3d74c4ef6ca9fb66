-- Schema 0003 (one order per request content per merchant): orders written with the keyed
-- request digest, which is now unique per merchant. A request resent without an order_id found
-- its first order instead of making a second one, so there is nothing more to write for it.
-- Times: 2026-11-03 09:00 UTC = 1793696400000.

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at)
VALUES
    -- The order_id was generated (the POS sent none): it is the order's key.
    ('Q261103090000JJJJJJJJJJJJ', 'ON00000001', 'Q261103090000JJJJJJJJJJJJ', 'passive',
     'wechatpay', 'CAD', 12345, 655, 66560, 512000000, NULL, 'TILL-1', NULL, 'paid', NULL, NULL,
     '4200000001202611030000000002', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1793696402000, 1793696400000,
     NULL, NULL, NULL, '0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9',
     1793696400000, 1793696402000),
    ('Q261103090100KKKKKKKKKKKK', 'QC00000002', 'B3001', 'passive', 'alipay', 'USD', 150, 0,
     NULL, NULL, NULL, NULL, NULL, 'failed', 'ACQ.PAYMENT_AUTH_CODE_INVALID',
     'payment code invalid', NULL, NULL, NULL, 1793696460000,
     NULL, NULL, NULL, '1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a',
     1793696460000, 1793696461000);

INSERT INTO order_events (order_key, operation, outcome, wallet_code, latency_ms, created_at,
                          updated_at)
VALUES
    ('Q261103090000JJJJJJJJJJJJ', 'pay', 'paid', NULL, 700, 1793696402000, 1793696402000),
    ('Q261103090100KKKKKKKKKKKK', 'pay', 'declined', 'ACQ.PAYMENT_AUTH_CODE_INVALID', 260,
     1793696461000, 1793696461000);
