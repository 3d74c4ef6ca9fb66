-- Schema 0006 (notifications to merchants): QR orders paid with their notification queued in
-- the same transaction, delivered, still being retried, and given up, with every attempt.
-- Times: 2026-11-06 09:00 UTC = 1793955600000.

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at, code_url, expires_at, call_back_url)
VALUES
    ('Q261106090000RRRRRRRRRRRR', 'ON00000001', 'QR-6001', 'active', 'alipay', 'CAD', 1800, 0,
     9360, 520000000, NULL, NULL, NULL, 'paid', NULL, NULL, '2026110622001400000000000003',
     '2088102000000003', 1793955630000, 1793955600000,
     NULL, NULL, NULL, '60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f',
     1793955600000, 1793955630000, 'https://qr.alipay.com/bax00002', 1793956500000,
     'https://shop.example/notify'),
    ('Q261106090100SSSSSSSSSSSS', 'ON00000001', 'QR-6002', 'active', 'wechatpay', 'CAD', 2200, 200,
     12480, 520000000, NULL, NULL, NULL, 'paid', NULL, NULL, '4200000001202611060000000004',
     'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1793955690000, 1793955660000,
     NULL, NULL, NULL, '718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60',
     1793955660000, 1793955690000, 'weixin://wxpay/bizpayurl?pr=DeF456y', 1793956560000,
     'https://shop.example/notify?code=wechatpay'),
    -- The same order_id as an order of another merchant.
    ('Q261106090200TTTTTTTTTTTT', 'QC00000002', 'QR-6001', 'active', 'alipay', 'USD', 5000, 0,
     35600, 712000000, NULL, NULL, NULL, 'paid', NULL, NULL, '2026110622001400000000000004',
     '2088102000000004', 1793955750000, 1793955720000,
     NULL, NULL, NULL, '8293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071',
     1793955720000, 1793955750000, 'https://qr.alipay.com/bax00003', 1793956620000,
     'https://other.example/cb');

INSERT INTO callbacks (order_key, merchant_id, url, status, attempts, next_attempt_at, claimed_by,
                       claimed_until, created_at, updated_at)
VALUES
    ('Q261106090000RRRRRRRRRRRR', 'ON00000001', 'https://shop.example/notify', 'delivered', 1,
     NULL, NULL, NULL, 1793955630000, 1793955631000),
    ('Q261106090100SSSSSSSSSSSS', 'ON00000001', 'https://shop.example/notify?code=wechatpay',
     'pending', 2, 1793955795000, NULL, NULL, 1793955690000, 1793955715000),
    ('Q261106090200TTTTTTTTTTTT', 'QC00000002', 'https://other.example/cb', 'dead', 3, NULL, NULL,
     NULL, 1793955750000, 1794045750000);

INSERT INTO callback_attempts (order_key, http_status, latency_ms, excerpt, created_at,
                               updated_at)
VALUES
    ('Q261106090000RRRRRRRRRRRR', 200, 120, 'OK', 1793955631000, 1793955631000),
    ('Q261106090100SSSSSSSSSSSS', 500, 80, 'Internal Server Error', 1793955690000, 1793955690000),
    ('Q261106090100SSSSSSSSSSSS', NULL, 10000, 'request failed: operation timed out',
     1793955715000, 1793955715000),
    ('Q261106090200TTTTTTTTTTTT', 200, 95, 'fail', 1793955750000, 1793955750000),
    ('Q261106090200TTTTTTTTTTTT', 200, 90, 'fail', 1793955765000, 1793955765000),
    ('Q261106090200TTTTTTTTTTTT', 404, 70, 'Not Found', 1794045750000, 1794045750000);
