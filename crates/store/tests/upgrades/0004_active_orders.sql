-- Schema 0004 (ACTIVEPAY): QR orders with their code_url, expiry and call_back_url. No
-- notification was queued yet for a paid one (notifications came with 0006).
-- Times: 2026-11-04 09:00 UTC = 1793782800000.

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at, code_url, expires_at, call_back_url)
VALUES
    -- Shown, not paid yet.
    ('Q261104090000MMMMMMMMMMMM', 'ON00000001', 'QR-1', 'active', 'wechatpay', 'CAD', 1500, 0,
     NULL, NULL, NULL, NULL, NULL, 'pending', NULL, NULL, NULL, NULL, NULL, 1793782800000,
     1793782805000, NULL, NULL, '2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b',
     1793782800000, 1793782801000, 'weixin://wxpay/bizpayurl?pr=AbC123x', 1793783700000,
     'https://shop.example/notify?code=wechatpay'),
    -- Paid by the customer, found by the wallet's notification.
    ('Q261104090100NNNNNNNNNNNN', 'ON00000001', 'QR-2', 'active', 'alipay', 'CAD', 3000, 0,
     15600, 520000000, NULL, NULL, NULL, 'paid', NULL, NULL, '2026110422001400000000000002',
     '2088102000000002', 1793782890000, 1793782860000,
     NULL, NULL, NULL, '3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c',
     1793782860000, 1793782890000, 'https://qr.alipay.com/bax00001', 1793783760000,
     'https://shop.example/notify'),
    -- Expired and closed at the wallet.
    ('Q261104090200PPPPPPPPPPPP', 'QC00000002', 'QR-3', 'active', 'unionpay', 'USD', 700, 0,
     NULL, NULL, NULL, NULL, NULL, 'closed', NULL, NULL, NULL, NULL, NULL, 1793782920000,
     NULL, NULL, NULL, '4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d',
     1793782920000, 1793783820000, 'https://qr.95516.com/00010000/01', 1793783820000, NULL);

INSERT INTO order_events (order_key, operation, outcome, wallet_code, latency_ms, created_at,
                          updated_at)
VALUES
    ('Q261104090000MMMMMMMMMMMM', 'qr', 'pending_user', NULL, 330, 1793782801000, 1793782801000),
    ('Q261104090100NNNNNNNNNNNN', 'qr', 'pending_user', NULL, 410, 1793782861000, 1793782861000),
    ('Q261104090100NNNNNNNNNNNN', 'notification', 'paid', NULL, 0, 1793782890000, 1793782890000),
    ('Q261104090200PPPPPPPPPPPP', 'close', 'closed', NULL, 290, 1793783820000, 1793783820000);
