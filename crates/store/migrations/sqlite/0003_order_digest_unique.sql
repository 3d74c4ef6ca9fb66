-- One order per request content per merchant: a resent request without an order_id (a POS
-- retry, a replayed envelope) finds its first order instead of charging the code again.
CREATE UNIQUE INDEX orders_request_digest ON orders (merchant_id, request_digest);
