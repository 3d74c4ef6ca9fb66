-- What was sent with a wallet call (amounts, never a payment code or a key).
ALTER TABLE order_events ADD COLUMN detail TEXT;
