-- Schema 0001 (foundation), as `merchant create`, `operator add`, `shop add`, `terminal add`,
-- `merchant rotate-key --grace`, `merchant disable` and `fx set` wrote it.
-- Times: 2026-11-01 09:00 UTC = 1793523600000.

INSERT INTO meta (key, value, created_at, updated_at)
VALUES ('master_key_check', '5d0f3c1a9e8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d', 1793523600000, 1793523600000);

INSERT INTO merchants (id, seq, name, currency, time_zone, status, sign_key_enc, sign_key_version,
                       previous_sign_key_enc, previous_sign_key_until, created_at, updated_at)
VALUES
    ('ON00000001', 1, 'Maple Tea', 'CAD', 'America/Toronto', 'active',
     X'01A1A2A3A4A5A6A7A8A9AAABAC00112233445566778899AABBCCDDEEFF', 1, NULL, NULL,
     1793523600000, 1793523600000),
    -- Rotated with a grace period: the previous key is kept until its end.
    ('QC00000002', 2, 'Érable & Fils', 'USD', 'America/Toronto', 'active',
     X'01B1B2B3B4B5B6B7B8B9BABBBC00112233445566778899AABBCCDDEEFF', 2,
     X'01C1C2C3C4C5C6C7C8C9CACBCC00112233445566778899AABBCCDDEEFF', 1793610000000,
     1793523600000, 1793523700000),
    ('BC00000003', 3, '枫叶茶馆', 'CAD', 'Asia/Shanghai', 'disabled',
     X'01D1D2D3D4D5D6D7D8D9DADBDC00112233445566778899AABBCCDDEEFF', 1, NULL, NULL,
     1793523600000, 1793523800000);

INSERT INTO shops (id, merchant_id, number, name, created_at, updated_at)
VALUES
    ('ON00000001001', 'ON00000001', 1, 'Main shop', 1793523600000, 1793523600000),
    ('ON00000001002', 'ON00000001', 2, 'Downtown', 1793523650000, 1793523650000),
    ('QC00000002001', 'QC00000002', 1, 'Main shop', 1793523600000, 1793523600000),
    ('BC00000003001', 'BC00000003', 1, 'Main shop', 1793523600000, 1793523600000);

INSERT INTO operators (merchant_id, id, number, name, created_at, updated_at)
VALUES
    ('ON00000001', '0000000001', 1, 'Operator 1', 1793523600000, 1793523600000),
    ('ON00000001', '0000000002', 2, 'Li Na', 1793523660000, 1793523660000),
    ('QC00000002', '0000000001', 1, 'Operator 1', 1793523600000, 1793523600000),
    ('BC00000003', '0000000001', 1, 'Operator 1', 1793523600000, 1793523600000);

INSERT INTO terminals (merchant_id, terminal_no, shop_id, name, created_at, updated_at)
VALUES
    ('ON00000001', 'TILL-1', 'ON00000001002', 'TILL-1', 1793523670000, 1793523670000),
    ('QC00000002', 'pos_7.a', NULL, 'Front desk', 1793523680000, 1793523680000);

INSERT INTO fx_rates (currency, rate_e8, source, created_at, updated_at)
VALUES
    ('CAD', 512340000, 'provider', 1793523600000, 1793523600000),
    ('USD', 712000000, 'provider', 1793523600000, 1793523600000);
