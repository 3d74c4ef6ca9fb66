-- Cancelling an open order (docs/TILL.md, "Cancel"): when someone asked to cancel it and who
-- (an operator's id, or the POS). The closing loop then closes or reverses the order as soon
-- as its wallet allows, rather than at its expiry or the end of its confirmation window.
-- An order cancelled and paid all the same (a QR paid before its wallet closed it) is a
-- "late payment": the till shows it until someone refunds or keeps it, recorded here.
ALTER TABLE orders ADD COLUMN cancel_requested_at BIGINT;
ALTER TABLE orders ADD COLUMN cancel_requested_by TEXT;
ALTER TABLE orders ADD COLUMN late_payment TEXT CHECK (late_payment IN ('refunded', 'kept'));
ALTER TABLE orders ADD COLUMN late_payment_by TEXT;
ALTER TABLE orders ADD COLUMN late_payment_at BIGINT;
