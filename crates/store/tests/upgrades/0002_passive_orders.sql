-- Schema 0002 (orders): PASSIVEPAY orders in every state, as the closing loop leaves them, with
-- their timelines. Paid orders have no ledger posting (the ledger came with 0007, whose
-- migration posts them). Times: 2026-11-02 09:00 UTC = 1793610000000.

INSERT INTO orders (key, merchant_id, order_id, mode, wallet, currency, amount, tip, cny_amount,
                    rate_e8, operator_id, terminal_no, sale_num, status, wallet_code,
                    wallet_message, channel_ref, buyer, paid_at, wallet_created_at,
                    next_check_at, claimed_by, claimed_until, request_digest, created_at,
                    updated_at)
VALUES
    -- Paid at once, with a tip.
    ('Q261102090000AAAAAAAAAAAA', 'ON00000001', 'A1001', 'passive', 'wechatpay', 'CAD', 1000, 100,
     5720, 520000000, '0000000001', 'TILL-1', 'S-1', 'paid', NULL, NULL,
     '4200000001202611020000000001', 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o', 1793610003000, 1793610000000,
     NULL, NULL, NULL, 'b1f5a0d3c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6',
     1793610000000, 1793610003000),
    -- Paid after the customer confirmed (PROCESSING, then a query).
    ('Q261102090100BBBBBBBBBBBB', 'ON00000001', 'A1002', 'passive', 'alipay', 'CAD', 2550, 0,
     13260, 520000000, '0000000002', NULL, NULL, 'paid', NULL, NULL,
     '2026110222001400000000000001', '2088102000000001', 1793610070000, 1793610060000,
     NULL, NULL, NULL, 'c2f5a0d3c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6',
     1793610060000, 1793610070000),
    -- Declined.
    ('Q261102090200CCCCCCCCCCCC', 'ON00000001', 'A1003', 'passive', 'wechatpay', 'CAD', 500, 0,
     NULL, NULL, NULL, NULL, NULL, 'failed', 'NOTENOUGH', 'balance insufficient',
     NULL, NULL, NULL, 1793610120000,
     NULL, NULL, NULL, 'd3f5a0d3c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6',
     1793610120000, 1793610121000),
    -- Never confirmed: reversed when the window ended.
    ('Q261102090300DDDDDDDDDDDD', 'ON00000001', 'A1004', 'passive', 'wechatpay', 'CAD', 800, 0,
     NULL, NULL, NULL, NULL, NULL, 'reversed', 'USERPAYING', 'waiting for the customer',
     NULL, NULL, NULL, 1793610180000,
     NULL, NULL, NULL, 'e4f5a0d3c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6',
     1793610180000, 1793610225000),
    -- Paid with UnionPay, which reported no CNY amount; in USD.
    ('Q261102090400EEEEEEEEEEEE', 'QC00000002', 'B2001', 'passive', 'unionpay', 'USD', 4200, 300,
     NULL, NULL, '0000000001', 'pos_7.a', NULL, 'paid', NULL, NULL,
     '102611020904000000001', NULL, 1793610241000, 1793610240000,
     NULL, NULL, NULL, 'f5f5a0d3c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6',
     1793610240000, 1793610241000),
    -- Outcome unknown, due for a query.
    ('Q261102090500FFFFFFFFFFFF', 'QC00000002', 'B2002', 'passive', 'alipay', 'USD', 999, 0,
     NULL, NULL, NULL, NULL, NULL, 'unknown', NULL, NULL,
     NULL, NULL, NULL, 1793610300000,
     1793610305000, NULL, NULL, 'a6f5a0d3c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6',
     1793610300000, 1793610300000),
    -- Being paid, claimed by a node at the time of the upgrade.
    ('Q261102090600GGGGGGGGGGGG', 'ON00000001', 'A1005', 'passive', 'alipay', 'CAD', 1200, 0,
     NULL, NULL, NULL, NULL, NULL, 'paying', NULL, NULL,
     NULL, NULL, NULL, 1793610360000,
     1793610372000, 'node-a', 1793610450000, 'a7f5a0d3c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6',
     1793610360000, 1793610360000),
    -- Being reversed (the wallet asked to call again).
    ('Q261102090700HHHHHHHHHHHH', 'ON00000001', 'A1006', 'passive', 'wechatpay', 'CAD', 4300, 0,
     NULL, NULL, NULL, NULL, NULL, 'reversing', 'SYSTEMERROR', 'call again',
     NULL, NULL, NULL, 1793610420000,
     1793610480000, NULL, NULL, 'a8f5a0d3c2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6',
     1793610420000, 1793610470000);

INSERT INTO order_events (order_key, operation, outcome, wallet_code, latency_ms, created_at,
                          updated_at)
VALUES
    ('Q261102090000AAAAAAAAAAAA', 'pay', 'paid', NULL, 812, 1793610003000, 1793610003000),
    ('Q261102090100BBBBBBBBBBBB', 'pay', 'pending_user', '10003', 640, 1793610061000, 1793610061000),
    ('Q261102090100BBBBBBBBBBBB', 'query', 'paid', NULL, 210, 1793610070000, 1793610070000),
    ('Q261102090200CCCCCCCCCCCC', 'pay', 'declined', 'NOTENOUGH', 300, 1793610121000, 1793610121000),
    ('Q261102090300DDDDDDDDDDDD', 'pay', 'pending_user', 'USERPAYING', 500, 1793610181000, 1793610181000),
    ('Q261102090300DDDDDDDDDDDD', 'reverse', 'reversed', NULL, 420, 1793610225000, 1793610225000),
    ('Q261102090400EEEEEEEEEEEE', 'pay', 'paid', '00', 980, 1793610241000, 1793610241000),
    ('Q261102090500FFFFFFFFFFFF', 'pay', 'outcome_unknown', NULL, 12000, 1793610300000, 1793610300000),
    ('Q261102090700HHHHHHHHHHHH', 'reverse', 'outcome_unknown', 'SYSTEMERROR', 350, 1793610470000, 1793610470000);
