-- Schema 0011 (the web console): its users in every role and state (a provider admin with a
-- password and two-factor sign-in, a merchant owner whose one-time link is unused, a disabled
-- staff member locked after wrong passwords), a session of each kind, and audit entries of
-- the console and of the CLI. Times: 2026-11-11 09:00 UTC = 1794387600000.

INSERT INTO console_users (email, role, merchant_id, status, password_hash, setup_token_hash,
                           setup_expires_at, totp_secret_enc, totp_enabled, totp_last_step,
                           failures, failure_window_start, locked_until, created_at, updated_at)
VALUES
    ('admin@provider.example', 'provider_admin', NULL, 'active',
     '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2mTEJ3ZmdbVOkRFfDvSMkJyCx1mQ4gBPEadDvGGXDWM',
     NULL, NULL, X'01AABBCCDDEEFF00112233445566778899AABBCCDDEEFF0011223344556677889900', 1,
     59812920, 0, NULL, NULL, 1794387600000, 1794387600000),
    ('owner@maple.example', 'merchant_owner', 'ON00000001', 'active', NULL,
     'a7f1d92a82c8d8fe434d98558ce2b347171198542f112d0558f56bd68807999248', 1794646800000, NULL, 0,
     NULL, 0, NULL, NULL, 1794387660000, 1794387660000),
    ('staff@maple.example', 'merchant_staff', 'ON00000001', 'disabled',
     '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$2mTEJ3ZmdbVOkRFfDvSMkJyCx1mQ4gBPEadDvGGXDWM',
     NULL, NULL, NULL, 0, NULL, 0, NULL, 1794388500000, 1794387720000, 1794387900000);

INSERT INTO console_sessions (token_hash, user_id, pending_totp, ip, created_at, expires_at,
                              last_seen_at, updated_at)
SELECT '5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8', id, 0, '203.0.113.7',
       1794387700000, 1794430900000, 1794387800000, 1794387800000
FROM console_users WHERE email = 'admin@provider.example';

INSERT INTO console_sessions (token_hash, user_id, pending_totp, ip, created_at, expires_at,
                              last_seen_at, updated_at)
SELECT '6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b', id, 1, '2001:db8::1',
       1794387750000, 1794430950000, 1794387750000, 1794387750000
FROM console_users WHERE email = 'admin@provider.example';

INSERT INTO audit_log (user_id, actor, merchant_id, action, target, ip, before_json, after_json,
                       created_at, updated_at)
VALUES
    (NULL, 'cli', NULL, 'user.create', 'admin@provider.example', 'cli', NULL,
     '{"email":"admin@provider.example","role":"provider_admin","merchant_id":null,"status":"active"}',
     1794387600000, 1794387600000);

INSERT INTO audit_log (user_id, actor, merchant_id, action, target, ip, before_json, after_json,
                       created_at, updated_at)
SELECT id, 'admin@provider.example', 'ON00000001', 'merchant.fee', 'ON00000001', '203.0.113.7',
       '{"fee_bps":60}', '{"fee_bps":60}', 1794387800000, 1794387800000
FROM console_users WHERE email = 'admin@provider.example';
