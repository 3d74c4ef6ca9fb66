-- Schema 0014 (reconciliation): a reconciled run of a WeChat Pay bill with its file and two
-- lines, a run of a day without a bill, and breaks in each state (open, worked by the gateway,
-- resolved by a person). Times: 2026-11-14 02:00 UTC = 1794621600000.

INSERT INTO recon_runs (wallet, day, outcome, file_name, file_bytes, file_sha256, bill_lines,
                        bill_totals, our_items, our_totals, matched, held, breaks_found, worked,
                        run_by, created_at, updated_at)
VALUES
    ('wechatpay', '2026-11-13', 'reconciled', 'wechatpay_1900000109_20261113_ALL.csv',
     X'E4BAA4E69893E697B6E997B40D0A', '0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0',
     2, 'CAD 12.34', 2, 'CAD 12.34', 1, 1, 2, 1, 'node-a#1', 1794621600000, 1794621600000),
    ('unionpay', '2026-11-13', 'no_bill', NULL, NULL, NULL, 0, '', 0, '', 0, 0, 0, 0,
     'node-a#1', 1794621660000, 1794621660000);

INSERT INTO recon_lines (wallet, day, kind, subject, order_key, wallet_ref, currency, amount,
                         fee_milli, status, at, created_at, updated_at)
VALUES
    ('wechatpay', '2026-11-13', 'payment', 'Q261113101500ABCDEFGHJKLM', 'Q261113101500ABCDEFGHJKLM',
     '4200000001202611130001', 'CAD', 1134, 7000, 'succeeded', 1794536100000, 1794621600000,
     1794621600000),
    ('wechatpay', '2026-11-13', 'refund', 'R261113111500ABCDEFGHJKLM', 'Q261113101500ABCDEFGHJKLM',
     '5030000001202611130001', 'CAD', 100, -1000, 'succeeded', 1794539700000, 1794621600000,
     1794621600000);

INSERT INTO recon_breaks (wallet, day, kind, subject, order_key, refund_key, wallet_ref, ours,
                          theirs, status, note, resolved_by, resolved_at, created_at, updated_at)
VALUES
    ('wechatpay', '2026-11-13', 'missing_at_ours', 'GHOST1', NULL, NULL, '4200000009202611130009',
     'no such order', 'payment CAD 7.77', 'open', NULL, NULL, NULL, 1794621600000, 1794621600000),
    ('wechatpay', '2026-11-13', 'status', 'Q261113121500ABCDEFGHJKLM', 'Q261113121500ABCDEFGHJKLM',
     NULL, '4200000002202611130002', 'unknown', 'paid', 'worked',
     'queried the wallet: paid; recorded paid', NULL, NULL, 1794621600000, 1794621600000),
    ('wechatpay', '2026-11-13', 'fee', 'Q261113101500ABCDEFGHJKLM', 'Q261113101500ABCDEFGHJKLM',
     NULL, '4200000001202611130001', 'CAD 0.07', 'CAD 0.99', 'resolved',
     'the wallet confirmed its fee', 'admin@provider.example', 1794625200000, 1794621600000,
     1794625200000);
