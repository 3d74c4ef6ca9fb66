-- Schema 0005 (what was sent with each wallet call): timeline entries with their detail.
-- Times: 2026-11-05 09:00 UTC = 1793869200000.

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at, code_url, expires_at, call_back_url)
VALUES
    ('Q261105090000QQQQQQQQQQQQ', 'ON00000001', 'A5001', 'passive', 'wechatpay', 'CAD', 999, 1,
     5200, 520000000, '0000000002', 'TILL-1', NULL, 'paid', NULL, NULL,
     '4200000001202611050000000003', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1793869201000, 1793869200000,
     NULL, NULL, NULL, '5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e',
     1793869200000, 1793869201000, NULL, NULL, NULL);

INSERT INTO order_events (order_key, operation, outcome, wallet_code, latency_ms, created_at,
                          updated_at, detail)
VALUES
    ('Q261105090000QQQQQQQQQQQQ', 'pay', 'paid', NULL, 655, 1793869201000, 1793869201000,
     'amount 9.99 CAD, tip 0.01 CAD'),
    -- An entry written before 0005 has no detail; so may one after.
    ('Q261102090500FFFFFFFFFFFF', 'query', 'outcome_unknown', NULL, 20000, 1793869230000,
     1793869230000, NULL);
