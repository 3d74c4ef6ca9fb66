-- Schema 0009 (the till's defences): PIN attempts counted per typed ids, from a known till and
-- from other browsers, some for ids that do not exist, one pair locked; a disabled operator.
-- Times: 2026-11-09 09:00 UTC = 1794214800000.

INSERT INTO till_pin_attempts (merchant_id, operator_id, device, failures, window_start,
                               locked_until, created_at, updated_at)
VALUES
    ('ON00000001', '0000000001', 'other', 6, 1794214500000, 1794214920000, 1794214500000,
     1794214800000),
    ('ON00000001', '0000000001', 'known_till', 1, 1794214700000, NULL, 1794214700000,
     1794214700000),
    -- Typed ids that name nobody are counted all the same.
    ('ON00009999', '0000000042', 'other', 3, 1794214600000, NULL, 1794214600000,
     1794214750000);

UPDATE operators SET status = 'disabled', updated_at = 1794214800000
WHERE merchant_id = 'QC00000002' AND id = '0000000001';
