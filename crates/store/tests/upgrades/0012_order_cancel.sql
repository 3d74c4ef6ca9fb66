-- Schema 0012 (cancelling a sale): a WeChat QR cancelled on the till and still open (WeChat
-- refuses a close in its first 5 minutes), an Alipay QR cancelled and closed, a late payment
-- nobody has decided on (cancelled, paid all the same, posted), and one kept.
-- Times: 2026-11-12 09:00 UTC = 1794474000000.

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at, code_url, expires_at, call_back_url, refund_reserved, refunded,
                    cancel_requested_at, cancel_requested_by, late_payment, late_payment_by,
                    late_payment_at)
VALUES
    -- Cancelled 20 s after it was shown; WeChat closes it at 5 min 10 s.
    ('Q261112090000CCCCCCCCCCCC', 'ON00000001', 'T12001', 'active', 'wechatpay', 'CAD', 1000, 0,
     NULL, NULL, '0000000001', 'WEB-TILL', NULL, 'pending', NULL, NULL, NULL, NULL, NULL,
     1794474000000, 1794474025000, NULL, NULL,
     '5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a60', 1794474000000,
     1794474020000, 'weixin://wxpay/bizpayurl?pr=CaNcEl1', 1794474900000, NULL, 0, 0,
     1794474020000, '0000000001', NULL, NULL, NULL),
    -- Cancelled and closed at Alipay.
    ('Q261112090100DDDDDDDDDDDD', 'ON00000001', 'T12002', 'active', 'alipay', 'CAD', 1500, 0,
     NULL, NULL, '0000000001', 'WEB-TILL', NULL, 'closed', NULL, NULL, NULL, NULL, NULL,
     1794474060000, NULL, NULL, NULL,
     '6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b71', 1794474060000,
     1794474070000, 'https://qr.alipay.com/baxcancel2', 1794474960000, NULL, 0, 0,
     1794474069000, '0000000001', NULL, NULL, NULL),
    -- Left with "New sale", paid before WeChat allowed the close: a late payment to decide.
    ('Q261112090200EEEEEEEEEEEE', 'ON00000001', 'T12003', 'active', 'wechatpay', 'CAD', 1000, 0,
     5200, 520000000, '0000000001', 'WEB-TILL', NULL, 'paid', NULL, NULL,
     '4200000000202611120000000003', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1794474180000,
     1794474120000, NULL, NULL, NULL,
     '7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c82', 1794474120000,
     1794474180000, 'weixin://wxpay/bizpayurl?pr=CaNcEl3', 1794475020000, NULL, 0, 0,
     1794474130000, '0000000001', NULL, NULL, NULL),
    -- The same, kept by the operator (the customer had paid nothing else).
    ('Q261112090300FFFFFFFFFFFF', 'ON00000001', 'T12004', 'active', 'wechatpay', 'CAD', 1000, 0,
     5200, 520000000, '0000000001', 'WEB-TILL', NULL, 'paid', NULL, NULL,
     '4200000000202611120000000004', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1794474240000,
     1794474180000, NULL, NULL, NULL,
     '8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d93', 1794474180000,
     1794474300000, 'weixin://wxpay/bizpayurl?pr=CaNcEl4', 1794475080000, NULL, 0, 0,
     1794474190000, '0000000001', 'kept', '0000000001', 1794474300000);

INSERT INTO ledger_entries (txn, kind, account, currency, amount, payer_amount, order_key,
                            refund_key, created_at, updated_at)
VALUES
    ('payment:Q261112090200EEEEEEEEEEEE', 'payment', 'wallet_clearing:wechatpay', 'CAD', 1000,
     5200, 'Q261112090200EEEEEEEEEEEE', NULL, 1794474180000, 1794474180000),
    ('payment:Q261112090200EEEEEEEEEEEE', 'payment', 'merchant_payable:ON00000001', 'CAD', -994,
     NULL, 'Q261112090200EEEEEEEEEEEE', NULL, 1794474180000, 1794474180000),
    ('payment:Q261112090200EEEEEEEEEEEE', 'payment', 'provider_fees', 'CAD', -6,
     NULL, 'Q261112090200EEEEEEEEEEEE', NULL, 1794474180000, 1794474180000),
    ('payment:Q261112090300FFFFFFFFFFFF', 'payment', 'wallet_clearing:wechatpay', 'CAD', 1000,
     5200, 'Q261112090300FFFFFFFFFFFF', NULL, 1794474240000, 1794474240000),
    ('payment:Q261112090300FFFFFFFFFFFF', 'payment', 'merchant_payable:ON00000001', 'CAD', -994,
     NULL, 'Q261112090300FFFFFFFFFFFF', NULL, 1794474240000, 1794474240000),
    ('payment:Q261112090300FFFFFFFFFFFF', 'payment', 'provider_fees', 'CAD', -6,
     NULL, 'Q261112090300FFFFFFFFFFFF', NULL, 1794474240000, 1794474240000);
