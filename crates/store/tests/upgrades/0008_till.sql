-- Schema 0008 (the web till): operators' PIN hashes, a lockout and a window of wrong PINs, a
-- signed-in till, and a sale taken on it, posted with the merchant's fee.
-- Times: 2026-11-08 09:00 UTC = 1794128400000.

UPDATE operators
SET pin_hash = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$Wc5lVmWnxvL7oE1Yvq9mI1dW0z0Yq9mI1dW0z0Yq9mI',
    updated_at = 1794128400000
WHERE merchant_id = 'ON00000001' AND id = '0000000002';
UPDATE operators
SET pin_hash = '$argon2id$v=19$m=19456,t=2,p=1$bm90c2FsdG5vdHNhbHQ$Zd6mWnXoyM8pF2Zwr0nJ2eX1a1Zr0nJ2eX1a1Zr0nJ2',
    pin_failures = 5, pin_failure_window_start = 1794128100000, pin_locked_until = 1794129300000,
    updated_at = 1794128400000
WHERE merchant_id = 'ON00000001' AND id = '0000000001';
UPDATE operators
SET pin_failures = 2, pin_failure_window_start = 1794128300000, updated_at = 1794128300000
WHERE merchant_id = 'QC00000002' AND id = '0000000001';

INSERT INTO till_sessions (token_hash, merchant_id, operator_id, created_at, expires_at,
                           last_seen_at, updated_at)
VALUES
    ('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', 'ON00000001',
     '0000000002', 1794128400000, 1794171600000, 1794128460000, 1794128460000);

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at, code_url, expires_at, call_back_url, refund_reserved, refunded)
VALUES
    ('Q261108090000ABCDEFGHJKLM', 'ON00000001', 'T8001', 'passive', 'alipay', 'CAD', 2000, 0,
     10400, 520000000, '0000000002', NULL, NULL, 'paid', NULL, NULL,
     '2026110822001400000000000005', '2088102000000001', 1794128461000, 1794128460000,
     NULL, NULL, NULL, 'f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8',
     1794128460000, 1794128461000, NULL, NULL, NULL, 0, 0);

INSERT INTO order_events (order_key, operation, outcome, wallet_code, latency_ms, created_at,
                          updated_at, detail)
VALUES
    ('Q261108090000ABCDEFGHJKLM', 'pay', 'paid', NULL, 590, 1794128461000, 1794128461000,
     'amount 20.00 CAD, tip 0.00 CAD');

INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, order_key,
                            refund_key, created_at, updated_at)
VALUES
    ('payment:Q261108090000ABCDEFGHJKLM', 'payment', 'wallet_clearing:alipay', 'CAD', 2000,
     10400, 'Q261108090000ABCDEFGHJKLM', NULL, 1794128461000, 1794128461000),
    ('payment:Q261108090000ABCDEFGHJKLM', 'payment', 'merchant_payable:ON00000001', 'CAD', -1988,
     NULL, 'Q261108090000ABCDEFGHJKLM', NULL, 1794128461000, 1794128461000),
    ('payment:Q261108090000ABCDEFGHJKLM', 'payment', 'provider_fees', 'CAD', -12,
     NULL, 'Q261108090000ABCDEFGHJKLM', NULL, 1794128461000, 1794128461000);
