-- Schema 0010 (who made each wallet call): timeline entries that name their worker (node and
-- run), next to one written before 0010 that names none; and an order under a worker's claim.
-- Times: 2026-11-10 09:00 UTC = 1794301200000.

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at, code_url, expires_at, call_back_url, refund_reserved, refunded)
VALUES
    ('Q261110090000WWWWWWWWWWWW', 'ON00000001', 'W10001', 'passive', 'wechatpay', 'CAD', 500, 0,
     NULL, NULL, '0000000002', NULL, NULL, 'unknown', NULL, NULL, NULL, NULL, NULL,
     1794301200000, 1794301230000, 'node-0#k3j9.2', 1794301230000,
     '10a0b0c0d0e0f0a1b1c1d1e1f1a2b2c2d2e2f2a3b3c3d3e3f3a4b4c4d4e4f400', 1794301200000,
     1794301205000, NULL, NULL, NULL, 0, 0);

INSERT INTO order_events (order_key, operation, outcome, wallet_code, latency_ms, created_at,
                          updated_at, detail, worker)
VALUES
    ('Q261110090000WWWWWWWWWWWW', 'pay', 'outcome_unknown', NULL, 12000, 1794301212000,
     1794301212000, 'amount 5.00 CAD, tip 0.00 CAD', 'request'),
    ('Q261110090000WWWWWWWWWWWW', 'query', 'pending_user', 'USERPAYING', 180, 1794301205000,
     1794301205000, NULL, 'node-0#k3j9.2'),
    ('Q261110090000WWWWWWWWWWWW', 'query', 'outcome_unknown', NULL, 20000, 1794301230000,
     1794301230000, NULL, 'node-1#a8c2.1');
