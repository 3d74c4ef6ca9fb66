-- Schema 0013 (refunds with a second look): a supervisor, a merchant's approval limit, and a
-- refund approved by the supervisor (who asked is its operator_id), posted with its fee back.
-- Times: 2026-11-13 09:00 UTC = 1794560400000.

UPDATE operators SET role = 'supervisor', updated_at = 1794560400000
WHERE merchant_id = 'ON00000001' AND id = '0000000002';
UPDATE merchants SET refund_approval_above = 2500, updated_at = 1794560400000
WHERE id = 'ON00000001';

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at, code_url, expires_at, call_back_url, refund_reserved, refunded,
                    cancel_requested_at, cancel_requested_by, late_payment, late_payment_by,
                    late_payment_at)
VALUES
    ('Q261113090000GGGGGGGGGGGG', 'ON00000001', 'T13001', 'passive', 'alipay', 'CAD', 5000, 0,
     26000, 520000000, '0000000001', 'WEB-TILL', NULL, 'paid', NULL, NULL,
     '2026111322001400000000000013', '2088102000000013', 1794560401000, 1794560400000,
     NULL, NULL, NULL, '9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e04',
     1794560400000, 1794560460000, NULL, NULL, NULL, 3000, 3000, NULL, NULL, NULL, NULL, NULL);

INSERT INTO refunds (key, merchant_id, refund_order_id, order_key, wallet, currency, amount,
                     cny_amount, status, wallet_code, wallet_message, channel_ref, sends,
                     operator_id, request_digest, wallet_created_at, next_check_at, claimed_by,
                     claimed_until, finished_at, created_at, updated_at, approved_by)
VALUES
    ('R261113090100HHHHHHHHHHHH', 'ON00000001', 'R261113090100APPROVED', 'Q261113090000GGGGGGGGGGGG',
     'alipay', 'CAD', 3000, 15600, 'succeeded', NULL, NULL, '2026111322001400000000000013', 1,
     '0000000001', 'af0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e05',
     1794560460000, NULL, NULL, NULL, 1794560460000, 1794560460000, 1794560460000, '0000000002');

INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, order_key,
                            refund_key, created_at, updated_at)
VALUES
    ('payment:Q261113090000GGGGGGGGGGGG', 'payment', 'wallet_clearing:alipay', 'CAD', 5000,
     26000, 'Q261113090000GGGGGGGGGGGG', NULL, 1794560401000, 1794560401000),
    ('payment:Q261113090000GGGGGGGGGGGG', 'payment', 'merchant_payable:ON00000001', 'CAD', -4970,
     NULL, 'Q261113090000GGGGGGGGGGGG', NULL, 1794560401000, 1794560401000),
    ('payment:Q261113090000GGGGGGGGGGGG', 'payment', 'provider_fees', 'CAD', -30,
     NULL, 'Q261113090000GGGGGGGGGGGG', NULL, 1794560401000, 1794560401000),
    ('refund:R261113090100HHHHHHHHHHHH', 'refund', 'wallet_clearing:alipay', 'CAD', -3000,
     -15600, 'Q261113090000GGGGGGGGGGGG', 'R261113090100HHHHHHHHHHHH', 1794560460000, 1794560460000),
    ('refund:R261113090100HHHHHHHHHHHH', 'refund', 'merchant_payable:ON00000001', 'CAD', 2982,
     NULL, 'Q261113090000GGGGGGGGGGGG', 'R261113090100HHHHHHHHHHHH', 1794560460000, 1794560460000),
    ('refund:R261113090100HHHHHHHHHHHH', 'refund', 'provider_fees', 'CAD', 18,
     NULL, 'Q261113090000GGGGGGGGGGGG', 'R261113090100HHHHHHHHHHHH', 1794560460000, 1794560460000);
