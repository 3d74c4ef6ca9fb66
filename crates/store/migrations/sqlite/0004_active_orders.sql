-- Active-mode (QR) orders: the QR the POS shows, when it stops being payable, and where the
-- merchant wants to hear about the payment.
ALTER TABLE orders ADD COLUMN code_url TEXT;
ALTER TABLE orders ADD COLUMN expires_at BIGINT;
ALTER TABLE orders ADD COLUMN call_back_url TEXT;
